"""DE methods beyond the Wilcoxon fallback: pseudobulk units, the gene filters, limma-voom
against a direct R run, ontology siblings, GO enrichment, and the faults that must leave
one term "not tested" while the rest goes on (R missing, an R error, all-zero cells, a gene
set with no counts in one study)."""

from __future__ import annotations

import shutil
import subprocess

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from test_de import ARTEFACT, NK, UP, B, T, _planted_atlas

from scatlas.de import (
    detected_filter,
    make_units,
    run_de,
    siblings_of,
    study_de,
)
from scatlas.de.rbridge import RUnavailable
from scatlas.ontology import cached_ontology
from scatlas.package_data import snapshot_obo
from scatlas.settings import DESettings


@pytest.fixture(scope="module")
def obo(repo_root):
    return snapshot_obo()


def _require_r_method(name: str = "edgeR") -> None:
    from scatlas.de.rbridge import r_package

    try:
        r_package(name)
    except RUnavailable as exc:
        pytest.skip(str(exc))


# --- units and filters -----------------------------------------------------------------


def test_make_units_pseudobulk_and_cells():
    rng = np.random.default_rng(3)
    counts = sp.csr_matrix(rng.poisson(3, size=(12, 5)).astype(float))
    groups = np.array([1, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0], dtype=bool)
    samples = np.array(["s1"] * 4 + ["s2"] * 4 + ["s3"] * 4)
    u = make_units(counts, groups, samples)
    assert u.kind == "pseudobulk" and (u.n_in, u.n_out) == (3, 3) and u.note == ""
    dense = counts.toarray()
    expect = {
        (s, g): dense[(samples == s) & (groups == g)].sum(axis=0)
        for s in ("s1", "s2", "s3")
        for g in (True, False)
    }
    got = {tuple(r) for r in np.round(u.counts.toarray(), 6)}
    assert got == {tuple(np.round(v, 6)) for v in expect.values()}
    assert sorted(u.groups) == [False] * 3 + [True] * 3
    # one sample holding every cell: pseudobulk would be 1 vs 1 -> cells, with the reason
    one = make_units(counts, groups, np.array(["s1"] * 12))
    assert one.kind == "cells" and one.counts.shape == (12, 5) and "1 vs 1" in one.note
    # a cell per sample (plate-based): cells, nothing to explain
    plate = make_units(counts, groups, np.array([f"c{i}" for i in range(12)]))
    assert plate.kind == "cells" and plate.note == ""
    assert make_units(counts, groups, None).kind == "cells"


def test_detected_filter_by_hand():
    counts = np.zeros((30, 4))
    groups = np.arange(30) < 10  # 10 in, 20 out: need 2 in "in", 2 in "out"
    counts[:2, 0] = 1  # 2 "in" cells: kept
    counts[:1, 1] = 5  # 1 "in" cell: dropped
    counts[10:12, 2] = 1  # 2 "out" cells: kept
    counts[:, 3] = 0  # never: dropped
    assert detected_filter(sp.csr_matrix(counts), groups).tolist() == [True, False, True, False]


def test_study_de_drops_all_zero_cells_and_uses_pseudobulk():
    _require_r_method()
    rng = np.random.default_rng(5)
    counts = rng.negative_binomial(5, 0.2, size=(48, 40)).astype(float)
    groups = np.tile([True, False], 24)
    samples = np.repeat([f"s{i}" for i in range(6)], 8)
    counts[groups, :5] *= 4  # five genes up in the group
    counts[[0, 2]] = 0  # two "in" cells without any count
    res = study_de(sp.csr_matrix(counts), groups, "edger", samples=samples)
    assert res.unit == "pseudobulk" and (res.n_units_in, res.n_units_out) == (6, 6)
    assert "2 cells without any count left out" in res.note
    t = res.table.set_index("gene")
    assert (t.loc[[str(i) for i in range(5)], "padj"] < 0.01).all()
    assert (t.loc[[str(i) for i in range(5)], "logfc"] > 1).all()  # log2 of ~4-fold
    assert (t["padj"] >= t["pvalue"] - 1e-15).all()
    wil = study_de(sp.csr_matrix(counts), groups, "wilcoxon", samples=samples)
    assert wil.unit == "cells" and wil.n_units_in == 22 and wil.note == res.note
    zero_in = counts.copy()
    zero_in[groups] = 0
    with pytest.raises(ValueError, match="both groups need at least one cell with counts"):
        study_de(sp.csr_matrix(zero_in), groups, "edger", samples=samples)


