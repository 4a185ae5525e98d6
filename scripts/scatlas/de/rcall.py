"""Calling R functions of the DE methods through rpy2: counts in, a gene table out.

R is started once per process (`scatlas.de.rbridge`); each method is an R function defined
once and cached. R errors become `RError` with R's own message, so a caller can mark one
term "not tested" and go on; a missing R, rpy2 or package is `RUnavailable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from scatlas.de.rbridge import RUnavailable, r_package, robjects
from scatlas.errors import ScatlasError

#: R lines both count methods start with: DGEList with "in" against "out", filterByExpr
#: when ``filter``, TMM factors, design ~group (``y`` and ``design`` are then defined)
DGE_PRELUDE = """
  y <- edgeR::DGEList(counts = counts, group = factor(group, levels = c("out", "in")))
  if (filter) {
    keep <- edgeR::filterByExpr(y)
    y <- y[keep, , keep.lib.sizes = FALSE]
  }
  if (nrow(y) == 0) stop("no gene passes filterByExpr")
  y <- edgeR::calcNormFactors(y)
  design <- stats::model.matrix(~group, data = y$samples)
"""


class RError(ScatlasError):
    """R stopped with an error while running a DE method."""


@cache
def r_function(source: str, packages: tuple[str, ...]) -> Any:
    """The R function defined by ``source`` (checked once per process for ``packages``)."""
    for name in packages:
        r_package(name)
    return robjects().r(source)


def call_r(
    fn_source: str,
    packages: tuple[str, ...],
    counts: np.ndarray,
    groups: np.ndarray,
    genes: Sequence[str],
    **kwargs: Any,
) -> pd.DataFrame:
    """Run ``fn(counts, group, ...)`` on a genes x samples count matrix; ``group`` is
    "out"/"in" per sample. The R function returns a data.frame whose columns come back
    as a DataFrame (the ``gene`` column as str, the others as float)."""
    ro = robjects()
    fn = r_function(fn_source, packages)
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != (len(genes), len(groups)):
        raise ValueError(f"counts {counts.shape} for {len(genes)} genes x {len(groups)} samples")
    mat = ro.r["matrix"](ro.FloatVector(counts.ravel(order="F")), nrow=counts.shape[0])
    mat.rownames = ro.StrVector([str(g) for g in genes])
    group = ro.StrVector(np.where(np.asarray(groups, dtype=bool), "in", "out").tolist())
    from rpy2.rinterface_lib.embedded import RRuntimeError

    try:
        res = fn(mat, group, **{k.replace("_", "."): v for k, v in kwargs.items()})
    except RRuntimeError as exc:
        raise RError(f"R error: {str(exc).strip()}") from exc
    out = {}
    for name in res.names:
        col = res.rx2(name)
        out[name] = (
            np.array(list(col), dtype=object).astype(str)
            if name == "gene"
            else np.asarray(col, dtype=np.float64)
        )
    return pd.DataFrame(out)


__all__ = ["RError", "RUnavailable", "call_r", "r_function"]
