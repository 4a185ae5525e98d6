"""One trainer for every registered model.

Training cells are ``split == "train" & trainable``; validation cells are
``split == "validation" & trainable`` of the training types. Inputs are ``log1p_cp10k`` of
all atlas genes, kept sparse and densified one minibatch at a time. Each epoch is validated
(loss, accuracy), logged, appended to ``history.tsv`` and checkpointed to
``checkpoint.pt``; training stops early after ``patience`` epochs without a lower validation
loss and the best epoch's weights are written as ``encoder.pt``.

Reproducibility: the cell order of epoch ``e`` comes from ``numpy.random.default_rng([seed,
e])``, torch is seeded once and its RNG state is checkpointed, deterministic algorithms are
requested; so a resumed run reproduces an uninterrupted one exactly (on the same device).
A checkpoint is reused only when everything but ``epochs``/``patience`` matches, so raising
``epochs`` continues a finished run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from tqdm import tqdm

from scatlas.errors import InputError
from scatlas.fileio import atomic_path, atomic_write_text
from scatlas.logs import progress_enabled
from scatlas.models import model_class
from scatlas.models.base import Batch, EmbeddingModel, TrainingContext
from scatlas.models.data import obs_text, read_atlas, selections
from scatlas.models.device import select_device
from scatlas.models.inputs import INPUT_NORMALISATIONS, normalise_input
from scatlas.models.normalize import genes_sha256
from scatlas.settings import TrainSettings

log = logging.getLogger(__name__)

TRAINER_DEFAULTS: dict[str, Any] = {
    "epochs": 50,
    "batch_size": 256,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "patience": 5,
    "optimizer": "adam",
    "sampling": "uniform",
    "normalisation": "log1p_cp10k",
    "genes": "all",  # or "hvg": the atlas' highly variable genes (scatlas.atlas.genes)
}
GENE_CHOICES = ("all", "hvg")
#: parameters that may change between a checkpoint and a resumed run
_RESUMABLE_CHANGES = ("epochs", "patience")
_OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}
HISTORY_COLUMNS = [
    "epoch",
    "train_loss",
    "val_loss",
    "val_accuracy",
    "seconds",
    "train_cells_per_second",
]


def resolve_params(model: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Trainer defaults, then the model's defaults, then ``params``; unknown keys refused."""
    cls = model_class(model)
    merged = {**TRAINER_DEFAULTS, **cls.default_params}
    unknown = sorted(set(params or {}) - set(merged))
    if unknown:
        raise InputError(
            f"unknown parameter(s) {', '.join(unknown)} for model {model!r}; "
            f"known: {', '.join(sorted(merged))}",
            field="params",
        )
    merged.update(params or {})
    for key in ("epochs", "batch_size", "patience"):
        if int(merged[key]) < 1:
            raise InputError(f"parameter {key} must be >= 1, got {merged[key]}", field=key)
    if merged["optimizer"] not in _OPTIMIZERS:
        raise InputError(
            f"unknown optimizer {merged['optimizer']!r}; use one of {sorted(_OPTIMIZERS)}",
            field="optimizer",
        )
    if merged["sampling"] not in ("uniform", "balanced"):
        raise InputError(
            f"unknown sampling {merged['sampling']!r}; use uniform or balanced", field="sampling"
        )
    if merged["genes"] not in GENE_CHOICES:
        raise InputError(
            f"unknown genes {merged['genes']!r}; use one of {list(GENE_CHOICES)}", field="genes"
        )
    if merged["normalisation"] not in INPUT_NORMALISATIONS:
        raise InputError(
            f"unknown normalisation {merged['normalisation']!r}; "
            f"use one of {list(INPUT_NORMALISATIONS)}",
            field="normalisation",
        )
    return merged


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Request deterministic kernels for the duration (restoring the previous setting)."""
    # cuBLAS needs this set before its first use to be deterministic.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)
        torch.backends.cudnn.benchmark = prev_bench


class _Split:
    """Normalised rows (sparse), class indices and study indices of one split."""

    def __init__(self, X: sp.csr_matrix, y: np.ndarray, study: np.ndarray):
        self.X, self.y, self.study = X, y.astype(np.int64), study.astype(np.int64)

    def __len__(self) -> int:
        return self.X.shape[0]

    def batch(self, rows: np.ndarray, device: torch.device) -> Batch:
        x = torch.from_numpy(self.X[rows].toarray())
        return Batch(
            x=x.to(device, non_blocking=True),
            y=torch.from_numpy(self.y[rows]).to(device),
            study=torch.from_numpy(self.study[rows]).to(device),
        )


#: public name of one split's rows, labels and studies (for callers that bring their own data)
SplitData = _Split


def _class_labels(cl_id: np.ndarray, cl_label: np.ndarray, classes: list[str]) -> list[str]:
    first = dict(zip(cl_id[::-1], cl_label[::-1], strict=True))  # first occurrence wins
    return [first.get(c) or c for c in classes]


def _fingerprint(
    model: str,
    params: dict[str, Any],
    seed: int,
    genes_hash: str,
    classes: list[str],
    splits: list[_Split | None],
) -> str:
    """Identifies a run: model, parameters (but epochs/patience), seed, and the exact data."""
    fixed = {k: v for k, v in params.items() if k not in _RESUMABLE_CHANGES}
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {
                "model": model,
                "params": fixed,
                "seed": seed,
                "genes": genes_hash,
                "classes": classes,
            },
            sort_keys=True,
        ).encode()
    )
    for part in splits:
        if part is None:
            h.update(b"none")
            continue
        for arr in (part.X.indptr, part.X.indices, part.X.data, part.y, part.study):
            h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _evaluate(
    net: EmbeddingModel, data: _Split, batch_size: int, device: torch.device, amp: dict[str, Any]
) -> tuple[float, float]:
    """Mean loss and accuracy (NaN when the model does not classify)."""
    net.eval()
    total_loss, correct, n = 0.0, 0, len(data)
    classifies = True
    with torch.no_grad():
        for start in range(0, n, batch_size):
            rows = np.arange(start, min(start + batch_size, n))
            batch = data.batch(rows, device)
            with torch.autocast(**amp):
                loss, pred = net.validation_step(batch)
            total_loss += float(loss) * len(rows)
            if pred is None:
                classifies = False
            else:
                correct += int((pred == batch.y).sum())
    return total_loss / n, (correct / n if classifies else math.nan)


def _write_history(path: Path, history: list[list[float]]) -> None:
    frame = pd.DataFrame(history, columns=HISTORY_COLUMNS)
    frame["epoch"] = frame["epoch"].astype(int)
    atomic_write_text(path, frame.to_csv(sep="\t", index=False, float_format="%.6g"))


def _save_torch(obj: Any, path: Path) -> None:
    with atomic_path(path, ".pt") as tmp:
        torch.save(obj, tmp)


@dataclass
class TrainingData:
    """Normalised training/validation rows and what the models need to know about them."""

    train: _Split
    val: _Split | None
    classes: list[str]
    class_labels: list[str]
    genes: list[str]
    normalisation: str
    gene_selection: dict[str, Any] = dc_field(default_factory=lambda: {"genes": "all"})
    related: np.ndarray | None = None
    holdout: list[str] = dc_field(default_factory=list)
    source: str = ""

    def context(self) -> TrainingContext:
        return TrainingContext(
            class_counts=np.bincount(self.train.y, minlength=len(self.classes)),
            related=self.related,
            n_studies=len(np.unique(self.train.study)),
            extra={"train_X": self.train.X, "train_y": self.train.y},
        )


def related_matrix(classes: list[str], ontology: Any | None) -> np.ndarray | None:
    """(classes x classes) True where equal or one is an ontology ancestor of the other;
    None without an ontology. Types the ontology does not know relate only to themselves."""
    if ontology is None:
        return None
    known = [c for c in classes if c in ontology]
    pairs = ontology.related_pairs(known)
    pos = {c: i for i, c in enumerate(classes)}
    rel = np.eye(len(classes), dtype=bool)
    for a, b in pairs:
        rel[pos[a], pos[b]] = True
    return rel


def _gene_columns(adata, genes: str, path: str) -> tuple[np.ndarray | None, dict[str, Any]]:
    """The atlas columns a model trains on (None: all) and the record for ``model.json``."""
    if genes == "all":
        return None, {"genes": "all", "n_genes": int(adata.n_vars)}
    if "highly_variable" not in adata.var:
        raise InputError(
            "the atlas has no highly variable genes (assembled by an older scatlas): assemble "
            "it again, or train with genes: all",
            path=path,
            field="var.highly_variable",
        )
    columns = np.flatnonzero(adata.var["highly_variable"].to_numpy(dtype=bool))
    if len(columns) < 2:
        raise InputError(
            f"the atlas has {len(columns)} highly variable genes", path=path, field="var"
        )
    stored = adata.uns.get("scatlas", {}).get("gene_selection", {})
    record = {k: v.tolist() if hasattr(v, "tolist") else v for k, v in stored.items()}
    return columns, {**record, "genes": "hvg", "n_genes": len(columns)}


def atlas_training_data(
    atlas_h5ad: Path,
    normalisation: str,
    *,
    ontology: Any | None = None,
    holdout: str | list[str] | None = None,
    genes: str = "all",
) -> TrainingData:
    """Training and validation cells of the atlas, normalised over all genes (kept sparse),
    then restricted to the atlas' highly variable genes with ``genes="hvg"``."""
    adata = read_atlas(atlas_h5ad)
    columns, gene_selection = _gene_columns(adata, genes, str(atlas_h5ad))
    obs = adata.obs
    sel = selections(adata, str(atlas_h5ad), holdout)
    cl_id = sel.cl_id
    train_mask = sel.train
    if not train_mask.any():
        raise InputError(
            "no trainable cells in the train split", path=str(atlas_h5ad), field="split"
        )
    classes = sel.train_types
    if len(classes) < 2:
        raise InputError(
            f"training needs at least 2 cell types, found {len(classes)}",
            path=str(atlas_h5ad),
            field="cl_id",
        )
    class_index = {c: i for i, c in enumerate(classes)}
    val_all = (sel.split == "validation") & sel.trainable
    val_mask = sel.held_out("validation")
    if (val_all & ~val_mask).any():
        log.info(
            "%d validation cells have types absent from training; not used",
            int((val_all & ~val_mask).sum()),
        )
    if not val_mask.any():
        log.warning("no validation cells: early stopping and the best epoch use the training loss")
    study_col = obs_text(obs, "study")
    study_index = {s: i for i, s in enumerate(sorted(set(study_col)))}
    X_all = sp.csr_matrix(adata.X)

    def make_split(mask: np.ndarray) -> _Split:
        X = normalise_input(X_all[np.flatnonzero(mask)], normalisation)
        X = X if columns is None else sp.csr_matrix(X)[:, columns]
        y = np.array([class_index[c] for c in cl_id[mask]], dtype=np.int64)
        s = np.array([study_index[v] for v in study_col[mask]], dtype=np.int64)
        return _Split(X, y, s)

    return TrainingData(
        train=make_split(train_mask),
        val=make_split(val_mask) if val_mask.any() else None,
        classes=classes,
        class_labels=_class_labels(cl_id, obs_text(obs, "cl_label"), classes),
        genes=[str(g) for g in adata.var_names[columns if columns is not None else slice(None)]],
        normalisation=normalisation,
        gene_selection=gene_selection,
        related=related_matrix(classes, ontology),
        holdout=list(sel.holdout),
        source=str(atlas_h5ad),
    )