LIMMA_DIRECT = r"""
args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages({library(edgeR); library(limma)})
counts <- as.matrix(read.delim(args[1], row.names = 1, check.names = FALSE))
group <- factor(ifelse(grepl("^in", colnames(counts)), "in", "out"), levels = c("out", "in"))
y <- DGEList(counts = counts, group = group)
y <- y[filterByExpr(y), , keep.lib.sizes = FALSE]
y <- calcNormFactors(y)
design <- model.matrix(~group)
fit <- eBayes(lmFit(voom(y, design), design))
tt <- topTable(fit, coef = 2, number = Inf, sort.by = "none")
write.table(data.frame(gene = rownames(tt), logFC = sprintf("%.17g", tt$logFC),
                       P = sprintf("%.17g", tt$P.Value), FDR = sprintf("%.17g", tt$adj.P.Val)),
            args[2], sep = "\t", quote = FALSE, row.names = FALSE)
"""


def test_limma_voom_pseudobulk_equals_direct_limma(tmp_path):
    _require_r_method("limma")
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript is not on PATH")
    rng = np.random.default_rng(11)
    n_cells, n_genes = 60, 80
    samples = np.repeat([f"s{i}" for i in range(5)], 12)
    groups = np.tile(np.repeat([True, False], 6), 5)
    counts = rng.negative_binomial(4, 0.1, size=(n_cells, n_genes)).astype(float)
    counts[groups, :8] *= 3
    genes = [f"g{i}" for i in range(n_genes)]
    res = study_de(sp.csr_matrix(counts), groups, "limma_voom", genes=genes, samples=samples)
    assert res.unit == "pseudobulk" and (res.n_units_in, res.n_units_out) == (5, 5)
    # the pseudobulk matrix, built independently with pandas
    frame = pd.DataFrame(counts, columns=genes)
    key = np.where(groups, "in_", "out_") + samples
    bulk = frame.groupby(key).sum().T
    bulk.to_csv(tmp_path / "bulk.tsv", sep="\t")
    (tmp_path / "limma.R").write_text(LIMMA_DIRECT)
    subprocess.run(
        ["Rscript", str(tmp_path / "limma.R"), str(tmp_path / "bulk.tsv"), str(tmp_path / "o.tsv")],
        check=True,
        capture_output=True,
    )
    direct = pd.read_csv(tmp_path / "o.tsv", sep="\t").set_index("gene")
    ours = res.table.set_index("gene")
    assert sorted(ours.index) == sorted(direct.index)
    ours = ours.loc[direct.index]
    np.testing.assert_allclose(ours["logfc"], direct["logFC"], atol=1e-8, rtol=0)
    np.testing.assert_allclose(ours["pvalue"], direct["P"], atol=1e-8, rtol=0)
    np.testing.assert_allclose(ours["padj"], direct["FDR"], atol=1e-8, rtol=0)
    assert (direct.loc[[f"g{i}" for i in range(8)], "FDR"] < 0.05).sum() >= 6


# --- ontology siblings -----------------------------------------------------------------


def test_siblings_of(obo):
    onto = cached_ontology(obo)
    sib = siblings_of(onto, T)
    assert sib and not sib & (onto.ancestors(T) | onto.descendants(T, include_self=True))
    for s in sib:  # every sibling shares a parent with T
        assert onto.parents(s) & onto.parents(T)
    # B and NK cells descend from T cells' siblings (lymphocyte of B lineage, ILC)
    below = set().union(*(onto.descendants(s, include_self=True) for s in sib))
    assert {B, NK} <= below


# --- faults: the rest goes on ----------------------------------------------------------


def test_r_missing_falls_back_or_marks_not_tested(tmp_path, obo, monkeypatch):
    atlas = _planted_atlas(tmp_path / "atlas.h5ad")

    def missing(name):
        raise RUnavailable(f"R package {name!r} is not installed (simulated)")

    monkeypatch.setattr("scatlas.de.run.r_package", missing)
    s = run_de(atlas, obo, tmp_path / "fb", settings=DESettings(min_cells=5, method="edger"))
    tested = s[s["status"] == "tested"]
    assert len(tested) >= 3
    assert tested["method"].str.startswith("wilcoxon (fallback from edger: R package").all()
    assert "log2 fold change of expm1(mean log1p CP10k)" in tested["logfc_unit"].iloc[0]
    assert (tested["reason"] == "").all()
    assert (tmp_path / "fb" / "CL_0000236.tsv").exists()
    s = run_de(
        atlas,
        obo,
        tmp_path / "nofb",
        settings=DESettings(min_cells=5, method="edger", fallback=False),
    )
    assert (s["status"] == "not tested").all()
    rest = s[s["contrast"] == "rest"].set_index("cl_id")
    assert "R unavailable for edger" in rest.loc[B, "reason"]
    assert "simulated" in rest.loc[B, "reason"]
    assert not list((tmp_path / "nofb").glob("CL_*.tsv"))
    assert (tmp_path / "nofb" / "summary.tsv").exists()


