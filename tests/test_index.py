import numpy as np
import pytest

from scatlas.errors import InputError
from scatlas.release.index import (
    EF_STEPS,
    NPROBE_STEPS,
    SAFETY,
    build_index,
    choose_kind,
    index_kind,
    load_index,
    recall_at_k,
    save_index,
    search,
    set_search_breadth,
    stored_breadth,
    tune_search,
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
    assert index_kind(build_index(ref, flat_max=100)) == "ivf"  # the default large kind
    index = build_index(ref, flat_max=100, large="hnsw")
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
    assert choose_kind(11, flat_max=10) == "ivf"
    assert choose_kind(11, flat_max=10, large="hnsw") == "hnsw"
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


def _clusters(n=6000, d=16, seed=3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4, size=(40, d))
    return (centres[rng.integers(0, 40, n)] + rng.normal(size=(n, d))).astype(np.float32)


def test_recall_at_k_counts_neighbours_as_near_as_the_exact_kth():
    emb = np.array([[0.0], [1.0], [2.0], [3.0], [-1.0], [9.0]], dtype=np.float32)
    q = np.array([[0.0], [0.0]], dtype=np.float32)
    exact = np.array([[0, 1, 2], [0, 1, 4]])  # row 2: cell 4 ties with cell 1 (distance 1)
    approx = np.array([[0, 1, 3], [0, 4, -1]])
    # row 1: 3 is farther than the exact 3rd (2): 2 of 3; row 2: 0 and the tie 4: 2 of 3
    assert recall_at_k(q, emb, approx, exact) == pytest.approx(4 / 6)


@pytest.mark.parametrize("kind", ["hnsw", "hnsw_sq8", "ivf"])
def test_tune_search_doubles_the_smallest_breadth_reaching_the_target(kind, tmp_path, caplog):
    ref = _clusters()
    index = build_index(ref, kind=kind)
    assert index_kind(index) == kind
    tuning = tune_search(index, ref, k=10, target=0.9, n_queries=300)
    assert tuning.recall >= 0.9 and tuning.k == 10 and tuning.queries == 300
    steps = list(EF_STEPS if kind != "ivf" else NPROBE_STEPS)
    assert tuning.value == next(s for s in steps if s >= SAFETY * tuning.reached)
    loaded = load_index(save_index(index, tmp_path / "i.faiss"))
    stored = loaded.hnsw.efSearch if kind != "ivf" else loaded.nprobe
    assert stored == tuning.value  # the tuned breadth travels with the file
    # any recall: the narrowest search reaches it; an unreachable one: the widest, a warning
    assert tune_search(index, ref, k=10, target=1e-6, n_queries=300).reached == steps[0]
    with caplog.at_level("WARNING"):
        widest = tune_search(index, ref, k=10, target=1.01, n_queries=300)
    last = max(v for v in steps if v <= getattr(index, "nlist", steps[-1]))
    assert widest.reached == last and widest.value >= last
    assert "below the target" in caplog.text


@pytest.mark.parametrize(("kind", "param"), [("hnsw", "efSearch"), ("ivf", "nprobe")])
def test_search_breadth_for_one_search_leaves_the_stored_one(kind, param):
    ref = _clusters(n=3000)
    index = build_index(ref, kind=kind)
    stored = stored_breadth(index)
    _, truth = search(build_index(ref, kind="flat"), ref[:200], 10)
    _, few = search(index, ref[:200], 10, breadth=1)
    _, many = search(index, ref[:200], 10, breadth=256)
    assert stored_breadth(index) == stored  # the override was for those searches only
    set_search_breadth(index, param, 256)
    np.testing.assert_array_equal(search(index, ref[:200], 10)[1], many)
    few_recall = recall_at_k(ref[:200], ref, few, truth)
    assert few_recall <= recall_at_k(ref[:200], ref, many, truth) == pytest.approx(1.0)
    if kind == "ivf":  # one list of 219 finds fewer of the exact neighbours
        assert few_recall < 0.9


def test_tune_search_leaves_an_exact_index_alone():
    assert tune_search(build_index(_clusters(n=500)), _clusters(n=500)) is None


@pytest.mark.parametrize("kind", ["flat", "hnsw", "hnsw_sq8"])
def test_memory_mapped_index_answers_as_the_read_one(kind, tmp_path):
    ref = _clusters(n=2000)
    path = save_index(build_index(ref, kind=kind), tmp_path / "i.faiss")
    d1, i1 = search(load_index(path), ref[:50], 5)
    d2, i2 = search(load_index(path, mmap=True), ref[:50], 5)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(d1, d2)
