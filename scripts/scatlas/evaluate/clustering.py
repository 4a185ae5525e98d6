"""Clustering evaluation: each model's representation clustered with Ward's agglomerative
method, against the usual unsupervised pipeline on the same cells (PCA of the HVGs, then
agglomerative clustering, and scanpy's Leiden on the PCA neighbour graph).

Figures per method: ARI, NMI, ACC (clusters matched one-to-one to the true types by the
Hungarian method, unmatched clusters count as wrong) and balanced accuracy (the mean over
true types of that matched accuracy), the number of clusters found and the true number.
The agglomerative methods are run twice: with the true number of clusters, and estimated
(``scatlas.annotate.clusters``: by ScLSTM's pair head for its representation, else by
silhouette); Leiden runs at resolution 1 and finds its own number.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from scatlas.annotate.clusters import MAX_CELLS, SameType, cluster_points

log = logging.getLogger(__name__)

COLUMNS = [
    "method",
    "space",
    "algorithm",
    "n_clusters",
    "n_true",
    "ari",
    "nmi",
    "acc",
    "balanced_accuracy",
    "seconds",
]


def matched_labels(true: Sequence[str], pred: np.ndarray) -> np.ndarray:
    """Each cluster replaced by the true type the Hungarian matching gives it ("" when the
    cluster is left unmatched: more clusters than types)."""
    from scipy.optimize import linear_sum_assignment

    types, t = np.unique(np.asarray(true, dtype=object), return_inverse=True)
    clusters, c = np.unique(pred, return_inverse=True)
    overlap = np.zeros((len(clusters), len(types)), dtype=np.int64)
    np.add.at(overlap, (c, t), 1)
    rows, cols = linear_sum_assignment(-overlap)
    name = np.full(len(clusters), "", dtype=object)
    name[rows] = types[cols]
    return name[c]


def cluster_scores(true: Sequence[str], pred: np.ndarray) -> dict[str, float]:
    """ARI, NMI, Hungarian-matched accuracy and balanced accuracy of a clustering."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    true = np.asarray(true, dtype=object)
    matched = matched_labels(true, pred)
    hit = matched == true
    per_type = [float(hit[true == t].mean()) for t in np.unique(true)]
    return {
        "ari": float(adjusted_rand_score(true, pred)),
        "nmi": float(normalized_mutual_info_score(true, pred)),
        "acc": float(hit.mean()),
        "balanced_accuracy": float(np.mean(per_type)),
    }


def pca_of(X_log: sp.csr_matrix, n_components: int = 50, n_top_genes: int = 2000) -> np.ndarray:
    """The cells' own PCA over their most variable genes (the scanpy-style baseline)."""
    from sklearn.decomposition import PCA

    from scatlas.evaluate.metrics import highly_variable_genes

    cols = highly_variable_genes(sp.csr_matrix(X_log), n_top_genes)
    dense = sp.csr_matrix(X_log)[:, cols].toarray()
    nc = max(1, min(n_components, dense.shape[0] - 1, dense.shape[1]))
    return PCA(n_components=nc, random_state=0).fit_transform(dense).astype(np.float32)


def leiden(points: np.ndarray, seed: int = 0, resolution: float = 1.0) -> np.ndarray:
    """scanpy's Leiden (igraph flavour) on the 15-nearest-neighbour graph of ``points``."""
    import anndata as ad
    import scanpy as sc

    tmp = ad.AnnData(X=np.zeros((len(points), 1), dtype=np.float32))
    tmp.obsm["X_rep"] = points
    sc.pp.neighbors(tmp, use_rep="X_rep", n_neighbors=min(15, len(points) - 1), random_state=seed)
    sc.tl.leiden(
        tmp,
        resolution=resolution,
        flavor="igraph",
        n_iterations=2,
        directed=False,
        random_state=seed,
    )
    return tmp.obs["leiden"].astype(int).to_numpy()


def _row(method: str, space: str, algorithm: str, true, pred, seconds: float) -> dict:
    return {
        "method": method,
        "space": space,
        "algorithm": algorithm,
        "n_clusters": int(len(np.unique(pred))),
        "n_true": int(len(np.unique(np.asarray(true, dtype=object)))),
        **cluster_scores(true, pred),
        "seconds": seconds,
    }


def _agglomerative(
    name: str, space: str, points: np.ndarray, true, max_cells: int, same_type=None
) -> list[dict]:
    rows = []
    n_true = len(np.unique(np.asarray(true, dtype=object)))
    for algorithm, k in (("agglomerative (true k)", n_true), ("agglomerative (estimated k)", None)):
        t0 = time.perf_counter()
        result = cluster_points(points, k, max_cells=max_cells, same_type=same_type)
        rows.append(_row(name, space, algorithm, true, result.labels, time.perf_counter() - t0))
    return rows


def compare_clusterings(
    spaces: dict[str, np.ndarray],
    X_log: sp.csr_matrix,
    true: Sequence[str],
    *,
    max_cells: int = MAX_CELLS,
    pair_heads: dict[str, SameType] | None = None,
) -> pd.DataFrame:
    """Every representation of ``spaces`` (name -> cells x dims) clustered agglomeratively,
    and the PCA baselines (agglomerative and Leiden) of the same cells (``X_log``:
    log-normalised); one row per method and algorithm (``COLUMNS``). ``pair_heads``: per
    space, ScLSTM's same-type probability, which then estimates the number of clusters."""
    rows: list[dict] = []
    for name, points in spaces.items():
        head = (pair_heads or {}).get(name)
        rows += _agglomerative(name, f"{name} embedding", np.asarray(points), true, max_cells, head)
    t0 = time.perf_counter()
    pcs = pca_of(X_log)
    pca_seconds = time.perf_counter() - t0
    rows += _agglomerative("pca", "PCA (50 components, 2,000 HVGs)", pcs, true, max_cells)
    t0 = time.perf_counter()
    rows.append(
        _row(
            "pca",
            "PCA (50 components, 2,000 HVGs)",
            "leiden (resolution 1)",
            true,
            leiden(pcs),
            time.perf_counter() - t0,
        )
    )
    for row in rows:
        if row["method"] == "pca":
            row["seconds"] += pca_seconds
    return pd.DataFrame(rows, columns=COLUMNS)


def evaluate_clustering(
    spaces: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    models: dict[str, tuple[Any, dict[str, Any]]],
    q_log: sp.csr_matrix,
    novel_log: sp.csr_matrix | None,
    query_labels: np.ndarray,
    novel_labels: np.ndarray | None,
) -> pd.DataFrame:
    """The evaluation's clustering table: the query and novel cells clustered in each
    model's space (``spaces`` from ``compare_methods``) against the PCA baselines."""
    from scatlas.models.sclstm import pair_head

    has_novel = novel_log is not None and novel_labels is not None and len(novel_labels)
    true = np.concatenate([query_labels, novel_labels]) if has_novel else query_labels
    X_log = sp.vstack([q_log, novel_log]).tocsr() if has_novel else sp.csr_matrix(q_log)
    model_spaces, heads = {}, {}
    for name, (net, _) in models.items():
        _, q, novel = spaces[name]
        model_spaces[name] = np.vstack([q, novel]) if has_novel and novel is not None else q
        head = pair_head(net)
        if head is not None:
            heads[name] = head
    log.info("clustering %d query cells (%d true types)", len(true), len(np.unique(true)))
    return compare_clusterings(model_spaces, X_log, true.astype(object), pair_heads=heads)
