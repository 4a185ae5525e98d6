"""Differential expression inside one study: a group of cells against the study's others.

`study_de` is the one entry point; ``method`` picks the test:

* ``edger`` (default of the workflow): edgeR quasi-likelihood F-test on counts, through rpy2;
* ``limma_voom``: limma-voom moderated t-test on counts, through rpy2;
* ``wilcoxon``: the pure-Python fallback (as scanpy's ``rank_genes_groups``), on cells.

The count-based R methods test pseudobulk samples when the study's samples hold several
cells (`pseudobulk.make_units`), cells otherwise; the result says which. Cells without any
count are dropped first (they carry no information and break library-size normalisation).
``mean_in``/``mean_out`` are always mean log1p CP10k over the cells, whatever the test.

Expression for Wilcoxon is log1p of counts per 10,000 (CP10k); the rank-sum test is the
two-sided Mann-Whitney U test with the normal approximation, tie correction and
continuity correction (as ``scipy.stats.mannwhitneyu(method="asymptotic")``), vectorised
over genes and computed on the sparse matrix (zeros ranked as one tie group).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from scatlas.de.pseudobulk import Units, make_units

METHODS = ("edger", "limma_voom", "wilcoxon")
R_METHODS = ("edger", "limma_voom")
GENE_FILTERS = ("auto", "filterByExpr", "detected", "none")
RESULT_COLUMNS = ["gene", "logfc", "pvalue", "padj", "mean_in", "mean_out"]
LOGFC_UNITS = {
    "edger": "log2 fold change (edgeR)",
    "limma_voom": "log2 fold change (limma-voom)",
    "wilcoxon": "log2 fold change of expm1(mean log1p CP10k) (scanpy's rank_genes_groups)",
}


@dataclass(frozen=True)
class StudyDE:
    """One study's test: the gene ``table`` (RESULT_COLUMNS) and how it was obtained."""

    table: pd.DataFrame
    method: str
    unit: str  # "pseudobulk" or "cells"
    n_units_in: int
    n_units_out: int
    note: str = ""


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


def detected_filter(counts: sp.spmatrix, groups: np.ndarray, frac: float = 0.1) -> np.ndarray:
    """Genes with a count in at least max(2, ⌈frac · n⌉) of the n units of either group."""
    nz = sp.csr_matrix(counts) > 0
    keep = np.zeros(nz.shape[1], dtype=bool)
    for g in (groups, ~groups):
        need = max(2, int(np.ceil(frac * g.sum())))
        keep |= np.asarray(nz[g].sum(axis=0)).ravel() >= need
    return keep


