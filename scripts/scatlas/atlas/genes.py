"""Highly variable genes across studies, chosen on the training studies only.

Per study (as scanpy's ``highly_variable_genes(flavor="seurat", batch_key=...)``): on
counts per 10,000 (``expm1`` of log1p-CP10k values), each gene's mean and dispersion
(variance / mean), both logged; genes are binned by mean (20 bins) and the dispersion z-scored within
its bin; the study's top ``n_top_genes`` by that z-score are its variable genes. Across
studies, genes are ranked by the number of studies that call them variable, then by their
mean rank among those; the first ``n_top_genes`` are ``highly_variable``. Held-out
(validation, query) studies take no part, so the evaluation does not see its own data in
the gene choice. Studies of author-normalised values are used as the log-normalised values
they hold; when no training study has cells, nothing is selected.

Models train on these genes when their ``genes`` parameter is ``hvg`` (default ``all``);
``model.json`` and the release manifest record the choice (``gene_selection``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

log = logging.getLogger(__name__)

N_BINS = 20
METHOD = "seurat dispersion, per training study, ranked by studies then mean rank"


def _per_10k(block, log_normalised: bool) -> sp.csr_matrix:
    """Counts per 10,000 of each cell (``expm1`` of log-normalised values), float64. Not
    ``scatlas.models.normalize``: importing the models package needs torch, which the atlas
    rule's environment does not have, and dispersion wants the unlogged values anyway."""
    E = sp.csr_matrix(block, dtype=np.float64, copy=True)
    if log_normalised:
        E.data = np.expm1(E.data)
        return E
    totals = np.asarray(E.sum(axis=1)).ravel()
    scale = np.divide(1e4, totals, out=np.zeros_like(totals), where=totals > 0)
    E.data *= np.repeat(scale, np.diff(E.indptr))
    return E


def _study_zscores(E: sp.csr_matrix) -> np.ndarray:
    """Each gene's dispersion z-score within its mean bin (-inf: not expressed), from
    values per 10,000."""
    n = E.shape[0]
    mean = np.asarray(E.sum(axis=0)).ravel() / n
    sq = E.multiply(E)
    var = np.asarray(sq.sum(axis=0)).ravel() / n - mean**2
    var *= n / max(n - 1, 1)
    expressed = mean > 0
    z = np.full(E.shape[1], -np.inf)
    if expressed.sum() < 2:
        return z
    disp = np.log(np.maximum(var[expressed], 1e-12) / mean[expressed])
    log_mean = np.log1p(mean[expressed])
    bins = pd.cut(log_mean, N_BINS, labels=False)
    frame = pd.DataFrame({"disp": disp, "bin": bins})
    stats = frame.groupby("bin")["disp"].agg(["mean", "std"])
    centre = stats["mean"].reindex(bins).to_numpy()
    spread = stats["std"].reindex(bins).fillna(0).to_numpy()
    # a gene alone in its bin (no spread): z = 1, as scanpy does
    z[expressed] = np.where(spread > 0, (disp - centre) / np.where(spread > 0, spread, 1), 1.0)
    return z


def select_genes(
    X, studies: np.ndarray, use: np.ndarray, normalised: np.ndarray, n_top_genes: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``var`` columns ``highly_variable``, ``highly_variable_rank`` (1 = most; NaN when not
    selected) and ``hvg_studies`` (studies calling the gene variable), from the cells in
    ``use`` of ``X`` (cells x genes; counts, or log-normalised where ``normalised``), and the
    record of the choice for ``uns["scatlas"]["gene_selection"]``."""
    X = sp.csr_matrix(X)
    n_genes = X.shape[1]
    n_top = int(min(n_top_genes, n_genes))
    chosen = sorted(set(np.asarray(studies)[use]))
    calls = np.zeros(n_genes, dtype=np.int64)
    rank_sum = np.zeros(n_genes)
    for study in chosen:
        rows = np.flatnonzero(use & (studies == study))
        z = _study_zscores(_per_10k(X[rows], bool(normalised[rows].all())))
        order = np.argsort(-z, kind="stable")[:n_top]
        order = order[np.isfinite(z[order])]
        calls[order] += 1
        rank_sum[order] += np.arange(1, len(order) + 1)
    mean_rank = np.where(calls > 0, rank_sum / np.maximum(calls, 1), np.inf)
    ranking = np.lexsort((mean_rank, -calls))
    top = ranking[:n_top][calls[ranking[:n_top]] > 0]
    flags = np.zeros(n_genes, dtype=bool)
    flags[top] = True
    rank = np.full(n_genes, np.nan)
    rank[top] = np.arange(1, len(top) + 1)
    var = pd.DataFrame(
        {"highly_variable": flags, "highly_variable_rank": rank, "hvg_studies": calls}
    )
    record = {
        "method": METHOD,
        "n_top_genes": n_top,
        "n_selected": int(flags.sum()),
        "studies": chosen,
    }
    log.info(
        "highly variable genes: %d of %d, from %d training studies",
        flags.sum(),
        n_genes,
        len(chosen),
    )
    return var, record
