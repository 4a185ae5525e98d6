"""The expression model of the demo world.

Each cell type has a profile of molecule proportions: housekeeping genes, a lineage
programme (a random subset of background genes shifted up or down), a few highly
expressed markers, and genes shared between related types. A cell draws its molecules
from its type's profile times gamma noise (negative-binomial counts), times its study's
gene-wise batch factors (log-normal, sigma 0.4). Full-length protocols give reads in
proportion to molecules x transcript length, so fragment counts are length-weighted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scatlas.demo import spec
from scatlas.demo.genome import Genome

BATCH_SIGMA = 0.4
DEPTH_SIGMA = 0.25
CELL_DEPTH_SIGMA = 0.3
DISPERSION = 0.35  # negative-binomial dispersion (1/shape of the gamma noise)


@dataclass
class ExpressionModel:
    gene_ids: list[str]
    symbols: list[str]
    eff_length: np.ndarray  # expected transcript length per gene (isoform mix), bp
    union_length: np.ndarray  # union of exons, bp
    isoform_weights: list[np.ndarray]  # per gene, probabilities of its transcripts
    profiles: dict[str, np.ndarray]  # type key -> molecule proportions (sum 1)

    @property
    def n_genes(self) -> int:
        return len(self.gene_ids)


def build_model(genome: Genome, rng: np.random.Generator) -> ExpressionModel:
    genes = genome.genes
    symbols = [g.symbol for g in genes]
    n = len(genes)
    sym_idx = {s: i for i, s in enumerate(symbols)}

    iso_w = []
    eff = np.zeros(n)
    for i, g in enumerate(genes):
        w = (
            rng.dirichlet(np.full(len(g.transcripts), 4.0))
            if len(g.transcripts) > 1
            else np.ones(1)
        )
        iso_w.append(w)
        eff[i] = float(np.dot(w, [t.length for t in g.transcripts]))

    special = set(spec.named_genes())
    base = np.exp(rng.normal(0.0, 1.2, size=n))
    silent = rng.random(n) < 0.25
    base[silent] *= 0.05
    for s in spec.HOUSEKEEPING:
        base[sym_idx[s]] = rng.uniform(40, 200)
    background = np.array([s not in special for s in symbols])

    profiles: dict[str, np.ndarray] = {}
    for key in spec.CELL_TYPES:
        prof = base.copy()
        programme = background & (rng.random(n) < 0.12)
        prof[programme] *= np.exp(rng.normal(0.0, 1.2, size=int(programme.sum())))
        for other in spec.CELL_TYPES.values():
            for m in other.markers:
                prof[sym_idx[m]] = (
                    rng.uniform(20, 120) if other.key == key else rng.uniform(0.005, 0.04)
                )
        for gname, owners in spec.SHARED_GENES.items():
            prof[sym_idx[gname]] = (
                rng.uniform(10, 60) if key in owners else rng.uniform(0.005, 0.04)
            )
        profiles[key] = prof / prof.sum()

    return ExpressionModel(
        gene_ids=[g.gene_id for g in genes],
        symbols=symbols,
        eff_length=eff,
        union_length=np.array([g.union_length for g in genes], dtype=float),
        isoform_weights=iso_w,
        profiles=profiles,
    )


@dataclass
class Batch:
    gene_factors: np.ndarray
    depth: float


def draw_batch(model: ExpressionModel, rng: np.random.Generator) -> Batch:
    """A study's batch effect: gene-wise log-normal factors and a depth factor."""
    return Batch(
        gene_factors=np.exp(rng.normal(0.0, BATCH_SIGMA, size=model.n_genes)),
        depth=float(np.exp(rng.normal(0.0, DEPTH_SIGMA))),
    )


def library_sizes(n_cells: int, mean: float, batch: Batch, rng: np.random.Generator) -> np.ndarray:
    """Fragments per cell: study depth x per-cell log-normal variation."""
    sizes = (
        mean
        * batch.depth
        * np.exp(rng.normal(-(CELL_DEPTH_SIGMA**2) / 2, CELL_DEPTH_SIGMA, size=n_cells))
    )
    return np.maximum(np.rint(sizes), 20).astype(np.int64)


def sample_counts(
    model: ExpressionModel,
    type_keys: list[str],
    batch: Batch,
    totals: np.ndarray,
    rng: np.random.Generator,
    *,
    length_weighted: bool = True,
) -> np.ndarray:
    """Length-weighted fragment counts per gene (cells x genes, int64), summing to ``totals``;
    ``length_weighted=False`` gives molecules instead (3' tag protocols: one tag per molecule)."""
    prof = np.stack([model.profiles[k] for k in type_keys])
    shape = 1.0 / DISPERSION
    noise = rng.gamma(shape, 1.0 / shape, size=prof.shape)
    rates = prof * batch.gene_factors[None, :] * noise
    if length_weighted:
        rates = rates * model.eff_length[None, :]
    rates /= rates.sum(axis=1, keepdims=True)
    return rng.multinomial(totals, rates)
