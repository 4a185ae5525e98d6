import numpy as np
import pytest

from scatlas.errors import InputError
from scatlas.index import build_index, index_kind, load_index, save_index, search


def _data(n=300, d=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=(20, d)).astype(np.float32)


def test_flat_index_is_exact():
    ref, q = _data()
    index = build_index(ref)
    assert index_kind(index) == "flat" and index.ntotal == len(ref)
    dist, idx = search(index, q, 5)
    brute = np.sqrt(((q[:, None, :].astype(np.float64) - ref[None]) ** 2).sum(-1))
    expected_idx = np.argsort(brute, axis=1)[:, :5]
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_allclose(dist, np.take_along_axis(brute, expected_idx, 1), rtol=1e-4)
    assert dist.dtype == np.float32 and idx.dtype == np.int64


def test_hnsw_beyond_flat_max_finds_the_points_themselves():
    ref, _ = _data(n=500)
    index = build_index(ref, flat_max=100)
    assert index_kind(index) == "hnsw"
    assert (index.hnsw.efConstruction, index.hnsw.efSearch) == (80, 128)
    dist, idx = search(index, ref[:50], 3)
    np.testing.assert_array_equal(idx[:, 0], np.arange(50))
    assert np.all(dist[:, 0] < 1e-3)


def test_save_load_round_trip_and_k_cap(tmp_path):
    ref, q = _data(n=4)
    index = build_index(ref)
    path = save_index(index, tmp_path / "sub" / "index.faiss")
    loaded = load_index(path)
    d1, i1 = search(index, q, 10)
    d2, i2 = search(loaded, q, 10)
    assert i1.shape == (20, 4)  # k capped at the number of cells
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(d1, d2)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["index.faiss"]


def test_load_index_errors(tmp_path):
    with pytest.raises(InputError, match="missing"):
        load_index(tmp_path / "none.faiss")
    (tmp_path / "bad.faiss").write_bytes(b"not an index")
    with pytest.raises(InputError, match="cannot read"):
        load_index(tmp_path / "bad.faiss")
