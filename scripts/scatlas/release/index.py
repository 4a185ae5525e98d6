"""Nearest-neighbour index over cell embeddings (faiss), chosen by size.

* up to ``flat_max`` cells: ``IndexFlatL2``, exact search (on a GPU when faiss has one);
* beyond: ``large`` — ``ivf`` (default; ``IndexIVFFlat``, about 4·√n lists, k-means on a
  sample), ``hnsw`` (``IndexHNSWFlat``, M=32, efConstruction=80: the graph index of scQuery's
  benchmark and SCimilarity's hnswlib) or ``hnsw_sq8`` (the same graph over 8-bit
  scalar-quantised vectors: half the file, coarser). Measured on a 1M-cell, 128-d reference
  with real PBMC queries (``benchmarks/bench_query.py``): IVF builds 4x faster than HNSW and,
  for query cells unlike the reference's, reaches recall@10 0.95 at several times HNSW's
  speed (HNSW needs a much wider search for such cells than for reference cells); SQ8's
  quantisation caps recall@10 near 0.93 there.

``kind`` forces one of ``INDEX_KINDS``; ``auto`` (default) applies the rule above.
``tune_search`` then sets the search breadth (HNSW efSearch, IVF nprobe): twice the smallest
that reaches a target recall@k against exact search, measured leave-one-out on sample cells
of the index (cells of new studies need the wider search). Search parameters are stored in
the index file, so a release answers the same way wherever it is loaded;
``load_index(mmap=True)`` maps the stored vectors instead of reading them (the release's
files are immutable). Distances returned by ``search`` are Euclidean (faiss stores
squared L2); cosine models are indexed as unit vectors, where L2 is a monotone function of
the cosine (d² = 2 − 2·cos); Hamming models (scDeepHash) embed into 0/1 codes, whose squared
L2 distance *is* the Hamming distance, so ``search(metric="hamming")`` returns it as is.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from scatlas.errors import InputError
from scatlas.fileio import atomic_path

log = logging.getLogger(__name__)

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
IVF_NPROBE = 16
IVF_TRAIN_PER_LIST = 64
INDEX_KINDS = ("auto", "flat", "hnsw", "hnsw_sq8", "ivf")
LARGE_KINDS = ("hnsw", "hnsw_sq8", "ivf")
#: query cells unlike the reference's may need a wider search than the reference's own cells
#: for the same recall: on 1M reference cells and real PBMC queries (benchmarks/bench_query.py)
#: with a 2-layer encoder, IVF reached leave-one-out recall@10 0.96 at nprobe 3 but the
#: queries 0.93 at 4 and 0.97 at 6; so the breadth found leave-one-out is doubled. The proxy
#: can also over-widen: with the 3 x 512 triplet encoder (tight type clusters) leave-one-out
#: needed nprobe 32, the queries 4 (``scatlas query --search-breadth`` overrides)
SAFETY = 2
#: search breadths tried by ``tune_search``, smallest first
EF_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
NPROBE_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


def _gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _as_f32(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {x.shape}")
    return x


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero): cosine models index these."""
    x = _as_f32(x)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def choose_kind(n: int, *, kind: str = "auto", flat_max: int = 200_000, large: str = "ivf") -> str:
    """The index kind for ``n`` cells: ``kind`` unless ``auto``; else flat up to ``flat_max``."""
    if kind not in INDEX_KINDS:
        raise InputError(f"unknown index kind {kind!r}; use one of {INDEX_KINDS}", field="index")
    if large not in LARGE_KINDS:
        raise InputError(
            f"unknown large index kind {large!r}; use one of {LARGE_KINDS}", field="large"
        )
    if kind != "auto":
        return kind
    return "flat" if n <= flat_max else large


def _ivf(emb: np.ndarray, seed: int) -> faiss.Index:
    n, d = emb.shape
    nlist = int(min(max(4 * math.sqrt(n), 1), 65536, n))
    quantizer = faiss.IndexFlatL2(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_L2)
    n_train = min(n, nlist * IVF_TRAIN_PER_LIST)
    rng = np.random.default_rng(seed)
    sample = emb[np.sort(rng.choice(n, n_train, replace=False))] if n_train < n else emb
    index.cp.seed = seed
    index.train(sample)
    index.nprobe = min(IVF_NPROBE, nlist)
    log.info("IVF index: %d lists, nprobe %d, trained on %d cells", nlist, index.nprobe, n_train)
    return index


