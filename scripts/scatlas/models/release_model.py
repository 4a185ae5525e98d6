"""The model a release publishes: chosen by the evaluation, trained on every type.

The evaluated models may have kept a type out of training (``evaluate.novelty_holdout``) to
measure novelty; a release must not: its model would embed that type's reference cells as
it embeds an unknown type, and query cells of a truly new type would be called that type.
So the chosen model is trained again on every type (same parameters and seed) when it was
trained with a hold-out, and copied as it is otherwise.

``publish.model: auto`` chooses the trained model with the best ``publish.select_by`` figure
of the evaluation (ties: the first in ``models``); a named model is taken as named.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from scatlas.errors import InputError
from scatlas.fileio import atomic_path, atomic_write_text
from scatlas.models.trainer import train_model
from scatlas.settings import PublishSettings, TrainSettings

log = logging.getLogger(__name__)

MODEL_FILES = ("encoder.pt", "model.json", "history.tsv")
CHOICE_FILE = "choice.json"


def choose_model(metrics_tsv: Path, trained: list[str], spec: str, select_by: str) -> dict:
    """``{"model", "chosen_by", "select_by", "scores"}``: ``spec`` when it names a model,
    else (``auto``) the trained model with the highest ``select_by`` in ``metrics_tsv``."""
    if spec != "auto":
        if spec not in trained:
            raise InputError(
                f"publish.model is {spec!r}, which is not among the trained models "
                f"({', '.join(trained)}); add it to models or use auto",
                field="publish.model",
            )
        return {"model": spec, "chosen_by": "config", "select_by": select_by, "scores": {}}
    table = pd.read_csv(metrics_tsv, sep="\t")
    missing = {"method", select_by} - set(table.columns)
    if missing:
        raise InputError(
            f"the evaluation has no {', '.join(sorted(missing))} column to choose a model by",
            path=str(metrics_tsv),
            field=select_by,
        )
    figures = table.set_index("method")[select_by]
    scores: dict[str, float] = {}
    for name in trained:
        value = figures.get(name)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            scores[name] = float(value)
    if not scores:
        raise InputError(
            f"the evaluation has no {select_by} for any trained model ({', '.join(trained)})",
            path=str(metrics_tsv),
            field=select_by,
        )
    best = max(scores.values())
    chosen = next(name for name in trained if scores.get(name) == best)
    return {"model": chosen, "chosen_by": "evaluation", "select_by": select_by, "scores": scores}


def _copy(model_dir: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        with atomic_path(out_dir / name, Path(name).suffix) as tmp:
            shutil.copyfile(model_dir / name, tmp)


def release_model(
    *,
    atlas_h5ad: Path,
    model_dirs: dict[str, Path],
    metrics_tsv: Path,
    out_dir: Path,
    publish: PublishSettings,
    train: TrainSettings,
    ontology: Any | None = None,
    threads: int | None = None,
) -> dict:
    """Choose the model, train it again on every type if it was trained with a hold-out (or
    copy it), and write ``choice.json`` beside it. Returns the choice."""
    out_dir = Path(out_dir)
    choice = choose_model(metrics_tsv, list(model_dirs), publish.model, publish.select_by)
    name = choice["model"]
    info = json.loads((model_dirs[name] / "model.json").read_text(encoding="utf-8"))
    held = list(info.get("holdout_types") or [])
    log.info(
        "release model: %s (%s%s)",
        name,
        choice["chosen_by"],
        f", {publish.select_by} " + ", ".join(f"{m} {v:.4f}" for m, v in choice["scores"].items())
        if choice["scores"]
        else "",
    )
    if held:
        log.info("%s was trained without %s: training it again on every type", name, held)
        train_model(
            Path(atlas_h5ad),
            name,
            out_dir,
            params=dict(getattr(train, name)),
            seed=train.seed,
            device=train.device,
            threads=threads,
            ontology=ontology,
            holdout=None,
        )
    else:
        _copy(model_dirs[name], out_dir)
    choice["retrained_without_holdout"] = held
    atomic_write_text(out_dir / CHOICE_FILE, json.dumps(choice, indent=1) + "\n")
    return choice
