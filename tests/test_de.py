"""Differential expression: Wilcoxon against scipy, meta-analysis by hand, planted genes."""

from __future__ import annotations

import math

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

from scatlas.de import (
    STUDY_COLUMNS,
    SUMMARY_COLUMNS,
    agreement,
    bh,
    fisher_combine,
    log1p_cp10k,
    meta_analyse,
    run_de,
    signed_z,
    stouffer_combine,
    term_file_name,
    test_study,
    wilcoxon,
)
from scatlas.errors import InputError
from scatlas.package_data import snapshot_obo
from scatlas.settings import DESettings

B, NAIVE_B, T, NK, PDC = "CL:0000236", "CL:0000788", "CL:0000084", "CL:0000623", "CL:0000784"


@pytest.fixture(scope="module")
def obo(repo_root):
    return snapshot_obo()


# --- per-study test --------------------------------------------------------------------


def test_wilcoxon_matches_scipy():
    rng = np.random.default_rng(0)
    n = 60
    groups = np.zeros(n, dtype=bool)
    groups[:25] = True
    # integer-valued columns: many ties, zeros included, one shifted, one constant
    vals = rng.poisson(1.0, size=(n, 6)).astype(float)
    vals[groups, 1] += 2
    vals[:, 2] = 3.0
    vals[:, 3] = rng.normal(size=n)
    vals[groups, 4] = 0.0
    z, p = wilcoxon(vals, groups)
    for g in range(vals.shape[1]):
        ref = stats.mannwhitneyu(
            vals[groups, g],
            vals[~groups, g],
            alternative="two-sided",
            method="asymptotic",
            use_continuity=True,
        )
        assert p[g] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15), g
    assert z[1] > 3 and p[1] < 1e-4  # the shifted gene, higher in the group
    assert z[4] < 0  # lower in the group
    assert p[2] == 1.0 and z[2] == 0.0  # constant gene


def test_test_study_columns_and_normalisation():
    rng = np.random.default_rng(1)
    counts = rng.poisson(5, size=(40, 30)).astype(np.int32)
    counts[:, 29] = 0  # never detected: not tested
    counts[:20, 0] += 30  # up in the group
    groups = np.arange(40) < 20
    genes = [f"g{i}" for i in range(30)]
    res = test_study(sp.csr_matrix(counts), groups, genes=genes)
    assert list(res.columns) == ["gene", "logfc", "pvalue", "padj", "mean_in", "mean_out"]
    assert len(res) == 29 and "g29" not in set(res["gene"])
    logx = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    row = res.set_index("gene").loc["g0"]
    assert row["mean_in"] == pytest.approx(logx[:20, 0].mean())
    # scanpy's definition: log2 ratio of the group means back on the CP10k scale
    expected = np.log2(np.expm1(logx[:20, 0].mean()) / np.expm1(logx[20:, 0].mean()))
    assert row["logfc"] == pytest.approx(expected) and row["logfc"] > 1
    assert row["pvalue"] == pytest.approx(
        stats.mannwhitneyu(logx[:20, 0], logx[20:, 0], method="asymptotic").pvalue, rel=1e-9
    )
    assert row["padj"] < 1e-5 and (res["padj"] >= res["pvalue"]).all()
    np.testing.assert_allclose(log1p_cp10k(counts).toarray(), logx)
    with pytest.raises(ValueError, match="unknown DE method 'scde'"):
        test_study(counts, groups, "scde")
    with pytest.raises(ValueError, match="both groups"):
        test_study(counts, np.ones(40, dtype=bool))


# --- meta-analysis ---------------------------------------------------------------------


def test_fisher_by_hand():
    p = np.array([[0.01, 0.04], [0.5, np.nan]])
    out = fisher_combine(p)
    # df = 4: chi2.sf(x, 4) = exp(-x/2)(1 + x/2) with x = -2 ln(p1 p2)  ->  p1p2 (1 - ln p1p2)
    prod = 0.01 * 0.04
    assert out[0] == pytest.approx(prod * (1 - math.log(prod)), rel=1e-12)
    assert out[0] == pytest.approx(0.0035296, rel=1e-4)
    # one study: Fisher gives back its own p (chi2 with 2 df: exp(-x/2) = p)
    assert out[1] == pytest.approx(0.5, rel=1e-12)


