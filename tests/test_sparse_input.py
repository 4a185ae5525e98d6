"""Sparse batches into the first layer (embedding_bag) give what the dense path gives."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from scatlas.models import MODELS, build_model
from scatlas.models.io import annotate, embed
from scatlas.models.sparse_input import InputLinear, SparseRows
from scatlas.models.trainer import resolve_params

ARCH = {
    "dense": {"hidden": [24, 8]},
    "siamese": {"hidden": [16, 16], "embedding_dim": 8},
    "triplet": {"hidden": [16, 16], "embedding_dim": 8},
    "deephash": {"hidden": [16, 16, 8, 8], "bits": 8},
    "sclstm": {"hidden": [8, 8], "n_landmarks": 12, "chunk": 4},
}


def _csr(n: int, genes: int, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    X = sp.random(n, genes, density=0.1, format="csr", dtype=np.float32, random_state=rng)
    X.data = np.log1p(X.data * 20).astype(np.float32)
    X.data[X.indptr[3] : X.indptr[4]] = 0  # an empty row
    X.eliminate_zeros()
    return X


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_embeds_csr_as_it_embeds_dense(name):
    torch.manual_seed(0)
    arch = MODELS[name].architecture_from_params(
        resolve_params(name, ARCH[name]), n_genes=50, n_classes=3
    )
    net = build_model(arch).eval()
    assert net.sparse_input
    if name == "sclstm":  # its landmarks: training cells, here random rows
        with torch.no_grad():
            net.landmarks.copy_(torch.from_numpy(_csr(12, 50, seed=2).toarray()))
            net.kernel_range.copy_(torch.tensor([0.0, 5.0]))
    X = _csr(40, 50)
    sparse = embed(net, X, batch_size=16)
    dense = embed(net, X.toarray(), batch_size=16)
    np.testing.assert_allclose(sparse, dense, atol=1e-5)
    assert np.array_equal(annotate(net, X) is None, annotate(net, X.toarray()) is None)
    if annotate(net, X) is not None:
        np.testing.assert_array_equal(annotate(net, X), annotate(net, X.toarray()))


def test_input_linear_keeps_nn_linear_weights_and_gradients():
    plain = nn.Linear(30, 5)
    layer = InputLinear(30, 5)
    layer.load_state_dict(plain.state_dict())  # models trained before load unchanged
    X = _csr(12, 30, seed=1)
    rows = SparseRows.from_csr(X)
    dense = torch.from_numpy(X.toarray())
    with torch.no_grad():
        torch.testing.assert_close(layer(rows), plain(dense))
        layer.weight.mul_(2)  # an in-place update invalidates the cached transposed weight
        torch.testing.assert_close(layer(rows), layer(dense))
    layer(rows).sum().backward()
    grad_sparse = layer.weight.grad.clone()
    layer.weight.grad = None
    layer(dense).sum().backward()
    torch.testing.assert_close(grad_sparse, layer.weight.grad)


def test_input_linear_refuses_a_batch_of_another_width():
    with pytest.raises(ValueError, match="30 genes"):
        InputLinear(20, 4)(SparseRows.from_csr(_csr(4, 30)))
