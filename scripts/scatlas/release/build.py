"""A reference from a user's own labelled cells, in one call (``scatlas build-reference``).

labelled files → atlas (:mod:`scatlas.atlas.labelled`: labels, studies, split) → the
models (sizes suited to the data) → evaluation against the baselines and CellTypist
(study-held-out with two or more studies, else a stated cell split) → the best model by
the evaluation → a published release that ``scatlas query`` uses. Intermediate results stay
in ``workdir`` (``atlas/``, ``models/``, ``evaluation/`` with its report).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scatlas.atlas.labelled import LabelledInput, labelled_atlas
from scatlas.evaluate.metrics import evaluate
from scatlas.models import model_class
from scatlas.models.release_model import release_model
from scatlas.models.trainer import train_model
from scatlas.release.publish import publish_release
from scatlas.release.record import next_version
from scatlas.settings import EvaluateSettings, PublishSettings, TrainSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildSettings:
    """What ``build_reference`` does beyond its inputs (defaults suit a few thousand cells)."""

    models: tuple[str, ...] = ("dense",)
    label_kind: str = "auto"
    normalised: bool = False
    min_cells_per_type: int = 10
    version: str | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    celltypist: bool = True
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per model, overrides


def suited_params(model: str, n_train: int, n_genes: int, normalised: bool) -> dict[str, Any]:
    """Model parameters that suit ``n_train`` training cells over ``n_genes`` genes: batch
    sizes a small set can fill, layers no wider than the input allows, the triplet weight
    and margin at which the triplet model does not collapse on small sets, log1p-CP10k
    input for the siamese model (measured: ``benchmarks/eval_real.py``)."""
    batch = int(np.clip(n_train // 16, 32, 256))
    width = int(min(1136, max(64, n_genes // 2)))
    params: dict[str, Any] = {
        "dense": {"hidden": [width, min(100, width)], "dropout": 0.1, "lr": 1e-3},
        # MapCell's max scaling collapsed on CEL-seq2 cell lines (kNN accuracy 0.18 against
        # PCA's 0.99: a few very high counts squash every other gene towards 0); on
        # log1p-CP10k input the same network reached 0.99 (benchmarks/eval_real.py sets)
        "siamese": {"lr": 1e-3, "normalisation": "log1p_cp10k"},
        "triplet": {
            "hidden": [min(512, width)] * 3,
            "triplet_weight": 0.5,
            "margin": 0.2,
        },
        "deephash": {"hidden": [min(512, width), 256, 128, 128], "bits": 32, "lr": 1e-3},
    }.get(model, {})
    if model == "siamese":  # pairs come from the batch: small batches starved it (0.85 at 43)
        batch = max(batch, 128)
    params = {**params, "batch_size": batch, "epochs": 50, "patience": 5}
    if normalised:
        params["normalisation"] = "log_normalised"  # the values are used as they are
    return params


def build_reference(
    inputs: list[LabelledInput],
    publish_dir: Path,
    *,
    workdir: Path | None = None,
    ontology_obo: str | Path | None = None,
    settings: BuildSettings | None = None,
) -> Path:
    """Build and publish a reference from ``inputs``; returns the release folder."""
    cfg = settings or BuildSettings()
    for name in cfg.models:
        model_class(name)  # an unknown model fails before any work
    publish_dir = Path(publish_dir)
    work = Path(workdir) if workdir else publish_dir.parent / f"{publish_dir.name}-build"
    from scatlas.ontology import load_ontology
    from scatlas.ontology.releases import ontology_file

    obo = ontology_file(ontology_obo)

    ontology = load_ontology(obo)
    atlas_h5ad = work / "atlas" / "atlas.h5ad"
    atlas = labelled_atlas(
        inputs,
        atlas_h5ad,
        label_kind=cfg.label_kind,
        ontology=ontology,
        normalised=cfg.normalised,
        min_cells_per_type=cfg.min_cells_per_type,
        seed=cfg.seed,
    )
    plain = atlas.uns["scatlas"]["label_kind"] == "plain"
    n_train = int(((atlas.obs["split"] == "train") & atlas.obs["trainable"]).sum())
    model_dirs, train_params = {}, {}
    for name in cfg.models:
        params = {
            **suited_params(name, n_train, atlas.n_vars, cfg.normalised),
            **cfg.params.get(name, {}),
        }
        train_params[name] = params
        log.info("training %s on %d cells: %s", name, n_train, params)
        train_model(
            atlas_h5ad,
            name,
            work / "models" / name,
            params=params,
            seed=cfg.seed,
            device=cfg.device,
            threads=cfg.threads,
            ontology=None if plain else ontology,
        )
        model_dirs[name] = work / "models" / name
    evaluate(
        atlas_h5ad,
        model_dirs,
        work / "evaluation",
        settings=EvaluateSettings(novelty_holdout=None, celltypist=cfg.celltypist, plot="pca"),
        ontology=None if plain else ontology,
        device=cfg.device,
    )
    release_model(
        atlas_h5ad=atlas_h5ad,
        model_dirs=model_dirs,
        metrics_tsv=work / "evaluation" / "metrics.tsv",
        out_dir=work / "models" / "release",
        publish=PublishSettings(model="auto"),
        train=TrainSettings(seed=cfg.seed, device=cfg.device, **train_params),
        ontology=None if plain else ontology,
        threads=cfg.threads,
    )
    return publish_release(
        atlas_h5ad=atlas_h5ad,
        model_dir=work / "models" / "release",
        evaluation_dir=work / "evaluation",
        de_dir=None,
        ontology_obo=obo,
        publish_dir=publish_dir,
        version=cfg.version or next_version(publish_dir),
        device=cfg.device,
    )
