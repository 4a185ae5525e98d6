"""Per-type scores of query cells from their reference neighbours (scQuery's vote).

For a query cell and its k nearest reference cells n_j at distance d_j, s_j = 1/(1 + d_j);
a type's score is the sum of s_j over the neighbours of that type, divided by the sum over
all labelled neighbours, so a cell's scores sum to 1 (0 for a cell without labelled
neighbours). The winner is the type with the largest score; its *margin* is its score minus
the runner-up's (1 when one type holds every neighbour). At most k types per cell score
above 0, so the matrix is kept sparse (cells x types).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class TypeScores:
    """Scores of every cell for every reference type, and each cell's winner."""

    matrix: sp.csr_matrix  # cells x types, rows sum to 1 (or 0: no labelled neighbour)
    winner: np.ndarray  # type code per cell, -1 without a labelled neighbour
    share: np.ndarray  # the winner's score
    margin: np.ndarray  # winner's score - runner-up's


def type_scores(dist: np.ndarray, idx: np.ndarray, codes: np.ndarray, n_types: int) -> TypeScores:
    """Scores from neighbour distances ``dist`` and rows ``idx`` (-1: none); ``codes`` maps a
    reference row to its type code (-1: unlabelled). Vectorised: O(cells x k log k)."""
    n = len(idx)
    nb = np.where(idx >= 0, codes[np.where(idx >= 0, idx, 0)], -1)
    with np.errstate(over="ignore"):
        w = 1.0 / (1.0 + dist.astype(np.float64))
    nb = np.where(np.isfinite(w) & (w > 0), nb, -1)
    rows, cols, sums = _type_sums(nb, w)
    total = np.bincount(rows, weights=sums, minlength=n)
    vals = (sums / total[rows]).astype(np.float32) if len(rows) else sums.astype(np.float32)
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(n, max(n_types, 1)), dtype=np.float32)
    winner = np.full(n, -1, dtype=np.int64)
    share = np.zeros(n, dtype=np.float32)
    second = np.zeros(n, dtype=np.float32)
    order = np.lexsort((cols, -vals, rows))  # by cell, best first, ties: smaller type code
    r, c, v = rows[order], cols[order], vals[order]
    first = np.ones(len(r), dtype=bool)
    first[1:] = r[1:] != r[:-1]
    winner[r[first]], share[r[first]] = c[first], v[first]
    runner_up = np.zeros(len(r), dtype=bool)
    runner_up[1:] = first[:-1] & (r[1:] == r[:-1])
    second[r[runner_up]] = v[runner_up]
    margin = np.where(winner >= 0, share - second, 0.0).astype(np.float32)
    return TypeScores(matrix, winner, share, margin)


def _type_sums(nb: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cell, type, summed weight) for every type among each cell's neighbours."""
    n, k = nb.shape
    none = np.iinfo(np.int64).max
    key = np.where(nb >= 0, nb, none)
    order = np.argsort(key, axis=1, kind="stable")
    c = np.take_along_axis(key, order, axis=1)
    ww = np.take_along_axis(w, order, axis=1)
    valid = c != none
    start = valid.copy()
    start[:, 1:] &= c[:, 1:] != c[:, :-1]
    flat_start, flat_valid = start.ravel(), valid.ravel()
    group = np.cumsum(flat_start) - 1
    sums = np.bincount(
        group[flat_valid], weights=ww.ravel()[flat_valid], minlength=int(flat_start.sum())
    )
    rows = np.repeat(np.arange(n, dtype=np.int64), k)[flat_start]
    return rows, c.ravel()[flat_start], sums
