"""The whole workflow end to end on the demo world, through snakemake.api, offline.

One run (the session fixture ``demo_run`` in conftest.py, shared with the wheel test) in a
temporary working directory; the tests below check each stage's contract on its outputs.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def _results(run) -> Path:
    return run["work"] / "results"


def test_workflow_succeeds(demo_run):
    assert demo_run["ok"], f"workflow failed; see logs under {demo_run['work'] / 'logs'}"


def test_query_keeps_scrnaseq_and_leaves_out_the_rest(demo_run):
    studies = pd.read_csv(
        _results(demo_run) / "discover" / "studies.tsv", sep="\t", dtype=str, keep_default_na=False
    ).set_index("study")
    assert studies.loc["GSE900008", "status"] == "skipped"  # single-cell ATAC-seq
    assert studies.loc["GSE900008", "reason"]
    kept = set(studies.index[studies["status"] == "ok"])
    assert {"GSE900001", "GSE900006", "GSE900007", "E-MTAB-99001", "GSE900009", "GSE900010"} <= kept
    assert "GSE900099" not in studies.index  # the held-out study is not in the mirror


def test_broken_study_failed_alone_in_catalog(demo_run):
    db = sqlite3.connect(_results(demo_run) / "catalog.sqlite")
    rows = dict(db.execute("SELECT study, status FROM studies").fetchall())
    reason = db.execute("SELECT reason FROM studies WHERE study = 'GSE900009'").fetchone()[0]
    assert rows["GSE900009"] == "failed"
    assert "md5" in reason
    assert rows["GSE900001"] == "ok" and rows["E-MTAB-99001"] == "ok" and rows["GSE900007"] == "ok"
    failed_runs = db.execute(
        "SELECT COUNT(*) FROM runs WHERE study = 'GSE900009' AND status = 'failed'"
    ).fetchone()[0]
    assert failed_runs > 0


def test_expression_contract(demo_run):
    adata = ad.read_h5ad(_results(demo_run) / "studies" / "GSE900001" / "expression.h5ad")
    assert adata.n_obs > 20
    assert adata.X.dtype == "int32"
    assert "rpkm" in adata.layers
    assert {"study", "sample", "run", "source_text"} <= set(adata.obs.columns)
    assert {"gene_symbol", "length"} <= set(adata.var.columns)
    align = pd.read_csv(_results(demo_run) / "align" / "GSE900001" / "alignment.tsv", sep="\t")
    assert (align["alignment_rate"] > 0.8).all()
    matrix = ad.read_h5ad(_results(demo_run) / "studies" / "GSE900007" / "expression.h5ad")
    assert matrix.n_obs > 20 and matrix.uns["scatlas"]["technology"] == "matrix"


def test_barcoded_study_cells_and_molecules(demo_run):
    """The 10x v3 study: ingested as barcoded runs, cells called by the knee, molecules
    counted as the world made them (sequencing errors in barcodes and UMIs collapsed)."""
    results = _results(demo_run)
    samples = pd.read_csv(results / "studies" / "GSE900010" / "samples.tsv", sep="\t", dtype=str)
    assert set(samples["technology"]) == {"10x_v3"} and samples["run"].notna().all()
    align = pd.read_csv(results / "align" / "GSE900010" / "alignment.tsv", sep="\t")
    assert (align["status"] == "ok").all() and (align["alignment_rate"] > 0.9).all()
    adata = ad.read_h5ad(results / "studies" / "GSE900010" / "expression.h5ad")
    assert adata.uns["scatlas"]["technology"] == "10x_v3" and adata.X.dtype == "int32"
    truth = pd.read_csv(
        demo_run["work"] / "resources" / "demo-world" / "truth_molecules.tsv.gz", sep="\t"
    )
    expected = truth.pivot_table(index="cell", columns="gene_id", values="molecules", fill_value=0)
    assert set(adata.obs_names) == set(expected.index)  # every cell, no empty droplet
    got = adata[expected.index, expected.columns].X.toarray()
    assert 0.98 < got.sum() / expected.to_numpy().sum() < 1.02
    assert np.corrcoef(got.ravel(), expected.to_numpy().ravel())[0, 1] > 0.999
    umi = ad.read_h5ad(results / "counts" / "GSE900010" / "umi.h5ad")
    assert {s["cells"] for s in umi.uns["samples"].values()} == {60}
    assert all(s["barcodes"] > 1000 for s in umi.uns["samples"].values())


def test_atlas_split_is_study_disjoint(demo_run):
    atlas = ad.read_h5ad(_results(demo_run) / "atlas" / "atlas.h5ad", backed="r")
    per_study = atlas.obs.groupby("study", observed=True)["split"].nunique()
    assert (per_study == 1).all()
    assert {"train", "query"} <= set(atlas.obs["split"])
    assert atlas.n_obs >= 250


def test_evaluation_model_and_baseline(demo_run):
    metrics = pd.read_csv(_results(demo_run) / "evaluation" / "metrics.tsv", sep="\t")
    methods = set(metrics["method"])
    assert {"dense", "pca"} <= methods
    dense = metrics.set_index("method").loc["dense"]
    assert dense["accuracy"] > 0.7
    assert (_results(demo_run) / "evaluation" / "report.html").stat().st_size > 1000


def test_published_release_and_demo_query(demo_run):
    release = json.loads((_results(demo_run) / "publish" / "release.json").read_text())
    folder = Path(release["path"])
    if not folder.is_absolute():
        folder = demo_run["work"] / folder
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"index.faiss", "cells.parquet", "encoder.pt", "model.json", "genes.tsv"} <= set(
        manifest["files"]
    )
    accuracy = json.loads((_results(demo_run) / "demo" / "query_accuracy.json").read_text())
    assert accuracy["n_scored"] > 30
    assert accuracy["accuracy"] > 0.7
    # the cells of the type no reference study has are flagged, the known ones are not
    novelty = accuracy["novelty"]
    assert novelty["n_unseen"] >= 5 and novelty["unseen_flagged_share"] >= 0.8
    assert novelty["known_flagged_share"] <= 0.05
    calibration = manifest["novelty_calibration"]
    assert calibration["cells"] == "held_out" and calibration["neighbours"] == "other_study"
    # the published model knows every type, although the evaluation held one out
    choice = json.loads((_results(demo_run) / "models" / "release" / "choice.json").read_text())
    assert choice["chosen_by"] == "evaluation" and choice["retrained_without_holdout"]
    published = json.loads((folder / "model.json").read_text())
    assert published["holdout_types"] == [] and manifest["model"] == choice["model"]
    annotated = ad.read_h5ad(_results(demo_run) / "demo" / "query_annotated.h5ad")
    assert "X_scatlas" in annotated.obsm
    assert annotated.obs["scatlas_cell_type_id"].str.startswith("CL:").all()


def test_de_summary(demo_run):
    summary = pd.read_csv(_results(demo_run) / "de" / "summary.tsv", sep="\t")
    tested = summary[summary["status"] == "tested"]
    assert len(tested) >= 3
    assert (tested["n_up"] > 0).any()


def test_every_rule_logged(demo_run):
    logs = list((demo_run["work"] / "logs").rglob("*.log"))
    stages = {p.relative_to(demo_run["work"] / "logs").parts[0] for p in logs}
    assert {
        "discover",
        "sample_sheet",
        "download",
        "align",
        "count",
        "expression",
        "atlas",
        "train",
        "evaluate",
        "de",
        "publish",
        "catalog",
    } <= stages
