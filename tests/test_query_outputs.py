"""What `scatlas query` writes beside the winner: scores, neighbours, margin, backoff,
confidence, majority voting; which matrix it reads; 10x inputs; low gene overlap."""

from __future__ import annotations

import gzip
import logging

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
from test_query import release  # noqa: F401  (the module's published reference)

from scatlas.annotate.backoff import backoff_answers
from scatlas.annotate.reference import QueryOptions, Reference, query_file
from scatlas.annotate.scores import type_scores
from scatlas.annotate.voting import majority_vote, over_cluster
from scatlas.errors import InputError
from scatlas.models.normalize import log1p_cp10k
from scatlas.ontology import load_ontology
from scatlas.package_data import snapshot_obo


def test_type_scores_match_the_definition():
    rng = np.random.default_rng(0)
    n, k, n_types = 200, 7, 5
    dist = np.sort(rng.uniform(0, 3, size=(n, k)), axis=1).astype(np.float32)
    idx = rng.integers(-1, 40, size=(n, k))
    codes = rng.integers(-1, n_types, size=40)
    got = type_scores(dist, idx, codes, n_types)
    for r in range(n):
        s = np.zeros(n_types)
        for d, i in zip(dist[r], idx[r], strict=True):
            if i >= 0 and codes[i] >= 0:
                s[codes[i]] += 1 / (1 + d)
        if s.sum() == 0:
            assert got.winner[r] == -1 and got.matrix[r].nnz == 0
            continue
        s /= s.sum()
        np.testing.assert_allclose(got.matrix[r].toarray().ravel(), s, rtol=1e-5)
        assert got.winner[r] == int(np.argmax(s))  # ties: the smaller code, as argmax
        top2 = np.sort(s)[::-1]
        assert got.margin[r] == pytest.approx(top2[0] - top2[1], abs=1e-6)


def test_backoff_to_the_common_is_a_ancestor():
    cl = load_ontology(snapshot_obo())
    types = np.array(["CL:0000624", "CL:0000625", "CL:0000236"], dtype=object)
    labels = np.array([cl.label(t) for t in types], dtype=object)
    # cell 0 torn between CD4 and CD8 T cells; cell 1 clearly a B cell; cell 2 no call
    dist = np.array([[0.1, 0.1, 5.0], [0.1, 0.2, 0.3], [np.inf] * 3], dtype=np.float32)
    idx = np.array([[0, 1, 2], [2, 2, 2], [-1, -1, -1]])
    scores = type_scores(dist, idx, np.arange(3), 3)
    answer_id, answer, level = backoff_answers(scores, types, labels, 0.2, lambda: cl)
    assert level.tolist() == ["ancestor", "type", ""]
    assert answer_id[1] == "CL:0000236" and answer_id[2] == ""
    common = answer_id[0]
    for t in types[:2]:
        assert cl.is_ancestor(common, t, relations=("is_a",))
    assert "T cell" in answer[0]
    # margin 0: never back off; no ontology (plain labels): the winner stands, unresolved
    assert backoff_answers(scores, types, labels, 0.0, lambda: cl)[2][0] == "type"
    plain = backoff_answers(scores, types, labels, 0.2, lambda: None)
    assert plain[2][0] == "unresolved" and plain[0][0] == types[scores.winner[0]]


def test_majority_vote_gives_each_cluster_its_most_common_call():
    clusters = np.array([0, 0, 0, 1, 1, -1, 2])
    winner = np.array([3, 3, 1, 2, -1, 0, -1])
    code, share = majority_vote(clusters, winner)
    assert code.tolist() == [3, 3, 3, 2, 2, -1, -1]
    assert share[:3] == pytest.approx([2 / 3] * 3) and share[3] == 1 and share[5] == 0
    emb = np.vstack([np.zeros((60, 2)), np.full((60, 2), 10.0), [[np.nan, 0]]])
    labels = over_cluster(emb, cells_per_cluster=30)
    assert labels[-1] == -1 and len(set(labels[:60]) & set(labels[60:120])) == 0


