import json
import logging
import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from synthetic_atlas import NOVEL, TYPES, publish_without_study

from scatlas.annotate.inputs import to_model_input
from scatlas.annotate.reference import Reference, detect_normalisation, query_file
from scatlas.errors import InputError
from scatlas.models.normalize import log1p_cp10k
from scatlas.release.format import ReleaseError

torch.set_num_threads(1)
HELD_OUT = "GSE100004"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A reference published without the query study, and that study's cells as new data."""
    return publish_without_study(tmp_path_factory.mktemp("query"), HELD_OUT)


def _known(adata):
    return adata.obs["truth"].isin(list(TYPES)).to_numpy()


def test_annotate_held_out_study(release):
    path, new = release
    ref = Reference.load(path)
    out = ref.annotate(new.copy(), k=10)
    known = _known(out)
    pred = out.obs["scatlas_cell_type_id"].astype(str).to_numpy()
    accuracy = np.mean(pred[known] == out.obs["truth"].to_numpy()[known])
    assert accuracy > 0.9
    assert out.obsm["X_scatlas"].shape == (new.n_obs, 16)
    assert set(out.obs.loc[known, "scatlas_cell_type"]) == set(TYPES.values())
    score = out.obs["scatlas_score"].to_numpy()
    assert np.all((score > 0) & (score <= 1)) and np.median(score[known]) > 0.9
    dist = out.obs["scatlas_min_dist"].to_numpy()
    assert np.all(dist > 0)  # new cells, none identical to a reference cell
    info = out.uns["scatlas"]
    assert info["reference_version"] == "v1" and info["k"] == 10
    assert info["input_normalisation"] == "raw_counts"
    assert info["gene_overlap"]["n_matched"] == 200 and info["gene_overlap"]["key"] == "gene_id"
    studies = info["similar_studies"]
    assert set(studies["study"]) <= {"GSE100001", "GSE100002", "GSE100003"}
    assert studies["share"].sum() == pytest.approx(1.0)


def test_score_is_the_winners_share_of_inverse_distance(release):
    path, new = release
    ref = Reference.load(path)
    out = ref.annotate(new[:5].copy(), k=4)
    from scatlas.release.index import search

    d, i = search(ref.index, out.obsm["X_scatlas"], 4)
    s = 1 / (1 + d.astype(np.float64))
    types = ref.cells["cl_id"].to_numpy()[i]
    for row in range(5):
        per_type = pd.Series(s[row]).groupby(types[row]).sum()
        assert out.obs["scatlas_cell_type_id"].iloc[row] == per_type.idxmax()
        assert out.obs["scatlas_score"].iloc[row] == pytest.approx(
            per_type.max() / per_type.sum(), rel=1e-5
        )
        assert out.obs["scatlas_min_dist"].iloc[row] == pytest.approx(d[row, 0])


def test_symbols_and_log_normalised_input(release):
    path, new = release
    ref = Reference.load(path)
    by_id = ref.annotate(new.copy())
    sym = new.copy()
    sym.var_names = [f"GENE{i}" for i in range(1, sym.n_vars + 1)]
    sym = sym[:, ::-1].copy()  # another gene order
    by_symbol = ref.annotate(sym)
    assert by_symbol.uns["scatlas"]["gene_overlap"]["key"] == "gene_symbol"
    pd.testing.assert_series_equal(
        by_symbol.obs["scatlas_cell_type_id"], by_id.obs["scatlas_cell_type_id"]
    )
    lognorm = new.copy()
    lognorm.X = log1p_cp10k(lognorm.X)
    out = ref.annotate(lognorm)
    assert out.uns["scatlas"]["input_normalisation"] == "log_normalised"
    np.testing.assert_allclose(out.obsm["X_scatlas"], by_id.obsm["X_scatlas"], atol=1e-5)
    ids_column = new.copy()
    ids_column.var["gene_ids"] = [f"{g}.7" for g in ids_column.var_names]  # versioned ids
    ids_column.var_names = [f"probe{i}" for i in range(ids_column.n_vars)]
    out = ref.annotate(ids_column)
    assert out.uns["scatlas"]["gene_overlap"]["matched_by"] == "gene_ids"
    assert out.uns["scatlas"]["gene_overlap"]["n_matched"] == 200


