"""`scatlas build-reference`: labelled cells -> atlas -> models -> evaluation -> release,
on real data (Zheng sorted PBMC; pancreas Wang + Xin) and on small synthetic inputs."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from realdata import write_donor_a_h5ad, write_pancreas_h5ads, write_zheng_h5ad

from scatlas.atlas.labelled import LabelledInput, assign_splits, label_types, labelled_atlas
from scatlas.cli import main
from scatlas.errors import InputError
from scatlas.ontology import load_ontology
from scatlas.package_data import snapshot_obo


@pytest.fixture(scope="module")
def cl():
    return load_ontology(snapshot_obo())


def test_label_kinds(cl):
    ids = np.array(["CL:0000236", "CL:0000084", "CL:0000236", ""], dtype=object)
    got, names, kind = label_types(ids, "auto", cl)
    assert kind == "cl_id" and got.tolist() == ids.tolist() and names[0] == "B cell"
    got, _, kind = label_types(np.array(["B cell", "t cell", "monocyte"]), "auto", cl)
    assert kind == "cl_name" and got.tolist() == ["CL:0000236", "CL:0000084", "CL:0000576"]
    text = np.array(["CD19+ B cells", "CD14+ monocytes", "CD56+ natural killer cells"])
    got, _, kind = label_types(text, "auto", cl)
    assert kind == "free_text" and got.tolist() == ["CL:0001201", "CL:0001054", "CL:0000623"]
    lines = np.array(["H1975", "HCC827", "H2228"])
    got, names, kind = label_types(lines, "auto", cl)
    assert kind == "plain" and got.tolist() == lines.tolist() == names.tolist()
    # a stated kind that does not fit leaves cells unlabelled, it does not guess
    got, _, _ = label_types(np.array(["B cell", "no such cell"]), "cl_name", cl)
    assert got.tolist() == ["CL:0000236", ""]
    with pytest.raises(InputError, match="unknown label kind"):
        label_types(lines, "names", cl)


def test_splits_hold_out_studies_or_state_a_cell_split():
    obs = pd.DataFrame({"cl_id": ["A", "B"] * 60, "study": ["s1"] * 40 + ["s2"] * 40 + ["s3"] * 40})
    split, how = assign_splits(obs)
    query = set(obs.loc[split == "query", "study"])
    assert len(query) == 1 and how.startswith("study-held-out") and query.pop() in how
    assert (split == "validation").sum() > 0
    one = obs.assign(study="s1")
    split, how = assign_splits(one)
    assert "cell split" in how
    for t in ("A", "B"):  # stratified: every type in every split
        assert set(split[one["cl_id"] == t]) == {"train", "validation", "query"}


def _toy(path, n=60, genes=("g1", "g2", "g3"), label="cell_type", seed=0):
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix(rng.poisson(3, size=(n, len(genes))).astype(np.float32))
    obs = pd.DataFrame({label: ["B cell", "T cell"] * (n // 2)}, index=[f"c{i}" for i in range(n)])
    ad.AnnData(X, obs=obs, var=pd.DataFrame(index=list(genes))).write_h5ad(path)
    return path


def test_bad_inputs_name_the_file_and_field(tmp_path, cl):
    a = _toy(tmp_path / "a.h5ad")
    with pytest.raises(InputError, match="no obs column 'label'") as err:
        labelled_atlas([LabelledInput(a, "label")], tmp_path / "atlas.h5ad", ontology=cl)
    assert err.value.field == "label" and "a.h5ad" in str(err.value)
    b = _toy(tmp_path / "b.h5ad", genes=("x1", "x2"))
    with pytest.raises(InputError, match="share no gene"):
        labelled_atlas(
            [LabelledInput(a, "cell_type"), LabelledInput(b, "cell_type")],
            tmp_path / "atlas.h5ad",
            ontology=cl,
        )
    with pytest.raises(InputError, match="looks like raw counts but was stated as log"):
        labelled_atlas(
            [LabelledInput(a, "cell_type")], tmp_path / "atlas.h5ad", ontology=cl, normalised=True
        )
    assert not (tmp_path / "atlas.h5ad").exists()


@pytest.mark.slow
def test_zheng_sorted_cells_to_a_release_that_query_uses(shared_data, tmp_path, capsys):
    src = write_zheng_h5ad(shared_data, tmp_path / "zheng.h5ad")
    out = tmp_path / "published"
    argv = ["build-reference", "--input", str(src), "--labels", "cell_type"]
    assert main([*argv, "--output", str(out), "--no-celltypist", "--threads", "2"]) == 0
    printed = capsys.readouterr().out
    assert "published" in printed and "scatlas query --reference" in printed
    atlas = ad.read_h5ad(tmp_path / "published-build" / "atlas" / "atlas.h5ad")
    info = atlas.uns["scatlas"]
    assert info["label_kind"] == "free_text" and "cell split" in info["split"]
    assert atlas.obs["trainable"].all() and atlas.obs["cl_id"].nunique() == 9
    current = out / "current"
    manifest = json.loads((current / "manifest.json").read_text())
    assert manifest["n_cells"] == 2140 and "de/summary.tsv" not in manifest["files"]
    assert manifest["novelty_calibration"]["neighbours"] == "other_cell"
    assert "one study" in manifest["novelty_calibration"]["warning"]
    metrics = json.loads((current / "metrics.json").read_text())
    assert metrics["methods"]["dense"]["accuracy"] > 0.8  # held-out cells of the sorted populations
    query = write_donor_a_h5ad(shared_data, tmp_path / "donor_a.h5ad")
    annotated = tmp_path / "donor_a.annotated.h5ad"
    args = ["query", "--reference", str(current), "--input", str(query), "--output"]
    assert main([*args, str(annotated), "--majority-voting"]) == 0
    cells = ad.read_h5ad(annotated).obs
    assert len(cells) == 2896 and (cells["scatlas_reason"] == "").mean() > 0.99
    # unsorted PBMC: the big populations are all found
    called = set(cells["scatlas_answer"])
    assert {"natural killer cell", "CD14-positive monocyte"} <= called
    assert cells["scatlas_majority_voting"].nunique() >= 4
    assert cells["scatlas_novel"].mean() < 0.3


@pytest.mark.slow
def test_two_pancreas_studies_to_a_release(shared_data, tmp_path):
    from scatlas.release.build import BuildSettings, build_reference

    wang, xin = write_pancreas_h5ads(shared_data, tmp_path)
    release = build_reference(
        [LabelledInput(wang, "cell_type"), LabelledInput(xin, "cell_type")],
        tmp_path / "published",
        settings=BuildSettings(models=("dense", "triplet"), normalised=True, celltypist=False),
    )
    atlas = ad.read_h5ad(tmp_path / "published-build" / "atlas" / "atlas.h5ad")
    assert atlas.uns["scatlas"]["input_kind"] == "log_normalised"
    assert atlas.n_vars == 219  # the genes both studies have
    query_study = set(atlas.obs.loc[atlas.obs["split"] == "query", "study"])
    assert len(query_study) == 1  # study-held-out
    metrics = pd.read_csv(tmp_path / "published-build" / "evaluation" / "metrics.tsv", sep="\t")
    models = metrics.set_index("method")
    for name in ("dense", "triplet"):  # across studies, at least the PCA baseline
        assert models.loc[name, "accuracy"] >= models.loc["pca", "accuracy"] - 0.01
    manifest = json.loads((release / "manifest.json").read_text())
    choice = json.loads(
        (tmp_path / "published-build" / "models" / "release" / "choice.json").read_text()
    )
    assert manifest["model"] == choice["model"] and choice["chosen_by"] == "evaluation"
    assert manifest["novelty_calibration"]["neighbours"] == "other_study"
    assert manifest["normalisation"] == "log_normalised"
    from scatlas.annotate.reference import query_file

    other = "xin" if "wang" in query_study else "wang"
    out = query_file(release, tmp_path / f"{other}.h5ad", tmp_path / "annotated.h5ad", k=10)
    assert out.uns["scatlas"]["input_normalisation"] == "log_normalised"
    assert (out.obs["scatlas_reason"] == "").all()


def test_cli_plain_labels_without_an_ontology(tmp_path, capsys):
    """Cell lines: plain labels, no MAFP (no ontology): the summary still prints."""
    rng = np.random.default_rng(1)
    n, genes = 160, [f"g{i}" for i in range(30)]
    lines = np.array(["H1975", "HCC827"] * (n // 2))
    rates = np.where(lines[:, None] == "H1975", 1.0, 6.0) * np.r_[np.ones(15), 0.2 * np.ones(15)]
    X = sp.csr_matrix(rng.poisson(rates * 5).astype(np.float32))
    obs = pd.DataFrame({"line": lines}, index=[f"c{i}" for i in range(n)])
    src = tmp_path / "lines.h5ad"
    ad.AnnData(X, obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(src)
    argv = ["build-reference", "--input", str(src), "--labels", "line", "--no-celltypist"]
    assert main([*argv, "--output", str(tmp_path / "ref"), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "model dense: accuracy" in printed and "mafp_at_k" not in printed
    atlas = ad.read_h5ad(tmp_path / "ref-build" / "atlas" / "atlas.h5ad")
    assert atlas.uns["scatlas"]["label_kind"] == "plain"
    assert set(atlas.obs["cl_id"]) == {"H1975", "HCC827"}
