"""Clustering query cells: the Ward tree and its cuts, the number of clusters (given, by
ScLSTM's pair head, by silhouette), sampling beyond the memory limit, markers, scores, and
``scatlas cluster`` / ``scatlas query --cluster`` end to end."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from synthetic_atlas import make_atlas, write_atlas

from scatlas.annotate.cluster_cells import ClusterOptions, cluster_adata, cluster_file
from scatlas.annotate.clusters import (
    cluster_points,
    cluster_table,
    cut_tree,
    marker_genes,
    split_by_pairs,
    ward_tree,
)
from scatlas.cli import main
from scatlas.errors import InputError
from scatlas.evaluate.clustering import cluster_scores, compare_clusterings, matched_labels
from scatlas.models.sclstm import ScLSTM, landmark_rows, pair_head
from scatlas.models.trainer import train_model

torch.set_num_threads(1)


def blobs(sizes=(40, 30, 20), dim=4, spread=0.1, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[: len(sizes)] * 10
    points = np.vstack(
        [c + spread * rng.standard_normal((n, dim)) for c, n in zip(centres, sizes, strict=True)]
    )
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return points, truth


def test_cut_tree_numbers_clusters_by_size():
    points, truth = blobs()
    children = ward_tree(points)
    labels = cut_tree(children, len(points), 3)
    assert cluster_scores(truth.astype(str), labels)["ari"] == pytest.approx(1.0)
    assert np.bincount(labels).tolist() == [40, 30, 20]  # 0 is the largest
    assert len(np.unique(cut_tree(children, len(points), 1))) == 1
    assert len(np.unique(cut_tree(children, len(points), len(points)))) == len(points)


def test_number_of_clusters_given_or_estimated():
    points, truth = blobs()
    given = cluster_points(points, 2)
    assert given.n_clusters == 2 and not given.estimated
    estimated = cluster_points(points)
    assert estimated.estimated and estimated.n_clusters == 3
    assert max(estimated.silhouette, key=estimated.silhouette.get) == 3
    with pytest.raises(InputError, match="clusters"):
        cluster_points(points, 0)
    assert cluster_points(points[:2]).n_clusters == 1  # too few cells to split


def test_pair_head_splits_only_different_types():
    points, truth = blobs(sizes=(40, 40, 40, 40))
    children = ward_tree(points)

    def oracle(a, b):  # the same-type probability a perfect pair head would give
        return (np.argmax(a, 1) == np.argmax(b, 1)).astype(float)

    labels = split_by_pairs(points, children, oracle)
    assert len(np.unique(labels)) == 4
    assert cluster_scores(truth.astype(str), labels)["ari"] == pytest.approx(1.0)
    one = split_by_pairs(points, children, lambda a, b: np.ones(len(a)))
    assert len(np.unique(one)) == 1  # a head that calls every pair the same: one cluster
    unsure = split_by_pairs(points, children, lambda a, b: np.full(len(a), 0.45))
    assert len(np.unique(unsure)) == 1  # an uninformed head splits nothing ...
    fallback = cluster_points(points, same_type=lambda a, b: np.full(len(a), 0.45))
    assert fallback.n_clusters == 4 and fallback.silhouette  # ... and silhouette decides
    by_head = cluster_points(points, same_type=oracle)
    assert by_head.n_clusters == 4 and not by_head.silhouette
    capped = split_by_pairs(points, children, oracle, max_clusters=3)
    assert len(np.unique(capped)) == 3


def test_beyond_the_limit_a_sample_is_clustered_and_the_rest_assigned():
    points, truth = blobs(sizes=(300, 200, 100))
    result = cluster_points(points, 3, max_cells=60)
    assert result.n_clustered == 60 and len(result.labels) == 600
    assert cluster_scores(truth.astype(str), result.labels)["ari"] == pytest.approx(1.0)


def test_scores_match_clusters_to_types_one_to_one():
    true = np.array(["a"] * 4 + ["b"] * 4 + ["c"] * 2, dtype=object)
    perfect = np.array([7] * 4 + [3] * 4 + [1] * 2)
    s = cluster_scores(true, perfect)
    assert s == {"ari": 1.0, "nmi": 1.0, "acc": 1.0, "balanced_accuracy": 1.0}
    merged = np.array([0] * 8 + [1] * 2)  # a and b in one cluster: one of them unmatched
    assert matched_labels(true, merged).tolist().count("") == 0
    s = cluster_scores(true, merged)
    assert s["acc"] == pytest.approx(0.6) and s["balanced_accuracy"] == pytest.approx(2 / 3)
    split = np.array([0, 0, 1, 1, 2, 2, 2, 2, 3, 3])  # more clusters than types: some unmatched
    assert (matched_labels(true, split) == "").sum() == 2


def test_markers_and_candidate_new_types():
    X = sp.csr_matrix(np.array([[5, 0, 1], [4, 0, 1], [0, 6, 1], [0, 5, 1]], dtype=np.float32))
    labels = np.array([0, 0, 1, 1])
    markers = marker_genes(X, labels, ["A", "B", "C"], top=2)
    assert markers == {0: ["A"], 1: ["B"]}  # C is everywhere: no marker
    from scatlas.annotate.clusters import Clustering

    table = cluster_table(Clustering(labels, 2, True, 4), np.array([0, 0, 1, 1], bool), markers)
    assert table["candidate_new_type"].tolist() == [False, True]
    assert table.loc[1, "markers"] == "B" and table.loc[1, "novel_share"] == 1.0


def test_clustering_comparison_has_every_method():
    points, truth = blobs(sizes=(30, 30, 30), dim=20)
    X_log = sp.csr_matrix(np.abs(points))
    table = compare_clusterings({"model": points}, X_log, truth.astype(str))
    assert table["method"].tolist() == ["model", "model", "pca", "pca", "pca"]
    assert table["algorithm"].str.startswith("leiden").sum() == 1
    assert (table["n_true"] == 3).all()
    assert table.loc[0, "ari"] == pytest.approx(1.0)


def test_landmarks_cover_every_type_in_order():
    y = np.array([0] * 50 + [1] * 3 + [2] * 10)
    rows = landmark_rows(y, 12)
    assert len(rows) == 12 and (np.diff(y[rows]) >= 0).all()
    assert set(y[rows]) == {0, 1, 2} and (y[rows] == 1).sum() == 3
    many = landmark_rows(y[:5], 12)  # fewer cells than landmarks: cycle
    assert len(many) == 12 and set(many) == set(range(5))


@pytest.fixture(scope="module")
def sclstm_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("sclstm")
    atlas = write_atlas(out / "atlas.h5ad")
    params = {"hidden": [16, 16], "n_landmarks": 64, "chunk": 8, "epochs": 12}
    train_model(atlas, "sclstm", out / "model", params=params, device="cpu", holdout="auto")
    return out / "model"


def test_sclstm_keeps_its_landmarks_and_pair_head(sclstm_model):
    from scatlas.models.io import load_model

    net, info = load_model(sclstm_model)
    assert isinstance(net, ScLSTM) and info["normalisation"] == "log1p"
    assert net.landmarks.abs().sum() > 0  # the training cells came back from the file
    lo, hi = net.kernel_range.tolist()
    assert hi > lo
    head = pair_head(net)
    e = np.random.default_rng(0).standard_normal((4, net.embedding_dim)).astype(np.float32)
    p = head(e, e[::-1])
    assert p.shape == (4,) and ((p >= 0) & (p <= 1)).all()


def _query(tmp_path, novel: bool = False):
    adata = make_atlas(seed=3)
    adata = adata[adata.obs["split"] == "query"].copy()
    truth = adata.obs["cl_id"].astype(str).to_numpy()
    if novel:
        adata.obs["scatlas_novel"] = truth == truth[-1]
    path = tmp_path / "query.h5ad"
    adata.write_h5ad(path)
    return path, truth


def _load(model_dir):
    from scatlas.annotate.cluster_cells import load_cluster_model

    return load_cluster_model(model_dir)[0]


def test_scatlas_cluster_command(sclstm_model, tmp_path, capsys):
    path, truth = _query(tmp_path, novel=True)
    out = tmp_path / "clustered.h5ad"
    rc = main(
        [
            "cluster",
            "--model",
            str(sclstm_model),
            "--input",
            str(path),
            "--output",
            str(out),
            "--csv",
            str(tmp_path / "c.csv"),
            "--n-clusters",
            "5",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "clusters: 5 (given)" in text
    adata = ad.read_h5ad(out)
    labels = adata.obs["scatlas_cluster"].astype(str).to_numpy()
    info = adata.uns["scatlas_clusters"]
    assert info["model"] == "sclstm" and not info["estimated"]
    assert cluster_scores(truth, labels)["ari"] > 0.5  # distinct synthetic types
    again = ad.read_h5ad(path)
    estimated = cluster_adata(again, ClusterOptions(), model=_load(sclstm_model))
    assert again.uns["scatlas_clusters"]["estimated"] and len(estimated) >= 1
    assert "scatlas_cluster" in pd.read_csv(tmp_path / "c.csv").columns
    # only the novel cells, with the number given
    adata2, table = cluster_file(
        sclstm_model, path, tmp_path / "n.h5ad", ClusterOptions(cells="novel", n_clusters=1)
    )
    clustered = adata2.obs["scatlas_cluster"].notna().to_numpy()
    assert (clustered == adata2.obs["scatlas_novel"].to_numpy()).all()
    assert table["candidate_new_type"].tolist() == [True]


def test_cluster_errors_name_the_field(sclstm_model, tmp_path):
    path, _ = _query(tmp_path)
    adata = ad.read_h5ad(path)
    with pytest.raises(InputError, match="scatlas_novel"):
        cluster_adata(adata, ClusterOptions(cells="novel"), source=str(path))
    with pytest.raises(InputError, match="no model"):
        cluster_adata(adata, ClusterOptions())
    with pytest.raises(InputError, match="cells"):
        ClusterOptions(cells="some")
    with pytest.raises(InputError, match="model.json"):
        cluster_file(tmp_path, path, tmp_path / "o.h5ad", ClusterOptions())
    assert (
        main(
            [
                "cluster",
                "--model",
                str(tmp_path),
                "--input",
                str(path),
                "--output",
                str(tmp_path / "o.h5ad"),
            ]
        )
        == 2
    )
