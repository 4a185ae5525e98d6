"""The novelty threshold: held-out cells, nearest cell of another study, one threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scatlas.release.index import build_index
from scatlas.release.novelty import (
    ALL_TYPES,
    calibrate_novelty,
    flag_novel,
    nearest_other_distance,
)


def _reference(seed: int = 0):
    """Type A in studies s1 and s2 (tight), type B in s1 only, 3 away from A."""
    rng = np.random.default_rng(seed)
    a1 = rng.normal(0.0, 0.1, size=(60, 4))
    a2 = rng.normal(0.0, 0.1, size=(60, 4))
    b1 = rng.normal(0.0, 0.1, size=(60, 4)) + np.array([3.0, 0, 0, 0])
    emb = np.vstack([a1, a2, b1]).astype(np.float32)
    cl = np.array(["A"] * 120 + ["B"] * 60, dtype=object)
    study = np.array(["s1"] * 60 + ["s2"] * 60 + ["s1"] * 60, dtype=object)
    return emb, cl, study


def test_nearest_other_study_cell_reaches_across_a_gap_when_it_must():
    emb, _, study = _reference()
    index = build_index(emb, kind="flat")
    rows = np.arange(len(emb), dtype=np.int64)
    other_study = nearest_other_distance(index, emb, rows, study, k=200)
    other_cell = nearest_other_distance(index, emb, rows, None, k=200)
    # A's cells have A cells of the other study close by; B (s1 only) must reach A (about 3)
    assert (other_study[:120] < 1).all() and (other_study[120:] > 2).all()
    # without studies: the nearest other cell, never the cell itself (distance 0)
    assert (other_cell > 0).all() and (other_cell < 1).all()
    # none of another study among the k nearest: NaN, not a made-up distance
    assert np.isnan(nearest_other_distance(index, emb, rows[120:], study, k=5)).all()


def test_held_out_cells_of_another_study_set_one_threshold_for_all_types():
    emb, cl, study = _reference()
    index = build_index(emb, kind="flat")
    held_out = study == "s2"  # the model trained on s1 only
    table, calibration = calibrate_novelty(index, emb, cl, study, held_out=held_out, k=200)
    assert calibration.cells == "held_out" and calibration.neighbours == "other_study"
    assert calibration.n_cells == 60 and calibration.warning == ""
    table = table.set_index("cl_id")
    assert table.loc[ALL_TYPES, "threshold"] == pytest.approx(calibration.threshold)
    assert calibration.threshold < 1  # A-to-A across studies, not the gap to B
    assert (table["threshold"] == calibration.threshold).all()
    assert table.loc["A", "n_cells"] == 60 and table.loc["B", "n_cells"] == 0
    # a cell of a new type half-way between A and B is novel whichever type it is given
    novel, _ = flag_novel(
        np.array([1.5, 1.5, 0.001]), np.array(["A", "B", "A"]), table.reset_index()
    )
    assert novel.tolist() == [True, True, False]


def test_quantile_sets_the_share_of_known_cells_flagged():
    emb, cl, study = _reference()
    index = build_index(emb, kind="flat")
    held_out = study == "s2"
    dist = nearest_other_distance(index, emb, np.flatnonzero(held_out), study, k=200)
    _, calibration = calibrate_novelty(
        index, emb, cl, study, held_out=held_out, k=200, quantile=0.9
    )
    assert np.mean(dist > calibration.threshold) == pytest.approx(0.1, abs=0.02)


def test_single_study_and_no_held_out_cells_are_stated_not_hidden(caplog):
    emb, cl, _ = _reference()
    one = np.full(len(cl), "s1", dtype=object)
    index = build_index(emb, kind="flat")
    with caplog.at_level("WARNING"):
        _, calibration = calibrate_novelty(index, emb, cl, one, k=200)
    assert calibration.cells == "training" and calibration.neighbours == "other_cell"
    assert "held out of training" in calibration.warning
    assert "one study" in calibration.warning
    assert "one study" in caplog.text
    held = np.zeros(len(cl), dtype=bool)
    held[::3] = True
    _, calibration = calibrate_novelty(index, emb, cl, one, held_out=held, k=200)
    assert calibration.cells == "held_out" and calibration.n_cells == int(held.sum())
    assert "held out of training" not in calibration.warning


def test_flag_novel_reads_per_type_rows_of_older_releases():
    old = pd.DataFrame({"cl_id": [ALL_TYPES, "A"], "n_cells": [10, 10], "threshold": [1.0, 0.1]})
    novel, thr = flag_novel(np.array([0.5, 0.5]), np.array(["A", "B"]), old)
    assert novel.tolist() == [True, False] and thr.tolist() == [0.1, 1.0]
