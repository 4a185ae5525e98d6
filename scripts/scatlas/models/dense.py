"""scQuery's dense network: an MLP classifier whose last hidden layer is the embedding.

Input: log1p_cp10k expression of the atlas genes. Hidden layers (default 1136 -> 100, tanh)
with dropout after each, then a linear softmax head over the training cell types (trained
with cross-entropy). The 100-d activation of the last hidden layer is the embedding.

Optional unsupervised pretraining (``pretrain_epochs`` > 0): the encoder is first trained as
an autoencoder (a linear decoder from the embedding back to the genes, MSE) on the training
cells, without labels; then the classifier is trained as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from scatlas.models.base import Batch, EmbeddingModel
from scatlas.models.sparse_input import InputLinear

_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


class DenseClassifier(EmbeddingModel):
    kind: ClassVar[str] = "dense"
    sparse_input: ClassVar[bool] = True
    default_params: ClassVar[dict[str, Any]] = {
        "hidden": [1136, 100],
        "dropout": 0.1,
        "activation": "tanh",
        "normalisation": "log1p_cp10k",
        "pretrain_epochs": 0,
    }

    arch_params: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "hidden": list,
        "dropout": float,
        "activation": str,
        "autoencoder": bool,
    }

    def __init__(
        self,
        n_genes: int,
        n_classes: int,
        hidden: list[int] | tuple[int, ...] = (1136, 100),
        dropout: float = 0.1,
        activation: str = "tanh",
        autoencoder: bool = False,
    ):
        super().__init__()
        if not hidden:
            raise ValueError("the dense model needs at least one hidden layer")
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; use one of {sorted(_ACTIVATIONS)}"
            )
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self._arch = {
            "kind": self.kind,
            "n_genes": int(n_genes),
            "n_classes": int(n_classes),
            "hidden": [int(h) for h in hidden],
            "dropout": float(dropout),
            "activation": activation,
            "autoencoder": bool(autoencoder),
        }
        layers: list[nn.Module] = []
        width = int(n_genes)
        for i, h in enumerate(hidden):
            linear = InputLinear if i == 0 else nn.Linear
            layers += [linear(width, int(h)), _ACTIVATIONS[activation]()]
            if i < len(hidden) - 1:
                layers.append(nn.Dropout(dropout))
            width = int(h)
        self.encoder = nn.Sequential(*layers)
        self.head_dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, int(n_classes))
        self.decoder = nn.Linear(width, int(n_genes)) if autoencoder else None

    @classmethod
    def architecture_from_params(
        cls, params: dict[str, Any], *, n_genes: int, n_classes: int
    ) -> dict[str, Any]:
        # the decoder exists only when the run pretrains the autoencoder
        pretrain = int(params.get("pretrain_epochs", 0)) > 0
        return super().architecture_from_params(
            dict(params, autoencoder=pretrain), n_genes=n_genes, n_classes=n_classes
        )

    @property
    def embedding_dim(self) -> int:
        return int(self._arch["hidden"][-1])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.head(self.head_dropout(self.encoder(x)))

    def training_loss(self, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(self(batch.x), batch.y)

    def annotate(self, x: torch.Tensor) -> torch.Tensor | None:
        return self(x).argmax(dim=1)

    def pretrain_loss(self, batch: Batch) -> torch.Tensor | None:
        if self.decoder is None:
            return None
        return F.mse_loss(self.decoder(self.head_dropout(self.encoder(batch.x))), batch.x)

    def validation_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self(batch.x)
        return F.cross_entropy(logits.float(), batch.y), logits.argmax(dim=1)
