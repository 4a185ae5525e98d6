"""scDeepHash: K-bit binary codes pulled towards Hadamard anchors of the cell types.

The M training types get anchors from a Sylvester Hadamard matrix H_K (K a power of two
>= M; with ``bits: auto`` the smallest, 2^(n-1) < M <= 2^n); row j of H_K, with -1 -> 0, is
type j's anchor, and any two anchors differ in exactly K/2 bits.

Network: five fully connected layers (ReLU between), sigmoid output h in (0, 1)^K. Loss =
L_CA + lambda * L_Q:

* L_CA: binary cross-entropy between h_i and its type's anchor, each cell weighted by the
  class-balanced factor ``(1 - beta) / (1 - beta^n_j)`` (effective number of samples, n_j
  the type's training cells; the weights are scaled to average 1 over the types);
* L_Q (Cauchy quantisation): ``log(1 + sum_k (1 - |2 h_ik - 1|) / gamma)`` per cell, the
  Hamming distance of ``|2h - 1|`` to the all-ones code relaxed to L1.

The embedding is the binary code ``h > 0.5`` as 0/1 floats, so squared Euclidean distance
between codes is their Hamming distance (``metric: hamming``). Annotation by the closest
anchor in Hamming space (``validation_step``, ``annotate``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scatlas.models.base import Batch, EmbeddingModel, TrainingContext
from scatlas.models.sparse_input import InputLinear


def hadamard(k: int) -> np.ndarray:
    """Sylvester Hadamard matrix H_k (k a power of two), entries +-1."""
    if k < 1 or k & (k - 1):
        raise ValueError(f"Hadamard size must be a power of two, got {k}")
    h = np.ones((1, 1), dtype=np.int8)
    while h.shape[0] < k:
        h = np.block([[h, h], [h, -h]])
    return h


def code_bits(n_classes: int, bits: int | str = "auto") -> int:
    """K for ``n_classes`` types: ``auto`` is the smallest power of two >= n_classes."""
    need = 1 << max(0, int(np.ceil(np.log2(max(n_classes, 1)))))
    if bits == "auto":
        return need
    k = int(bits)
    if k < need or k & (k - 1):
        raise ValueError(f"bits must be a power of two >= {need} for {n_classes} types, got {k}")
    return k


def class_balanced_weights(counts: np.ndarray, beta: float) -> np.ndarray:
    """Cui et al.'s effective-number weights ``(1 - beta) / (1 - beta^n)``, mean 1."""
    counts = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    w = (1.0 - beta) / (1.0 - np.power(beta, counts))
    return w / w.mean()


class DeepHashNetwork(EmbeddingModel):
    kind: ClassVar[str] = "deephash"
    sparse_input: ClassVar[bool] = True
    metric: ClassVar[str] = "hamming"
    default_params: ClassVar[dict[str, Any]] = {
        "hidden": [1024, 512, 256, 128],
        "bits": "auto",
        "beta": 0.9999,
        "gamma": 20.0,
        "quantisation_weight": 1e-4,
        "normalisation": "log1p_cp10k",
        "lr": 1e-5,
        "weight_decay": 5e-4,
        "batch_size": 128,
    }

    arch_params: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "hidden": list,
        "bits": lambda bits: bits,  # "auto" or a whole number
        "beta": float,
        "gamma": float,
        "quantisation_weight": float,
    }

    def __init__(
        self,
        n_genes: int,
        n_classes: int,
        hidden: list[int] | tuple[int, ...] = (1024, 512, 256, 128),
        bits: int | str = "auto",
        beta: float = 0.9999,
        gamma: float = 20.0,
        quantisation_weight: float = 1e-4,
    ):
        super().__init__()
        k = code_bits(n_classes, bits)
        if not 0 < beta < 1 or gamma <= 0:
            raise ValueError("beta must be in (0, 1) and gamma > 0")
        self._arch = {
            "kind": self.kind,
            "n_genes": int(n_genes),
            "n_classes": int(n_classes),
            "hidden": [int(h) for h in hidden],
            "bits": k,
            "beta": float(beta),
            "gamma": float(gamma),
            "quantisation_weight": float(quantisation_weight),
        }
        layers: list[nn.Module] = []
        width = int(n_genes)
        for h in hidden:
            layers += [(nn.Linear if layers else InputLinear)(width, int(h)), nn.ReLU()]
            width = int(h)
        layers.append((nn.Linear if layers else InputLinear)(width, k))
        self.net = nn.Sequential(*layers)
        anchors = (hadamard(k)[: int(n_classes)] > 0).astype(np.float32)
        self.register_buffer("anchors", torch.from_numpy(anchors), False)
        self.register_buffer("class_weight", torch.ones(int(n_classes)), False)

    @property
    def embedding_dim(self) -> int:
        return int(self._arch["bits"])

    def prepare_training(self, context: TrainingContext) -> None:
        w = class_balanced_weights(context.class_counts, self._arch["beta"])
        self.class_weight = torch.from_numpy(w.astype(np.float32)).to(self.anchors.device)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x).float())

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return (self.probabilities(x) > 0.5).float()

    def annotate(self, x: torch.Tensor) -> torch.Tensor:
        """Class index of the closest anchor in Hamming space (ties: the lower index)."""
        codes = self.embed(x)
        hamming = torch.cdist(codes, self.anchors, p=1)
        return hamming.argmin(dim=1)

    def training_loss(self, batch: Batch) -> torch.Tensor:
        logits = self.net(batch.x).float()
        target = self.anchors[batch.y]
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(1)
        l_ca = (self.class_weight[batch.y] * bce).mean()
        h = torch.sigmoid(logits)
        relaxed = (1.0 - (2.0 * h - 1.0).abs()).sum(1)
        l_q = torch.log1p(relaxed / self._arch["gamma"]).mean()
        return l_ca + self._arch["quantisation_weight"] * l_q

    def validation_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.training_loss(batch), self.annotate(batch.x)
