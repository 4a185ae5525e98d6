"""Per-type novelty thresholds calibrated on the reference itself.

A query cell is *novel* when its distance to the nearest reference cell exceeds the
threshold of the type it was given. Thresholds mimic what a new study of a known type looks
like: for (a sample of) each type's reference cells, the distance to the nearest reference
cell **of the same type from another study** (among the ``k`` nearest) — a query study is
never in the reference, so its cells should be judged against cross-study distances, not
against their own study's tight neighbourhood, and not against a neighbouring type (which
would make the threshold of a type seen in one study as loose as the gap to other types).
The threshold is the ``quantile`` (default 0.99) of those distances, so about 1% of the
cells of a known type in a new study are flagged. Types with fewer than ``min_cells`` such
distances (e.g. seen in one study only), and cells with no type, use the threshold over all
types (row ``*``); when no type has any, the nearest cell of another study of any type.
"""

from __future__ import annotations

import logging

import faiss
import numpy as np
import pandas as pd

from scatlas.release.index import search

log = logging.getLogger(__name__)

ALL_TYPES = "*"
NOVELTY_COLUMNS = ["cl_id", "n_cells", "threshold"]


def cross_study_nn_distance(
    index: faiss.Index,
    emb: np.ndarray,
    rows: np.ndarray,
    studies: np.ndarray,
    k: int = 30,
    metric: str = "euclidean",
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """For each of ``rows``: distance to the nearest indexed cell of another study — of the
    same label when ``labels`` is given (NaN when none is among the ``k`` nearest); without
    labels, the nearest other cell when no other study is among them."""
    k = min(int(k) + 1, int(index.ntotal))
    out = np.empty(len(rows), dtype=np.float64)
    for start in range(0, len(rows), 8192):
        r = rows[start : start + 8192]
        dist, idx = search(index, emb[r], k, metric)
        safe = np.where(idx >= 0, idx, 0)
        valid = (idx >= 0) & (idx != r[:, None])
        other = valid & (studies[safe] != studies[r][:, None])
        if labels is not None:
            other &= labels[safe] == labels[r][:, None]
            first = other.argmax(axis=1)
            d = dist[np.arange(len(r)), first].astype(np.float64)
            out[start : start + len(r)] = np.where(other.any(axis=1), d, np.nan)
            continue
        first_other = np.where(other.any(axis=1), other.argmax(axis=1), -1)
        first_any = np.where(valid.any(axis=1), valid.argmax(axis=1), 0)
        pick = np.where(first_other >= 0, first_other, first_any)
        out[start : start + len(r)] = dist[np.arange(len(r)), pick]
    return out


def calibrate_novelty(
    index: faiss.Index,
    emb: np.ndarray,
    cl_ids: np.ndarray,
    studies: np.ndarray,
    *,
    quantile: float = 0.99,
    k: int = 30,
    max_cells_per_type: int = 2000,
    min_cells: int = 10,
    seed: int = 0,
    metric: str = "euclidean",
) -> pd.DataFrame:
    """Thresholds per labelled type (``cl_id``, ``n_cells``, ``threshold``), plus row ``*``."""
    cl_ids = np.asarray(cl_ids, dtype=object).astype(str)
    studies = np.asarray(studies, dtype=object).astype(str)
    rng = np.random.default_rng(seed)
    rows_of: dict[str, np.ndarray] = {}
    for t in sorted(set(cl_ids) - {""}):
        rows = np.flatnonzero(cl_ids == t)
        if len(rows) > max_cells_per_type:
            rows = np.sort(rng.choice(rows, max_cells_per_type, replace=False))
        rows_of[t] = rows
    if not rows_of:
        unlabelled = np.arange(len(cl_ids))
        if len(unlabelled) > max_cells_per_type:
            unlabelled = np.sort(rng.choice(unlabelled, max_cells_per_type, replace=False))
        rows_of[""] = unlabelled
    all_rows = np.concatenate(list(rows_of.values())) if rows_of else np.zeros(0, np.int64)
    if len(all_rows) == 0 or index.ntotal < 2:
        return pd.DataFrame({"cl_id": [ALL_TYPES], "n_cells": [0], "threshold": [float("inf")]})[
            NOVELTY_COLUMNS
        ]
    all_rows = all_rows.astype(np.int64)
    labels = cl_ids if set(rows_of) != {""} else None
    dist = cross_study_nn_distance(index, emb, all_rows, studies, k=k, metric=metric, labels=labels)
    finite = dist[np.isfinite(dist)]
    if labels is not None and finite.size == 0:
        # no type has cells in two studies: fall back to any other study's nearest cell
        dist = cross_study_nn_distance(index, emb, all_rows, studies, k=k, metric=metric)
        finite = dist[np.isfinite(dist)]
    overall = float(np.quantile(finite, quantile)) if finite.size else float("inf")
    records = [{"cl_id": ALL_TYPES, "n_cells": int(finite.size), "threshold": overall}]
    start = 0
    for t, rows in rows_of.items():
        d = dist[start : start + len(rows)]
        start += len(rows)
        if not t:
            continue
        d = d[np.isfinite(d)]
        thr = float(np.quantile(d, quantile)) if len(d) >= min_cells else overall
        records.append({"cl_id": t, "n_cells": int(len(d)), "threshold": thr})
    log.info(
        "novelty thresholds for %d types (quantile %.3f of same-type cross-study nearest "
        "distances; overall %.4f)",
        len(records) - 1,
        quantile,
        overall,
    )
    return pd.DataFrame(records)[NOVELTY_COLUMNS]


def flag_novel(
    min_dist: np.ndarray, cell_type_ids: np.ndarray, thresholds: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """(novel flags, threshold used) for each query cell given its type and nearest distance."""
    table = dict(
        zip(thresholds["cl_id"].astype(str), thresholds["threshold"].astype(float), strict=True)
    )
    overall = table.get(ALL_TYPES, float("inf"))
    thr = np.array([table.get(str(t), overall) for t in cell_type_ids], dtype=np.float64)
    return np.asarray(min_dist, dtype=np.float64) > thr, thr
