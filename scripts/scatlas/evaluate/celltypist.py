"""CellTypist (logistic regression, PyPI ``celltypist``) as an annotation peer.

It is trained on the same reference cells as the embeddings (log1p of counts per 10,000, as
CellTypist expects) and predicts the query cells; the fit and the prediction are timed. No
pretrained CellTypist model is used (they would need a download). When the package is not
installed the peer is reported as unavailable with the reason, and evaluation goes on.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _multi_class_shim() -> Iterator[None]:
    """Within the block, celltypist's training module sees a LogisticRegression that accepts
    ``multi_class`` (stored, not used)."""
    import sys

    from sklearn.linear_model import LogisticRegression

    class _LogisticRegression(LogisticRegression):
        def __init__(self, *, multi_class: str | None = None, **kwargs: Any):
            super().__init__(**kwargs)
            self.multi_class = multi_class

    module = sys.modules["celltypist.train"]
    original = module.LogisticRegression
    module.LogisticRegression = _LogisticRegression
    try:
        yield
    finally:
        module.LogisticRegression = original


def celltypist_available() -> tuple[bool, str]:
    try:
        import celltypist  # noqa: F401
    except ImportError as exc:
        return False, f"celltypist is not installed ({exc}); pip install 'scatlas[eval]'"
    return True, ""


def run_celltypist(
    ref_log: sp.csr_matrix,
    ref_labels: Sequence[str],
    query_log: sp.csr_matrix,
    genes: Sequence[str],
    *,
    max_iter: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Train CellTypist on the reference, predict the queries.

    Returns ``{"available": True, "solver", "predictions", "fit_seconds",
    "predict_seconds"}`` or
    ``{"available": False, "reason"}``.
    """
    ok, reason = celltypist_available()
    if not ok:
        log.warning("CellTypist peer unavailable: %s", reason)
        return {"available": False, "reason": reason}
    import anndata as ad
    import celltypist

    genes = [str(g) for g in genes]
    labels = np.asarray(ref_labels, dtype=object).astype(str)
    ref = ad.AnnData(X=sp.csr_matrix(ref_log, dtype=np.float32))
    ref.var_names = genes
    qry = ad.AnnData(X=sp.csr_matrix(query_log, dtype=np.float32))
    qry.var_names = genes
    np.random.seed(seed)
    t0 = time.perf_counter()
    solver = "logistic regression"
    try:
        model = celltypist.train(
            ref, labels=labels, check_expression=False, max_iter=max_iter, n_jobs=1
        )
    except TypeError as exc:
        # celltypist 1.7.1 passes LogisticRegression(multi_class="ovr"), which scikit-learn
        # >= 1.8 no longer accepts: train with a LogisticRegression that takes and ignores
        # the argument (the multinomial fit sklearn now always does). Its SGD mode, which
        # runs unpatched, collapses to one class on real data (PBMC: 47% accuracy).
        if "multi_class" not in str(exc):
            raise
        log.info("celltypist %s vs scikit-learn: multi_class shim (multinomial)", exc)
        solver = "logistic regression (multinomial; sklearn has no multi_class)"
        t0 = time.perf_counter()
        with _multi_class_shim():
            model = celltypist.train(
                ref, labels=labels, check_expression=False, max_iter=max_iter, n_jobs=1
            )
    fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = celltypist.annotate(qry, model=model, majority_voting=False)
    predict_seconds = time.perf_counter() - t0
    pred = result.predicted_labels["predicted_labels"].astype(str).to_numpy(dtype=object)
    return {
        "available": True,
        "solver": solver,
        "predictions": pred,
        "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
    }