def test_scores_neighbours_margin_and_confidence_written(release):  # noqa: F811
    path, new = release
    ref = Reference.load(path)
    out = ref.annotate(new.copy(), k=8, majority_voting=True)
    info = out.uns["scatlas"]
    scores = out.obsm["scatlas_scores"]
    assert sp.issparse(scores) and scores.shape == (out.n_obs, len(info["score_types"]))
    called = out.obs["scatlas_reason"].to_numpy() == ""
    np.testing.assert_allclose(np.asarray(scores[called].sum(axis=1)).ravel(), 1, rtol=1e-5)
    best = np.asarray(info["score_types"])[np.asarray(scores.argmax(axis=1)).ravel()]
    assert (best[called] == out.obs["scatlas_cell_type_id"].to_numpy()[called]).all()
    nb, d = out.obsm["scatlas_neighbours"], out.obsm["scatlas_distances"]
    assert nb.shape == d.shape == (out.n_obs, 8) and (np.diff(d, axis=1) >= 0).all()
    np.testing.assert_allclose(d[called, 0], out.obs["scatlas_min_dist"].to_numpy()[called])
    first = ref.cells["cl_id"].to_numpy()[nb[:, 0]]
    assert np.mean(first == out.obs["scatlas_cell_type_id"].to_numpy()) > 0.9
    margin = out.obs["scatlas_margin"].to_numpy()
    assert ((margin >= 0) & (margin <= out.obs["scatlas_score"].to_numpy() + 1e-6)).all()
    # all genes present: confidence is the score
    np.testing.assert_allclose(out.obs["scatlas_confidence"], out.obs["scatlas_score"])
    assert set(out.obs["scatlas_answer_level"]) <= {"type", "ancestor", "unresolved"}
    vote = out.obs["scatlas_majority_voting_id"].to_numpy()
    assert np.mean(vote == out.obs["scatlas_cell_type_id"].to_numpy()) > 0.9
    assert out.obs["scatlas_over_cluster"].nunique() >= 1


def test_scanpy_objects_read_from_counts_or_raw_not_scaled_x(release, caplog):  # noqa: F811
    path, new = release
    ref = Reference.load(path)
    plain = ref.annotate(new.copy(), k=5).obs["scatlas_cell_type_id"].to_numpy()
    scaled = new.copy()
    scaled.layers["counts"] = scaled.X.copy()
    x = log1p_cp10k(scaled.X).toarray()
    scaled.X = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)  # as sc.pp.scale leaves it
    out = ref.annotate(scaled.copy(), k=5)
    assert out.uns["scatlas"]["input_matrix"] == "layers['counts']"
    assert (out.obs["scatlas_cell_type_id"].to_numpy() == plain).all()
    with_raw = scaled.copy()
    del with_raw.layers["counts"]
    with_raw.raw = ad.AnnData(log1p_cp10k(new.X), var=new.var.copy())
    with caplog.at_level(logging.INFO, logger="scatlas.annotate.inputs"):
        out = ref.annotate(with_raw.copy(), k=5)
    assert out.uns["scatlas"]["input_matrix"] == "raw"
    assert out.uns["scatlas"]["input_normalisation"] == "log_normalised"
    assert "skipped scaled" not in caplog.text  # raw comes before X
    assert np.mean(out.obs["scatlas_cell_type_id"].to_numpy() == plain) > 0.95
    bare = with_raw.copy()
    bare.raw = None
    with pytest.raises(InputError, match="negative values .*layers\\['counts'\\]"):
        ref.annotate(bare, k=5)
    with pytest.raises(InputError, match="no 'spliced' expression"):
        ref.annotate(with_raw.copy(), k=5, layer="spliced")
    with pytest.raises(InputError, match="negative values"):
        ref.annotate(with_raw.copy(), k=5, layer="X")


def _write_10x_mtx(adata, folder):
    folder.mkdir()
    with gzip.open(folder / "matrix.mtx.gz", "wb") as fh:
        scipy.io.mmwrite(fh, sp.csr_matrix(adata.X).T.tocoo().astype(np.int64))
    feats = "".join(
        f"{g}\t{s}\tGene Expression\n"
        for g, s in zip(adata.var_names, adata.var["gene_symbol"], strict=True)
    )
    (folder / "features.tsv.gz").write_bytes(gzip.compress(feats.encode()))
    bcs = "".join(f"{c}\n" for c in adata.obs_names)
    (folder / "barcodes.tsv.gz").write_bytes(gzip.compress(bcs.encode()))


