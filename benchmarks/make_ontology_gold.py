"""Build ``benchmarks/data/ontology_gold.tsv``: public, curated pairs of author free text and
Cell Ontology id, with a dev and a test split (how the file in the repo was made).

    .venv/bin/python benchmarks/make_ontology_gold.py \\
        [--tabula-muris DIR] [--panglao FILE] [--nbatlas FILE] [--celltypist FILE] \\
        [--celldex DIR] [--azimuth DIR] [--out FILE]

A set whose source is not given keeps its rows from the existing ``--out`` file, so one set
can be added or rebuilt without the others' downloads.

Sources (each row names its repository, commit and path in ``source``):

* ``tabula-muris``: Tabula Muris per-cell annotations, droplet and FACS, every tissue
  (czbiohub-sf/tabula-muris ``00_data_ingest/03_tissue_annotation_csv/*_{droplet,facs}_
  annotation.csv``, BSD-3): the authors' ``free_annotation`` and the curated class text
  ``cell_ontology_class`` with the curators' ``cell_ontology_id``; one row per unique
  (tissue, text), gold = the id most of its cells carry. Split by tissue: the tissues
  ``../shared/data/ontology-gold`` calls held out (Limb_Muscle, Mammary_Gland, Tongue) and
  Large_Intestine, Marrow, Skin are test; the others dev.
* ``panglao``: PanglaoDB's cell-type names mapped to CL by the ScPCA team
  (AlexsLemonade/scpca-nf ``references/panglao-cell-type-ontologies.tsv``, BSD-3).
* ``nbatlas``: the neuroblastoma atlas' (NBAtlas) labels mapped to CL by OpenScPCA
  (AlexsLemonade/OpenScPCA-analysis ``analyses/cell-type-neuroblastoma-04/references/
  nbatlas-ontology-ids.tsv``, BSD-3).
* ``celltypist``: the Pan-Immune CellTypist atlas' low-hierarchy cell-type names with the
  Cell Ontology id its authors gave each (Teichlab/celltypist_wiki ``atlases/Pan_Immune_
  CellTypist/v2/tables/Basic_celltype_information.xlsx``; the repository states no licence:
  only the label -> id pairs are kept, with their source). Every row is **dev**: scatlas'
  abbreviation table cites the CellTypist paper for rows written before this set was added
  (ILC1-3, DC, Tfh, Th1/2/17, NKT, γδT, Mac), so its labels cannot measure generalisation.
* ``celldex``: the reference labels of SingleR's celldex package, each mapped to CL by the
  celldex authors (SingleR-inc/celldex ``inst/mapping/*.tsv``, GPL-3; ``DIR`` is that
  ``inst/mapping`` folder). Mouse: ImmGen's population names ("T cells (T.4Nve)", "DC
  (DC.8-4-11B+)": a cell type and ImmGen's sort code) and the mouse RNA-seq labels
  ("Astrocytes activated", "qNSCs"); human: the Human Primary Cell Atlas
  ("T_cell:CD8+_naive"), Blueprint/ENCODE, Monaco, DICE and Novershtern labels ("T cells,
  CD4+, Th1_17", "Erythroid_CD34- CD71+ GlyA-"). The files give no CL name: ``gold_label``
  is the pinned CL's name of the id, if it has it. A text repeated (in any case) keeps the
  id of its first file in the order above. Texts that a curated table of scatlas already
  holds when the set is built ("CLP", "OPCs") are dev: they cannot measure generalisation.

* ``azimuth``: the Azimuth references' labels ("CD4 TCM", "Ascending Thin Limb") and
  expanded labels ("CD4+ Central Memory T") with the CL id their curators gave each
  (hubmapconsortium/asctb-azimuth-data-comparison ``data/azimuth_ct_tables/*.csv``, from
  commit 723b2d7, the last to hold them; no licence stated: only label -> id pairs are
  kept). ``DIR`` holds those CSVs. Tissue: the reference's. Split by the hash of a row's
  label (its texts share it); the PBMC reference is dev (the abbreviation table cites its
  paper), as is a text a curated table holds. Cluster-level tables and the fetal atlas
  (no ids) are left out.

Panglao, NBAtlas, CellTypist and celldex rows have no tissue; Panglao, NBAtlas and celldex are
split by the parity of the SHA-1 of the lower-cased text (stable, blind to content). Rows
whose curated id is NA or malformed are kept with an empty ``gold_id`` (counted, never
scored).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from scatlas.ontology import cached_ontology  # noqa: E402
from scatlas.ontology.tables import (  # noqa: E402
    ABBREVIATIONS,
    ANATOMY_ABBREVIATIONS,
    IMPLIED_TERMS,
    TISSUE_TERMS,
    read_texts,
)
from scatlas.ontology.text import normalise_text  # noqa: E402
from scatlas.package_data import snapshot_obo  # noqa: E402

TM_TEST_TISSUES = frozenset(
    {"Limb_Muscle", "Mammary_Gland", "Tongue", "Large_Intestine", "Marrow", "Skin"}
)
TM_SOURCE = "czbiohub-sf/tabula-muris@dedd8352d4348150e199162f966f7442976acdd3:00_data_ingest/03_tissue_annotation_csv/{}"
PANGLAO_SOURCE = "AlexsLemonade/scpca-nf@c8dcef0f546d4fa2e5aa7b910eeac04197d84da0:references/panglao-cell-type-ontologies.tsv"
NBATLAS_SOURCE = "AlexsLemonade/OpenScPCA-analysis@2108493861c037088e27dfb2ba6149b498da8cd0:analyses/cell-type-neuroblastoma-04/references/nbatlas-ontology-ids.tsv"
CELLTYPIST_SOURCE = "Teichlab/celltypist_wiki@ef8b31928cbb41cd24494f42d6ac9d524965071a:atlases/Pan_Immune_CellTypist/v2/tables/Basic_celltype_information.xlsx"
CELLDEX_SOURCE = "SingleR-inc/celldex@ddf0173debf240f0861b32e3b96fa35bc67d8ecc:inst/mapping/{}"
CELLDEX_FILES = (
    "immgen.tsv",
    "mouse_rnaseq.tsv",
    "hpca.tsv",
    "blueprint_encode.tsv",
    "monaco.tsv",
    "dice.tsv",
    "novershtern.tsv",
)
AZIMUTH_SOURCE = "hubmapconsortium/asctb-azimuth-data-comparison@723b2d7e544e6533309c8bcfca9891f7c59a5016:data/azimuth_ct_tables/{}"
# the Azimuth reference tables kept, with the tissue each reference is of; the cluster-level
# tables (cortex and mouse-brain clusters: marker-gene names whose ids are their class's)
# and the fetal atlas (no ids) are left out
AZIMUTH_FILES = {
    "kidney__annotation.l1.csv": "kidney",
    "kidney__annotation.l2.csv": "kidney",
    "kidney__annotation.l3.csv": "kidney",
    "lung__annotation.l1.csv": "lung",
    "lung__annotation.l2.csv": "lung",
    "pancreas__annotation.l1.csv": "pancreas",
    "pbmc__celltype.l1.csv": "blood",
    "pbmc__celltype.l2.csv": "blood",
    "pbmc__celltype.l3.csv": "blood",
    "motor_cortex__class.csv": "brain",
    "motor_cortex__subclass.csv": "brain",
    "mousebrain_class.csv": "brain",
    "mousebrain_subclass.csv": "brain",
}
_ONTOBEE_CL = re.compile(r"obo/CL_(\d+)\)")
COLUMNS = ["set", "split", "kind", "tissue", "text", "gold_id", "gold_label", "n_cells", "source"]
_CL = re.compile(r"CL:\d{7}")


def _valid(cl_id: str) -> str:
    return cl_id if _CL.fullmatch(cl_id or "") else ""


def text_split(text: str) -> str:
    return "test" if int(hashlib.sha1(text.lower().encode()).hexdigest(), 16) % 2 else "dev"


def tabula_muris(folder: Path) -> pd.DataFrame:
    """One row per (tissue, text) of each text field, gold = the majority id of its cells."""
    files = sorted(folder.glob("*_droplet_annotation.csv")) + sorted(
        folder.glob("*_facs_annotation.csv")
    )
    if not files:
        raise SystemExit(f"no *_droplet_annotation.csv / *_facs_annotation.csv in {folder}")
    cells = []
    for f in files:
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
        df["file"] = f.name
        cells.append(df)
    allc = pd.concat(cells, ignore_index=True)
    rows = []
    for kind, col in (("class", "cell_ontology_class"), ("free", "free_annotation")):
        df = allc[~allc[col].str.strip().isin(["", "NA"])]
        for (tissue, text), grp in df.groupby(["tissue", col]):
            gold = Counter(grp["cell_ontology_id"]).most_common(1)[0][0]
            label = grp.loc[grp["cell_ontology_id"] == gold, "cell_ontology_class"].iloc[0]
            rows.append(
                {
                    "set": "tabula-muris",
                    "split": "test" if tissue in TM_TEST_TISSUES else "dev",
                    "kind": kind,
                    "tissue": tissue,
                    "text": text,
                    "gold_id": _valid(gold),
                    "gold_label": label if _valid(gold) else "",
                    "n_cells": len(grp),
                    "source": TM_SOURCE.format(",".join(sorted(set(grp["file"])))),
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def label_table(path: Path, name: str, cols: tuple[str, str, str], source: str) -> pd.DataFrame:
    """A two-column curated table (author label -> CL id), split by text hash."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return label_rows(df, name, cols, source)


