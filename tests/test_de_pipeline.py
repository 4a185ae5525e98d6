"""Real data end to end: Zheng 2017 FACS-sorted PBMCs -> cell types -> atlas -> DE.

The sorted populations' descriptions go through the matcher (plus curated overrides for
the marker-style names an exact matcher cannot read), the atlas is assembled from two
halves of the study (alternate cells; they stand in for two studies), and the per-term DE
must find the textbook markers of each sorted population, replicated in both halves.
"""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
from realdata import PBMC_CURATED_TERMS, PBMC_DESCRIPTIONS

from scatlas.atlas.assemble import assemble_atlas
from scatlas.de import run_de
from scatlas.ontology import cached_ontology, map_study, read_cell_types
from scatlas.package_data import snapshot_obo
from scatlas.settings import AtlasSettings, DESettings

# sorted population -> description (Zheng 2017), shared with the real-data evaluation
POPULATIONS = PBMC_DESCRIPTIONS
# curated: everything but "CD19+ B cells", which the matcher maps itself
OVERRIDES = {t: c for t, c in PBMC_CURATED_TERMS.items() if t != "CD19+ B cells"}
CD19_B, NK, CD14_MONO = "CL:0001201", "CL:0000623", "CL:0001054"


def _write_halves(shared_data, root):
    d = shared_data / "expression" / "pbmc-zheng-sorted"
    X = sp.csr_matrix(
        scipy.io.mmread(d / "zheng_sorted_reference.genes_x_cells.mtx.gz").T, dtype=np.int32
    )
    genes = pd.read_csv(d / "zheng_sorted_reference.genes_x_cells.genes.txt.gz", header=None)[
        0
    ].astype(str)
    cells = pd.read_csv(d / "zheng_sorted_reference.genes_x_cells.cells.txt.gz", header=None)[
        0
    ].astype(str)
    labels = pd.read_csv(d / "zheng_sorted_reference.labels.csv").set_index("cell")["label"]
    desc = labels.reindex(cells).map(POPULATIONS).to_numpy()
    paths = []
    for k, name in enumerate(("zheng-a", "zheng-b")):
        rows = np.arange(k, len(cells), 2)
        obs = pd.DataFrame(
            {
                "study": name,
                "sample": name,
                "run": "",
                "source_text": [
                    f"{c} | cell type: {t}" for c, t in zip(cells[rows], desc[rows], strict=True)
                ],
                "organism": "Homo sapiens",
            },
            index=cells[rows].to_numpy(),
        )
        var = pd.DataFrame(
            {"gene_symbol": genes.to_numpy(), "length": np.nan}, index=genes.to_numpy()
        )
        adata = anndata.AnnData(X=X[rows], obs=obs, var=var)
        adata.uns["scatlas"] = {
            "study": name,
            "status": "ok",
            "reason": "",
            "normalised": False,
            "technology": "matrix",
        }
        folder = root / name
        folder.mkdir(parents=True)
        adata.write_h5ad(folder / "expression.h5ad")
        paths.append(folder)
    return paths


