"""Labelled files of one's own as studies of the workflow's atlas (config local_studies)."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml
from realdata import write_zheng_h5ad

from scatlas.atlas.local_study import local_study
from scatlas.errors import InputError
from scatlas.ontology import load_ontology
from scatlas.package_data import snapshot_obo


@pytest.fixture(scope="module")
def cl():
    return load_ontology(snapshot_obo())


def _file(path, labels, genes=("CD19", "CD3E", "LYZ"), counts=True):
    rng = np.random.default_rng(0)
    X = rng.poisson(3, size=(len(labels), len(genes))).astype(np.float32)
    X = X if counts else np.log1p(X * 1.5)
    obs = pd.DataFrame({"label": labels}, index=[f"c{i}" for i in range(len(labels))])
    ad.AnnData(sp.csr_matrix(X), obs=obs, var=pd.DataFrame(index=list(genes))).write_h5ad(path)
    return path


def test_local_study_writes_the_atlas_inputs_with_stable_ids(tmp_path, cl):
    src = _file(tmp_path / "mine.h5ad", ["B cell", "T cell", "monocyte", "B cell"])
    genes = tmp_path / "genes.tsv"
    genes.write_text(
        "gene_id\tgene_symbol\tlength\nENSG1\tCD19\t1\nENSG2\tCD3E\t1\nENSG3\tLYZ\t1\n"
    )
    entry = {"name": "mine", "path": str(src), "labels": "label"}
    expr, types = tmp_path / "expression.h5ad", tmp_path / "cell_types.tsv"
    local_study(entry, expr, types, ontology=cl, genes_tsv=genes)
    out = ad.read_h5ad(expr)
    assert out.uns["scatlas"]["study"] == "local-mine" and not out.uns["scatlas"]["normalised"]
    assert list(out.var_names) == ["ENSG1", "ENSG2", "ENSG3"]
    assert list(out.var["gene_symbol"]) == ["CD19", "CD3E", "LYZ"]
    table = pd.read_csv(types, sep="\t", index_col=0)
    assert list(table["cl_id"]) == ["CL:0000236", "CL:0000084", "CL:0000576", "CL:0000236"]
    assert list(table.index) == list(out.obs_names)


def test_local_study_refuses_plain_labels_and_a_wrong_normalised(tmp_path, cl):
    plain = _file(tmp_path / "lines.h5ad", ["H1975", "HCC827"])
    with pytest.raises(InputError, match="build-reference") as err:
        local_study(
            {"name": "lines", "path": str(plain), "labels": "label"},
            tmp_path / "e.h5ad",
            tmp_path / "t.tsv",
            ontology=cl,
        )
    assert "lines.h5ad" in str(err.value) and err.value.field == "label"
    logn = _file(tmp_path / "log.h5ad", ["B cell", "T cell"], counts=False)
    with pytest.raises(InputError, match="normalised"):
        local_study(
            {"name": "log", "path": str(logn), "labels": "label"},
            tmp_path / "e.h5ad",
            tmp_path / "t.tsv",
            ontology=cl,
        )
    assert not (tmp_path / "e.h5ad").exists()


@pytest.mark.slow
def test_workflow_builds_a_release_from_local_studies_alone(shared_data, tmp_path):
    """Instead of discovered studies: two labelled files, no repository searched."""
    from scatlas.runner import run_workflow

    zheng = ad.read_h5ad(write_zheng_h5ad(shared_data, tmp_path / "zheng.h5ad"))
    top = np.argsort(-np.asarray(zheng.X.sum(axis=0)).ravel())[:600]  # keeps DE quick
    zheng = zheng[:, np.sort(top)].copy()
    half = np.random.default_rng(0).random(zheng.n_obs) < 0.5
    paths = []
    for name, rows in (("donor1", half), ("donor2", ~half)):
        zheng[rows].copy().write_h5ad(tmp_path / f"{name}.h5ad")
        paths.append({"name": name, "path": str(tmp_path / f"{name}.h5ad"), "labels": "cell_type"})
    config = {
        "discover": {"sources": []},
        "reference": {},
        "local_studies": paths,
        "models": ["dense"],
        "train": {"dense": {"hidden": [64, 16], "epochs": 5, "batch_size": 64, "patience": 2}},
        "atlas": {"min_cells_per_type": 10, "n_query_studies": 1, "n_validation_studies": 0},
        "evaluate": {"celltypist": False, "novelty_holdout": None, "plot": "pca"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_workflow(tmp_path, configfiles=[tmp_path / "config.yaml"], cores=2)
    assert result.ok
    rules = {j.rule for j in result.jobs}
    assert {"local_study", "atlas", "train", "evaluate", "release_model", "publish"} <= rules
    assert not rules & {"sample_sheet", "download", "align"}
    atlas = ad.read_h5ad(tmp_path / "results" / "atlas" / "atlas.h5ad")
    assert set(atlas.obs["study"]) == {"local-donor1", "local-donor2"}
    assert atlas.obs["cl_id"].str.startswith("CL:").all() and atlas.obs["trainable"].all()
    manifest = json.loads((tmp_path / "published" / "current" / "manifest.json").read_text())
    assert manifest["novelty_calibration"]["neighbours"] == "other_study"
    metrics = json.loads((tmp_path / "published" / "current" / "metrics.json").read_text())
    assert metrics["methods"]["dense"]["accuracy"] > 0.7