def test_missing_genes_zero_filled_or_refused(release, caplog):
    path, new = release
    ref = Reference.load(path)
    part = new[:, :150].copy()
    with caplog.at_level(logging.WARNING, logger="scatlas.annotate.reference"):
        out = ref.annotate(part)
    assert "50 of 200 reference genes are missing" in caplog.text
    assert out.uns["scatlas"]["gene_overlap"]["fraction"] == pytest.approx(0.75)
    with pytest.raises(InputError, match="only 150 of the reference's 200 genes"):
        ref.annotate(new[:, :150].copy(), min_genes=160)
    none = new.copy()
    none.var_names = [f"other{i}" for i in range(none.n_vars)]
    # the gene_symbol column still matches ...
    assert ref.annotate(none.copy()).uns["scatlas"]["gene_overlap"]["matched_by"] == "gene_symbol"
    none.var = none.var.drop(columns="gene_symbol")  # ... without it nothing does
    with pytest.raises(InputError, match="only 0 of") as err:
        ref.annotate(none)
    assert err.value.field == "var_names"


def test_detect_normalisation():
    counts = sp.csr_matrix(np.array([[0, 3], [2, 1]], dtype=np.float32))
    assert detect_normalisation(counts) == "raw_counts"
    assert detect_normalisation(log1p_cp10k(counts)) == "log_normalised"
    assert detect_normalisation(counts * 1000.5) == "linear"
    with pytest.raises(InputError, match="negative"):
        detect_normalisation(np.array([[-0.5, 1.0]]))


