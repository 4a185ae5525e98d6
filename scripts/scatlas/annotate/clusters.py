"""Clusters of query cells: Ward agglomerative clustering (scikit-learn) of a learned
representation (ScLSTM's, or any model's), the number of clusters given or estimated, and
the clusters whose cells are mostly novel reported as candidate new types with markers.

The number of clusters, when not given, is estimated from the tree. With ScLSTM's pair head
(``same_type``: the probability that two cells share a type) the tree is split from the top
while the head calls the two halves different types (mean over 200 cell pairs across them
below 0.5, and 0.25 below the mean within them, so an uninformed head splits nothing) and
both halves hold at least 0.5% of the cells (and 5); a head that splits nothing leaves the
choice to silhouette. Without one, it is the cut between
2 and ``max_clusters`` with the best silhouette (on at most 3,000 cells); silhouette favours
few clusters when types nest (measured: 2 of 9 PBMC types).

Ward's tree keeps n(n-1)/2 distances (8 bytes each: 400 MB at 10,000 cells, 1.6 GB at
20,000), so at most ``max_cells`` cells are clustered: beyond that a random sample is, and
every other cell joins the cluster whose centroid is nearest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from scatlas.errors import InputError

log = logging.getLogger(__name__)

MAX_CELLS = 10_000
MAX_CLUSTERS = 30
SILHOUETTE_SAMPLE = 3_000
#: a cluster is a candidate new type when at least this share of its cells is novel
NOVEL_SHARE = 0.5
N_MARKERS = 10
PAIR_SAMPLE = 200
#: a ScLSTM split needs both halves to hold this share of the cells (and 5 cells)
MIN_SHARE = 0.005

#: a split needs pairs within the halves to be this much likelier "same" than pairs across
MIN_CONTRAST = 0.25

SameType = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Clustering:
    """Cluster index per cell (0 = the largest), how the number was chosen, and how."""

    labels: np.ndarray
    n_clusters: int
    estimated: bool
    n_clustered: int  # cells in the tree (the rest were assigned to the nearest centroid)
    silhouette: dict[int, float] = field(default_factory=dict)  # per tried k, when estimated


def ward_tree(points: np.ndarray) -> np.ndarray:
    """The merges of Ward's agglomerative clustering (``children_``, n - 1 rows)."""
    from sklearn.cluster import AgglomerativeClustering

    tree = AgglomerativeClustering(
        n_clusters=None, distance_threshold=0.0, linkage="ward", compute_full_tree=True
    ).fit(points)
    return tree.children_