def _hnsw(emb: np.ndarray, quantised: bool) -> faiss.Index:
    n, d = emb.shape
    if quantised:
        index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, HNSW_M)
        index.train(emb)  # per-dimension ranges: one pass, no k-means
    else:
        index = faiss.IndexHNSWFlat(d, HNSW_M)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = HNSW_EF_SEARCH
    log.info(
        "building HNSW%s index (M=%d) over %d cells x %d dims",
        " (8-bit vectors)" if quantised else "",
        HNSW_M,
        n,
        d,
    )
    return index


def build_index(
    emb: np.ndarray,
    *,
    flat_max: int = 200_000,
    kind: str = "auto",
    large: str = "ivf",
    use_gpu: bool | None = None,
    seed: int = 0,
) -> faiss.Index:
    """Index ``emb`` (cells x dims): see the module docstring for the choice of kind.

    ``use_gpu=None`` puts a flat index on the GPU when faiss sees one.
    """
    emb = _as_f32(emb)
    n, d = emb.shape
    chosen = choose_kind(n, kind=kind, flat_max=flat_max, large=large)
    if chosen in ("hnsw", "hnsw_sq8"):
        index = _hnsw(emb, quantised=chosen == "hnsw_sq8")
    elif chosen == "ivf":
        index = _ivf(emb, seed)
    else:
        index = faiss.IndexFlatL2(d)
        if use_gpu is None:
            use_gpu = _gpu_available()
        if use_gpu:
            index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
        log.info(
            "building exact flat L2 index over %d cells x %d dims%s",
            n,
            d,
            " on the GPU" if use_gpu else "",
        )
    index.add(emb)
    return index


def index_kind(index: faiss.Index) -> str:
    """``flat``, ``hnsw`` or ``ivf`` (or the faiss class name for anything else)."""
    name = type(index).__name__
    if isinstance(index, faiss.IndexHNSWFlat):
        return "hnsw"
    if isinstance(index, faiss.IndexHNSWSQ):
        return "hnsw_sq8"
    if isinstance(index, faiss.IndexIVFFlat):
        return "ivf"
    if isinstance(index, faiss.IndexFlatL2) or name == "GpuIndexFlatL2":
        return "flat"
    return name


def _to_cpu(index: faiss.Index) -> faiss.Index:
    if hasattr(faiss, "index_gpu_to_cpu") and "Gpu" in type(index).__name__:
        return faiss.index_gpu_to_cpu(index)
    return index


def save_index(index: faiss.Index, path: str | os.PathLike) -> Path:
    """Write the index (moved to the CPU first) atomically."""
    with atomic_path(path, ".faiss") as tmp:
        faiss.write_index(_to_cpu(index), str(tmp))
    return Path(path)


