"""Embedding models: a registry of architectures, one shared trainer, one loader.

``MODELS`` maps a model name (the ``model`` of the config and of ``model.json``, and the
``architecture["kind"]``) to its class; add a model by writing a subclass of
``EmbeddingModel`` and registering it here.
"""

from __future__ import annotations

from typing import Any

from scatlas.errors import InputError
from scatlas.models.base import Batch, EmbeddingModel, TrainingContext
from scatlas.models.deephash import DeepHashNetwork
from scatlas.models.dense import DenseClassifier
from scatlas.models.sclstm import ScLSTM
from scatlas.models.siamese import SiameseNetwork
from scatlas.models.triplet import TripletNetwork

MODELS: dict[str, type[EmbeddingModel]] = {
    cls.kind: cls
    for cls in (DenseClassifier, SiameseNetwork, TripletNetwork, DeepHashNetwork, ScLSTM)
}


def model_class(name: str) -> type[EmbeddingModel]:
    """The registered class for ``name``; InputError naming the known models otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise InputError(
            f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}", field="model"
        ) from None


def build_model(architecture: dict[str, Any]) -> EmbeddingModel:
    """Rebuild a network (untrained) from the ``architecture`` stored in ``model.json``."""
    if "kind" not in architecture:
        raise InputError("architecture has no 'kind'", field="architecture.kind")
    return model_class(str(architecture["kind"])).from_architecture(architecture)


__all__ = [
    "MODELS",
    "Batch",
    "EmbeddingModel",
    "TrainingContext",
    "DenseClassifier",
    "SiameseNetwork",
    "TripletNetwork",
    "DeepHashNetwork",
    "ScLSTM",
    "build_model",
    "model_class",
]