def cut_tree(children: np.ndarray, n: int, k: int) -> np.ndarray:
    """Labels of the ``k`` clusters left after the first ``n - k`` merges, numbered by size
    (0 the largest)."""
    parent = np.arange(2 * n - 1)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for step, (a, b) in enumerate(children[: n - k]):
        parent[root(int(a))] = parent[root(int(b))] = n + step
    roots = np.array([root(i) for i in range(n)])
    _, inverse, counts = np.unique(roots, return_inverse=True, return_counts=True)
    rank = np.empty(len(counts), dtype=np.int64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(len(counts))
    return rank[inverse]


def _estimate(points: np.ndarray, children: np.ndarray, max_clusters: int, seed: int):
    """The k (2..max_clusters) whose cut has the best silhouette, and every k's figure."""
    from sklearn.metrics import silhouette_score

    n = len(points)
    sample = np.random.default_rng(seed).permutation(n)[:SILHOUETTE_SAMPLE]
    scores: dict[int, float] = {}
    for k in range(2, min(max_clusters, n - 1) + 1):
        labels = cut_tree(children, n, k)[sample]
        if len(np.unique(labels)) > 1:
            scores[k] = float(silhouette_score(points[sample], labels))
    best = max(scores, key=lambda k: (scores[k], -k)) if scores else 1
    return best, scores


def _leaves(children: np.ndarray, n: int, node: int) -> np.ndarray:
    """The cells under ``node`` of the tree."""
    out, stack = [], [node]
    while stack:
        i = stack.pop()
        if i < n:
            out.append(i)
        else:
            stack.extend(int(c) for c in children[i - n])
    return np.asarray(out, dtype=np.int64)


def _different(points: np.ndarray, a: np.ndarray, b: np.ndarray, same_type: SameType, rng) -> bool:
    """Whether the pair head calls the cells of ``a`` and ``b`` different types: pairs
    across them below 0.5 and clearly below pairs within each (an uninformed head, near 0.5
    everywhere, splits nothing)."""
    across = float(
        np.mean(same_type(points[rng.choice(a, PAIR_SAMPLE)], points[rng.choice(b, PAIR_SAMPLE)]))
    )
    within = np.mean(
        [
            float(
                np.mean(
                    same_type(
                        points[rng.choice(g, PAIR_SAMPLE)], points[rng.choice(g, PAIR_SAMPLE)]
                    )
                )
            )
            for g in (a, b)
        ]
    )
    return across < 0.5 and within - across > MIN_CONTRAST


def split_by_pairs(
    points: np.ndarray,
    children: np.ndarray,
    same_type: SameType,
    *,
    max_clusters: int = MAX_CLUSTERS,
    seed: int = 0,
) -> np.ndarray:
    """Labels from splitting the tree top-down while the pair head calls the halves
    different types (largest nodes first, at most ``max_clusters`` leaves)."""
    n = len(points)
    rng = np.random.default_rng(seed)
    min_size = max(5, int(MIN_SHARE * n))
    open_nodes, final = [2 * n - 2], []
    while open_nodes and len(open_nodes) + len(final) < max_clusters:
        open_nodes.sort(key=lambda i: len(_leaves(children, n, i)))
        node = open_nodes.pop()
        if node < n:
            final.append(node)
            continue
        a, b = (_leaves(children, n, int(c)) for c in children[node - n])
        if min(len(a), len(b)) < min_size:
            final.append(node)
            continue
        if _different(points, a, b, same_type, rng):
            open_nodes += [int(c) for c in children[node - n]]
        else:
            final.append(node)
    labels = np.empty(n, dtype=np.int64)
    groups = sorted((_leaves(children, n, i) for i in final + open_nodes), key=len, reverse=True)
    for c, members in enumerate(groups):
        labels[members] = c
    return labels


def _cut(
    points: np.ndarray,
    children: np.ndarray,
    n_clusters: int | None,
    same_type: SameType | None,
    max_clusters: int,
    seed: int,
) -> tuple[np.ndarray, dict[int, float]]:
    """Labels of the tree's cut into ``n_clusters``, or as the pair head splits it, or
    (no head, or one that splits nothing: uninformed) at the best silhouette."""
    n = len(points)
    if n_clusters is not None:
        return cut_tree(children, n, min(int(n_clusters), n)), {}
    if same_type is not None:
        labels = split_by_pairs(points, children, same_type, max_clusters=max_clusters, seed=seed)
        if labels.max() > 0:
            log.info("estimated %d clusters (the pair head splits the tree)", labels.max() + 1)
            return labels, {}
        log.info("the pair head splits nothing: the silhouette chooses the number of clusters")
    k, scores = _estimate(points, children, max_clusters, seed)
    log.info("estimated %d clusters (best silhouette %.3f)", k, scores.get(k, float("nan")))
    return cut_tree(children, n, k), scores


def cluster_points(
    points: np.ndarray,
    n_clusters: int | None = None,
    *,
    max_cells: int = MAX_CELLS,
    max_clusters: int = MAX_CLUSTERS,
    seed: int = 0,
    same_type: SameType | None = None,
) -> Clustering:
    """Cluster the rows of ``points`` (a representation) with Ward's method; ``same_type``
    (ScLSTM's pair head) estimates the number of clusters when it is not given."""
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n_clusters is not None and n_clusters < 1:
        raise InputError(
            f"the number of clusters must be >= 1, not {n_clusters}", field="n_clusters"
        )
    if n < 3:
        return Clustering(np.zeros(n, dtype=np.int64), min(n, 1), False, n)
    rows = np.arange(n)
    if n > max_cells:
        rows = np.sort(np.random.default_rng(seed).permutation(n)[:max_cells])
        log.info("clustering a sample of %d of %d cells; the rest join the nearest", max_cells, n)
    children = ward_tree(points[rows])
    sampled, scores = _cut(points[rows], children, n_clusters, same_type, max_clusters, seed)
    k = int(sampled.max()) + 1
    labels = np.empty(n, dtype=np.int64)
    labels[rows] = sampled
    if len(rows) < n:
        centroids = np.stack([points[rows][sampled == c].mean(0) for c in range(k)])
        rest = np.setdiff1d(np.arange(n), rows)
        for start in range(0, len(rest), 8192):
            part = rest[start : start + 8192]
            d = ((points[part, None, :] - centroids[None]) ** 2).sum(-1)
            labels[part] = d.argmin(1)
    return Clustering(labels, k, n_clusters is None, len(rows), scores)


def marker_genes(
    X_log: sp.csr_matrix, labels: np.ndarray, genes: list[str], top: int = N_MARKERS
) -> dict[int, list[str]]:
    """Per cluster, the ``top`` genes with the largest mean log-expression above the other
    cells, among genes detected in at least a quarter of the cluster's cells."""
    X = sp.csr_matrix(X_log)
    k = int(labels.max()) + 1 if len(labels) else 0
    member = sp.csr_matrix(
        (np.ones(len(labels)), (labels, np.arange(len(labels)))), (k, len(labels))
    )
    sizes = np.asarray(member.sum(1)).ravel()
    sums = np.asarray((member @ X).todense())
    detected = np.asarray((member @ (X > 0).astype(np.float32)).todense())
    total = sums.sum(0)
    out: dict[int, list[str]] = {}
    for c in range(k):
        rest = max(len(labels) - sizes[c], 1)
        gain = sums[c] / max(sizes[c], 1) - (total - sums[c]) / rest
        gain[detected[c] < 0.25 * sizes[c]] = -np.inf
        order = [i for i in np.argsort(-gain, kind="stable")[:top] if np.isfinite(gain[i])]
        out[c] = [genes[i] for i in order if gain[i] > 0]
    return out


def cluster_table(
    clustering: Clustering,
    novel: np.ndarray | None,
    markers: dict[int, list[str]],
    novel_share: float = NOVEL_SHARE,
) -> pd.DataFrame:
    """One row per cluster: cells, novel cells and share, candidate new type, markers."""
    labels = clustering.labels
    rows = []
    for c in range(clustering.n_clusters):
        members = labels == c
        n_novel = int(novel[members].sum()) if novel is not None else 0
        share = n_novel / max(int(members.sum()), 1)
        rows.append(
            {
                "cluster": str(c),
                "n_cells": int(members.sum()),
                "n_novel": n_novel,
                "novel_share": round(share, 4),
                "candidate_new_type": bool(novel is not None and share >= novel_share),
                "markers": ",".join(markers.get(c, [])),
            }
        )
    return pd.DataFrame(rows)