def label_rows(
    df: pd.DataFrame, name: str, cols: tuple[str, str, str], source: str, split: str = ""
) -> pd.DataFrame:
    """Gold rows of a table's (author label, CL id, CL name) columns, in ``split`` or, by
    default, split by text hash."""
    text_col, id_col, label_col = cols
    rows = [
        {
            "set": name,
            "split": split or text_split(r[text_col]),
            "kind": "free",
            "tissue": "",
            "text": r[text_col],
            "gold_id": _valid(r[id_col]),
            "gold_label": r[label_col] if _valid(r[id_col]) else "",
            "n_cells": "",
            "source": source,
        }
        for _, r in df.iterrows()
        if r[text_col].strip()
    ]
    return pd.DataFrame(rows, columns=COLUMNS).drop_duplicates(["text"])


def celltypist(path: Path) -> pd.DataFrame:
    """The Pan-Immune CellTypist encyclopedia's low-hierarchy names and their CL ids (the
    table gives no CL name: ``gold_label`` is the pinned CL's name of the id, if it has it)."""
    df = pd.read_excel(path, dtype=str).fillna("")
    need = {"Low-hierarchy cell types", "Cell Ontology ID"}
    if not need <= set(df.columns):
        raise SystemExit(f"{path}: columns {sorted(need - set(df.columns))} missing")
    df["Cell Ontology ID"] = df["Cell Ontology ID"].str.strip()
    df["name"] = _pinned_names(df["Cell Ontology ID"])
    cols = ("Low-hierarchy cell types", "Cell Ontology ID", "name")
    return label_rows(df, "celltypist", cols, CELLTYPIST_SOURCE, split="dev")


