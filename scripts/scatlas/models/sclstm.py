"""ScLSTM (Jiang et al. 2023): a kernel over cells read by twin LSTMs, trained on pairs.

Input: ``L = log(A + 1)`` of the counts (``normalisation: log1p``; author log-normalised
values are used as they are). Each cell is described by its row of the kernel
``S = tanh(minmax(L Lᵀ))``: inner products with the *landmark* cells, min-max scaled to
[0, 1] by the range seen in training, then tanh (the "improved sigmoid kernel").

The landmarks are training cells kept in the model (the frozen weight of its first layer, so a query cell's
row has the same columns as a training cell's): all of them when the training set has at
most ``n_landmarks`` cells, which is the paper's n x n kernel, else ``n_landmarks`` cells
drawn round-robin over the types (rare types get landmarks too) and ordered by type. The
kernel is therefore n x m: memory and time grow linearly with the cells embedded, and the
model file holds m x genes floats (4 MB per 1,000 landmarks and 1,000 genes).

Each row of S is standardised (mean 0, sd 1 over the landmarks; ``standardise``, on by
default): without it the rows differ mostly by the cell's library size and the pair head
stays at chance (measured on the cell-line set). A row, cut into steps of ``chunk`` values, is read by an LSTM; its last hidden state is
the cell's representation (the embedding). Twin LSTMs share weights: a pair of cells drawn
inside the minibatch (same type with probability ``p_same``) is scored by a head
(concatenate, dense, ReLU, dense, sigmoid) trained with binary cross-entropy on same /
different type. Clustering the representation is ``scatlas.annotate.clusters``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from scatlas.models.base import Batch, EmbeddingModel, TrainingContext
from scatlas.models.siamese import draw_partners
from scatlas.models.sparse_input import InputLinear, SparseRows

#: training rows used to find the kernel's min-max range (a sample beyond this)
RANGE_SAMPLE = 20_000


def landmark_rows(y: np.ndarray, m: int, seed: int = 0) -> np.ndarray:
    """``m`` row indices drawn round-robin over the classes of ``y`` (shuffled within each
    class; cycling when there are fewer rows than ``m``), ordered by class."""
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    longest = max(len(pool) for pool in pools)
    picked: list[int] = []
    rounds = 0
    while len(picked) < m:
        for pool in pools:
            if rounds < len(pool) or rounds >= longest:  # past every pool's end: cycle
                picked.append(int(pool[rounds % len(pool)]))
        rounds += 1
    rows = np.asarray(picked[:m], dtype=np.int64)
    return rows[np.argsort(y[rows], kind="stable")]


class ScLSTM(EmbeddingModel):
    kind: ClassVar[str] = "sclstm"
    metric: ClassVar[str] = "euclidean"
    sparse_input: ClassVar[bool] = True
    default_params: ClassVar[dict[str, Any]] = {
        "hidden": [64, 64],  # LSTM hidden size (the embedding), width of the pair head
        "n_landmarks": 1024,
        "chunk": 32,
        "p_same": 0.5,
        "standardise": True,
        "normalisation": "log1p",
        "epochs": 50,
        "batch_size": 64,
        "lr": 2e-3,
        "patience": 10,
    }
    arch_params: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "hidden": list,
        "n_landmarks": int,
        "chunk": int,
        "p_same": float,
        "standardise": bool,
    }

    def __init__(
        self,
        n_genes: int,
        n_classes: int,
        hidden: list[int] | tuple[int, ...] = (64, 64),
        n_landmarks: int = 1024,
        chunk: int = 32,
        p_same: float = 0.5,
        standardise: bool = True,
    ):
        super().__init__()
        if len(hidden) != 2 or min(hidden) < 1:
            raise ValueError(f"hidden must be [lstm size, head width], got {list(hidden)}")
        if n_landmarks < 2 or chunk < 1 or not 0 < p_same < 1:
            raise ValueError("n_landmarks must be >= 2, chunk >= 1 and p_same in (0, 1)")
        self._arch = {
            "kind": self.kind,
            "n_genes": int(n_genes),
            "n_classes": int(n_classes),
            "hidden": [int(h) for h in hidden],
            "n_landmarks": int(n_landmarks),
            "chunk": int(chunk),
            "p_same": float(p_same),
            "standardise": bool(standardise),
        }
        # the landmarks are the weight of a frozen first layer: x @ landmarks.T, which takes
        # sparse rows as the other models' first layers do
        self.inner = InputLinear(int(n_genes), int(n_landmarks), bias=False)
        self.inner.weight.requires_grad_(False)
        self.register_buffer("kernel_range", torch.tensor([0.0, 1.0]))
        self.lstm = nn.LSTM(int(chunk), int(hidden[0]), batch_first=True)
        self.head = nn.Sequential(
            nn.Linear(2 * int(hidden[0]), int(hidden[1])), nn.ReLU(), nn.Linear(int(hidden[1]), 1)
        )

    @property
    def embedding_dim(self) -> int:
        return int(self._arch["hidden"][0])

    @property
    def landmarks(self) -> torch.Tensor:
        """The landmark cells' normalised expression (landmarks x genes)."""
        return self.inner.weight

    def prepare_training(self, context: TrainingContext) -> None:
        """Keep the landmark cells of the training data and the kernel's range over it."""
        X, y = context.extra.get("train_X"), context.extra.get("train_y")
        if X is None or y is None:
            raise ValueError("sclstm needs the training rows (TrainingContext.extra train_X/y)")
        rows = landmark_rows(np.asarray(y), self._arch["n_landmarks"])
        dense = X[rows].toarray() if sp.issparse(X) else np.asarray(X[rows])
        with torch.no_grad():
            self.landmarks.copy_(torch.as_tensor(dense, dtype=torch.float32))
        sample = np.random.default_rng(1).permutation(X.shape[0])[:RANGE_SAMPLE]
        lo, hi = np.inf, -np.inf
        for start in range(0, len(sample), 2048):
            part = X[np.sort(sample[start : start + 2048])]
            part = part.toarray() if sp.issparse(part) else np.asarray(part)
            inner = torch.as_tensor(part, dtype=torch.float32).to(self.landmarks) @ self.landmarks.T
            lo, hi = min(lo, float(inner.min())), max(hi, float(inner.max()))
        self.kernel_range.copy_(torch.tensor([lo, max(hi, lo + 1e-6)]))

    def kernel_rows(self, x: torch.Tensor | SparseRows) -> torch.Tensor:
        """S = tanh of the inner products with the landmarks, min-max scaled (clipped to
        [0, 1] for cells outside the training range)."""
        inner = self.inner(x if isinstance(x, SparseRows) else x.float())
        lo, hi = self.kernel_range[0], self.kernel_range[1]
        return torch.tanh(((inner - lo) / (hi - lo)).clamp(0.0, 1.0))

    def embed(self, x: torch.Tensor | SparseRows) -> torch.Tensor:
        s = self.kernel_rows(x)
        if self._arch["standardise"]:
            s = (s - s.mean(1, keepdim=True)) / (s.std(1, keepdim=True) + 1e-6)
        chunk = self._arch["chunk"]
        pad = (-s.shape[1]) % chunk
        steps = F.pad(s, (0, pad)).reshape(s.shape[0], -1, chunk)
        _, (h, _) = self.lstm(steps)
        return h[-1]

    def pair_logits(
        self, batch: Batch, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Same-type logits of the batch's pairs and the 0/1 targets."""
        emb = self.embed(batch.x)
        partner, same = draw_partners(batch.y, self._arch["p_same"], generator)
        logits = self.head(torch.cat([emb, emb[partner]], dim=1)).squeeze(1)
        return logits, same

    def training_loss(self, batch: Batch) -> torch.Tensor:
        logits, same = self.pair_logits(batch)
        return F.binary_cross_entropy_with_logits(logits.float(), same)

    def validation_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits, same = self.pair_logits(batch, torch.Generator().manual_seed(0))
        return F.binary_cross_entropy_with_logits(logits.float(), same), None

    def same_type_probability(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The pair head's probability that two cells share a type, from their embeddings
        (rows of ``a`` and ``b``); what ``scatlas.annotate.clusters`` splits the tree by."""
        return torch.sigmoid(self.head(torch.cat([a, b], 1)).squeeze(1))


def pair_head(net: EmbeddingModel) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
    """The model's same-type probability over embeddings as a numpy function (None for a
    model without a pair head)."""
    if not isinstance(net, ScLSTM):
        return None
    device = next(net.parameters()).device

    def same_type(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            ta, tb = (
                torch.as_tensor(np.ascontiguousarray(v), dtype=torch.float32, device=device)
                for v in (a, b)
            )
            return net.same_type_probability(ta, tb).cpu().numpy()

    return same_type
