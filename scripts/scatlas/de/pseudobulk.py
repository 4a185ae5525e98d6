"""Units of a DE test: pseudobulk samples (counts summed per sample and group) or cells.

A study whose samples hold several cells each (barcoded runs: 10x, Drop-seq) is tested on
pseudobulk samples, one per (sample, group): cells of one sample are not independent
replicates. A study with one cell per sample (plate-based runs, bulk) is tested on its
cells. When pseudobulk would leave fewer than two samples in a group, a count-based test
has no replicate to estimate dispersion from, so the cells are tested instead and the
reason is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Units:
    """Test units: ``counts`` (units x genes, CSR float64), ``groups`` (True = in)."""

    counts: sp.csr_matrix
    groups: np.ndarray
    kind: str  # "pseudobulk" or "cells"
    note: str = ""

    @property
    def n_in(self) -> int:
        return int(self.groups.sum())

    @property
    def n_out(self) -> int:
        return int((~self.groups).sum())


def make_units(
    counts: sp.spmatrix | np.ndarray,
    groups: np.ndarray,
    samples: np.ndarray | None,
    *,
    min_units: int = 2,
) -> Units:
    """Pseudobulk by (sample, group) when samples hold several cells, else cells."""
    X = sp.csr_matrix(counts, dtype=np.float64)
    groups = np.asarray(groups, dtype=bool)
    cells = Units(X, groups, "cells")
    if samples is None:
        return cells
    samples = np.asarray(samples).astype(str)
    _, per_sample = np.unique(samples, return_counts=True)
    if per_sample.max() <= 1:
        return cells
    keys = np.char.add(np.where(groups, "in\t", "out\t"), samples)
    uniq, inverse = np.unique(keys, return_inverse=True)
    agg = sp.csr_matrix(
        (np.ones(len(keys)), (inverse, np.arange(len(keys)))), shape=(len(uniq), len(keys))
    )
    unit_groups = np.char.startswith(uniq.astype(str), "in\t")
    n_in, n_out = int(unit_groups.sum()), int((~unit_groups).sum())
    if n_in < min_units or n_out < min_units:
        return Units(
            cells.counts,
            groups,
            "cells",
            f"pseudobulk would give {n_in} vs {n_out} samples (< {min_units} per group)",
        )
    return Units(sp.csr_matrix(agg @ X), unit_groups, "pseudobulk")