def test_stouffer_by_hand():
    Z, p = stouffer_combine(np.array([[2.0, 1.0], [2.0, np.nan]]), np.sqrt([100.0, 25.0]))
    # (10*2 + 5*1) / sqrt(100 + 25) = sqrt(5)
    assert Z[0] == pytest.approx(math.sqrt(5), rel=1e-12)
    assert p[0] == pytest.approx(math.erfc(math.sqrt(5) / math.sqrt(2)), rel=1e-12)
    assert Z[1] == pytest.approx(2.0)  # a missing study drops out
    z = signed_z(np.array([0.05, 0.05, 1.0]), np.array([-0.3, 0.3, 0.1]))
    np.testing.assert_allclose(z, [-1.959964, 1.959964, 0.0], atol=1e-6)


def test_agreement_and_bh():
    assert list(agreement(np.array([[0.5, 0.2, -0.1], [-1, -2, np.nan], [0.1, -0.1, -0.2]]))) == [
        2,
        2,
        2,
    ]
    np.testing.assert_allclose(bh(np.array([0.01, 0.04, 0.03, np.nan])), [0.03, 0.04, 0.04, np.nan])


def test_meta_analyse_columns_and_maxp():
    per_study = {
        "GSE1": pd.DataFrame(
            {
                "gene": ["a", "b"],
                "logfc": [1.0, 0.1],
                "pvalue": [1e-6, 0.5],
                "padj": [2e-6, 0.5],
                "mean_in": 0.0,
                "mean_out": 0.0,
            }
        ),
        "GSE2": pd.DataFrame(
            {
                "gene": ["a"],
                "logfc": [0.8],
                "pvalue": [1e-4],
                "padj": [1e-3],
                "mean_in": 0.0,
                "mean_out": 0.0,
            }
        ),
    }
    t = meta_analyse(per_study, {"GSE1": 100, "GSE2": 25}).set_index("gene")
    per = ["logfc", "pvalue", "padj", "mean_in", "mean_out"]
    assert list(t.columns[:10]) == [f"{k}__{s}" for s in ("GSE1", "GSE2") for k in per]
    assert t.loc["a", "maxp"] == pytest.approx(1e-3)
    assert t.loc["a", "n_studies"] == 2 and t.loc["b", "n_studies"] == 1
    assert t.loc["a", "n_agree"] == 2 and t.loc["a", "n_replicated"] == 2
    assert bool(t.loc["a", "significant"]) and not bool(t.loc["b", "significant"])
    za, zb = stats.norm.isf(1e-6 / 2), stats.norm.isf(1e-4 / 2)
    assert t.loc["a", "stouffer_z"] == pytest.approx((10 * za + 5 * zb) / math.sqrt(125))
    assert t.loc["a", "direction"] == "up"
    assert np.isnan(t.loc["b", "padj__GSE2"])


# --- planted DE across three studies ---------------------------------------------------

N_GENES = 300
UP = list(range(0, 15))
DOWN = list(range(15, 20))
ARTEFACT = 20


