import hashlib

import numpy as np
import pytest
import scipy.sparse as sp

from scatlas.models.normalize import align_to_genes, genes_sha256, log1p_cp10k, looks_like_counts


def test_log1p_cp10k_values_and_zero_rows():
    X = sp.csr_matrix(np.array([[1, 3, 0], [0, 0, 0], [5, 0, 5]], dtype=np.int32))
    before = X.toarray().copy()
    out = log1p_cp10k(X)
    assert sp.isspmatrix_csr(out) and out.dtype == np.float32
    expected = np.log1p(np.array([[2500, 7500, 0], [0, 0, 0], [5000, 0, 5000]], dtype=np.float64))
    np.testing.assert_allclose(out.toarray(), expected, rtol=1e-6)
    assert out[1].nnz == 0
    np.testing.assert_array_equal(X.toarray(), before)  # input untouched


def test_log1p_cp10k_dense_input_matches_sparse():
    rng = np.random.default_rng(0)
    dense = rng.poisson(2.0, (6, 10)).astype(np.float32)
    np.testing.assert_allclose(
        log1p_cp10k(dense).toarray(), log1p_cp10k(sp.csr_matrix(dense)).toarray()
    )


def test_genes_sha256_is_order_sensitive():
    assert genes_sha256(["a", "b"]) == hashlib.sha256(b"a\nb").hexdigest()
    assert genes_sha256(["a", "b"]) != genes_sha256(["b", "a"])


def test_align_to_genes_reorders_and_zero_fills():
    X = sp.csr_matrix(np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.float32))
    out, n = align_to_genes(X, ["g2", "g1", "x", "g2"], ["g1", "g2", "g3"])
    assert n == 2
    assert out.shape == (2, 3) and out.dtype == np.float32
    # g1 <- column 1, g2 <- first "g2" (column 0), g3 missing -> 0
    np.testing.assert_array_equal(out.toarray(), [[2, 1, 0], [6, 5, 0]])


def test_align_to_genes_checks_shapes():
    with pytest.raises(ValueError, match="columns"):
        align_to_genes(np.zeros((2, 3)), ["a", "b"], ["a"])
    with pytest.raises(ValueError, match="duplicate"):
        align_to_genes(np.zeros((2, 2)), ["a", "b"], ["a", "a"])


def test_looks_like_counts():
    assert looks_like_counts(sp.csr_matrix(np.array([[0, 2], [7, 0]], dtype=np.float32)))
    assert not looks_like_counts(log1p_cp10k(np.array([[1, 2], [3, 4]])))
    assert not looks_like_counts(np.array([[-1.0, 2.0]]))
