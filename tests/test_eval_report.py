"""2-D layouts of the evaluation report: UMAP when umap-learn is there, PCA otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from scatlas.evaluate.report import layout_2d


def _two_clusters(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(0, 0.1, (30, 8)), rng.normal(5, 0.1, (30, 8))])


def _separated(xy: np.ndarray) -> bool:
    a, b = xy[:30], xy[30:]
    gap = np.linalg.norm(a.mean(0) - b.mean(0))
    spread = max(np.linalg.norm(a - a.mean(0), axis=1).max(), 1e-9)
    return gap > 2 * spread


def test_pca_layout_keeps_clusters_apart():
    xy, used = layout_2d(_two_clusters(), "pca")
    assert used == "PCA" and xy.shape == (60, 2) and _separated(xy)


def test_tiny_inputs_fall_back_to_pca_without_failing():
    xy, used = layout_2d(np.ones((3, 1), dtype=np.float32), "umap")
    assert used == "PCA" and xy.shape == (3, 2)


@pytest.mark.slow
def test_umap_layout_keeps_clusters_apart():
    pytest.importorskip("umap")
    xy, used = layout_2d(_two_clusters(), "umap")
    assert used == "UMAP" and xy.shape == (60, 2) and _separated(xy)


def test_integer_figures_print_as_integers():
    from scatlas.evaluate.report import _cell

    assert (_cell(10.0), _cell(400.0), _cell(0.98123), _cell(float("nan"))) == (
        "10",
        "400",
        "0.9812",
        "",
    )
