"""Build ``benchmarks/data/ontology_gold.tsv``: public, curated pairs of author free text and
Cell Ontology id, with a dev and a test split (how the file in the repo was made).

    .venv/bin/python benchmarks/make_ontology_gold.py \\
        --tabula-muris DIR --panglao FILE --nbatlas FILE [--out FILE]

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

Panglao and NBAtlas rows have no tissue; they are split by the parity of the SHA-1 of the
lower-cased text (stable, blind to content). Rows whose curated id is NA or malformed are
kept with an empty ``gold_id`` (counted, never scored).
"""

from __future__ import annotations

import argparse
import hashlib
import re
from collections import Counter
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TM_TEST_TISSUES = frozenset(
    {"Limb_Muscle", "Mammary_Gland", "Tongue", "Large_Intestine", "Marrow", "Skin"}
)
TM_SOURCE = "czbiohub-sf/tabula-muris@dedd8352d4348150e199162f966f7442976acdd3:00_data_ingest/03_tissue_annotation_csv/{}"
PANGLAO_SOURCE = "AlexsLemonade/scpca-nf@c8dcef0f546d4fa2e5aa7b910eeac04197d84da0:references/panglao-cell-type-ontologies.tsv"
NBATLAS_SOURCE = "AlexsLemonade/OpenScPCA-analysis@2108493861c037088e27dfb2ba6149b498da8cd0:analyses/cell-type-neuroblastoma-04/references/nbatlas-ontology-ids.tsv"
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
    text_col, id_col, label_col = cols
    rows = [
        {
            "set": name,
            "split": text_split(r[text_col]),
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tabula-muris", type=Path, required=True)
    ap.add_argument("--panglao", type=Path, required=True)
    ap.add_argument("--nbatlas", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/data/ontology_gold.tsv")
    args = ap.parse_args()
    gold = pd.concat(
        [
            tabula_muris(args.tabula_muris),
            label_table(
                args.panglao,
                "panglao",
                ("panglao_cell_type", "ontology_id", "human_readable_value"),
                PANGLAO_SOURCE,
            ),
            label_table(
                args.nbatlas,
                "nbatlas",
                ("NBAtlas_label", "CL_ontology_id", "CL_annotation"),
                NBATLAS_SOURCE,
            ),
        ],
        ignore_index=True,
    ).sort_values(["set", "kind", "split", "tissue", "text"], kind="stable")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    gold.to_csv(args.out, sep="\t", index=False)
    counts = gold.groupby(["set", "kind", "split"]).size()
    print(f"wrote {args.out} ({len(gold)} rows)\n{counts.to_string()}")


if __name__ == "__main__":
    main()
