"""Reading the atlas for the model stages: checked obs columns and the cell selections."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from ..errors import InputError

REQUIRED_OBS = ("split", "cl_id", "trainable")
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
    """Per-cell labels and the masks the model stages use."""

    cl_id: np.ndarray
    split: np.ndarray
    trainable: np.ndarray

    @property
    def train(self) -> np.ndarray:
        """Trainable, labelled cells of the training studies (the reference of evaluation)."""
        return (self.split == "train") & self.trainable & (self.cl_id != "")

    @property
    def train_types(self) -> list[str]:
        return sorted(set(self.cl_id[self.train]))

    def held_out(self, split: str) -> np.ndarray:
        """Trainable cells of ``split`` whose type occurs in training."""
        return (self.split == split) & self.trainable & np.isin(self.cl_id, self.train_types)


def selections(adata: ad.AnnData, path: str | None = None) -> Selections:
    obs = adata.obs
    return Selections(
        obs_text(obs, "cl_id"), obs_text(obs, "split"), obs_bool(obs, "trainable", path)
    )
