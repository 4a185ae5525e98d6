"""The novelty threshold, calibrated on cells the model did not train on.

A query cell is *novel* when its distance to the nearest reference cell exceeds the
release's threshold. The threshold mimics what a cell of a known type from a new study looks
like to the published model:

* **cells**: the reference cells held out of training (atlas ``split`` other than
  ``train``: validation and query studies, or a stated cell split), which the model embeds
  as it will embed a query's cells; only when there are none, the training cells (tighter:
  the threshold is then too low, and the release says so);
* **neighbours**: for each such cell, its nearest indexed cell **of another study** when the
  reference has two or more studies (a query study is never in the reference); with one
  study, its nearest other cell (the threshold then knows nothing of batch effects between
  studies, and the release says so);
* the threshold is the ``quantile`` (default 0.99) of those distances, over all types: about
  1% of the cells of known types are flagged. One threshold for all types, because per-type
  quantiles over a few dozen cells were measured to flag far more (and a type the model never
  saw got the loosest threshold of all, hiding the novel cells called that type).

``calibrate_novelty`` returns the table written to ``novelty.tsv`` (the ``*`` row and one row
per type, all with the one threshold; ``n_cells`` counts each type's calibration cells) and a
description of what it was calibrated on, which goes into the manifest.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import faiss
import numpy as np
import pandas as pd

from scatlas.release.index import search

log = logging.getLogger(__name__)

ALL_TYPES = "*"
NOVELTY_COLUMNS = ["cl_id", "n_cells", "threshold"]


@dataclass(frozen=True)
class Calibration:
    """What the threshold was calibrated on (the manifest's ``novelty_calibration``)."""

    cells: str  # "held_out" | "training" | "none"
    neighbours: str  # "other_study" | "other_cell"
    n_cells: int
    quantile: float
    threshold: float
    warning: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def nearest_other_distance(
    index: faiss.Index,
    emb: np.ndarray,
    rows: np.ndarray,
    studies: np.ndarray | None,
    k: int = 30,
    metric: str = "euclidean",
) -> np.ndarray:
    """For each of ``rows`` (indexed cells): distance to the nearest indexed cell of another
    study (``studies`` given), or to the nearest other cell (``studies`` None). NaN when none
    is among the ``k`` nearest."""
    k = min(int(k) + 1, int(index.ntotal))
    out = np.full(len(rows), np.nan, dtype=np.float64)
    for start in range(0, len(rows), 8192):
        r = rows[start : start + 8192]
        dist, idx = search(index, emb[r], k, metric)
        safe = np.where(idx >= 0, idx, 0)
        other = (idx >= 0) & (idx != r[:, None])
        if studies is not None:
            other &= studies[safe] != studies[r][:, None]
        first = other.argmax(axis=1)
        d = dist[np.arange(len(r)), first].astype(np.float64)
        out[start : start + len(r)] = np.where(other.any(axis=1), d, np.nan)
    return out


def _sample(rows: np.ndarray, max_cells: int, seed: int) -> np.ndarray:
    if len(rows) <= max_cells:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, max_cells, replace=False))


def _calibration_rows(held_out: np.ndarray | None, n: int) -> tuple[np.ndarray, str, str]:
    """Rows to calibrate on, their kind and the warning to give (if any)."""
    if held_out is not None and np.asarray(held_out, dtype=bool).any():
        return np.flatnonzero(np.asarray(held_out, dtype=bool)), "held_out", ""
    return (
        np.arange(n, dtype=np.int64),
        "training",
        "no reference cell was held out of training: the novelty threshold is calibrated on "
        "training cells, which the model places closer together than new cells (more cells "
        "of known types will be flagged)",
    )


def calibrate_novelty(
    index: faiss.Index,
    emb: np.ndarray,
    cl_ids: np.ndarray,
    studies: np.ndarray,
    *,
    held_out: np.ndarray | None = None,
    quantile: float = 0.99,
    k: int = 30,
    max_cells: int = 20000,
    seed: int = 0,
    metric: str = "euclidean",
) -> tuple[pd.DataFrame, Calibration]:
    """The threshold table (``cl_id``, ``n_cells``, ``threshold``; row ``*`` first) and its
    :class:`Calibration`. ``held_out`` marks the indexed cells the model did not train on."""
    cl_ids = np.asarray(cl_ids, dtype=object).astype(str)
    studies = np.asarray(studies, dtype=object).astype(str)
    rows, cells, warning = _calibration_rows(held_out, len(cl_ids))
    rows = _sample(rows.astype(np.int64), max_cells, seed)
    multi_study = len(set(studies)) > 1
    neighbours = "other_study" if multi_study else "other_cell"
    if not multi_study:
        single = (
            "the reference has one study: the novelty threshold is calibrated on distances "
            "inside it and knows nothing of batch effects between studies (cells of a new "
            "study may be flagged more often)"
        )
        warning = f"{warning}; {single}" if warning else single
    if len(rows) == 0 or index.ntotal < 2:
        dist = np.zeros(0)
    else:
        dist = nearest_other_distance(
            index, emb, rows, studies if multi_study else None, k=k, metric=metric
        )
    finite = np.isfinite(dist)
    threshold = float(np.quantile(dist[finite], quantile)) if finite.any() else float("inf")
    calibration = Calibration(
        cells=cells if finite.any() else "none",
        neighbours=neighbours,
        n_cells=int(finite.sum()),
        quantile=float(quantile),
        threshold=threshold,
        warning=warning,
    )
    if warning:
        log.warning("%s", warning)
    types, counts = np.unique(cl_ids[rows[finite]], return_counts=True)
    per_type = dict(zip(types.tolist(), counts.tolist(), strict=True))
    records = [{"cl_id": ALL_TYPES, "n_cells": int(finite.sum()), "threshold": threshold}]
    records += [
        {"cl_id": t, "n_cells": int(per_type.get(t, 0)), "threshold": threshold}
        for t in sorted(set(cl_ids) - {""})
    ]
    log.info(
        "novelty threshold %.4f: quantile %.3f of %d %s cells' distances to the nearest %s",
        threshold,
        quantile,
        calibration.n_cells,
        cells,
        "cell of another study" if multi_study else "other cell",
    )
    return pd.DataFrame(records)[NOVELTY_COLUMNS], calibration


def flag_novel(
    min_dist: np.ndarray, cell_type_ids: np.ndarray, thresholds: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """(novel flags, threshold used) for each query cell given its type and nearest distance
    (a type's own row when the table has one, else the ``*`` row: releases of format 2 before
    the single threshold may hold per-type thresholds)."""
    table = dict(
        zip(thresholds["cl_id"].astype(str), thresholds["threshold"].astype(float), strict=True)
    )
    overall = table.get(ALL_TYPES, float("inf"))
    thr = np.array([table.get(str(t), overall) for t in cell_type_ids], dtype=np.float64)
    return np.asarray(min_dist, dtype=np.float64) > thr, thr
