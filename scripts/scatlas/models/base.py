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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn


@dataclass
class Batch:
    """One minibatch: inputs, class indices and study indices of the cells."""

    x: torch.Tensor
    y: torch.Tensor
    study: torch.Tensor


@dataclass
class TrainingContext:
    """What some models need to know of the training data beyond the batches.

    ``class_counts``: training cells per class index; ``related``: (classes x classes) bool,
    True where two classes are the same or one is an ontology ancestor of the other (never
    a triplet negative); ``n_studies``: distinct training studies; ``extra``: the training
    rows (``train_X``, normalised CSR) and class indices (``train_y``), for models that keep
    some training cells (ScLSTM's kernel landmarks).
    """

    class_counts: np.ndarray
    related: np.ndarray | None = None
    n_studies: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


class EmbeddingModel(nn.Module):
    """Base class of the registered models."""

    #: registry name, also stored as ``architecture["kind"]``
    kind: ClassVar[str] = ""
    #: distance under which the embeddings are compared (recorded in ``model.json``):
    #: ``euclidean``, ``cosine`` (rows are L2-normalised, so Euclidean ranks the same) or
    #: ``hamming`` (0/1 codes, so squared Euclidean equals Hamming)
    metric: ClassVar[str] = "euclidean"
    #: whether ``embed`` takes ``SparseRows`` (its first layer is an ``InputLinear``)
    sparse_input: ClassVar[bool] = False
    #: model-specific run parameters and their defaults (merged with the trainer's)
    default_params: ClassVar[dict[str, Any]] = {}
    #: constructor keywords (besides ``n_genes``, ``n_classes``) taken from the run
    #: parameters, each with the conversion it needs; the constructor stores them in
    #: ``self._arch`` with ``kind``, ``n_genes`` and ``n_classes``
    arch_params: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    _arch: dict[str, Any]

    @classmethod
    def architecture_from_params(
        cls, params: dict[str, Any], *, n_genes: int, n_classes: int
    ) -> dict[str, Any]:
        kwargs = {key: convert(params[key]) for key, convert in cls.arch_params.items()}
        return cls(n_genes, n_classes, **kwargs).architecture

    @classmethod
    def from_architecture(cls, architecture: dict[str, Any]) -> EmbeddingModel:
        """Rebuild from ``model.json``; keys an older file lacks take the constructor's
        defaults."""
        kwargs = {key: architecture[key] for key in cls.arch_params if key in architecture}
        return cls(architecture["n_genes"], architecture["n_classes"], **kwargs)

    @property
    def architecture(self) -> dict[str, Any]:
        return dict(self._arch, hidden=list(self._arch["hidden"]))

    @property
    def embedding_dim(self) -> int:
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def prepare_training(self, context: TrainingContext) -> None:
        """Take what the loss needs from the training data (non-persistent buffers, so the
        saved state dict does not depend on it, unless the model embeds with it: ScLSTM's
        landmarks). Default: nothing."""

    def training_loss(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def annotate(self, x: torch.Tensor) -> torch.Tensor | None:
        """The model's own class index per cell (a classifier head, the nearest anchor), or
        None when the model only embeds (annotation is then a kNN vote)."""
        return None

    def pretrain_loss(self, batch: Batch) -> torch.Tensor | None:
        """Unsupervised pretraining objective (None: the model has none)."""
        return None

    def validation_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mean loss over the batch and predicted class indices (None if not a classifier)."""
        raise NotImplementedError