def test_zheng_sorted_pbmc_end_to_end(tmp_path, shared_data, repo_root):
    obo = snapshot_obo()
    folders = _write_halves(shared_data, tmp_path / "studies")
    overrides = tmp_path / "overrides.tsv"
    pd.DataFrame({"text": list(OVERRIDES), "cl_id": list(OVERRIDES.values())}).to_csv(
        overrides, sep="\t", index=False
    )
    for f in folders:
        ct = map_study(f / "expression.h5ad", obo, f / "cell_types.tsv", overrides=overrides)
        assert (ct["cl_id"] != "").all()
    b = read_cell_types(folders[0] / "cell_types.tsv")
    b = b[b["cl_id"] == CD19_B]
    assert (
        len(b) == 165
        and b["evidence"].iloc[0] == 'cell type: "CD19+ B cells" ~ "CD19+ B cell" (EXACT)'
    )

    onto = cached_ontology(obo)
    atlas = assemble_atlas(
        [f / "expression.h5ad" for f in folders],
        [f / "cell_types.tsv" for f in folders],
        tmp_path / "atlas" / "atlas.h5ad",
        tmp_path / "atlas" / "splits.tsv",
        ontology=onto,
        settings=AtlasSettings(
            min_genes=200, min_counts=500, min_cells_per_type=10, n_query_studies=1
        ),
    )
    assert sorted(atlas.uns["scatlas"]["splits"].values()) == ["query", "train"]
    assert atlas.n_obs > 2000 and atlas.obs["trainable"].all()

    summary = run_de(
        tmp_path / "atlas" / "atlas.h5ad",
        obo,
        tmp_path / "de",
        settings=DESettings(min_cells=10, method="wilcoxon"),
    )
    s = summary[summary["contrast"] == "rest"].set_index("cl_id")
    assert len(s) == 9 and (s["status"] == "tested").all() and (s["n_studies"] == 2).all()
    markers = {
        CD19_B: ["MS4A1", "CD79A", "CD79B"],
        NK: ["NKG7", "GNLY"],
        CD14_MONO: ["LYZ", "S100A8", "CD14"],
    }
    for term, genes in markers.items():
        t = pd.read_csv(tmp_path / "de" / f"{term.replace(':', '_')}.tsv", sep="\t").set_index(
            "gene"
        )
        top = set(t[t["significant"] & (t["direction"] == "up")].head(50).index)
        for g in genes:
            row = t.loc[g]
            assert row["significant"] and row["direction"] == "up", (term, g)
            assert row["n_replicated"] == 2 and row["maxp"] < 1e-10, (term, g)
        assert len(set(genes) & top) >= len(genes) - 1, (term, sorted(top)[:10])
        assert s.loc[term, "n_up"] > 20
    # a B-cell marker is down in monocytes
    mono = pd.read_csv(tmp_path / "de" / "CL_0001054.tsv", sep="\t").set_index("gene")
    assert mono.loc["MS4A1", "direction"] == "down"


@pytest.mark.slow
def test_zheng_sorted_pbmc_edger_markers(tmp_path, shared_data, repo_root):
    """edgeR (the workflow's default) on real UMI counts, one term: B-cell markers are up.
    Each half is one sample, so pseudobulk would be 1 vs 1: cells are tested, and said so."""
    from scatlas.de.rbridge import RUnavailable, r_package

    try:
        r_package("edgeR")
    except RUnavailable as exc:
        pytest.skip(str(exc))
    obo = snapshot_obo()
    folders = _write_halves(shared_data, tmp_path / "studies")
    overrides = tmp_path / "overrides.tsv"
    pd.DataFrame({"text": list(OVERRIDES), "cl_id": list(OVERRIDES.values())}).to_csv(
        overrides, sep="\t", index=False
    )
    for f in folders:
        map_study(f / "expression.h5ad", obo, f / "cell_types.tsv", overrides=overrides)
    assemble_atlas(
        [f / "expression.h5ad" for f in folders],
        [f / "cell_types.tsv" for f in folders],
        tmp_path / "atlas" / "atlas.h5ad",
        tmp_path / "atlas" / "splits.tsv",
        ontology=cached_ontology(obo),
        settings=AtlasSettings(
            min_genes=200, min_counts=500, min_cells_per_type=10, n_query_studies=1
        ),
    )
    summary = run_de(
        tmp_path / "atlas" / "atlas.h5ad",
        obo,
        tmp_path / "de",
        terms=[CD19_B],
        settings=DESettings(min_cells=10, method="edger", siblings=False),
    )
    assert list(summary["cl_id"]) == [CD19_B] and summary["status"].iloc[0] == "tested"
    assert summary["method"].iloc[0] == "edger"
    assert summary["units"].iloc[0].count("cells") == 2
    studies = pd.read_csv(tmp_path / "de" / "studies.tsv", sep="\t")
    assert studies["note"].str.contains("pseudobulk would give 1 vs 1").all()
    t = pd.read_csv(tmp_path / "de" / "CL_0001201.tsv", sep="\t").set_index("gene")
    for g in ("MS4A1", "CD79A", "CD79B"):
        assert t.loc[g, "significant"] and t.loc[g, "direction"] == "up", g
        assert t.loc[g, "conservative"] and t.loc[g, "logfc__zheng-a"] > 2, g
    assert (t["significant"] & (t["direction"] == "down")).sum() > 0