def study_de(
    counts: np.ndarray | sp.spmatrix,
    groups: Sequence[bool] | np.ndarray,
    method: str = "wilcoxon",
    *,
    genes: Sequence[str] | None = None,
    samples: Sequence[str] | np.ndarray | None = None,
    gene_filter: str = "auto",
) -> StudyDE:
    """DE of the cells in ``groups`` (True) against the rest, on raw ``counts`` (cells x genes).

    Genes with no count in any of the cells are not tested (not returned); the R methods
    also leave out genes that edgeR's ``filterByExpr`` removes. Columns: gene, logfc (unit
    in `LOGFC_UNITS`), pvalue, padj (BH over the returned genes), mean_in, mean_out.
    ``samples`` (per cell) enables pseudobulk for the R methods. ``gene_filter`` (R
    methods): ``filterByExpr`` (edgeR's, made for samples of some depth), ``detected``
    (`detected_filter`, for single cells, where filterByExpr's CPM cut-off keeps only
    the most highly expressed genes), ``auto`` (filterByExpr on pseudobulk, detected on
    cells) or ``none``. Raises ValueError for bad
    arguments or a group left empty, `RError`/`RUnavailable` from the R methods.
    """
    if method not in METHODS:
        raise ValueError(f"unknown DE method {method!r}; supported: {', '.join(METHODS)}")
    groups = np.asarray(groups, dtype=bool)
    counts = sp.csr_matrix(counts, dtype=np.float64)
    n_cells, n_genes = counts.shape
    if groups.shape != (n_cells,):
        raise ValueError(f"groups has {groups.shape[0]} entries for {n_cells} cells")
    names = np.asarray(
        genes if genes is not None else [str(i) for i in range(n_genes)], dtype=object
    )
    if names.shape != (n_genes,):
        raise ValueError(f"{names.shape[0]} gene names for {n_genes} genes")
    nonempty = np.asarray(counts.sum(axis=1)).ravel() > 0
    note = ""
    if not nonempty.all():
        note = f"{int((~nonempty).sum())} cells without any count left out"
        counts, groups = counts[nonempty], groups[nonempty]
        if samples is not None:
            samples = np.asarray(samples)[nonempty]
    if groups.all() or not groups.any():
        raise ValueError(
            "both groups need at least one cell with counts" + (f" ({note})" if note else "")
        )
    X = log1p_cp10k(counts)
    detected = np.flatnonzero(np.diff(X.tocsc().indptr) > 0)
    Xd = X[:, detected].tocsc()
    mean_in = np.asarray(Xd[groups].mean(axis=0)).ravel()
    mean_out = np.asarray(Xd[~groups].mean(axis=0)).ravel()
    if method == "wilcoxon":
        pvals = wilcoxon(Xd, groups)[1]
        padj = stats.false_discovery_control(pvals, method="bh") if len(pvals) else pvals
        table = pd.DataFrame(
            {
                "gene": names[detected],
                # as scanpy: log2 ratio of the groups' means taken back to CP10k scale
                "logfc": np.log2((np.expm1(mean_in) + 1e-9) / (np.expm1(mean_out) + 1e-9)),
                "pvalue": pvals,
                "padj": padj,
                "mean_in": mean_in,
                "mean_out": mean_out,
            },
            columns=RESULT_COLUMNS,
        )
        return StudyDE(table, method, "cells", int(groups.sum()), int((~groups).sum()), note)
    units = make_units(counts[:, detected], groups, samples)
    res = _r_method(method, units, names[detected], gene_filter)
    means = pd.DataFrame(
        {"mean_in": mean_in, "mean_out": mean_out}, index=names[detected].astype(str)
    )
    table = res[["gene", "logfc", "pvalue", "padj"]].join(means, on="gene")
    note = "; ".join(n for n in (note, units.note) if n)
    return StudyDE(table[RESULT_COLUMNS], method, units.kind, units.n_in, units.n_out, note)


def _r_method(method: str, units: Units, names: np.ndarray, gene_filter: str) -> pd.DataFrame:
    """edgeR QL or limma-voom on the units (cells or pseudobulk), after the gene filter."""
    if units.n_in < 2 or units.n_out < 2:
        raise ValueError(
            f"{method} needs at least 2 {units.kind} per group, got {units.n_in} vs {units.n_out}"
        )
    from scatlas.de.edger import edger_ql
    from scatlas.de.limma_voom import limma_voom

    if gene_filter not in GENE_FILTERS:
        raise ValueError(f"unknown gene filter {gene_filter!r}; supported: {GENE_FILTERS}")
    if gene_filter == "auto":
        gene_filter = "filterByExpr" if units.kind == "pseudobulk" else "detected"
    ucounts, unames = units.counts, names
    if gene_filter == "detected":
        keep = detected_filter(ucounts, units.groups)
        if not keep.any():
            raise ValueError("no gene is detected in enough cells of either group")
        ucounts, unames = ucounts[:, keep], unames[keep]
    fn = edger_ql if method == "edger" else limma_voom
    return fn(
        ucounts.toarray().T,
        units.groups,
        [str(g) for g in unames],
        filter_genes=gene_filter == "filterByExpr",
    )


def test_study(
    counts: np.ndarray | sp.spmatrix,
    groups: Sequence[bool] | np.ndarray,
    method: str = "wilcoxon",
    *,
    genes: Sequence[str] | None = None,
    samples: Sequence[str] | np.ndarray | None = None,
) -> pd.DataFrame:
    """The gene table of `study_de` (kept for callers that need only the table)."""
    return study_de(counts, groups, method, genes=genes, samples=samples).table


# pytest would otherwise collect the public function named test_* when imported in tests
test_study.__test__ = False  # type: ignore[attr-defined]