def train_model(
    atlas_h5ad: Path,
    model: str,
    out_dir: Path,
    *,
    params: dict[str, Any] | None = None,
    seed: int = TrainSettings.seed,
    device: str = TrainSettings.device,
    threads: int | None = TrainSettings.threads,
    ontology: Any | None = None,
    holdout: str | list[str] | None = None,
) -> dict[str, Any]:
    """Train ``model`` on the atlas; write ``encoder.pt``, ``model.json``, ``history.tsv``.

    ``threads`` caps torch's CPU threads (a rule's ``threads``); ``ontology`` (a
    ``CellOntology``) tells the triplet model which types may not be negatives of each
    other; ``holdout`` keeps types out of training for the novelty evaluation
    (``choose_holdout``). Returns the ``model.json`` content.
    """
    params = resolve_params(model, params)
    data = atlas_training_data(
        Path(atlas_h5ad),
        str(params["normalisation"]),
        ontology=ontology,
        holdout=holdout,
        genes=str(params["genes"]),
    )
    return fit(model, data, Path(out_dir), params=params, seed=seed, device=device, threads=threads)


def _epoch_order(
    rng: np.random.Generator, data: _Split, sampling: str, class_count: int
) -> np.ndarray:
    """Cell order of one epoch: a permutation, or (``balanced``) as many draws with
    replacement, weighting each cell by 1 / (cells of its type) x 1 / (cells of its study)
    so rare types and small studies are seen as often as common ones."""
    n = len(data)
    if sampling == "uniform":
        return rng.permutation(n)
    per_type = np.bincount(data.y, minlength=class_count)[data.y]
    per_study = np.bincount(data.study)[data.study]
    w = 1.0 / (per_type * per_study)
    return rng.choice(n, size=n, replace=True, p=w / w.sum())