def _planted_atlas(path):
    """Three studies of B (some naive B), T and NK cells; genes 0-14 up and 15-19 down in B
    cells everywhere; gene 20 up in B cells of GSE1 only (a batch artefact)."""
    rng = np.random.default_rng(42)
    base = rng.lognormal(mean=0.5, sigma=1.0, size=N_GENES)
    blocks, obs = [], []
    layout = {
        "GSE1": [B] * 30 + [NAIVE_B] * 10 + [T] * 30 + [NK] * 20,
        "GSE2": [B] * 25 + [T] * 35 + [NK] * 15 + [PDC] * 3 + [""] * 10,
        "GSE3": [B] * 35 + [T] * 25 + [NK] * 25,
    }
    for study, labels in layout.items():
        labels = np.array(labels)
        is_b = np.isin(labels, [B, NAIVE_B])
        mu = np.tile(base * rng.uniform(0.7, 1.3, size=N_GENES), (len(labels), 1))  # study effect
        mu[np.ix_(is_b, UP)] *= 4.0
        mu[np.ix_(is_b, DOWN)] *= 0.25
        if study == "GSE1":
            mu[np.ix_(is_b, [ARTEFACT])] *= 20.0
        mu *= rng.uniform(0.5, 2.0, size=(len(labels), 1))  # library size
        counts = rng.poisson(rng.gamma(shape=2.0, scale=mu / 2.0))  # negative binomial
        blocks.append(sp.csr_matrix(counts.astype(np.float32)))
        obs.append(
            pd.DataFrame(
                {"study": study, "cl_id": labels},
                index=[f"{study}:c{i}" for i in range(len(labels))],
            )
        )
    var = pd.DataFrame(
        {"gene_symbol": [f"G{i}" for i in range(N_GENES)]},
        index=[f"ENSG{i:05d}" for i in range(N_GENES)],
    )
    adata = anndata.AnnData(X=sp.vstack(blocks, format="csr"), obs=pd.concat(obs), var=var)
    adata.write_h5ad(path)
    return path


@pytest.mark.parametrize("method", ["edger", "wilcoxon"])
def test_planted_genes_recovered_artefact_rejected(tmp_path, obo, method):
    atlas = _planted_atlas(tmp_path / "atlas.h5ad")
    summary = run_de(
        atlas,
        obo,
        tmp_path / "de",
        settings=DESettings(min_cells=5, fdr=0.05, min_studies=2, method=method),
    )
    assert list(summary.columns) == SUMMARY_COLUMNS
    s = summary[summary["contrast"] == "rest"].set_index("cl_id")
    assert (s["method"] == method).all()
    # B cells include the naive B cells (a descendant); all three studies qualify
    assert s.loc[B, "n_studies"] == 3 and s.loc[B, "n_cells"] == 30 + 10 + 25 + 35
    assert s.loc[B, "units"] == "GSE1: cells 40 vs 50; GSE2: cells 25 vs 53; GSE3: cells 35 vs 50"
    table = pd.read_csv(tmp_path / "de" / "CL_0000236.tsv", sep="\t").set_index("gene")
    for col in (
        "logfc__GSE1",
        "padj__GSE3",
        "stouffer_z",
        "stouffer_p",
        "fisher_p",
        "fisher_fdr",
        "maxp",
        "stouffer_fdr",
        "pvalue__GSE2",
        "mean_in__GSE1",
        "mean_out__GSE1",
        "direction",
        "n_studies",
        "n_agree",
        "significant",
        "conservative",
        "gene_symbol",
    ):
        assert col in table.columns
    planted = {f"ENSG{i:05d}" for i in UP + DOWN}
    called = set(table.index[table["significant"]])
    recall = len(called & planted) / len(planted)
    precision = len(called & planted) / max(len(called), 1)
    print(f"planted DE ({method}): precision {precision:.3f}, recall {recall:.3f}")
    # 4-fold changes over 25-40 vs 45-60 cells per study: each study alone has power near 1,
    # so nearly every planted gene must replicate; BH at 5% plus replication keeps null calls
    # far below 10% of the calls.
    assert recall >= 0.9, (recall, sorted(planted - called))
    assert precision >= 0.9, (precision, sorted(called - planted))
    assert set(table.loc[sorted(called & planted), "direction"]) == {"up", "down"}
    assert (
        table.loc[[f"ENSG{i:05d}" for i in DOWN if f"ENSG{i:05d}" in called], "direction"] == "down"
    ).all()
    art = table.loc[f"ENSG{ARTEFACT:05d}"]
    assert art["padj__GSE1"] < 1e-3  # strong in its one study; Stouffer alone would call it
    assert art["stouffer_fdr"] < 0.05 and art["fisher_fdr"] < 0.05
    assert not art["significant"] and art["n_replicated"] <= 1
    assert not art["conservative"]  # maxp: not significant in GSE2/GSE3
    assert s.loc[B, "n_up"] + s.loc[B, "n_down"] == len(called)
    # naive B cells: only GSE1 has them -> one study: not tested, with the reason, no table
    assert s.loc[NAIVE_B, "status"] == "not tested" and s.loc[NAIVE_B, "n_studies"] == 1
    assert "min_studies" in s.loc[NAIVE_B, "reason"] and "GSE1: 10 vs" in s.loc[NAIVE_B, "reason"]
    assert not (tmp_path / "de" / "CL_0000788.tsv").exists()
    # 3 pDCs in one study: listed with the reason, no table
    assert s.loc[PDC, "status"] == "not tested" and "GSE2: 3 vs" in s.loc[PDC, "reason"]
    assert not (tmp_path / "de" / "CL_0000784.tsv").exists()
    assert s.loc[T, "n_studies"] == 3
    studies = pd.read_csv(tmp_path / "de" / "studies.tsv", sep="\t")
    assert list(studies.columns) == STUDY_COLUMNS
    b_rest = studies[(studies["cl_id"] == B) & (studies["contrast"] == "rest")]
    assert sorted(b_rest["study"]) == ["GSE1", "GSE2", "GSE3"]
    assert (b_rest["status"] == "tested").all() and (b_rest["unit"] == "cells").all()
    assert not list((tmp_path / "de").glob(".*tmp"))
    # read from the top: the significant genes first, up before down, then the rest
    ordered = pd.read_csv(tmp_path / "de" / "CL_0000236.tsv", sep="\t")
    sig = ordered["significant"].to_numpy()
    assert sig[: sig.sum()].all() and not sig[sig.sum() :].any()
    dirs = ordered.loc[ordered["significant"], "direction"].tolist()
    assert dirs == sorted(dirs, key=lambda d: d != "up") and {"up", "down"} <= set(dirs)
    ups = ordered[ordered["significant"] & (ordered["direction"] == "up")]
    assert ups["stouffer_fdr"].is_monotonic_increasing
    assert (s.loc[B, "reason"] == "") and s.loc[B, "logfc_unit"]
    readme = (tmp_path / "de" / "README.md").read_text()
    for column in ("stouffer_fdr", "mean_in__{study}", "logfc_unit", "n_replicated"):
        assert f"`{column}`" in readme, column


