"""Expression normalisation shared by training, evaluation, publishing and querying.

Every model sees the same input: counts scaled to 10,000 per cell, then ``log1p``
(``log1p_cp10k``), over one fixed gene list in a fixed order (``align_to_genes``). The gene
list is fingerprinted with ``genes_sha256`` so a model is never fed genes in another order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
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
    totals = np.asarray(csr.sum(axis=1), dtype=np.float64).ravel()
    scale = np.zeros_like(totals)
    nonzero = totals > 0
    scale[nonzero] = target_sum / totals[nonzero]
    row_of = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    data = csr.data.astype(np.float64) * scale[row_of]
    csr.data = np.log1p(data).astype(np.float32)
    csr.eliminate_zeros()
    return csr


def genes_sha256(genes: Sequence[str]) -> str:
    """SHA-256 of the gene list in order (ids joined by newlines, UTF-8)."""
    return hashlib.sha256("\n".join(str(g) for g in genes).encode("utf-8")).hexdigest()


def align_to_genes(X, var_names: Sequence[str], genes: Sequence[str]) -> tuple[sp.csr_matrix, int]:
    """Reorder the columns of ``X`` (named ``var_names``) to ``genes``; zero-fill missing genes.

    Returns the CSR float32 matrix (cells x len(genes)) and how many of ``genes`` were found.
    When a name occurs twice in ``var_names`` the first column is used.
    """
    csr = _as_csr(X)
    if csr.shape[1] != len(var_names):
        raise ValueError(f"matrix has {csr.shape[1]} columns but {len(var_names)} gene names")
    target = {str(g): i for i, g in enumerate(genes)}
    if len(target) != len(genes):
        raise ValueError("the target gene list has duplicate ids")
    src_cols: list[int] = []
    dst_cols: list[int] = []
    seen: set[int] = set()
    for j, name in enumerate(var_names):
        t = target.get(str(name))
        if t is not None and t not in seen:
            seen.add(t)
            src_cols.append(j)
            dst_cols.append(t)
    # A 0/1 selection matrix moves each kept column to its target position in one product.
    select = sp.csr_matrix(
        (np.ones(len(src_cols), dtype=np.float32), (src_cols, dst_cols)),
        shape=(csr.shape[1], len(genes)),
    )
    out = (csr.astype(np.float32) @ select).tocsr()
    out.sort_indices()
    return out, len(src_cols)


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