def _amp_settings(dev: torch.device) -> tuple[bool, torch.dtype, dict[str, Any]]:
    """Mixed precision on CUDA (bf16 where supported, else fp16 with a scaler)."""
    use_amp = dev.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    amp = {
        "device_type": dev.type,
        "dtype": amp_dtype if use_amp else torch.bfloat16,
        "enabled": use_amp,
    }
    return use_amp, amp_dtype, amp


def _fresh_state() -> dict[str, Any]:
    return {
        "epoch": 0,
        "best_epoch": 0,
        "best_metric": math.inf,
        "bad_epochs": 0,
        "stopped": False,
        "history": [],
        "best_state": None,
        "pretrained": False,
    }


@dataclass
class _Session:
    """One training run's network, optimiser and data: runs epochs, keeps checkpoints."""

    net: EmbeddingModel
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    dev: torch.device
    amp: dict[str, Any]
    data: TrainingData
    seed: int
    sampling: str
    batch_size: int
    fingerprint: str
    ckpt_path: Path

    @property
    def n_train(self) -> int:
        return len(self.data.train)

    def run_epoch(self, epoch: int, loss_fn: Any, desc: str) -> float:
        """One pass over the training cells in batches; the mean loss per cell."""
        self.net.train()
        train = self.data.train
        order = _epoch_order(
            np.random.default_rng([self.seed, epoch]), train, self.sampling, len(self.data.classes)
        )
        total = 0.0
        starts = range(0, self.n_train, self.batch_size)
        for start in tqdm(starts, desc=desc, leave=False, disable=not progress_enabled()):
            rows = np.sort(order[start : start + self.batch_size])
            if len(rows) < 2:  # batch norm and pair miners need two cells
                continue
            batch = train.batch(rows, self.dev)
            self.opt.zero_grad(set_to_none=True)
            with torch.autocast(**self.amp):
                loss = loss_fn(batch)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
            total += float(loss.detach()) * len(rows)
        return total / self.n_train

    def resume(self, state: dict[str, Any]) -> None:
        """Load the checkpoint into ``state`` when it was written for this very run."""
        if not self.ckpt_path.exists():
            return
        ckpt = torch.load(self.ckpt_path, map_location="cpu", weights_only=True)
        if ckpt.get("fingerprint") != self.fingerprint:
            log.warning(
                "%s was written for other data or parameters; starting afresh", self.ckpt_path
            )
            return
        self.net.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["torch_rng"])
        if self.dev.type == "cuda" and ckpt.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ckpt["cuda_rng"], self.dev)
        for key in state:
            state[key] = ckpt.get(key, state[key])
        log.info("resuming from %s after epoch %d", self.ckpt_path, state["epoch"])

    def checkpoint(self, state: dict[str, Any]) -> None:
        _save_torch(
            {
                "fingerprint": self.fingerprint,
                "model": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                "optimizer": _to_cpu(self.opt.state_dict()),
                "scaler": self.scaler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(self.dev) if self.dev.type == "cuda" else None,
                **state,
            },
            self.ckpt_path,
        )

    def pretrain(self, state: dict[str, Any], epochs: int) -> None:
        """The optional unsupervised phase (autoencoder), before the first epoch only."""
        if not epochs or state["pretrained"] or state["epoch"] != 0:
            return
        for p_epoch in range(1, epochs + 1):
            loss = self.run_epoch(100_000 + p_epoch, self.net.pretrain_loss, f"pretrain {p_epoch}")
            log.info("pretrain epoch %d/%d loss=%.4f", p_epoch, epochs, loss)
        state["pretrained"] = True
        self.opt.state.clear()  # the supervised phase starts with fresh optimiser moments

    def epoch(self, state: dict[str, Any], epoch: int, epochs: int, patience: int) -> None:
        """Train one epoch, validate, update early stopping and the best weights."""
        t0 = time.perf_counter()
        train_loss = self.run_epoch(epoch, self.net.training_loss, f"epoch {epoch}")
        train_seconds = time.perf_counter() - t0
        if self.data.val is not None:
            val_loss, val_acc = _evaluate(
                self.net, self.data.val, self.batch_size * 4, self.dev, self.amp
            )
            metric = val_loss
        else:
            val_loss, val_acc, metric = math.nan, math.nan, train_loss
        seconds = time.perf_counter() - t0
        speed = self.n_train / train_seconds
        state["history"].append([float(epoch), train_loss, val_loss, val_acc, seconds, speed])
        _early_stopping(state, metric, epoch, patience, self.net)
        log.info(
            "epoch %d/%d train_loss=%.4f val_loss=%.4f val_accuracy=%.4f (%.1f s, %.0f cells/s)%s",
            epoch,
            epochs,
            train_loss,
            val_loss,
            val_acc,
            seconds,
            speed,
            " best" if state["best_epoch"] == epoch else "",
        )
        state["epoch"] = epoch