def test_r_error_in_one_term_rest_goes_on(tmp_path, obo, monkeypatch):
    """A real R error raised inside the edgeR function (through rpy2) for one study of the
    B-cell term: that contrast is not tested, with R's message; every other term is."""
    _require_r_method()
    import scatlas.de.edger as edger

    failing = (
        "function(counts, group, filter) {\n"
        '  if (sum(group == "in") == 40L) stop("design matrix not of full rank (injected)")\n'
        f"  ({edger.EDGER_QL.strip()})(counts, group, filter)\n"
        "}"
    )
    monkeypatch.setattr(edger, "EDGER_QL", failing)
    atlas = _planted_atlas(tmp_path / "atlas.h5ad")  # GSE1 alone has 40 B cells
    s = run_de(atlas, obo, tmp_path / "de", settings=DESettings(min_cells=5, method="edger"))
    rest = s[s["contrast"] == "rest"].set_index("cl_id")
    assert rest.loc[B, "status"] == "not tested"
    assert "R error in study GSE1" in rest.loc[B, "reason"]
    assert "design matrix not of full rank (injected)" in rest.loc[B, "reason"]
    assert not (tmp_path / "de" / "CL_0000236.tsv").exists()
    assert rest.loc[T, "status"] == "tested" and rest.loc[NK, "status"] == "tested"
    assert (tmp_path / "de" / "CL_0000084.tsv").exists()
    st = pd.read_csv(tmp_path / "de" / "studies.tsv", sep="\t")
    b = st[(st["cl_id"] == B) & (st["contrast"] == "rest")].set_index("study")
    assert b.loc["GSE1", "status"] == "failed" and "injected" in b.loc["GSE1", "note"]
    assert (b.loc[["GSE2", "GSE3"], "status"] == "not tested").all()


def test_zero_gene_set_zero_cells_and_mouse_go(tmp_path, obo):
    """GSE3 has no count for 30 genes (among them planted ones) and GSE2 has 6 B cells
    without any count: those genes are tested in 2 studies, the empty cells are left out
    with a note, and the B-cell term is still called. GO for mouse fails with the missing
    annotation package named, and the run goes on."""
    _require_r_method()
    atlas = _planted_atlas(tmp_path / "atlas.h5ad")
    adata = anndata.read_h5ad(atlas)
    X = adata.X.toarray()
    in3 = (adata.obs["study"] == "GSE3").to_numpy()
    gone = list(range(5, 35))  # planted up genes 5-14, down 15-19, the artefact 20, nulls
    X[np.ix_(in3, gone)] = 0
    b2 = np.flatnonzero((adata.obs["study"] == "GSE2").to_numpy() & (adata.obs["cl_id"] == B))
    X[b2[:6]] = 0
    adata.X = sp.csr_matrix(X)
    adata.write_h5ad(atlas)
    s = run_de(
        atlas,
        obo,
        tmp_path / "de",
        organism="Mus musculus",
        settings=DESettings(min_cells=5, go=True),
    )
    rest = s[s["contrast"] == "rest"].set_index("cl_id")
    assert rest.loc[B, "status"] == "tested" and rest.loc[B, "n_studies"] == 3
    assert "org.Mm.eg.db" in rest.loc[B, "go"] and rest.loc[B, "go"].startswith("failed")
    table = pd.read_csv(tmp_path / "de" / "CL_0000236.tsv", sep="\t").set_index("gene")
    ids = [f"ENSG{i:05d}" for i in gone]
    assert (table.loc[ids, "n_studies"] == 2).all() and table.loc[ids, "padj__GSE3"].isna().all()
    planted = [f"ENSG{i:05d}" for i in UP[5:]]
    assert table.loc[planted, "significant"].all()  # replicated in GSE1 and GSE2
    assert not table.loc[f"ENSG{ARTEFACT:05d}", "significant"]
    st = pd.read_csv(tmp_path / "de" / "studies.tsv", sep="\t")
    row = st[(st["cl_id"] == B) & (st["contrast"] == "rest") & (st["study"] == "GSE2")]
    assert "6 cells without any count left out" in row["note"].iloc[0]
    assert row["n_units_in"].iloc[0] == 25 - 6


@pytest.mark.slow
def test_goana_human_b_cell_genes():
    _require_r_method("limma")
    from scatlas.de.go import goana_up

    up = ["CD19", "MS4A1", "CD79A", "CD79B", "PAX5", "CD22", "BLK", "BANK1"]
    universe = up + ["CD3E", "CD3D", "CD8A", "LYZ", "CD14", "S100A8", "NKG7", "GNLY", "ACTB"]
    universe += ["GAPDH", "MALAT1", "B2M", "TPT1", "EEF1A1", "RPL13", "RPS27", "HLA-DRA"]
    universe += ["CD74", "FCER1G", "TYROBP", "IL7R", "CCR7"]
    try:
        res = goana_up(up, universe, "Homo sapiens")
    except RUnavailable as exc:
        pytest.skip(str(exc))
    top = res.set_index("go_id")
    assert top.loc["GO:0042113", "term"] == "B cell activation"
    assert top.loc["GO:0042113", "padj"] < 0.05
    assert res["pvalue"].is_monotonic_increasing
    assert (res["n_up"] <= res["n_genes"]).all() and (res["n_up"] >= 1).all()
