"""Nearest-neighbour index over cell embeddings (faiss), chosen by size.

* up to ``flat_max`` cells: ``IndexFlatL2``, exact search (on a GPU when faiss has one);
* beyond: ``IndexHNSWFlat`` (M=32, efConstruction=80, efSearch=128), approximate, CPU —
  the graph index of scQuery's benchmark; recall is high at these settings and the index
  needs no training. (IVF/other kinds can be added to ``build_index`` later.)

Distances returned by ``search`` are Euclidean (faiss stores squared L2).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import faiss
import numpy as np

from .errors import InputError
from .fileio import atomic_path

log = logging.getLogger(__name__)

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


def _gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _as_f32(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {x.shape}")
    return x


def build_index(
    emb: np.ndarray, *, flat_max: int = 1_000_000, use_gpu: bool | None = None
) -> faiss.Index:
    """Index ``emb`` (cells x dims): exact flat L2 up to ``flat_max`` cells, HNSW beyond.

    ``use_gpu=None`` puts a flat index on the GPU when faiss sees one.
    """
    emb = _as_f32(emb)
    n, d = emb.shape
    if n > flat_max:
        index = faiss.IndexHNSWFlat(d, HNSW_M)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
        log.info("building HNSW index (M=%d) over %d cells x %d dims", HNSW_M, n, d)
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
    """``flat`` or ``hnsw`` (or the faiss class name for anything else)."""
    name = type(index).__name__
    if isinstance(index, faiss.IndexHNSWFlat):
        return "hnsw"
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


def load_index(path: str | os.PathLike) -> faiss.Index:
    """Read an index written by ``save_index``."""
    path = Path(path)
    if not path.is_file():
        raise InputError("index file is missing", path=str(path))
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise InputError(f"cannot read faiss index: {exc}", path=str(path)) from exc


def search(index: faiss.Index, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest cells of each row of ``q``: Euclidean distances and row indices.

    ``k`` is capped at the number of indexed cells.
    """
    q = _as_f32(q)
    k = min(int(k), int(index.ntotal))
    if k < 1:
        raise ValueError("k must be >= 1 and the index must not be empty")
    dist, idx = index.search(q, k)
    return np.sqrt(np.maximum(dist, 0)).astype(np.float32), idx.astype(np.int64)
