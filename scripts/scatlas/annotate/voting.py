"""Majority voting over over-clustered query cells (as CellTypist's ``majority_voting``).

The query's cells are over-clustered in the reference's embedding (k-means with about
``cells_per_cluster`` cells per cluster, at least √n clusters for small queries and at most
``MAX_CLUSTERS``: many small, homogeneous clusters, as CellTypist's high-resolution Leiden
clustering), and every cell of a cluster takes the type most of the
cluster's called cells were given. A cell's own call is kept beside it, so a cluster that
mixes types is visible (``scatlas_majority_share`` below 1).
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.cluster import MiniBatchKMeans

log = logging.getLogger(__name__)

CELLS_PER_CLUSTER = 50
#: k-means cost grows with the clusters: beyond this, clusters hold more cells
MAX_CLUSTERS = 1000


def over_cluster(
    emb: np.ndarray, *, cells_per_cluster: int = CELLS_PER_CLUSTER, seed: int = 0
) -> np.ndarray:
    """Cluster of each row of ``emb`` (-1 for rows that are not finite)."""
    ok = np.isfinite(emb).all(axis=1)
    out = np.full(len(emb), -1, dtype=np.int64)
    n = int(ok.sum())
    if n == 0:
        return out
    n_clusters = int(min(max(1, round(n / cells_per_cluster), round(np.sqrt(n))), n, MAX_CLUSTERS))
    if n_clusters == 1:
        out[ok] = 0
        return out
    km = MiniBatchKMeans(
        n_clusters=n_clusters, random_state=seed, batch_size=4096, n_init=3, max_iter=100
    )
    out[ok] = km.fit_predict(np.asarray(emb[ok], dtype=np.float32))
    log.info("over-clustered %d cells into %d clusters for majority voting", n, n_clusters)
    return out


def majority_vote(clusters: np.ndarray, winner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(majority type code, its share among the cluster's called cells) per cell; -1 and 0
    for cells without a cluster or in a cluster without any call."""
    n = len(clusters)
    code = np.full(n, -1, dtype=np.int64)
    share = np.zeros(n, dtype=np.float32)
    ok = (clusters >= 0) & (winner >= 0)
    if not ok.any():
        return code, share
    n_types = int(winner.max()) + 1
    n_clusters = int(clusters.max()) + 1
    counts = np.bincount(
        clusters[ok] * n_types + winner[ok], minlength=n_clusters * n_types
    ).reshape(n_clusters, n_types)
    best = counts.argmax(axis=1)  # ties: the smaller code
    total = counts.sum(axis=1)
    frac = np.where(total > 0, counts[np.arange(n_clusters), best] / np.maximum(total, 1), 0)
    has = clusters >= 0
    called_cluster = total[np.where(has, clusters, 0)] > 0
    code[has & called_cluster] = best[clusters[has & called_cluster]]
    share[has & called_cluster] = frac[clusters[has & called_cluster]]
    return code, share
