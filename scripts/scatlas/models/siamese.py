"""MapCell's siamese network: twin encoders with shared weights, contrastive loss.

Encoder: genes -> 512 -> 512 -> 32 (ReLU, dropout 0.5 between layers); the 32-d output is
the embedding, compared by Euclidean distance D. Inputs are each cell's counts divided by its
maximum (``max_scaled``, MapCell) unless ``normalisation`` says otherwise.

Pairs are drawn inside each minibatch: every cell is an anchor, and its partner is a cell of
the same type with probability ``p_same`` (else, or when the batch has none, a cell of
another type), so pairs span the cell types. Contrastive loss for a pair with Y = 1 (same
type): ``Y * D^2 / 2 + (1 - Y) * max(0, m - D)^2 / 2``, m = ``margin``. Validation pairs come
from a fixed generator, so the validation loss of an epoch does not depend on the RNG state;
a validation pair counts as correct when ``D < threshold`` exactly for same-type pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from scatlas.models.base import Batch, EmbeddingModel
from scatlas.models.sparse_input import InputLinear


def draw_partners(
    y: torch.Tensor, p_same: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Partner index per cell and whether the pair is same-type (float 0/1)."""
    n = len(y)
    dev = y.device
    same = y[:, None] == y[None, :]
    eye = torch.eye(n, dtype=torch.bool, device=dev)
    scores = torch.rand((n, n), generator=generator, device="cpu").to(dev)
    want_same = torch.rand(n, generator=generator, device="cpu").to(dev) < p_same
    cand_same = same & ~eye
    cand_diff = ~same
    has_same, has_diff = cand_same.any(1), cand_diff.any(1)
    use_same = (want_same & has_same) | ~has_diff
    cand = torch.where(use_same[:, None], cand_same, cand_diff)
    cand = cand | (~cand.any(1, keepdim=True) & ~eye)  # a one-cell batch: anything but itself
    partner = torch.where(cand, scores, torch.full_like(scores, -1.0)).argmax(1)
    return partner, (y == y[partner]).float()


class SiameseNetwork(EmbeddingModel):
    kind: ClassVar[str] = "siamese"
    sparse_input: ClassVar[bool] = True
    metric: ClassVar[str] = "euclidean"
    default_params: ClassVar[dict[str, Any]] = {
        "hidden": [512, 512],
        "embedding_dim": 32,
        "dropout": 0.5,
        "margin": 1.0,
        "p_same": 0.5,
        "threshold": 0.5,
        "normalisation": "max_scaled",
        "optimizer": "rmsprop",
    }

    arch_params: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "hidden": list,
        "embedding_dim": int,
        "dropout": float,
        "margin": float,
        "p_same": float,
        "threshold": float,
    }

    def __init__(
        self,
        n_genes: int,
        n_classes: int,
        hidden: list[int] | tuple[int, ...] = (512, 512),
        embedding_dim: int = 32,
        dropout: float = 0.5,
        margin: float = 1.0,
        p_same: float = 0.5,
        threshold: float = 0.5,
    ):
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if margin <= 0 or not 0 < p_same < 1:
            raise ValueError("margin must be > 0 and p_same in (0, 1)")
        self._arch = {
            "kind": self.kind,
            "n_genes": int(n_genes),
            "n_classes": int(n_classes),
            "hidden": [int(h) for h in hidden],
            "embedding_dim": int(embedding_dim),
            "dropout": float(dropout),
            "margin": float(margin),
            "p_same": float(p_same),
            "threshold": float(threshold),
        }
        layers: list[nn.Module] = []
        width = int(n_genes)
        for h in hidden:
            linear = nn.Linear if layers else InputLinear
            layers += [linear(width, int(h)), nn.ReLU(), nn.Dropout(dropout)]
            width = int(h)
        layers.append((nn.Linear if layers else InputLinear)(width, int(embedding_dim)))
        self.encoder = nn.Sequential(*layers)

    @property
    def embedding_dim(self) -> int:
        return int(self._arch["embedding_dim"])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def contrastive(
        self, batch: Batch, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-pair contrastive loss, pair distances and same-type flags."""
        emb = self.embed(batch.x).float()
        partner, same = draw_partners(batch.y, self._arch["p_same"], generator)
        d = F.pairwise_distance(emb, emb[partner], eps=1e-6)
        m = self._arch["margin"]
        loss = same * 0.5 * d.pow(2) + (1 - same) * 0.5 * F.relu(m - d).pow(2)
        return loss, d, same

    def training_loss(self, batch: Batch) -> torch.Tensor:
        return self.contrastive(batch)[0].mean()

    def validation_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        loss, _, _ = self.contrastive(batch, torch.Generator().manual_seed(0))
        return loss.mean(), None

    def pair_accuracy(self, batch: Batch, seed: int = 0) -> float:
        """Share of validation pairs called right (same type exactly when D < threshold)."""
        _, d, same = self.contrastive(batch, torch.Generator().manual_seed(seed))
        return float(((d < self._arch["threshold"]).float() == same).float().mean())