def _early_stopping(
    state: dict[str, Any], metric: float, epoch: int, patience: int, net: EmbeddingModel
) -> None:
    """Keep the best weights; stop after ``patience`` epochs without improvement."""
    if metric < state["best_metric"]:
        state.update(
            best_metric=metric,
            best_epoch=epoch,
            bad_epochs=0,
            best_state={k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        )
        return
    state["bad_epochs"] += 1
    if state["bad_epochs"] >= patience:
        state["stopped"] = True


def fit(
    model: str,
    data: TrainingData,
    out_dir: Path,
    *,
    params: dict[str, Any] | None = None,
    seed: int = TrainSettings.seed,
    device: str = TrainSettings.device,
    threads: int | None = TrainSettings.threads,
) -> dict[str, Any]:
    """Train ``model`` on prepared data; write ``encoder.pt``, ``model.json``,
    ``history.tsv`` (and ``checkpoint.pt`` each epoch, to resume) under ``out_dir``."""
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    out_dir = Path(out_dir)
    cls = model_class(model)
    params = resolve_params(model, params)
    dev = select_device(device)
    use_amp, amp_dtype, amp = _amp_settings(dev)
    genes_hash = genes_sha256(data.genes)
    log.info(
        "training %s on %d cells (%d types, %d genes, %s input), validating on %d cells, device %s",
        model,
        len(data.train),
        len(data.classes),
        len(data.genes),
        data.normalisation,
        len(data.val) if data.val is not None else 0,
        dev,
    )
    architecture = cls.architecture_from_params(
        params, n_genes=len(data.genes), n_classes=len(data.classes)
    )
    fingerprint = _fingerprint(
        model,
        {**params, "_holdout": data.holdout},
        seed,
        genes_hash,
        data.classes,
        [data.train, data.val],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    with deterministic():
        seed_everything(seed)
        net = cls.from_architecture(architecture).to(dev)
        net.prepare_training(data.context())
        session = _Session(
            net=net,
            opt=_OPTIMIZERS[params["optimizer"]](
                net.parameters(), lr=float(params["lr"]), weight_decay=float(params["weight_decay"])
            ),
            scaler=torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16),
            dev=dev,
            amp=amp,
            data=data,
            seed=seed,
            sampling=str(params["sampling"]),
            batch_size=int(params["batch_size"]),
            fingerprint=fingerprint,
            ckpt_path=out_dir / "checkpoint.pt",
        )
        state = _train_epochs(session, params, out_dir / "history.tsv")

    if state["best_state"] is None:  # every epoch's loss was NaN/inf
        raise InputError(
            "training diverged: no epoch had a finite loss; lower lr",
            path=data.source or None,
            field="params.lr",
        )
    info = _model_info(model, cls, architecture, genes_hash, data, state, net, params, seed, dev)
    _save_torch(state["best_state"], out_dir / "encoder.pt")
    atomic_write_text(out_dir / "model.json", json.dumps(info, indent=1) + "\n")
    _write_history(out_dir / "history.tsv", state["history"])
    log.info(
        "best epoch %d (val_loss=%.4f, val_accuracy=%.4f); wrote %s",
        info["best_epoch"],
        state["history"][state["best_epoch"] - 1][2],
        state["history"][state["best_epoch"] - 1][3],
        out_dir,
    )
    return info


def _train_epochs(session: _Session, params: dict[str, Any], history: Path) -> dict[str, Any]:
    """Resume from the checkpoint (if any), pre-train, then train epoch by epoch with early
    stopping, checkpointing and writing the history after each epoch; the final state."""
    state = _fresh_state()
    session.resume(state)
    epochs, patience = int(params["epochs"]), int(params["patience"])
    session.pretrain(state, int(params.get("pretrain_epochs", 0) or 0))
    epoch = state["epoch"] + 1
    while epoch <= epochs and not state["stopped"]:
        session.epoch(state, epoch, epochs, patience)
        session.checkpoint(state)
        _write_history(history, state["history"])
        if state["stopped"]:
            log.info("early stop: no better validation loss for %d epochs", patience)
        epoch += 1
    return state


def _model_info(
    model, cls, architecture, genes_hash, data: TrainingData, state, net, params, seed, dev
) -> dict[str, Any]:
    """``model.json``: what a loader needs, and how the training went."""
    best = state["history"][state["best_epoch"] - 1]
    speeds = [row[5] for row in state["history"] if len(row) > 5]
    return {
        "model": model,
        "architecture": architecture,
        "genes": data.genes,
        "genes_sha256": genes_hash,
        "gene_selection": data.gene_selection,
        "normalisation": data.normalisation,
        "metric": cls.metric,
        "classes": data.classes,
        "class_labels": data.class_labels,
        "holdout_types": list(data.holdout),
        "embedding_dim": int(net.embedding_dim),
        "best_epoch": int(state["best_epoch"]),
        "best_val_loss": _num(best[2]),
        "best_val_accuracy": _num(best[3]),
        "epochs_run": int(state["epoch"]),
        "seed": int(seed),
        "params": params,
        "device": dev.type,
        "amp": dev.type == "cuda",
        "torch_version": torch.__version__,
        "n_train_cells": len(data.train),
        "n_validation_cells": len(data.val) if data.val is not None else 0,
        "train_cells_per_second": float(np.median(speeds)) if speeds else None,
        "peak_gpu_memory_bytes": (
            int(torch.cuda.max_memory_allocated(dev)) if dev.type == "cuda" else None
        ),
    }


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


__all__ = [
    "train_model",
    "fit",
    "TrainingData",
    "SplitData",
    "atlas_training_data",
    "related_matrix",
    "resolve_params",
    "TRAINER_DEFAULTS",
]