def load_index(
    path: str | os.PathLike, *, use_gpu: bool = False, mmap: bool = False
) -> faiss.Index:
    """Read an index written by ``save_index`` (a flat one onto the GPU with ``use_gpu``);
    ``mmap`` maps the stored vectors of flat and HNSW indexes from the file instead of
    reading them (pages load on first use; the file must stay in place)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("index file is missing", path=str(path))
    flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap and not use_gpu else 0
    try:
        index = faiss.read_index(str(path), flags)
    except RuntimeError as exc:
        raise InputError(f"cannot read faiss index: {exc}", path=str(path)) from exc
    if use_gpu and isinstance(index, faiss.IndexFlatL2) and _gpu_available():
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    return index


def search(
    index: faiss.Index,
    q: np.ndarray,
    k: int,
    metric: str = "euclidean",
    breadth: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest cells of each row of ``q``: distances and row indices.

    Distances are Euclidean, or for ``metric="hamming"`` (0/1 codes) the number of differing
    bits (the squared Euclidean distance). ``breadth`` overrides an approximate index's
    stored search breadth (IVF nprobe, HNSW efSearch) for this search; an exact index
    ignores it.

    ``k`` is capped at the number of indexed cells. An approximate index may return fewer
    than ``k`` hits for a row; the missing ones have index -1 and distance +inf.
    """
    q = _as_f32(q)
    k = min(int(k), int(index.ntotal))
    if k < 1:
        raise ValueError("k must be >= 1 and the index must not be empty")
    params = None
    if breadth is not None and isinstance(index, faiss.IndexIVF):
        params = faiss.SearchParametersIVF(nprobe=int(breadth))
    elif breadth is not None and isinstance(index, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(efSearch=int(breadth))
    dist, idx = index.search(q, k, params=params)
    dist = np.maximum(dist, 0)
    dist = (np.rint(dist) if metric == "hamming" else np.sqrt(dist)).astype(np.float32)
    missing = idx < 0
    if missing.any():
        dist[missing] = np.inf
    return dist, idx.astype(np.int64)


@dataclass(frozen=True)
class SearchTuning:
    """The search breadth ``tune_search`` chose and the recall it measured."""

    param: str  # efSearch or nprobe
    value: int  # what the index searches with: ``SAFETY`` x ``reached``
    reached: int  # the smallest breadth whose leave-one-out recall reached ``target``
    recall: float  # leave-one-out recall@k at ``reached``, against exact search
    target: float
    k: int
    queries: int

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def search_breadth(index: faiss.Index) -> tuple[str, list[int]] | None:
    """The search-breadth parameter of an approximate index and the values tried (None:
    exact)."""
    if isinstance(index, faiss.IndexHNSW):
        return "efSearch", list(EF_STEPS)
    if isinstance(index, faiss.IndexIVF):
        return "nprobe", [p for p in NPROBE_STEPS if p <= index.nlist] or [index.nlist]
    return None


def stored_breadth(index: faiss.Index) -> int | None:
    """The search breadth an approximate index holds (None: exact)."""
    if isinstance(index, faiss.IndexHNSW):
        return int(index.hnsw.efSearch)
    if isinstance(index, faiss.IndexIVF):
        return int(index.nprobe)
    return None


def set_search_breadth(index: faiss.Index, param: str, value: int) -> None:
    if param == "efSearch":
        index.hnsw.efSearch = int(value)
    else:
        index.nprobe = int(value)


def _distances(q: np.ndarray, emb: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Exact squared distances from each query to its listed cells (+inf where idx is -1)."""
    found = idx >= 0
    diff = emb[np.where(found, idx, 0)] - q[:, None, :]
    dist = np.einsum("ijk,ijk->ij", diff, diff)
    dist[~found] = np.inf
    return dist


def recall_at_k(
    q: np.ndarray, emb: np.ndarray, approx: np.ndarray, exact: np.ndarray, eps: float = 1e-3
) -> float:
    """Share of the approximate neighbours (rows of ``emb``, -1: none) of the queries ``q``
    that lie no farther than the exact k-th neighbour (ann-benchmarks' recall: a cell tied
    in distance with an exact neighbour counts as found; distances recomputed exactly, so a
    quantised index is judged on true distances)."""
    kth = _distances(q, emb, exact).max(axis=1, keepdims=True)
    hits = _distances(q, emb, approx) <= kth * (1 + eps) + 1e-12
    return float(hits.sum() / exact.size)


def _without_self(idx: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each row's neighbours but the queried cell itself (or, where it was not found, but
    the last neighbour): one column fewer."""
    drop = idx == rows[:, None]
    drop[~drop.any(axis=1), -1] = True
    first = drop.cumsum(axis=1) == 1
    keep = ~(drop & first)
    return idx[keep].reshape(len(idx), idx.shape[1] - 1)


def tune_search(
    index: faiss.Index,
    emb: np.ndarray,
    *,
    k: int = 10,
    target: float = 0.95,
    n_queries: int = 2000,
    seed: int = 0,
) -> SearchTuning | None:
    """Set an approximate index's search breadth: the smallest of ``EF_STEPS`` /
    ``NPROBE_STEPS`` whose leave-one-out recall@k, on ``n_queries`` of the indexed cells
    ``emb`` against exact search, reaches ``target`` (the largest when none does: a
    warning), then ``SAFETY`` times wider, because cells of a new study lie farther from
    the reference than its own cells and need a wider search for the same recall. None for
    an exact index."""
    breadth = search_breadth(index)
    if breadth is None:
        return None
    emb = _as_f32(emb)
    n = len(emb)
    k = max(1, min(int(k), n - 1))
    rows = np.sort(np.random.default_rng(seed).choice(n, min(n_queries, n), replace=False))
    q = emb[rows]
    _, exact = faiss.knn(q, emb, k + 1)
    exact = _without_self(exact, rows)
    param, steps = breadth
    recall = 0.0
    for value in steps:
        set_search_breadth(index, param, value)
        _, approx = index.search(q, k + 1)
        recall = recall_at_k(q, emb, _without_self(approx, rows), exact)
        if recall >= target:
            break
    wider = next((s for s in steps if s >= SAFETY * value), steps[-1])
    set_search_breadth(index, param, wider)
    tuning = SearchTuning(
        param, int(wider), int(value), round(recall, 4), float(target), k, len(rows)
    )
    if recall < target:
        log.warning(
            "index search: recall@%d %.3f at %s=%d, below the target %.2f",
            k,
            recall,
            param,
            value,
            target,
        )
    else:
        log.info(
            "index search: %s=%d reaches leave-one-out recall@%d %.3f; searching with %d",
            param,
            value,
            k,
            recall,
            wider,
        )
    return tuning
