"""Reading the atlas for the model stages: checked obs columns and the cell selections."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from scatlas.errors import InputError

REQUIRED_OBS = ("split", "cl_id", "trainable")
log = logging.getLogger(__name__)

_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n", ""}


def read_atlas(path: str | os.PathLike, required: tuple[str, ...] = REQUIRED_OBS) -> ad.AnnData:
    """Read ``atlas.h5ad``; InputError naming the file when it is unreadable or lacks a column."""
    path = Path(path)
    if not path.is_file():
        raise InputError("atlas file is missing", path=str(path))
    try:
        adata = ad.read_h5ad(path)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InputError(f"cannot read the atlas: {exc}", path=str(path)) from exc
    for col in required:
        if col not in adata.obs.columns:
            raise InputError("atlas obs lacks a required column", path=str(path), field=col)
    return adata


def obs_text(obs: pd.DataFrame, col: str) -> np.ndarray:
    """A column as strings, missing values as ""; all "" when the column is absent."""
    if col not in obs.columns:
        return np.full(len(obs), "", dtype=object)
    return obs[col].astype(object).where(obs[col].notna(), "").astype(str).to_numpy(dtype=object)


def obs_bool(obs: pd.DataFrame, col: str, path: str | None = None) -> np.ndarray:
    """A boolean column, also when it was stored as text ("True"/"False", "1"/"0")."""
    values = obs[col]
    if values.dtype == bool:
        return values.to_numpy()
    text = obs_text(obs, col)
    lowered = np.char.lower(text.astype(str))
    bad = ~np.isin(lowered, sorted(_TRUE | _FALSE))
    if bad.any():
        raise InputError(f"not a boolean: {text[bad][0]!r}", path=path, field=col)
    return np.isin(lowered, sorted(_TRUE))


@dataclass
class Selections:
    """Per-cell labels and the masks the model stages use.

    ``holdout``: cell types kept out of training (and of the evaluation reference) so that
    their query cells test novelty detection.
    """

    cl_id: np.ndarray
    split: np.ndarray
    trainable: np.ndarray
    holdout: tuple[str, ...] = ()

    @property
    def train(self) -> np.ndarray:
        """Trainable, labelled cells of the training studies (the reference of evaluation)."""
        mask = (self.split == "train") & self.trainable & (self.cl_id != "")
        if self.holdout:
            mask &= ~np.isin(self.cl_id, list(self.holdout))
        return mask

    @property
    def train_types(self) -> list[str]:
        return sorted(set(self.cl_id[self.train]))

    def held_out(self, split: str) -> np.ndarray:
        """Trainable cells of ``split`` whose type occurs in training."""
        return (self.split == split) & self.trainable & np.isin(self.cl_id, self.train_types)

    def novel(self, split: str) -> np.ndarray:
        """Labelled cells of ``split`` whose type is absent from training (held out on
        purpose, or only ever seen in held-out studies)."""
        return (self.split == split) & (self.cl_id != "") & ~np.isin(self.cl_id, self.train_types)


def choose_holdout(sel: Selections, spec: str | list[str] | None) -> tuple[str, ...]:
    """The types to hold out for novelty: none (``None``/``[]``), the given ids, or ``auto``:
    of the types with trainable cells in both the train and the query split, the one with the
    fewest training cells (ties: the smaller id), when at least two types remain in training
    and one in the query; deterministic, so training and evaluation agree."""
    if not spec:
        return ()
    base = Selections(sel.cl_id, sel.split, sel.trainable)
    train_types = base.train_types
    if spec != "auto":
        given = [spec] if isinstance(spec, str) else list(spec)
        return tuple(t for t in given if t in train_types)
    query_types = sorted(set(base.cl_id[base.held_out("query")]))
    if len(query_types) < 2 or len(train_types) < 3:
        log.warning("too few types for a novelty hold-out: none held out")
        return ()
    counts = {t: int(np.sum(base.cl_id[base.train] == t)) for t in query_types}
    return (min(query_types, key=lambda t: (counts[t], t)),)


def selections(
    adata: ad.AnnData, path: str | None = None, holdout: str | list[str] | None = None
) -> Selections:
    """The selections of the atlas; ``holdout`` as for ``choose_holdout``."""
    obs = adata.obs
    sel = Selections(
        obs_text(obs, "cl_id"), obs_text(obs, "split"), obs_bool(obs, "trainable", path)
    )
    if holdout:
        sel.holdout = choose_holdout(sel, holdout)
        if sel.holdout:
            log.info("held out of training for novelty: %s", ", ".join(sel.holdout))
    return sel
