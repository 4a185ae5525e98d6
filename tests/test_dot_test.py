"""The workflow catalog's test configs (``.test/config/*.yaml``, overlays of
config/demo.yaml) run end to end on the demo world through snakemake.api, offline."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import anndata as ad
import pytest
import yaml

pytestmark = pytest.mark.slow

TOOLS = ("hisat2", "hisat2-build", "samtools", "featureCounts")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from scatlas.demo.world import generate_world

    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.skip(f"tools not on PATH: {missing}")
    path = tmp_path_factory.mktemp("dot-test-world") / "demo-world"
    generate_world(path, seed=1)
    return path


def _run(name: str, world: Path, tmp_path: Path, repo_root: Path, targets=()) -> Path:
    from scatlas.demo.mirror import MirrorServer
    from scatlas.demo.run import service_urls
    from scatlas.runner import run_workflow

    work = tmp_path / name
    (work / "resources").mkdir(parents=True)
    (work / "resources" / "demo-world").symlink_to(world)
    overlay = repo_root / ".test" / "config" / f"{name}.yaml"
    assert yaml.safe_load(overlay.read_text())  # the overlay is YAML, not empty
    with MirrorServer(world) as mirror:
        ok = run_workflow(
            work,
            snakefile=repo_root / "Snakefile",
            configfiles=[repo_root / "config" / "demo.yaml", overlay],
            config={
                "services": service_urls(mirror.url),
                "ontology": {
                    "overrides": str(repo_root / "config" / "demo_ontology_overrides.tsv")
                },
            },
            targets=list(targets),
            cores=2,
        )
    assert ok, f"{name}: workflow failed; see {work / 'logs'}"
    return work / "results"


def test_basic(world, tmp_path, repo_root):
    results = _run("basic", world, tmp_path, repo_root)
    release = json.loads((results / "publish" / "release.json").read_text())
    assert release["published"] is True, release
    choice = json.loads((results / "models" / "release" / "choice.json").read_text())
    assert choice["model"] == "dense" and list(choice["scores"]) == ["dense"]
    assert (results / "demo" / "query_accuracy.json").is_file()
    assert (results / "report" / "report.html").is_file()


def test_barcoded(world, tmp_path, repo_root):
    results = _run(
        "barcoded", world, tmp_path, repo_root, ["results/studies/GSE900010/expression.h5ad"]
    )
    adata = ad.read_h5ad(results / "studies" / "GSE900010" / "expression.h5ad")
    assert adata.n_obs >= 60 and adata.uns["scatlas"]["technology"] == "10x_v3"
    sheet = (results / "studies" / "GSE900010" / "samples.tsv").read_text()
    assert "the record names 10x_3p_v3" in sheet


def test_failure(world, tmp_path, repo_root):
    results = _run(
        "failure",
        world,
        tmp_path,
        repo_root,
        ["results/catalog/ingest.json", "results/studies/GSE900001/expression.h5ad"],
    )
    db = sqlite3.connect(results / "catalog.sqlite")
    status = dict(db.execute("SELECT study, status FROM studies").fetchall())
    reason = db.execute("SELECT reason FROM studies WHERE study = 'GSE900009'").fetchone()[0]
    assert status == {"GSE900009": "failed", "GSE900001": "ok"} and "md5" in reason
