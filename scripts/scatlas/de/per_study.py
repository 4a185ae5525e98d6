"""Differential expression inside one study: a group of cells against the study's others.

`test_study` is the one entry point (a later edgeR method plugs in beside "wilcoxon").
Expression is log1p of counts per 10,000 (CP10k); the Wilcoxon rank-sum test is the
two-sided Mann-Whitney U test with the normal approximation, tie correction and
continuity correction (as ``scipy.stats.mannwhitneyu(method="asymptotic")``), vectorised
over genes and computed on the sparse matrix (zeros ranked as one tie group).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

METHODS = ("wilcoxon",)
RESULT_COLUMNS = ["gene", "logfc", "pvalue", "padj", "mean_in", "mean_out"]


def log1p_cp10k(counts: np.ndarray | sp.spmatrix) -> sp.csr_matrix:
    """log1p(counts / library size * 1e4) per cell, as CSR float64 (empty cells stay 0)."""
    X = sp.csr_matrix(counts, dtype=np.float64)
    lib = np.asarray(X.sum(axis=1)).ravel()
    scale = np.divide(1e4, lib, out=np.zeros_like(lib), where=lib > 0)
    X = sp.diags(scale) @ X
    X = sp.csr_matrix(X)
    X.data = np.log1p(X.data)
    return X


def _rank_sums(X: sp.csc_matrix, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the rank sum of the ``groups`` cells (average ranks for ties) and the
    tie term Σ (t³ − t), computed from the stored values only.

    The implicit zeros of a column form one tie group ranked between its negative and
    positive values, so no column is ever densified: O(nnz log nnz) for the whole matrix.
    """
    n, g = X.shape
    counts = np.diff(X.indptr)
    col = np.repeat(np.arange(g), counts)
    order = np.lexsort((X.data, col))
    val, c, row = X.data[order], col[order], X.indices[order]
    pos = np.arange(val.size) - X.indptr[c]  # position among the column's stored values
    new = np.ones(val.size, dtype=bool)
    new[1:] = (val[1:] != val[:-1]) | (c[1:] != c[:-1])
    gid = np.cumsum(new) - 1
    size = np.bincount(gid).astype(np.float64)
    n_zero = (n - counts).astype(np.float64)
    n_neg = np.bincount(col[X.data < 0], minlength=g).astype(np.float64)
    rank = pos[new][gid] + (size[gid] - 1) / 2.0 + 1.0 + np.where(val > 0, n_zero[c], 0.0)
    ing = groups[row]
    r1 = np.bincount(c[ing], weights=rank[ing], minlength=g)
    n1_zero = groups.sum() - np.bincount(c[ing], minlength=g)
    r1 += n1_zero * (n_neg + (n_zero + 1) / 2.0)
    tie = np.bincount(c[new], weights=size**3 - size, minlength=g) + n_zero**3 - n_zero
    return r1, tie


def wilcoxon(values: np.ndarray | sp.spmatrix, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank-sum test of each column, ``groups`` True against False.

    Returns (z, p): z signed (positive when the True group is higher), p two-sided.
    """
    X = sp.csc_matrix(values, dtype=np.float64, copy=True)
    X.eliminate_zeros()
    X.sort_indices()
    groups = np.asarray(groups, dtype=bool)
    n = X.shape[0]
    n1 = int(groups.sum())
    n2 = n - n1
    r1, tie = _rank_sums(X, groups)
    u1 = r1 - n1 * (n1 + 1) / 2.0
    mu = n1 * n2 / 2.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie / (n * (n - 1)))
    sd = np.sqrt(np.maximum(var, 0.0))
    diff = u1 - mu
    with np.errstate(divide="ignore", invalid="ignore"):
        z_abs = np.where(sd > 0, (np.abs(diff) - 0.5) / sd, 0.0)
    p = np.clip(2.0 * stats.norm.sf(z_abs), 0.0, 1.0)
    return np.sign(diff) * np.maximum(z_abs, 0.0), p


def test_study(
    counts: np.ndarray | sp.spmatrix,
    groups: Sequence[bool] | np.ndarray,
    method: str = "wilcoxon",
    *,
    genes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """DE of the cells in ``groups`` (True) against the rest, on raw ``counts`` (cells x genes).

    Genes with no count in any of the cells are not tested (not returned). Columns:
    gene, logfc (difference of mean log1p CP10k, natural log), pvalue, padj (BH over the
    returned genes), mean_in, mean_out.
    """
    if method not in METHODS:
        raise ValueError(f"unknown DE method {method!r}; supported: {', '.join(METHODS)}")
    groups = np.asarray(groups, dtype=bool)
    X = log1p_cp10k(counts)
    n_cells, n_genes = X.shape
    if groups.shape != (n_cells,):
        raise ValueError(f"groups has {groups.shape[0]} entries for {n_cells} cells")
    if groups.all() or not groups.any():
        raise ValueError("both groups need at least one cell")
    names = np.asarray(
        genes if genes is not None else [str(i) for i in range(n_genes)], dtype=object
    )
    if names.shape != (n_genes,):
        raise ValueError(f"{names.shape[0]} gene names for {n_genes} genes")
    detected = np.flatnonzero(np.diff(X.tocsc().indptr) > 0)
    Xd = X[:, detected].tocsc()
    mean_in = np.asarray(Xd[groups].mean(axis=0)).ravel()
    mean_out = np.asarray(Xd[~groups].mean(axis=0)).ravel()
    pvals = wilcoxon(Xd, groups)[1]
    padj = stats.false_discovery_control(pvals, method="bh") if len(pvals) else pvals
    return pd.DataFrame(
        {
            "gene": names[detected],
            "logfc": mean_in - mean_out,
            "pvalue": pvals,
            "padj": padj,
            "mean_in": mean_in,
            "mean_out": mean_out,
        },
        columns=RESULT_COLUMNS,
    )


# pytest would otherwise collect the public function named test_* when imported in tests
test_study.__test__ = False  # type: ignore[attr-defined]
