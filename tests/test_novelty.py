"""Per-type novelty thresholds: same-type, cross-study nearest distances."""

from __future__ import annotations

import numpy as np
import pytest

from scatlas.release.index import build_index
from scatlas.release.novelty import (
    ALL_TYPES,
    calibrate_novelty,
    cross_study_nn_distance,
    flag_novel,
)


def _reference(seed: int = 0):
    """Type A in studies s1 and s2 (tight), type B in s1 only, next to A."""
    rng = np.random.default_rng(seed)
    a1 = rng.normal(0.0, 0.1, size=(60, 4))
    a2 = rng.normal(0.0, 0.1, size=(60, 4))
    b1 = rng.normal(0.0, 0.1, size=(60, 4)) + np.array([3.0, 0, 0, 0])
    emb = np.vstack([a1, a2, b1]).astype(np.float32)
    cl = np.array(["A"] * 120 + ["B"] * 60, dtype=object)
    study = np.array(["s1"] * 60 + ["s2"] * 60 + ["s1"] * 60, dtype=object)
    return emb, cl, study


def test_same_type_distances_ignore_neighbouring_types():
    emb, cl, study = _reference()
    index = build_index(emb, kind="flat")
    rows = np.arange(len(emb), dtype=np.int64)
    labelled = cross_study_nn_distance(index, emb, rows, study, k=200, labels=cl)
    any_type = cross_study_nn_distance(index, emb, rows, study, k=200)
    # A has a same-type cell in the other study close by; B has none (NaN), while the
    # label-free distance of B reaches across the gap to A (about 3)
    assert np.isfinite(labelled[:120]).all() and (labelled[:120] < 1).all()
    assert np.isnan(labelled[120:]).all()
    assert (any_type[120:] > 2).all()


def test_single_study_type_takes_the_overall_threshold():
    emb, cl, study = _reference()
    index = build_index(emb, kind="flat")
    table = calibrate_novelty(index, emb, cl, study, k=200, min_cells=10).set_index("cl_id")
    overall = table.loc[ALL_TYPES, "threshold"]
    assert overall < 1  # from A's cross-study distances, not the gap between A and B
    assert table.loc["B", "threshold"] == pytest.approx(overall)
    assert table.loc["B", "n_cells"] == 0
    # a cell of a new type half-way between A and B is novel whichever type it is given
    novel, _ = flag_novel(
        np.array([1.5, 1.5, 0.001]), np.array(["A", "B", "A"]), table.reset_index()
    )
    assert novel.tolist() == [True, True, False]