def test_normalised_studies_left_out(tmp_path, obo):
    """Cells flagged normalised in the atlas (author-normalised values) take no part in DE."""
    atlas = _planted_atlas(tmp_path / "atlas.h5ad")
    adata = anndata.read_h5ad(atlas)
    adata.obs["normalised"] = (adata.obs["study"] == "GSE3").to_numpy()
    adata.write_h5ad(atlas)
    s = run_de(
        atlas,
        obo,
        tmp_path / "de",
        settings=DESettings(min_cells=5, min_studies=2, method="wilcoxon"),
    )
    s = s[s["contrast"] == "rest"].set_index("cl_id")
    assert s.loc[B, "n_studies"] == 2 and s.loc[B, "n_cells"] == 30 + 10 + 25
    table = pd.read_csv(tmp_path / "de" / "CL_0000236.tsv", sep="\t")
    assert "logfc__GSE3" not in table.columns and "logfc__GSE2" in table.columns
    st = pd.read_csv(tmp_path / "de" / "studies.tsv", sep="\t")
    ex = st[(st["cl_id"] == B) & (st["study"] == "GSE3")]
    assert ex["status"].tolist() == ["excluded"] and "normalised" in ex["note"].iloc[0]


def test_run_de_bad_input(tmp_path, obo):
    path = tmp_path / "atlas.h5ad"
    anndata.AnnData(
        X=np.zeros((2, 2)), obs=pd.DataFrame({"study": ["a", "b"]}, index=["x", "y"])
    ).write_h5ad(path)
    with pytest.raises(InputError, match="cl_id"):
        run_de(path, obo, tmp_path / "de")
    assert term_file_name("CL:0000236") == "CL_0000236.tsv"
    assert term_file_name("CL:0000236", "siblings") == "CL_0000236.siblings.tsv"
    with pytest.raises(InputError):
        term_file_name("../CL:1")
