import numpy as np
import pytest

from scatlas.errors import InputError
from scatlas.release.index import (
    build_index,
    choose_kind,
    index_kind,
    load_index,
    save_index,
    search,
    unit_rows,
)


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


def test_choose_kind_by_size_and_config():
    assert choose_kind(10, flat_max=10) == "flat"
    assert choose_kind(11, flat_max=10) == "hnsw"
    assert choose_kind(11, flat_max=10, large="ivf") == "ivf"
    assert choose_kind(5, kind="ivf") == "ivf"
    with pytest.raises(InputError, match="unknown index kind"):
        choose_kind(5, kind="lsh")
    with pytest.raises(InputError, match="large index"):
        choose_kind(5, large="flat")


def test_ivf_recall_and_saved_nprobe(tmp_path):
    rng = np.random.default_rng(1)
    centres = rng.normal(scale=5, size=(20, 8))
    ref = (centres[rng.integers(0, 20, 4000)] + rng.normal(size=(4000, 8))).astype(np.float32)
    q = (centres[rng.integers(0, 20, 200)] + rng.normal(size=(200, 8))).astype(np.float32)
    index = build_index(ref, kind="ivf")
    assert index_kind(index) == "ivf" and index.nprobe == 16 and index.nlist == 252
    exact = build_index(ref, kind="flat")
    _, approx_idx = search(load_index(save_index(index, tmp_path / "ivf.faiss")), q, 10)
    _, exact_idx = search(exact, q, 10)
    recall = np.mean(
        [len(set(a) & set(e)) / 10 for a, e in zip(approx_idx, exact_idx, strict=True)]
    )
    assert recall > 0.9


def test_unit_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(unit_rows(x), [[0.6, 0.8], [0.0, 0.0]])


def test_hamming_search_counts_differing_bits():
    rng = np.random.default_rng(2)
    codes = (rng.random((200, 16)) > 0.5).astype(np.float32)
    index = build_index(codes)
    dist, idx = search(index, codes[:10], 3, metric="hamming")
    bits = (codes[:10, None, :] != codes[None, :, :]).sum(-1)
    np.testing.assert_array_equal(dist, np.take_along_axis(bits, idx, 1).astype(np.float32))
    assert np.all(dist[:, 0] == 0)
