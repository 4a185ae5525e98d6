import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_atlas import TINY_PARAMS, train_tiny, write_atlas

from scatlas.errors import InputError
from scatlas.models import MODELS, build_model
from scatlas.models.io import embed, load_model
from scatlas.models.normalize import align_to_genes, genes_sha256, log1p_cp10k
from scatlas.models.trainer import HISTORY_COLUMNS, resolve_params, train_model

torch.set_num_threads(1)
TIMING = ["seconds", "train_cells_per_second"]


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    return write_atlas(tmp_path_factory.mktemp("atlas") / "atlas.h5ad")


@pytest.fixture(scope="module")
def trained(atlas, tmp_path_factory):
    out = tmp_path_factory.mktemp("dense")
    return out, train_tiny(atlas, out)


def _history(path):
    return pd.read_csv(path / "history.tsv", sep="\t")


def test_default_dense_architecture():
    net = build_model(
        {
            "kind": "dense",
            "n_genes": 50,
            "n_classes": 3,
            "hidden": [1136, 100],
            "dropout": 0.1,
            "activation": "tanh",
        }
    )
    assert "dense" in MODELS
    assert net.embedding_dim == 100
    x = torch.rand(4, 50)
    net.eval()
    with torch.no_grad():
        emb = net.embed(x)
        logits = net(x)
    assert emb.shape == (4, 100) and float(emb.abs().max()) <= 1.0  # tanh output
    assert logits.shape == (4, 3)
    linear = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(50, 1136), (1136, 100), (100, 3)]
    assert build_model(net.architecture).architecture == net.architecture


def test_select_device():
    from scatlas.models.device import select_device

    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InputError, match="unknown device"):
        select_device("quantum")


def test_unknown_model_and_params_refused():
    with pytest.raises(InputError, match="unknown model"):
        build_model({"kind": "nope"})
    with pytest.raises(InputError, match="lr_typo"):
        resolve_params("dense", {"lr_typo": 1})


def test_training_reaches_high_validation_accuracy(trained, atlas):
    out, info = trained
    hist = _history(out)
    assert list(hist.columns) == HISTORY_COLUMNS
    assert info["best_val_accuracy"] > 0.9
    assert hist["train_loss"].iloc[-1] < hist["train_loss"].iloc[0] / 5
    model_json = json.loads((out / "model.json").read_text())
    assert model_json["classes"] == ["CL:0000084", "CL:0000236", "CL:0000576", "CL:0000623"]
    assert model_json["class_labels"][1] == "B cell"
    assert model_json["genes_sha256"] == genes_sha256(model_json["genes"])
    assert model_json["normalisation"] == "log1p_cp10k"
    assert model_json["embedding_dim"] == 16
    assert model_json["n_train_cells"] == 200  # 2 train studies x 4 types x 25 cells
    assert 1 <= model_json["best_epoch"] <= len(hist)
    assert {p.name for p in out.iterdir()} == {
        "encoder.pt",
        "model.json",
        "history.tsv",
        "checkpoint.pt",
    }


def test_training_is_deterministic(atlas, trained, tmp_path):
    out1, _ = trained
    train_tiny(atlas, tmp_path / "again")
    h1, h2 = _history(out1), _history(tmp_path / "again")
    pd.testing.assert_frame_equal(h1.drop(columns=TIMING), h2.drop(columns=TIMING))
    s1 = torch.load(out1 / "encoder.pt", weights_only=True)
    s2 = torch.load(tmp_path / "again" / "encoder.pt", weights_only=True)
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    train_tiny(atlas, tmp_path / "seed1", seed=1, epochs=2)
    s3 = torch.load(tmp_path / "seed1" / "encoder.pt", weights_only=True)
    assert not torch.equal(s1["encoder.0.weight"], s3["encoder.0.weight"])


def test_resume_continues_the_run_exactly(atlas, tmp_path, caplog):
    params = {**TINY_PARAMS, "patience": 100}
    train_tiny(atlas, tmp_path / "full", epochs=4, patience=100)
    train_tiny(atlas, tmp_path / "part", epochs=2, patience=100)
    first = _history(tmp_path / "part")
    with caplog.at_level(logging.INFO, logger="scatlas.models.trainer"):
        train_model(atlas, "dense", tmp_path / "part", params={**params, "epochs": 4}, device="cpu")
    assert "resuming" in caplog.text
    resumed, full = _history(tmp_path / "part"), _history(tmp_path / "full")
    assert len(resumed) == 4
    # the first two epochs come from the checkpoint (their measured seconds are kept) ...
    np.testing.assert_array_equal(resumed["seconds"][:2], first["seconds"])
    # ... and the continuation equals an uninterrupted run
    pd.testing.assert_frame_equal(resumed.drop(columns=TIMING), full.drop(columns=TIMING))
    a = torch.load(tmp_path / "part" / "encoder.pt", weights_only=True)
    b = torch.load(tmp_path / "full" / "encoder.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scatlas.models.trainer"):
        train_tiny(atlas, tmp_path / "part", epochs=1, lr=1e-2)
    assert "starting afresh" in caplog.text
    assert len(_history(tmp_path / "part")) == 1
    # same shapes and parameters, different counts: the checkpoint is not reused
    other = write_atlas(tmp_path / "other.h5ad", seed=5)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scatlas.models.trainer"):
        train_tiny(other, tmp_path / "part", epochs=1, lr=1e-2)
    assert "starting afresh" in caplog.text


