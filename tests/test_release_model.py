"""The published model: chosen by the evaluation, trained again on every type."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from synthetic_atlas import TINY_PARAMS, TYPES, train_tiny, write_atlas

from scatlas.demo.check import DemoCheckError, check_novelty, novelty_figures
from scatlas.errors import InputError
from scatlas.models.release_model import choose_model, release_model
from scatlas.models.trainer import train_model
from scatlas.settings import PublishSettings, TrainSettings


def _metrics(path, rows):
    pd.DataFrame(rows, columns=["method", "kind", "macro_f1", "accuracy"]).to_csv(
        path, sep="\t", index=False
    )
    return path


def test_auto_chooses_the_best_trained_model_and_a_name_is_taken(tmp_path):
    metrics = _metrics(
        tmp_path / "metrics.tsv",
        [
            ("dense", "model", 0.80, 0.9),
            ("triplet", "model", 0.85, 0.8),
            ("siamese", "model", 0.85, 0.95),
            ("pca", "baseline", 0.99, 0.99),  # a baseline is never published
        ],
    )
    trained = ["dense", "triplet", "siamese"]
    choice = choose_model(metrics, trained, "auto", "macro_f1")
    assert choice["model"] == "triplet"  # tie with siamese: the first in models
    assert choice["chosen_by"] == "evaluation" and "pca" not in choice["scores"]
    assert choose_model(metrics, trained, "auto", "accuracy")["model"] == "siamese"
    assert choose_model(metrics, trained, "dense", "macro_f1")["chosen_by"] == "config"
    with pytest.raises(InputError, match="not among the trained models"):
        choose_model(metrics, trained, "deephash", "macro_f1")
    with pytest.raises(InputError, match="no median_f1 column"):
        choose_model(metrics, trained, "auto", "median_f1")


def test_a_model_trained_with_a_holdout_is_trained_again_on_every_type(tmp_path):
    atlas = write_atlas(tmp_path / "atlas.h5ad")
    held = train_model(
        atlas, "dense", tmp_path / "dense", params=TINY_PARAMS, device="cpu", holdout="auto"
    )
    assert held["holdout_types"] and set(held["classes"]) < set(TYPES)
    metrics = _metrics(tmp_path / "metrics.tsv", [("dense", "model", 0.9, 0.9)])
    train = TrainSettings(dense=dict(TINY_PARAMS), device="cpu")
    choice = release_model(
        atlas_h5ad=atlas,
        model_dirs={"dense": tmp_path / "dense"},
        metrics_tsv=metrics,
        out_dir=tmp_path / "release",
        publish=PublishSettings(),
        train=train,
        threads=1,
    )
    info = json.loads((tmp_path / "release" / "model.json").read_text())
    assert choice["retrained_without_holdout"] == held["holdout_types"]
    assert info["holdout_types"] == [] and set(info["classes"]) == set(TYPES)
    assert json.loads((tmp_path / "release" / "choice.json").read_text())["model"] == "dense"
    # trained without a holdout: copied as it is
    train_tiny(atlas, tmp_path / "all")
    release_model(
        atlas_h5ad=atlas,
        model_dirs={"dense": tmp_path / "all"},
        metrics_tsv=metrics,
        out_dir=tmp_path / "copy",
        publish=PublishSettings(),
        train=train,
    )
    for name in ("encoder.pt", "model.json"):
        assert (tmp_path / "copy" / name).read_bytes() == (tmp_path / "all" / name).read_bytes()


def test_demo_check_fails_when_unseen_cells_are_not_flagged():
    import numpy as np

    truth = np.array(["A"] * 20 + ["N"] * 5)
    in_ref = truth == "A"
    novel = np.zeros(25, dtype=bool)
    novel[20:] = True
    figures = novelty_figures(truth, in_ref, novel)
    assert figures["n_unseen_flagged"] == 5 and figures["n_known_flagged"] == 0
    check_novelty(figures)
    novel[22:] = False
    with pytest.raises(DemoCheckError, match="only 2 of the 5 cells"):
        check_novelty(novelty_figures(truth, in_ref, novel))
    novel[:5] = True
    with pytest.raises(DemoCheckError, match="5 cells of known types"):
        check_novelty(novelty_figures(truth, in_ref, np.r_[novel[:20], [True] * 5]))
