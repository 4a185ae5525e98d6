"""Real data: pancreas Wang 2016 -> Xin 2016 (two studies, author log-normalised values)."""

import numpy as np
import pytest
import torch
from realdata import eval_set, load_pancreas, training_data

from scatlas.evaluate.metrics import compare_methods
from scatlas.models.io import load_model
from scatlas.models.trainer import fit

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def pancreas(shared_data):
    from scatlas.ontology import load_ontology

    cl = load_ontology(shared_data / "ontology" / "cl-basic_2022-12-15.obo")
    return load_pancreas(shared_data, cl), cl


def test_pancreas_set_is_what_the_issue_says(pancreas):
    rs, _ = pancreas
    assert len(rs.genes) == 219 and rs.input_kind == "log_normalised"
    # Wang's 501 cells minus the 10 held-out delta cells train/validate; Xin's 674 query
    assert rs.train_X.shape[0] + rs.val_X.shape[0] == 501 - 10
    assert rs.query_X.shape[0] + rs.novel_X.shape[0] == 674
    assert set(rs.novel_labels) == {"CL:0000173"}  # pancreatic D cell, held out
    assert set(rs.query_labels) == {"CL:0000171", "CL:0000169", "CL:0002275"}  # A, B, PP
    assert "CL:0000173" not in set(rs.train_labels)


def test_pancreas_dense_model_beats_chance_and_flags_the_held_out_type(pancreas, tmp_path):
    rs, cl = pancreas
    data = training_data(rs, "log1p_cp10k", cl)
    assert data.normalisation == "log_normalised"  # author values are not re-normalised
    fit(
        "dense",
        data,
        tmp_path / "dense",
        params={"hidden": [128, 32], "epochs": 10, "batch_size": 32, "lr": 2e-3},
        device="cpu",
    )
    models = {"dense": load_model(tmp_path / "dense")}
    res, spaces = compare_methods(eval_set(rs), models, k=10, ontology=cl)
    majority = max(np.mean(rs.query_labels == t) for t in set(rs.query_labels))
    assert majority < 0.5
    dense = res["dense"]
    # across studies, three known types: far above the majority-class rate
    assert dense["accuracy"] > 0.85 and dense["median_f1"] > 0.8
    assert dense["map_at_k"] > 0.85 and dense["mafp_at_k"] >= dense["map_at_k"]
    assert dense["own_accuracy"] > 0.85  # its classifier head, on the same queries
    # the held-out delta cells lie farther from the reference than the known types
    assert dense["n_novel"] == 49 and dense["novelty_auroc"] > 0.75
    for baseline in ("pca", "lognorm"):
        assert res[baseline]["accuracy"] > 0.85
    peer = res["celltypist"]
    assert peer["available"] and peer["accuracy"] > 0.7 and peer["n_query"] == 625
    assert spaces["dense"][0].shape == (rs.train_X.shape[0], 32)