def _pinned_names(ids: pd.Series) -> list[str]:
    """The pinned CL's name of each id ("" for an id it lacks)."""
    onto = cached_ontology(snapshot_obo())
    return [onto.label(i) if i in onto else "" for i in ids]


def _table_texts() -> set[str]:
    """The texts of scatlas' curated tables, normalised."""
    paths = (ABBREVIATIONS, TISSUE_TERMS, IMPLIED_TERMS, ANATOMY_ABBREVIATIONS)
    return {normalise_text(t) for path in paths for t in read_texts(path)}


def celldex(folder: Path) -> pd.DataFrame:
    """celldex's label -> CL id mappings (headerless two-column TSVs)."""
    parts = []
    for name in CELLDEX_FILES:
        if not (folder / name).is_file():
            raise SystemExit(f"{folder / name}: missing (give celldex's inst/mapping folder)")
        df = pd.read_csv(folder / name, sep="\t", header=None, names=["text", "id"], dtype=str,
                         keep_default_na=False)  # fmt: skip
        df["id"] = df["id"].str.strip()
        df["name"] = _pinned_names(df["id"])
        parts.append(label_rows(df, "celldex", ("text", "id", "name"), CELLDEX_SOURCE.format(name)))
    rows = pd.concat(parts, ignore_index=True)
    rows = rows[~rows["text"].str.lower().duplicated()].copy()
    held = _table_texts()
    rows.loc[[normalise_text(t) in held for t in rows["text"]], "split"] = "dev"
    return rows