def test_query_file_writes_h5ad_and_csv(release, tmp_path):
    path, new = release
    src = tmp_path / "in.h5ad"
    new.write_h5ad(src)
    out = query_file(path, src, tmp_path / "out.h5ad", k=5, csv=tmp_path / "out.csv")
    back = ad.read_h5ad(tmp_path / "out.h5ad")
    assert back.uns["scatlas"]["k"] == 5
    assert list(back.uns["scatlas"]["similar_studies"].columns) == [
        "study",
        "n_neighbours",
        "share",
    ]
    np.testing.assert_array_equal(back.obsm["X_scatlas"], out.obsm["X_scatlas"])
    table = pd.read_csv(tmp_path / "out.csv", index_col="cell_id")
    assert list(table.columns) == [
        "scatlas_cell_type",
        "scatlas_cell_type_id",
        "scatlas_score",
        "scatlas_margin",
        "scatlas_confidence",
        "scatlas_answer",
        "scatlas_answer_id",
        "scatlas_answer_level",
        "scatlas_novel",
        "scatlas_min_dist",
        "scatlas_reason",
    ]
    assert list(table.index) == list(new.obs_names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5ad", "out.csv", "out.h5ad"]


def test_cli_query_writes_h5ad_and_csv(release, tmp_path, capsys):
    from scatlas.cli import main

    path, new = release
    query = tmp_path / "cells.h5ad"
    new.write_h5ad(query)
    out, csv = tmp_path / "annotated.h5ad", tmp_path / "annotated.csv"
    argv = ["query", "--reference", str(path), "--input", str(query), "--output", str(out)]
    assert main([*argv, "--csv", str(csv), "--k", "5"]) == 0
    annotated = ad.read_h5ad(out)
    assert annotated.n_obs == new.n_obs
    assert annotated.obs["scatlas_cell_type_id"].str.startswith("CL:").all()
    table = pd.read_csv(csv)
    assert len(table) == new.n_obs and "scatlas_cell_type" in table.columns
    assert "annotated" in capsys.readouterr().out


def test_cli_query_refuses_a_folder_that_is_no_release(tmp_path):
    from scatlas.cli import main

    query = tmp_path / "cells.h5ad"
    ad.AnnData(np.ones((2, 3), dtype=np.float32)).write_h5ad(query)
    argv = ["query", "--reference", str(tmp_path), "--input", str(query)]
    assert main([*argv, "--output", str(tmp_path / "out.h5ad")]) == 2
    assert not (tmp_path / "out.h5ad").exists()


def test_novel_type_flagged_more_than_known_types(release):
    path, new = release
    ref = Reference.load(path)
    thresholds = ref.thresholds.set_index("cl_id")["threshold"]
    assert set(TYPES) | {"*"} == set(thresholds.index)
    assert (thresholds > 0).all()
    out = ref.annotate(new.copy(), k=10)
    novel = out.obs["scatlas_novel"].to_numpy(dtype=bool)
    truth = out.obs["truth"].to_numpy()
    known = _known(out)
    unseen = truth == NOVEL[0]
    assert novel[unseen].mean() > 0.5
    assert novel[known].mean() < 0.2
    assert novel[unseen].mean() > novel[known].mean() + 0.4
    # the flag is exactly "nearest distance beyond the winner's threshold"
    thr = thresholds.reindex(out.obs["scatlas_cell_type_id"]).fillna(thresholds["*"]).to_numpy()
    np.testing.assert_array_equal(novel, out.obs["scatlas_min_dist"].to_numpy() > thr)
    assert out.uns["scatlas"]["n_novel"] == int(novel.sum())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.X.data.__setitem__(0, np.nan), "NaN or infinite"),
        (lambda a: a.X.data.__setitem__(0, -1.0), "negative values"),
    ],
)
def test_bad_values_refused(release, change, message):
    path, new = release
    bad = new[:10].copy()
    bad.X = sp.csr_matrix(bad.X, dtype=np.float32)
    change(bad)
    with pytest.raises(InputError, match=message) as err:
        Reference.load(path).annotate(bad, source="bad.h5ad")
    assert err.value.field == "X" and "bad.h5ad" in str(err.value)


def test_duplicated_genes_and_empty_inputs_refused(release, tmp_path):
    path, new = release
    ref = Reference.load(path)
    dup = new[:5].copy()
    names = list(dup.var_names)
    names[3] = names[2]
    dup.var_names = names
    with pytest.raises(InputError, match="more than once.*var_names_make_unique"):
        ref.annotate(dup)
    with pytest.raises(InputError, match="no cells"):
        ref.annotate(new[:0].copy())
    with pytest.raises(InputError, match="no genes"):
        ref.annotate(new[:, :0].copy())
    empty = tmp_path / "empty.h5ad"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        query_file(path, empty, tmp_path / "out.h5ad")
    junk = tmp_path / "junk.h5ad"
    junk.write_text("not hdf5")
    with pytest.raises(InputError, match="cannot read the query .*give an h5ad file"):
        query_file(path, junk, tmp_path / "out.h5ad")
    assert not (tmp_path / "out.h5ad").exists()


def _writable_copy(src, dst):
    shutil.copytree(src.resolve(), dst)
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def test_older_format_refused_with_advice(release, tmp_path):
    path, _ = release
    old = _writable_copy(path, tmp_path / "old")
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["format_version"] = 1
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ReleaseError, match="format 1 is not supported.*older scatlas.*re-publish"):
        Reference.load(old)
    manifest["format_version"] = 99
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ReleaseError, match="newer scatlas"):
        Reference.load(old)