def test_early_stopping_keeps_best_epoch(atlas, tmp_path):
    info = train_tiny(atlas, tmp_path / "frozen", epochs=10, patience=2, lr=0.0)
    hist = _history(tmp_path / "frozen")
    assert len(hist) == 3  # epoch 1 best, two epochs without improvement
    assert info["best_epoch"] == 1


def test_load_model_round_trip(trained, atlas):
    import anndata as ad

    out, info = trained
    net, mj = load_model(out)
    assert not net.training and mj["classes"] == info["classes"]
    adata = ad.read_h5ad(atlas)
    X, n = align_to_genes(log1p_cp10k(adata.X[:50]), list(adata.var_names), mj["genes"])
    assert n == len(mj["genes"])
    e1 = embed(net, X, batch_size=7)
    e2 = embed(net, X.toarray(), batch_size=64)
    assert e1.dtype == np.float32 and e1.shape == (50, 16)
    np.testing.assert_allclose(e1, e2, rtol=1e-5, atol=1e-6)
    net2, _ = load_model((out / "encoder.pt", out / "model.json"))
    np.testing.assert_array_equal(embed(net2, X, batch_size=7), e1)
    with pytest.raises(InputError, match="genes hash"):
        load_model(out, genes_sha256_expected="0" * 64)


def test_load_model_refuses_mismatched_genes(trained, tmp_path):
    out, _ = trained
    mj = json.loads((out / "model.json").read_text())
    mj["genes"] = list(reversed(mj["genes"]))
    (tmp_path / "model.json").write_text(json.dumps(mj))
    (tmp_path / "encoder.pt").write_bytes((out / "encoder.pt").read_bytes())
    with pytest.raises(InputError, match="sha256"):
        load_model(tmp_path)


def test_load_model_refuses_pickled_objects(trained, tmp_path):
    out, _ = trained
    (tmp_path / "model.json").write_text((out / "model.json").read_text())
    # needs unpickling of arbitrary code (padded to the size the architecture declares)
    torch.save({"x": object(), "pad": bytes(1 << 20)}, tmp_path / "encoder.pt")
    with pytest.raises(InputError, match="cannot load model weights"):
        load_model(tmp_path)


@pytest.mark.parametrize("units", [2_000_000_000, 100_000])
def test_oversized_architecture_refused_before_allocation(trained, tmp_path, units):
    """A model.json edited to a 2e9-unit layer (or merely larger than its weights) is
    refused from its declared size, without allocating terabytes."""
    out, _ = trained
    info = json.loads((out / "model.json").read_text())
    arch = info["architecture"]
    arch["hidden"] = [units] * len(arch["hidden"])
    (tmp_path / "model.json").write_text(json.dumps(info))
    shutil.copyfile(out / "encoder.pt", tmp_path / "encoder.pt")
    with pytest.raises(InputError, match="declares .* bytes of weights but encoder.pt|overflow"):
        load_model(tmp_path)


def test_atlas_selections_accept_text_booleans_and_missing_labels():
    import anndata as ad

    from scatlas.models.data import obs_bool, selections

    obs = pd.DataFrame(
        {
            "split": ["train", "train", "validation", "query", "query"],
            "cl_id": ["CL:1", None, "CL:1", "CL:2", "CL:1"],
            "trainable": pd.Categorical(["True", "False", "True", "True", "1"]),
        },
        index=[f"c{i}" for i in range(5)],
    )
    sel = selections(ad.AnnData(obs=obs))
    assert sel.train.tolist() == [True, False, False, False, False]
    assert sel.train_types == ["CL:1"]
    assert sel.held_out("query").tolist() == [False, False, False, False, True]
    with pytest.raises(InputError, match="not a boolean"):
        obs_bool(pd.DataFrame({"trainable": ["maybe"]}), "trainable")