def azimuth(folder: Path) -> pd.DataFrame:
    """The Azimuth references' labels ("CD4 TCM", "Ascending Thin Limb", "L2/3 IT") and
    expanded labels ("CD4+ Central Memory T"), each with the reference's CL id and the
    reference's tissue. A row's texts share its split, by the hash of its label; the PBMC
    reference's rows and texts a curated table holds are dev."""
    held = _table_texts()
    rows = []
    for name, tissue in AZIMUTH_FILES.items():
        if not (folder / name).is_file():
            raise SystemExit(f"{folder / name}: missing (give the azimuth_ct_tables folder)")
        df = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
        for _, r in df.iterrows():
            link = _ONTOBEE_CL.search(r["OBO Ontology ID"])
            gold = _valid(f"CL:{link.group(1)}" if link else "")  # UBERON, "CL_000084": none
            split = "dev" if name.startswith("pbmc") else text_split(r["Label"])
            for text in dict.fromkeys([r["Label"], r.get("Expanded Label", "")]):
                if text.strip():
                    rows.append(
                        {
                            "set": "azimuth",
                            "split": "dev" if normalise_text(text) in held else split,
                            "kind": "free",
                            "tissue": tissue,
                            "text": text.strip(),
                            "gold_id": gold,
                            "gold_label": "",
                            "n_cells": "",
                            "source": AZIMUTH_SOURCE.format(name),
                        }
                    )
    out = pd.DataFrame(rows, columns=COLUMNS).drop_duplicates(["tissue", "text"])
    out["gold_label"] = _pinned_names(out["gold_id"])
    return out


def panglao(path: Path) -> pd.DataFrame:
    cols = ("panglao_cell_type", "ontology_id", "human_readable_value")
    return label_table(path, "panglao", cols, PANGLAO_SOURCE)


def nbatlas(path: Path) -> pd.DataFrame:
    cols = ("NBAtlas_label", "CL_ontology_id", "CL_annotation")
    return label_table(path, "nbatlas", cols, NBATLAS_SOURCE)


SETS = {
    "tabula-muris": tabula_muris,
    "panglao": panglao,
    "nbatlas": nbatlas,
    "celltypist": celltypist,
    "celldex": celldex,
    "azimuth": azimuth,
}


def build(sources: dict[str, Path | None], out: Path) -> pd.DataFrame:
    """Every set whose source is given, plus the other sets' rows from the existing ``out``."""
    given = {name: path for name, path in sources.items() if path is not None}
    if not given:
        raise SystemExit("give at least one source: " + ", ".join(f"--{n}" for n in SETS))
    parts = [SETS[name](path) for name, path in given.items()]
    if out.exists():
        old = pd.read_csv(out, sep="\t", dtype=str, keep_default_na=False)
        parts.append(old[~old["set"].isin(list(given))])
    gold = pd.concat(parts, ignore_index=True).astype(str)
    return gold.sort_values(["set", "kind", "split", "tissue", "text"], kind="stable")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tabula-muris", type=Path, help="folder of *_annotation.csv")
    ap.add_argument("--panglao", type=Path, help="panglao-cell-type-ontologies.tsv")
    ap.add_argument("--nbatlas", type=Path, help="nbatlas-ontology-ids.tsv")
    ap.add_argument("--celltypist", type=Path, help="Basic_celltype_information.xlsx")
    ap.add_argument("--celldex", type=Path, help="celldex's inst/mapping folder")
    ap.add_argument("--azimuth", type=Path, help="the Azimuth tables' folder (azimuth_ct_tables)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/data/ontology_gold.tsv")
    args = ap.parse_args()
    gold = build({name: getattr(args, name.replace("-", "_")) for name in SETS}, args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    gold.to_csv(args.out, sep="\t", index=False)
    counts = gold.groupby(["set", "kind", "split"]).size()
    print(f"wrote {args.out} ({len(gold)} rows)\n{counts.to_string()}")


if __name__ == "__main__":
    main()
