"""Nearest-neighbour index over cell embeddings (faiss), chosen by size.

* up to ``flat_max`` cells: ``IndexFlatL2``, exact search (on a GPU when faiss has one);
* beyond: ``large`` — ``hnsw`` (``IndexHNSWFlat``, M=32, efConstruction=80, efSearch=128:
  the graph index of scQuery's benchmark and SCimilarity's hnswlib; needs no training) or
  ``ivf`` (``IndexIVFFlat``, about 4·√n lists, k-means on a sample, nprobe=16; builds
  faster, recalls a little less).

``kind`` forces one of ``flat``/``hnsw``/``ivf``; ``auto`` (default) applies the rule above.
Search parameters (efSearch, nprobe) are stored in the index file, so a release answers the
same way wherever it is loaded. Distances returned by ``search`` are Euclidean (faiss stores
squared L2); cosine models are indexed as unit vectors, where L2 is a monotone function of
the cosine (d² = 2 − 2·cos); Hamming models (scDeepHash) embed into 0/1 codes, whose squared
L2 distance *is* the Hamming distance, so ``search(metric="hamming")`` returns it as is.
"""

from __future__ import annotations

import logging
import math
import os
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
INDEX_KINDS = ("auto", "flat", "hnsw", "ivf")


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


def choose_kind(n: int, *, kind: str = "auto", flat_max: int = 200_000, large: str = "hnsw") -> str:
    """The index kind for ``n`` cells: ``kind`` unless ``auto``; else flat up to ``flat_max``."""
    if kind not in INDEX_KINDS:
        raise InputError(f"unknown index kind {kind!r}; use one of {INDEX_KINDS}", field="index")
    if large not in ("hnsw", "ivf"):
        raise InputError(f"unknown large index kind {large!r}; use hnsw or ivf", field="large")
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


def build_index(
    emb: np.ndarray,
    *,
    flat_max: int = 200_000,
    kind: str = "auto",
    large: str = "hnsw",
    use_gpu: bool | None = None,
    seed: int = 0,
) -> faiss.Index:
    """Index ``emb`` (cells x dims): see the module docstring for the choice of kind.

    ``use_gpu=None`` puts a flat index on the GPU when faiss sees one.
    """
    emb = _as_f32(emb)
    n, d = emb.shape
    chosen = choose_kind(n, kind=kind, flat_max=flat_max, large=large)
    if chosen == "hnsw":
        index = faiss.IndexHNSWFlat(d, HNSW_M)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
        log.info("building HNSW index (M=%d) over %d cells x %d dims", HNSW_M, n, d)
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


def load_index(path: str | os.PathLike, *, use_gpu: bool = False) -> faiss.Index:
    """Read an index written by ``save_index`` (a flat one onto the GPU with ``use_gpu``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("index file is missing", path=str(path))
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise InputError(f"cannot read faiss index: {exc}", path=str(path)) from exc
    if use_gpu and isinstance(index, faiss.IndexFlatL2) and _gpu_available():
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    return index


def search(
    index: faiss.Index, q: np.ndarray, k: int, metric: str = "euclidean"
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest cells of each row of ``q``: distances and row indices.

    Distances are Euclidean, or for ``metric="hamming"`` (0/1 codes) the number of differing
    bits (the squared Euclidean distance).

    ``k`` is capped at the number of indexed cells. An approximate index may return fewer
    than ``k`` hits for a row; the missing ones have index -1 and distance +inf.
    """
    q = _as_f32(q)
    k = min(int(k), int(index.ntotal))
    if k < 1:
        raise ValueError("k must be >= 1 and the index must not be empty")
    dist, idx = index.search(q, k)
    dist = np.maximum(dist, 0)
    dist = (np.rint(dist) if metric == "hamming" else np.sqrt(dist)).astype(np.float32)
    missing = idx < 0
    if missing.any():
        dist[missing] = np.inf
    return dist, idx.astype(np.int64)
