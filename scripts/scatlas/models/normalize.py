"""Expression normalisation shared by training, evaluation, publishing and querying.

Every model sees the same input: counts scaled to 10,000 per cell, then ``log1p``
(``log1p_cp10k``), over one fixed gene list in a fixed order (``align_to_genes``). The gene
list is fingerprinted with ``genes_sha256`` so a model is never fed genes in another order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

NORMALISATION = "log1p_cp10k"
TARGET_SUM = 1e4


def _as_csr(X) -> sp.csr_matrix:
    if sp.issparse(X):
        return sp.csr_matrix(X)
    return sp.csr_matrix(np.asarray(X))


def log1p_cp10k(X, target_sum: float = TARGET_SUM) -> sp.csr_matrix:
    """Counts per ``target_sum`` per cell, then ``log1p``; a CSR float32 matrix.

    Rows whose counts sum to zero stay all-zero (no division by zero). The input is not
    modified.
    """
    csr = _as_csr(X).astype(np.float32, copy=True)
    csr.sum_duplicates()
    totals = np.asarray(csr.sum(axis=1, dtype=np.float64)).ravel()
    scale = np.zeros_like(totals)
    nonzero = totals > 0
    scale[nonzero] = target_sum / totals[nonzero]
    data = csr.data.astype(np.float64)
    data *= np.repeat(scale, np.diff(csr.indptr))
    np.log1p(data, out=data)
    csr.data = data.astype(np.float32)
    if not csr.data.all():
        csr.eliminate_zeros()
    return csr


def genes_sha256(genes: Sequence[str]) -> str:
    """SHA-256 of the gene list in order (ids joined by newlines, UTF-8)."""
    return hashlib.sha256("\n".join(str(g) for g in genes).encode("utf-8")).hexdigest()


def gene_positions(var_names: Sequence[str], genes: Sequence[str]) -> tuple[np.ndarray, int]:
    """Each input column's position in ``genes`` (-1: not there; a name repeated in
    ``var_names``: its first column only) and how many of ``genes`` are found."""
    target = pd.Index([str(g) for g in genes])
    if not target.is_unique:
        raise ValueError("the target gene list has duplicate ids")
    names = pd.Index([str(v) for v in var_names])
    colmap = target.get_indexer(names).astype(np.int64)
    colmap[names.duplicated(keep="first")] = -1
    return colmap, int((colmap >= 0).sum())


def align_to_genes(
    X,
    var_names: Sequence[str],
    genes: Sequence[str],
    *,
    positions: tuple[np.ndarray, int] | None = None,
) -> tuple[sp.csr_matrix, int]:
    """Reorder the columns of ``X`` (named ``var_names``) to ``genes``; zero-fill missing genes.

    Returns the CSR float32 matrix (cells x len(genes)) and how many of ``genes`` were found.
    When a name occurs twice in ``var_names`` the first column is used. ``positions``: what
    ``gene_positions(var_names, genes)`` returned, for batches of the same input.
    """
    csr = _as_csr(X)
    if csr.shape[1] != len(var_names):
        raise ValueError(f"matrix has {csr.shape[1]} columns but {len(var_names)} gene names")
    colmap, n_found = positions if positions is not None else gene_positions(var_names, genes)
    csr.sum_duplicates()
    # move the stored values (no product, no dense step): keep those of mapped columns
    moved = colmap[csr.indices]
    keep = moved >= 0
    kept_before = np.concatenate([[0], np.cumsum(keep)])
    out = sp.csr_matrix(
        (csr.data[keep].astype(np.float32), moved[keep].astype(np.int32), kept_before[csr.indptr]),
        shape=(csr.shape[0], len(genes)),
    )
    # columns keep their input order within a row (valid CSR; sorting is not needed by the
    # encoders, and cost a tenth of the query's time)
    out.has_sorted_indices = bool(np.all(np.diff(colmap[colmap >= 0]) > 0)) and bool(
        getattr(csr, "has_sorted_indices", False)
    )
    return out, n_found


def looks_like_counts(X, max_check: int = 5_000_000) -> bool:
    """True when the stored values are non-negative integers (raw counts).

    At most ``max_check`` stored values are inspected (evenly spaced), enough to tell raw
    counts from log-normalised values on any real matrix.
    """
    values = _as_csr(X).data if sp.issparse(X) else np.asarray(X).ravel()
    if values.size > max_check:
        values = values[:: int(np.ceil(values.size / max_check))]
    if values.size == 0:
        return True
    values = values.astype(np.float64, copy=False)
    return bool(np.all(values >= 0) and np.all(values == np.round(values)))
