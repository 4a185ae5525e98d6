"""SCimilarity-style metric learning: triplet loss with ontology-aware negatives, plus a
reconstruction head.

Encoder: genes -> 1024 -> 1024 -> 1024 (Linear, BatchNorm, PReLU, dropout) -> 128, output
L2-normalised (so cosine and Euclidean distance rank alike). A mirrored decoder reconstructs
the input from the embedding. Loss = ``w * triplet + (1 - w) * MSE(reconstruction)``, with
``w = triplet_weight``.

Triplets are mined inside each minibatch:

* anchor a and positive p have the same type and come from **different studies** (when the
  training data has a single study, any other cell of the type: the trainer says so);
* a negative n is neither the same type nor an ontology ancestor or descendant of the
  anchor's type (``TrainingContext.related``);
* semi-hard mining: for each (a, p), the closest negative farther than p (``d_an > d_ap``);
  when there is none, the farthest negative (as in FaceNet / TensorFlow's semi-hard loss).

The triplet loss is the mean of ``max(0, d_ap - d_an + margin)`` over the mined triplets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scatlas.models.base import Batch, EmbeddingModel, TrainingContext
from scatlas.models.sparse_input import InputLinear

log = logging.getLogger(__name__)


def _block(n_in: int, n_out: int, dropout: float, first: bool = False) -> list[nn.Module]:
    linear = InputLinear(n_in, n_out) if first else nn.Linear(n_in, n_out)
    return [linear, nn.BatchNorm1d(n_out), nn.PReLU(), nn.Dropout(dropout)]


def semi_hard_triplet_loss(
    emb: torch.Tensor,
    y: torch.Tensor,
    study: torch.Tensor,
    related: torch.Tensor,
    margin: float,
    cross_study: bool = True,
) -> tuple[torch.Tensor, int]:
    """Mean semi-hard triplet loss over the valid (anchor, positive) pairs of the batch and
    their number (loss 0 with no pair)."""
    d = torch.cdist(emb, emb)
    n = len(y)
    eye = torch.eye(n, dtype=torch.bool, device=emb.device)
    pos = (y[:, None] == y[None, :]) & ~eye
    if cross_study:
        pos &= study[:, None] != study[None, :]
    neg = ~related[y][:, y]  # (anchor, candidate): never the same type nor ancestor/descendant
    a_idx, p_idx = torch.nonzero(pos, as_tuple=True)
    if len(a_idx) == 0:
        return emb.sum() * 0.0, 0
    d_ap = d[a_idx, p_idx]
    d_an = d[a_idx]  # (pairs x n)
    neg_rows = neg[a_idx]
    has_neg = neg_rows.any(1)
    if not bool(has_neg.any()):
        return emb.sum() * 0.0, 0
    big = torch.finfo(d.dtype).max
    farther = neg_rows & (d_an > d_ap[:, None])
    semi = torch.where(farther, d_an, torch.full_like(d_an, big)).min(1).values
    hardest_far = torch.where(neg_rows, d_an, torch.full_like(d_an, -1.0)).max(1).values
    chosen = torch.where(farther.any(1), semi, hardest_far)
    loss = F.relu(d_ap - chosen + margin)[has_neg]
    return loss.mean(), int(has_neg.sum())


class TripletNetwork(EmbeddingModel):
    kind: ClassVar[str] = "triplet"
    sparse_input: ClassVar[bool] = True
    metric: ClassVar[str] = "cosine"
    default_params: ClassVar[dict[str, Any]] = {
        "hidden": [1024, 1024, 1024],
        "embedding_dim": 128,
        "dropout": 0.5,
        "margin": 0.05,
        "triplet_weight": 0.001,
        "cross_study": True,
        "normalisation": "log1p_cp10k",
        "batch_size": 1000,
    }

    arch_params: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "hidden": list,
        "embedding_dim": int,
        "dropout": float,
        "margin": float,
        "triplet_weight": float,
        "cross_study": bool,
    }

    def __init__(
        self,
        n_genes: int,
        n_classes: int,
        hidden: list[int] | tuple[int, ...] = (1024, 1024, 1024),
        embedding_dim: int = 128,
        dropout: float = 0.5,
        margin: float = 0.05,
        triplet_weight: float = 0.001,
        cross_study: bool = True,
    ):
        super().__init__()
        if not 0 <= triplet_weight <= 1:
            raise ValueError(f"triplet_weight must be in [0, 1], got {triplet_weight}")
        if not 0 <= dropout < 1 or margin <= 0:
            raise ValueError("dropout must be in [0, 1) and margin > 0")
        self._arch = {
            "kind": self.kind,
            "n_genes": int(n_genes),
            "n_classes": int(n_classes),
            "hidden": [int(h) for h in hidden],
            "embedding_dim": int(embedding_dim),
            "dropout": float(dropout),
            "margin": float(margin),
            "triplet_weight": float(triplet_weight),
            "cross_study": bool(cross_study),
        }
        enc: list[nn.Module] = []
        width = int(n_genes)
        for h in hidden:
            enc += _block(width, int(h), dropout, first=not enc)
            width = int(h)
        enc.append((nn.Linear if enc else InputLinear)(width, int(embedding_dim)))
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = []
        width = int(embedding_dim)
        for h in reversed(list(hidden)):
            dec += _block(width, int(h), dropout)
            width = int(h)
        dec.append(nn.Linear(width, int(n_genes)))
        self.decoder = nn.Sequential(*dec)
        # all types unrelated but to themselves until prepare_training says otherwise
        self.register_buffer("related", torch.eye(int(n_classes), dtype=torch.bool), False)
        self._cross_study = bool(cross_study)
        self.last_triplets = 0

    @property
    def embedding_dim(self) -> int:
        return int(self._arch["embedding_dim"])

    def prepare_training(self, context: TrainingContext) -> None:
        n = self._arch["n_classes"]
        if context.related is not None:
            rel = np.asarray(context.related, dtype=bool)
            if rel.shape != (n, n):
                raise ValueError(f"related must be {n} x {n}, got {rel.shape}")
            self.related = torch.from_numpy(rel | np.eye(n, dtype=bool)).to(self.related.device)
        self._cross_study = self._arch["cross_study"]
        if self._cross_study and context.n_studies < 2:
            log.warning(
                "triplet: the training cells come from one study, so positives cannot come "
                "from different studies; any other cell of the anchor's type is used"
            )
            self._cross_study = False

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.encoder(x).float(), dim=1)

    def _losses(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(batch.x)
        triplet, n = semi_hard_triplet_loss(
            emb,
            batch.y,
            batch.study,
            self.related,
            self._arch["margin"],
            self._cross_study,
        )
        self.last_triplets = n
        recon = F.mse_loss(self.decoder(emb).float(), batch.x.float())
        return triplet, recon

    def training_loss(self, batch: Batch) -> torch.Tensor:
        triplet, recon = self._losses(batch)
        w = self._arch["triplet_weight"]
        return w * triplet + (1 - w) * recon

    def validation_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.training_loss(batch), None
