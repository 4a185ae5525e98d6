"""The siamese, triplet and deep-hash models, their losses and the shared trainer's options."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from synthetic_atlas import NOVEL, write_atlas

from scatlas.errors import InputError
from scatlas.models import MODELS, Batch, TrainingContext, build_model
from scatlas.models.deephash import class_balanced_weights, code_bits, hadamard
from scatlas.models.inputs import max_scaled, normalise_input
from scatlas.models.io import embed, load_model
from scatlas.models.siamese import draw_partners
from scatlas.models.trainer import related_matrix, resolve_params, train_model
from scatlas.models.triplet import semi_hard_triplet_loss

torch.set_num_threads(1)

SMALL = {
    "dense": {"hidden": [64, 16], "epochs": 12, "batch_size": 32, "lr": 3e-3, "pretrain_epochs": 2},
    "siamese": {"hidden": [32, 32], "embedding_dim": 8, "epochs": 6, "batch_size": 32},
    "triplet": {
        "hidden": [32, 32, 32],
        "embedding_dim": 8,
        "epochs": 6,
        "batch_size": 64,
        "triplet_weight": 0.5,
        "margin": 0.2,
    },
    "deephash": {"hidden": [32, 32, 16, 16], "bits": 8, "epochs": 6, "batch_size": 32, "lr": 3e-3},
    "sclstm": {"hidden": [16, 16], "n_landmarks": 64, "chunk": 8, "epochs": 12},
}


class FakeOntology:
    """B cell (CL:0000236) is a descendant of lymphocyte (CL:0000542); nothing else relates."""

    def __contains__(self, cl_id):
        return cl_id.startswith("CL:")

    def related_pairs(self, terms):
        pairs = {("CL:0000236", "CL:0000542"), ("CL:0000542", "CL:0000236")}
        return {p for p in pairs if p[0] in terms and p[1] in terms}


def test_registry_and_architecture_round_trip():
    assert set(MODELS) == {"dense", "siamese", "triplet", "deephash", "sclstm"}
    for name, params in SMALL.items():
        p = resolve_params(name, params)
        arch = MODELS[name].architecture_from_params(p, n_genes=20, n_classes=3)
        net = build_model(arch)
        assert build_model(net.architecture).architecture == arch
        net.eval()
        with torch.no_grad():
            emb = net.embed(torch.rand(5, 20))
        assert emb.shape == (5, net.embedding_dim), name
    assert resolve_params("siamese", {})["normalisation"] == "max_scaled"
    assert resolve_params("siamese", {})["optimizer"] == "rmsprop"
    with pytest.raises(InputError, match="normalisation"):
        resolve_params("dense", {"normalisation": "zscore"})
    with pytest.raises(InputError, match="sampling"):
        resolve_params("dense", {"sampling": "stratified"})


def test_hadamard_anchors_are_half_the_bits_apart():
    for k in (1, 2, 8, 32):
        h = hadamard(k)
        np.testing.assert_array_equal(h @ h.T, k * np.eye(k))
    anchors = (hadamard(16) > 0).astype(int)
    dist = (anchors[:, None, :] != anchors[None, :, :]).sum(-1)
    assert set(dist[~np.eye(16, dtype=bool)].tolist()) == {8}
    assert [code_bits(m) for m in (2, 3, 4, 5, 9)] == [2, 4, 4, 8, 16]
    assert code_bits(5, 32) == 32
    with pytest.raises(ValueError):
        code_bits(5, 4)  # fewer bits than types
    with pytest.raises(ValueError):
        code_bits(3, 12)  # not a power of two


def test_class_balanced_weights_favour_rare_types():
    w = class_balanced_weights(np.array([1000, 100, 10]), beta=0.999)
    assert w[0] < w[1] < w[2] and w.mean() == pytest.approx(1.0)
    # beta -> 0: every type weighs the same
    np.testing.assert_allclose(class_balanced_weights(np.array([5, 500]), 1e-9), [1, 1])


def test_deephash_codes_and_anchor_annotation():
    net = build_model(
        MODELS["deephash"].architecture_from_params(
            resolve_params("deephash", {"hidden": [8, 8, 8, 8], "bits": 8}), n_genes=6, n_classes=3
        )
    )
    x = torch.rand(10, 6)
    codes = net.embed(x)
    assert set(codes.unique().tolist()) <= {0.0, 1.0}
    # a cell whose code equals anchor j is annotated j
    net.anchors = net.anchors.clone()
    with torch.no_grad():
        for layer in net.net:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.zero_()
                layer.bias.zero_()
        net.net[-1].bias.copy_((net.anchors[2] * 2 - 1) * 10)  # logits point at anchor 2
    assert net.annotate(x).tolist() == [2] * 10
    # the loss is lower at the right anchor
    y_right, y_wrong = torch.full((10,), 2), torch.zeros(10, dtype=torch.long)
    study = torch.zeros(10, dtype=torch.long)
    assert net.training_loss(Batch(x, y_right, study)) < net.training_loss(Batch(x, y_wrong, study))


def test_semi_hard_triplets_respect_studies_and_the_ontology():
    # 1-D embeddings: anchor 0 (type 0, study 0); positive 1 (type 0, study 1); cell 2 same
    # type and study as the anchor (never a positive); cell 3 of type 1 related to type 0
    # (never a negative) sits nearest; cell 4 of type 2 is the only admissible negative.
    emb = torch.tensor([[0.0], [0.5], [0.1], [0.2], [0.6]])
    y = torch.tensor([0, 0, 0, 1, 2])
    study = torch.tensor([0, 1, 0, 1, 1])
    related = torch.eye(3, dtype=torch.bool)
    related[0, 1] = related[1, 0] = True
    loss, n = semi_hard_triplet_loss(emb, y, study, related, margin=0.2)
    # pairs: (0,1), (1,0), (2,1), (1,2); negatives only cell 4. Hand-computed:
    # (0,1): d_ap .5, d_an .6 -> .1; (1,0): .5, .1 -> .6; (2,1): .4, .5 -> .1; (1,2): .4, .1 -> .5
    assert n == 4
    assert float(loss) == pytest.approx((0.1 + 0.6 + 0.1 + 0.5) / 4, abs=1e-5)
    # without the study rule, cells 0 and 2 also pair up
    _, n_any = semi_hard_triplet_loss(emb, y, study, related, margin=0.2, cross_study=False)
    assert n_any == 6


def test_related_matrix_from_the_ontology():
    rel = related_matrix(["CL:0000236", "CL:0000542", "CL:0000576"], FakeOntology())
    assert rel.tolist() == [[True, True, False], [True, True, False], [False, False, True]]
    assert related_matrix(["a", "b"], None) is None


def test_siamese_pairs_cover_both_kinds():
    y = torch.tensor([0, 0, 1, 1, 2, 2, 2, 0])
    partner, same = draw_partners(y, 0.5, torch.Generator().manual_seed(0))
    assert (partner != torch.arange(8)).all()
    np.testing.assert_array_equal(same.numpy(), (y == y[partner]).float().numpy())
    assert 0 < float(same.mean()) < 1
    # fixed generator: the same pairs each time
    again, _ = draw_partners(y, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(partner, again)


def test_input_normalisations():
    X = sp.csr_matrix(np.array([[0, 2, 4], [0, 0, 0], [3, 0, 1]], dtype=np.float32))
    np.testing.assert_allclose(max_scaled(X).toarray(), [[0, 0.5, 1], [0, 0, 0], [1, 0, 1 / 3]])
    np.testing.assert_array_equal(normalise_input(X, "log_normalised").toarray(), X.toarray())
    np.testing.assert_allclose(normalise_input(X, "log1p").toarray(), np.log1p(X.toarray()))
    with pytest.raises(InputError, match="normalisation"):
        normalise_input(X, "zscore")


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    return write_atlas(tmp_path_factory.mktemp("atlas") / "atlas.h5ad")


@pytest.mark.parametrize("name", ["dense", "siamese", "triplet", "deephash", "sclstm"])
def test_every_model_trains_loads_and_separates_types(atlas, tmp_path, name):
    import anndata as ad

    from scatlas.evaluate.metrics import evaluate_embeddings

    info = train_model(
        atlas,
        name,
        tmp_path / name,
        params={**SMALL[name], "sampling": "balanced"},
        device="cpu",
        ontology=FakeOntology(),
        holdout="auto",
    )
    mj = json.loads((tmp_path / name / "model.json").read_text())
    assert mj["metric"] == MODELS[name].metric
    assert mj["normalisation"] == resolve_params(name, SMALL[name])["normalisation"]
    # auto hold-out: of the types in train and query, the one with the fewest training
    # cells (all tie at 50 here: the smallest id)
    assert mj["holdout_types"] == ["CL:0000084"] and "CL:0000084" not in mj["classes"]
    assert mj["train_cells_per_second"] > 0 and info["n_train_cells"] == 150
    net, _ = load_model(tmp_path / name)
    adata = ad.read_h5ad(atlas)
    obs = adata.obs
    X = normalise_input(adata.X, mj["normalisation"])
    ref = ((obs["split"] == "train") & obs["cl_id"].isin(mj["classes"])).to_numpy()
    qry = ((obs["split"] == "query") & obs["cl_id"].isin(mj["classes"])).to_numpy()
    novel = ((obs["split"] == "query") & obs["cl_id"].isin(["CL:0000084", NOVEL[0]])).to_numpy()
    res = evaluate_embeddings(
        embed(net, X[np.flatnonzero(ref)]),
        obs["cl_id"].to_numpy()[ref],
        embed(net, X[np.flatnonzero(qry)]),
        obs["cl_id"].to_numpy()[qry],
        k=5,
        novel=embed(net, X[np.flatnonzero(novel)]),
    )
    # three well-separated known types in an unseen study: far above chance (1/3)
    assert res["accuracy"] > 0.8, (name, res["accuracy"])
    assert res["novelty_auroc"] is not None and res["n_novel"] == 50
    if name == "triplet":
        emb = embed(net, X[:10])
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    if name == "deephash":
        assert set(np.unique(embed(net, X[:20])).tolist()) <= {0.0, 1.0}


def test_training_context_reaches_the_models():
    net = build_model(
        MODELS["triplet"].architecture_from_params(
            resolve_params("triplet", {"hidden": [4, 4, 4], "embedding_dim": 2}),
            n_genes=3,
            n_classes=2,
        )
    )
    net.prepare_training(TrainingContext(np.array([5, 5]), np.ones((2, 2), bool), n_studies=1))
    assert net.related.all() and net._cross_study is False  # one study: any positive
    assert "related" not in net.state_dict()  # training-only, not saved