def test_max_scaled_input_matches_the_definition():
    counts = sp.csr_matrix(np.array([[0, 2, 4], [3, 0, 1], [0, 0, 0]], dtype=np.float32))
    out = to_model_input(counts, "raw_counts", "max_scaled").toarray()
    np.testing.assert_allclose(out, [[0, 0.5, 1], [1, 0, 1 / 3], [0, 0, 0]], rtol=1e-6)
    from_log = to_model_input(log1p_cp10k(counts), "log_normalised", "max_scaled").toarray()
    np.testing.assert_allclose(from_log, out, rtol=1e-4, atol=1e-6)
    with pytest.raises(InputError, match="cannot produce"):
        to_model_input(counts, "raw_counts", "zscore")


def test_cli_min_overlap_and_summary(release, tmp_path, capsys):
    from scatlas.cli import main

    path, new = release
    query = tmp_path / "part.h5ad"
    new[:, :150].copy().write_h5ad(query)
    argv = ["query", "--reference", str(path), "--input", str(query)]
    out = tmp_path / "out.h5ad"
    assert main([*argv, "--output", str(out), "--min-overlap", "0.9", "--no-orthologs"]) == 2
    assert not out.exists()
    assert main([*argv, "--output", str(out), "--min-overlap", "0.7", "--batch-size", "7"]) == 0
    printed = capsys.readouterr().out
    assert "genes matched 150/200 by gene_id" in printed and "novel cells:" in printed
    assert "GSE10000" in printed  # most similar studies named


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch-size", "-1"], "--batch-size: must be a whole number >= 1, not '-1'"),
        (["--batch-size", "0"], "--batch-size: must be a whole number >= 1"),
        (["--k", "0"], "--k: must be a whole number >= 1, not '0'"),
        (["--k", "-3"], "--k: must be a whole number >= 1"),
        (["--k", "2.5"], "--k: must be a whole number >= 1"),
        (["--min-overlap", "0"], "--min-overlap: must be a number in (0, 1]"),
    ],
)
def test_cli_query_refuses_bad_arguments(release, tmp_path, capsys, args, message):
    """Each ends with a usage error naming the argument (exit 2), never a traceback or a
    run that labels every cell."""
    from scatlas.cli import main

    path, new = release
    query = tmp_path / "cells.h5ad"
    new.write_h5ad(query)
    out = tmp_path / "out.h5ad"
    argv = ["query", "--reference", str(path), "--input", str(query), "--output", str(out)]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "kw, field",
    [({"k": 0}, "k"), ({"batch_size": -1}, "batch_size"), ({"min_genes": 0}, "min_genes")],
)
def test_api_refuses_bad_arguments(release, kw, field):
    path, new = release
    with pytest.raises(InputError, match=field):
        Reference.load(path).annotate(new.copy(), **kw)


def test_cells_that_cannot_be_embedded_get_no_call(release):
    """All-zero cells and cells whose values overflow normalisation get no label, no score
    and a reason; the other cells are annotated as before."""
    path, new = release
    adata = new.copy()
    X = sp.csr_matrix(adata.X, dtype=np.float64).tolil()
    X[0, :] = 0  # no counts at all
    X[1, :] = 1e300  # finite, but its total overflows
    adata.X = X.tocsr()
    ref = Reference.load(path)
    out = ref.annotate(adata, k=5)
    obs = out.obs
    assert obs["scatlas_reason"].iloc[0] == "no expression in the reference's genes"
    assert "too large" in obs["scatlas_reason"].iloc[1]
    for i in (0, 1):
        assert obs["scatlas_cell_type"].iloc[i] == "" and obs["scatlas_cell_type_id"].iloc[i] == ""
        assert np.isnan(obs["scatlas_score"].iloc[i]) and not obs["scatlas_novel"].iloc[i]
        assert np.isnan(out.obsm["X_scatlas"][i]).all()
    rest = obs.iloc[2:]
    assert (rest["scatlas_reason"] == "").all() and rest["scatlas_cell_type_id"].str.startswith(
        "CL:"
    ).all()
    assert np.isfinite(out.obsm["X_scatlas"][2:]).all()
    assert out.uns["scatlas"]["n_no_call"] == 2
    plain = ref.annotate(new.copy(), k=5)
    np.testing.assert_array_equal(
        rest["scatlas_cell_type_id"].to_numpy(), plain.obs["scatlas_cell_type_id"].iloc[2:]
    )