def _write_10x_h5(adata, path):
    m = sp.csc_matrix(sp.csr_matrix(adata.X).T.astype(np.int32))  # genes x cells, by cell
    with h5py.File(path, "w") as fh:
        g = fh.create_group("matrix")
        g["data"], g["indices"], g["indptr"] = m.data, m.indices, m.indptr
        g["shape"] = np.array(m.shape, dtype=np.int32)
        g["barcodes"] = np.array(adata.obs_names, dtype="S")
        f = g.create_group("features")
        f["id"] = np.array(adata.var_names, dtype="S")
        f["name"] = np.array(adata.var["gene_symbol"], dtype="S")
        f["feature_type"] = np.array(["Gene Expression"] * adata.n_vars, dtype="S")
        f["genome"] = np.array(["GRCh38"] * adata.n_vars, dtype="S")


def test_10x_h5_and_mtx_inputs(release, tmp_path):  # noqa: F811
    path, new = release
    ref = Reference.load(path)
    expected = ref.annotate(new.copy(), k=5).obs["scatlas_cell_type_id"].to_numpy()
    _write_10x_mtx(new, tmp_path / "filtered_feature_bc_matrix")
    _write_10x_h5(new, tmp_path / "filtered_feature_bc_matrix.h5")
    for src in ("filtered_feature_bc_matrix", "filtered_feature_bc_matrix.h5"):
        out = query_file(ref, tmp_path / src, tmp_path / f"{src}.out.h5ad", k=5)
        assert out.uns["scatlas"]["gene_overlap"]["key"] == "gene_id"
        assert (out.obs["scatlas_cell_type_id"].to_numpy() == expected).all()


def test_low_gene_overlap_warns_and_lowers_confidence(release, caplog):  # noqa: F811
    path, new = release
    ref = Reference.load(path)
    part = new[:, :60].copy()  # 30% of the reference's genes
    with caplog.at_level(logging.WARNING, logger="scatlas.annotate.reference"):
        out = ref.annotate(part, k=5)
    assert "fewer than half" in caplog.text
    coverage = out.uns["scatlas"]["coverage"]
    means = ref.genes["mean_expression"].astype(float).to_numpy()
    assert coverage == pytest.approx(means[:60].sum() / means.sum())  # expression-weighted
    assert 0.2 < coverage < 0.4
    np.testing.assert_allclose(
        out.obs["scatlas_confidence"], out.obs["scatlas_score"] * coverage, rtol=1e-5
    )
    with pytest.raises(InputError, match="only 10 of the reference's 200 genes"):
        ref.annotate(new[:, :10].copy(), k=5)  # below the floor (0.1)
    with pytest.raises(InputError, match="min_margin must be in"):
        QueryOptions(min_margin=2)


def test_cli_query_options(release, tmp_path, capsys):  # noqa: F811
    from scatlas.cli import main

    path, new = release
    src = tmp_path / "in.h5ad"
    new.write_h5ad(src)
    out, csv = tmp_path / "out.h5ad", tmp_path / "out.csv"
    argv = ["query", "--reference", str(path), "--input", str(src), "--output", str(out)]
    assert main([*argv, "--csv", str(csv), "--majority-voting", "--layer", "X"]) == 0
    printed = capsys.readouterr().out
    assert "input: X, raw_counts" in printed and "answered at a common ancestor" in printed
    table = pd.read_csv(csv, index_col="cell_id")
    assert {"scatlas_majority_voting", "scatlas_answer_level", "scatlas_confidence"} <= set(
        table.columns
    )
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--overwrite", "--min-margin", "1.5"])
    assert exit_.value.code == 2
    assert "--min-margin: must be a number in [0, 1]" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--layer", "spliced"]) != 0
    assert "no 'spliced' expression" in capsys.readouterr().err


def test_search_breadth_per_query_and_recorded(release):  # noqa: F811
    from scatlas.release.index import build_index, stored_breadth

    path, new = release
    with pytest.raises(InputError) as err:
        QueryOptions(search_breadth=0)
    assert err.value.field == "search_breadth"
    ref = Reference.load(path)
    out = ref.annotate(new.copy(), search_breadth=4)
    assert out.uns["scatlas"]["index"] == {"kind": "flat", "search_breadth": 0}  # exact
    ref.index = build_index(ref.index.reconstruct_n(0, ref.index.ntotal), kind="ivf")
    stored = stored_breadth(ref.index)
    out = ref.annotate(new.copy())
    assert out.uns["scatlas"]["index"] == {"kind": "ivf", "search_breadth": stored}
    out = ref.annotate(new.copy(), search_breadth=1)
    assert out.uns["scatlas"]["index"]["search_breadth"] == 1
    assert stored_breadth(ref.index) == stored
