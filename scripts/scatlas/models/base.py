"""The interface every embedding model implements, so one trainer and one loader serve all.

A model is a ``torch.nn.Module`` that

* is rebuilt from a JSON-serialisable ``architecture`` dict (``from_architecture``), which
  ``architecture_from_params`` derives from the run parameters and the data shape;
* maps a batch of normalised expression rows to an embedding (``embed``);
* defines its own training objective (``training_loss``) and validation figures
  (``validation_step``: loss and, when it can annotate, predicted class indices).

Later models (siamese, triplet, deep hash) only implement these; batches carry the study of
each cell so pair/triplet miners can pick partners from other studies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class Batch:
    """One minibatch: inputs, class indices and study indices of the cells."""

    x: torch.Tensor
    y: torch.Tensor
    study: torch.Tensor


class EmbeddingModel(nn.Module):
    """Base class of the registered models."""

    #: registry name, also stored as ``architecture["kind"]``
    kind: ClassVar[str] = ""
    #: model-specific run parameters and their defaults (merged with the trainer's)
    default_params: ClassVar[dict[str, Any]] = {}

    @classmethod
    def architecture_from_params(
        cls, params: dict[str, Any], *, n_genes: int, n_classes: int
    ) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_architecture(cls, architecture: dict[str, Any]) -> EmbeddingModel:
        raise NotImplementedError

    @property
    def architecture(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def embedding_dim(self) -> int:
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def training_loss(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def validation_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mean loss over the batch and predicted class indices (None if not a classifier)."""
        raise NotImplementedError