def test_folder_input_and_existing_annotation_refused(release, tmp_path):
    path, new = release
    folder = tmp_path / "x.h5ad"
    folder.mkdir()
    with pytest.raises(InputError, match="folder without matrix.mtx"):
        query_file(path, folder, tmp_path / "out.h5ad")
    first = tmp_path / "first.h5ad"
    query_file(path, _write(new, tmp_path / "in.h5ad"), first, k=5)
    with pytest.raises(InputError, match="already holds a scatlas annotation .*--overwrite"):
        query_file(path, first, tmp_path / "second.h5ad", k=5)
    again = query_file(path, first, tmp_path / "second.h5ad", k=5, overwrite=True)
    assert again.obs["scatlas_cell_type_id"].str.startswith("CL:").all()


def _write(adata, path):
    adata.write_h5ad(path)
    return path


def test_cli_query_clusters_the_novel_cells(release, tmp_path, capsys):
    from scatlas.cli import main

    path, new = release
    query = tmp_path / "new.h5ad"
    new.write_h5ad(query)
    out = tmp_path / "clustered.h5ad"
    argv = ["query", "--reference", str(path), "--input", str(query), "--output", str(out)]
    assert main([*argv, "--cluster", "novel", "--n-clusters", "1"]) == 0
    text = capsys.readouterr().out
    assert "clusters: 1 (given)" in text and "representation: the reference's model" in text
    adata = ad.read_h5ad(out)
    clustered = adata.obs["scatlas_cluster"].notna().to_numpy()
    assert (clustered == adata.obs["scatlas_novel"].to_numpy(dtype=bool)).all()
    table = adata.uns["scatlas_clusters"]["table"]
    assert table["candidate_new_type"].tolist() == [True] and table["markers"][0]
    # all cells, the number estimated (silhouette: the dense reference has no pair head)
    assert main([*argv, "--overwrite", "--cluster", "all"]) == 0
    adata = ad.read_h5ad(out)
    assert adata.uns["scatlas_clusters"]["estimated"] and adata.obs["scatlas_cluster"].notna().all()
    novel = adata.obs["truth"].isin([NOVEL[0]]).to_numpy()
    assert adata.obs.loc[novel, "scatlas_cluster"].nunique() <= 2  # the new type stays together
    assert main([*argv, "--overwrite", "--cluster-model", str(tmp_path)]) == 2


def test_cli_keeps_library_chatter_out_unless_verbose(release, tmp_path):
    """faiss' loader (six INFO lines, a ModuleNotFoundError among them) and anndata's
    "storing ... as categorical" stay below the CLI's output; ``-v`` shows them."""
    import subprocess
    import sys

    path, new = release
    query = tmp_path / "cells.h5ad"
    new.write_h5ad(query)
    argv = [sys.executable, "-m", "scatlas.cli"]
    tail = ["query", "--reference", str(path), "--input", str(query), "--overwrite"]
    quiet = subprocess.run(
        [*argv, *tail, "--output", str(tmp_path / "a.h5ad")], capture_output=True, text=True
    )
    assert quiet.returncode == 0, quiet.stderr
    said = quiet.stdout + quiet.stderr
    assert "annotated" in said and "scatlas.annotate" in said
    assert "faiss.loader" not in said and "as categorical" not in said
    loud = subprocess.run(
        [*argv, "-v", *tail, "--output", str(tmp_path / "b.h5ad")], capture_output=True, text=True
    )
    assert loud.returncode == 0, loud.stderr
    assert "faiss.loader" in loud.stderr and "as categorical" in loud.stderr
