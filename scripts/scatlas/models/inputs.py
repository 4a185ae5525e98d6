"""The input transforms a model may be trained on; the name is recorded in ``model.json``.

* ``log1p_cp10k``: counts scaled to 10,000 per cell, then ``log1p`` (the default; scQuery,
  SCimilarity, scDeepHash);
* ``max_scaled``: each cell divided by its largest value, so values lie in [0, 1] (MapCell);
* ``log1p``: ``log(counts + 1)`` without scaling per cell (ScLSTM's L);
* ``log_normalised``: the values are already log-normalised by their authors and are used as
  they are (for data published only that way, e.g. the pancreas sets).

Every transform keeps the matrix sparse (CSR float32); all-zero rows stay zero.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from scatlas.errors import InputError
from scatlas.models.normalize import log1p_cp10k

INPUT_NORMALISATIONS = ("log1p_cp10k", "max_scaled", "log1p", "log_normalised")


def max_scaled(X) -> sp.csr_matrix:
    """Each row divided by its maximum (rows whose maximum is <= 0 stay as they are)."""
    csr = sp.csr_matrix(X, dtype=np.float32, copy=True)
    csr.sum_duplicates()
    peak = np.asarray(csr.max(axis=1).todense(), dtype=np.float64).ravel()
    scale = np.where(peak > 0, 1.0 / np.where(peak > 0, peak, 1.0), 1.0)
    row_of = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    csr.data = (csr.data * scale[row_of]).astype(np.float32)
    return csr


def normalise_input(X, normalisation: str) -> sp.csr_matrix:
    """Apply the named input transform to raw counts (or, for ``log_normalised``, to values
    that are already log-normalised)."""
    if normalisation == "log1p_cp10k":
        return log1p_cp10k(X)
    if normalisation == "max_scaled":
        return max_scaled(X)
    if normalisation == "log1p":
        csr = sp.csr_matrix(X, dtype=np.float32, copy=True)
        csr.data = np.log1p(csr.data)
        return csr
    if normalisation == "log_normalised":
        return sp.csr_matrix(X, dtype=np.float32, copy=True)
    raise InputError(
        f"unknown input normalisation {normalisation!r}; use one of {list(INPUT_NORMALISATIONS)}",
        field="normalisation",
    )
