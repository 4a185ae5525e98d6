"""Publish a frozen, versioned reference: index + cell table + encoder + genes + ontology + DE.

Everything is written into ``{publish_dir}/.{version}.tmp``, checksummed into
``manifest.json``, made read-only, then renamed to ``{publish_dir}/{version}`` in one step;
``{publish_dir}/current`` (a relative symlink) is then swapped atomically (a new link under a
temporary name, ``os.replace``d over the old). Old versions beyond ``keep`` are pruned, never
the current one. A version is never overwritten.

Before anything is built, the quality gate (:mod:`scatlas.release.gate`) compares the candidate's
evaluation with the current release's ``metrics.json``; a drop beyond the margin raises
:class:`~scatlas.release.gate.QualityGateError` and nothing is published.

The layout and the manifest are :mod:`scatlas.release.format`'s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scatlas import __version__
from scatlas.errors import InputError
from scatlas.fileio import sha256_file
from scatlas.models.data import obs_text, read_atlas
from scatlas.models.device import select_device
from scatlas.models.inputs import normalise_input
from scatlas.models.io import embed, load_model
from scatlas.models.normalize import align_to_genes
from scatlas.release.format import (
    CELL_COLUMNS,
    CURRENT,
    FORMAT_VERSION,
    MANIFEST,
    METRICS_FILE,
    STUDIES_FILE,
    VERSION_RE,
    Manifest,
    ReleaseError,
    check_metric,
    current_release,
    file_entries,
    read_manifest,
    validate_version,
    verify_files,
)
from scatlas.release.gate import (
    DEFAULT_METRICS,
    GateResult,
    QualityGateError,
    check_gate,
    read_release_metrics,
)
from scatlas.release.index import (
    SearchTuning,
    build_index,
    index_kind,
    save_index,
    tune_search,
    unit_rows,
)
from scatlas.release.novelty import Calibration, calibrate_novelty
from scatlas.release.software import software_versions
from scatlas.settings import PublishSettings

log = logging.getLogger(__name__)

EMBED_BATCH = 4096  # cells embedded per forward pass


def quality_gate(
    candidate: dict[str, Any],
    publish_dir: Path,
    *,
    margin: float | None,
    metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS,
) -> GateResult:
    """Check ``candidate`` metrics against the current release (``margin=None``: no gate)."""
    if margin is None:
        return GateResult(True, "quality gate disabled (publish.gate.margin is null)")
    previous = current_release(publish_dir)
    result = check_gate(
        candidate,
        read_release_metrics(previous) if previous else None,
        margin=float(margin),
        metrics=metrics,
        previous_version=previous.name if previous else None,
    )
    (log.info if result.passed else log.error)("%s", result.reason)
    return result


def _cells_table(adata: ad.AnnData) -> pd.DataFrame:
    obs = adata.obs
    X = sp.csr_matrix(adata.X)
    frame = pd.DataFrame({"cell_id": obs.index.astype(str)})
    for col in ("study", "sample", "cl_id", "cl_label", "split"):
        frame[col] = obs_text(obs, col)
    frame["n_counts"] = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
    frame["n_genes"] = np.diff(X.indptr).astype(np.int64)
    return frame[CELL_COLUMNS]


def _genes_table(adata: ad.AnnData, genes: list[str], means: np.ndarray) -> pd.DataFrame:
    """``genes.tsv``: the model's genes in order, their symbols and mean (normalised)
    expression over the atlas (which weighs missing genes in a query's confidence)."""
    symbols = dict(
        zip(adata.var_names.astype(str), obs_text(adata.var, "gene_symbol"), strict=True)
    )
    return pd.DataFrame(
        {
            "gene_id": genes,
            "gene_symbol": [symbols.get(g, "") for g in genes],
            "mean_expression": np.round(np.asarray(means, dtype=np.float64), 6),
        }
    )


def _studies_table(adata: ad.AnnData, cells: pd.DataFrame) -> pd.DataFrame:
    """``studies.tsv``: each reference study, its title (from the atlas), cells and types."""
    titles = (adata.uns.get("scatlas") or {}).get("study_titles") or {}
    groups = cells.groupby("study", sort=True)
    return pd.DataFrame(
        {
            "study": list(groups.groups),
            "title": [str(titles.get(s, "")) for s in groups.groups],
            "n_cells": groups.size().to_numpy(dtype=np.int64),
            "n_types": groups["cl_id"].agg(lambda c: c[c != ""].nunique()).to_numpy(dtype=np.int64),
        }
    )


def _metrics(evaluation_dir: Path, model: str) -> dict[str, Any]:
    methods: dict[str, Any] = {}
    for path in sorted(evaluation_dir.glob("*.json")):
        try:
            methods[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InputError(f"evaluation file is not JSON: {exc}", path=str(path)) from exc
    if model not in methods:
        log.warning("no evaluation of model %s in %s", model, evaluation_dir)
    return {"model": model, "methods": methods}


def _model_name(model_dir: Path) -> str:
    path = model_dir / "model.json"
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["model"])
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read the model's name: {exc}", path=str(path)) from exc


def _default_inputs(atlas_h5ad: Path, model_dir: Path, ontology_obo: Path) -> dict[str, Any]:
    paths = {
        "atlas": atlas_h5ad,
        "encoder": model_dir / "encoder.pt",
        "model_json": model_dir / "model.json",
        "ontology": ontology_obo,
    }
    return {k: {"path": str(p), "sha256": sha256_file(p)} for k, p in paths.items()}


def inputs_key(
    inputs: dict[str, Any],
    metrics: dict[str, Any],
    de_dir: Path | None,
    settings: PublishSettings,
) -> str:
    """sha256 of what a release is built from: the input files' checksums, the evaluation,
    the DE tables (None: no DE) and the settings that shape its content (not its version or
    keep)."""
    de_files = sorted(p for p in de_dir.rglob("*") if p.is_file()) if de_dir else []
    content = {
        "format": FORMAT_VERSION,
        "inputs": {k: v.get("sha256") if isinstance(v, dict) else v for k, v in inputs.items()},
        "metrics": metrics,
        "de": {str(p.relative_to(de_dir)): sha256_file(p) for p in de_files} if de_dir else None,
        "settings": {
            k: getattr(settings, k)
            for k in ("flat_max", "index", "large_index", "target_recall", "novelty_quantile")
        },
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def release_with_key(publish_dir: Path, key: str) -> str | None:
    """The published version built from the same inputs (its manifest's ``inputs_sha256``)
    whose files are intact; a damaged one is passed over (a new release replaces it)."""
    if not publish_dir.is_dir():
        return None
    for name in reversed(list_versions(publish_dir)):
        try:
            manifest = read_manifest(publish_dir / name)
        except ReleaseError:
            continue
        if manifest.inputs_sha256 != key:
            continue
        try:
            verify_files(publish_dir / name, manifest)
        except ReleaseError as exc:
            log.warning("release %s was built from these inputs but is damaged: %s", name, exc)
            continue
        return name
    return None


def _make_read_only(root: Path) -> None:
    """Files read-only; folders stay writable by the owner so old releases can be pruned."""
    for path in root.rglob("*"):
        path.chmod(0o444 if path.is_file() else 0o755)


def _remove_tree(path: Path) -> None:
    # Files are read-only but their folders stay writable, so they can be removed.
    shutil.rmtree(path)


def swap_current(publish_dir: Path, version: str) -> None:
    """Point ``publish_dir/current`` at ``version`` atomically (relative symlink)."""
    current = publish_dir / CURRENT
    if current.exists() and not current.is_symlink():
        raise InputError(
            "'current' exists and is not a symlink; refusing to replace it", path=str(current)
        )
    tmp = publish_dir / f".{CURRENT}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    os.symlink(version, tmp)
    try:
        os.replace(tmp, current)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def list_versions(publish_dir: Path) -> list[str]:
    """Published versions, oldest first (by manifest ``created``, then name)."""
    found = []
    for path in publish_dir.iterdir():
        if path.name == CURRENT or path.is_symlink() or not path.is_dir():
            continue
        if not VERSION_RE.match(path.name) or not (path / MANIFEST).is_file():
            continue
        try:
            created = json.loads((path / MANIFEST).read_text(encoding="utf-8"))["created"]
        except (ValueError, KeyError):
            created = ""
        found.append((str(created), path.name))
    return [name for _, name in sorted(found)]


def _current_name(publish_dir: Path) -> str | None:
    link = publish_dir / CURRENT
    return link.resolve().name if link.is_symlink() else None


def prune_versions(publish_dir: Path, keep: int, protect: Iterable[str | None] = ()) -> list[str]:
    """Delete the oldest versions so that ``keep`` remain; never the current one, nor those
    in ``protect`` (the release that was current before a publish)."""
    spared = {_current_name(publish_dir), *protect}
    versions = list_versions(publish_dir)
    removed = []
    excess = len(versions) - max(int(keep), 1)
    for name in versions:
        if excess <= 0:
            break
        if name in spared:
            continue
        _remove_tree(publish_dir / name)
        removed.append(name)
        excess -= 1
        log.info("pruned old release %s", name)
    return removed


@dataclass
class _Built:
    """What a release holds beyond copied files: the index, tables and manifest fields."""

    info: dict[str, Any]
    metrics: dict[str, Any]
    gate: GateResult
    adata: ad.AnnData
    index: Any
    cells: pd.DataFrame
    thresholds: pd.DataFrame
    calibration: Calibration
    search: SearchTuning | None
    gene_means: np.ndarray
    normalisation: str


def _check_files(
    atlas_h5ad: Path, evaluation_dir: Path, de_dir: Path | None, ontology_obo: Path
) -> None:
    for path, what in ((ontology_obo, "ontology"), (atlas_h5ad, "atlas")):
        if not path.is_file():
            raise InputError(f"{what} file is missing", path=str(path))
    folders = [(evaluation_dir, "evaluation folder")] + ([(de_dir, "DE folder")] if de_dir else [])
    for path, what in folders:
        if not path.is_dir():
            raise InputError(f"{what} is missing", path=str(path))


def _build(
    atlas_h5ad: Path,
    model_dir: Path,
    evaluation_dir: Path,
    publish_dir: Path,
    settings: PublishSettings,
    device: str,
) -> _Built:
    """Gate the candidate, embed the atlas, build the index and calibrate novelty."""
    net, info = load_model(model_dir, device=select_device(device))
    metric = check_metric(info)
    metrics = _metrics(evaluation_dir, info["model"])
    gate_metrics = tuple(settings.gate.get("metrics") or DEFAULT_METRICS)
    gate = quality_gate(
        metrics, publish_dir, margin=settings.gate.get("margin"), metrics=gate_metrics
    )
    if not gate.passed:
        raise QualityGateError(gate)
    adata = read_atlas(atlas_h5ad, required=())
    atlas_genes = [str(g) for g in adata.var_names]
    normalisation = str(info.get("normalisation", "log1p_cp10k"))
    X, n_found = align_to_genes(normalise_input(adata.X, normalisation), atlas_genes, info["genes"])
    if n_found != len(info["genes"]):
        raise InputError(
            f"the atlas lacks {len(info['genes']) - n_found} of the model's genes; "
            "publish the model trained on this atlas",
            path=str(atlas_h5ad),
            field="var_names",
        )
    log.info("embedding %d atlas cells with model %s", adata.n_obs, info["model"])
    emb = embed(net, X, EMBED_BATCH)
    if metric == "cosine":
        emb = unit_rows(emb)
    index = build_index(
        emb, flat_max=settings.flat_max, kind=settings.index, large=settings.large_index
    )
    tuning = tune_search(index, emb, target=settings.target_recall)
    cells = _cells_table(adata)
    # calibrate on cells the model did not train on, of types it knows
    held_out = (cells["split"].to_numpy() != "train") & cells["cl_id"].isin(
        info.get("classes", [])
    ).to_numpy()
    thresholds, calibration = calibrate_novelty(
        index,
        emb,
        cells["cl_id"].to_numpy(),
        cells["study"].to_numpy(),
        held_out=held_out,
        quantile=settings.novelty_quantile,
        metric=metric,
    )
    means = np.asarray(sp.csr_matrix(X).mean(axis=0)).ravel()
    return _Built(
        info,
        metrics,
        gate,
        adata,
        index,
        cells,
        thresholds,
        calibration,
        tuning,
        means,
        normalisation,
    )


def _write(
    tmp: Path,
    built: _Built,
    sources: dict[str, Path],
    version: str,
    settings: PublishSettings,
    provenance: dict[str, Any],
) -> None:
    """Every file of the release into ``tmp``, the manifest last (``provenance``: its
    ``inputs`` and ``inputs_sha256``)."""
    info = built.info
    save_index(built.index, tmp / "index.faiss")
    built.cells.to_parquet(tmp / "cells.parquet", index=False)
    built.thresholds.to_csv(tmp / "novelty.tsv", sep="\t", index=False)
    shutil.copyfile(sources["model_dir"] / "encoder.pt", tmp / "encoder.pt")
    shutil.copyfile(sources["model_dir"] / "model.json", tmp / "model.json")
    _genes_table(built.adata, info["genes"], built.gene_means).to_csv(
        tmp / "genes.tsv", sep="\t", index=False
    )
    shutil.copyfile(sources["ontology_obo"], tmp / "ontology.obo")
    _studies_table(built.adata, built.cells).to_csv(tmp / STUDIES_FILE, sep="\t", index=False)
    if sources["de_dir"] is not None:
        shutil.copytree(sources["de_dir"], tmp / "de")
    metrics_text = json.dumps(built.metrics, indent=1) + "\n"
    (tmp / METRICS_FILE).write_text(metrics_text, encoding="utf-8")
    gate = built.gate
    manifest = Manifest(
        scatlas_version=__version__,
        version=version,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
        model=info["model"],
        n_cells=int(built.adata.n_obs),
        n_genes=len(info["genes"]),
        gene_selection=info.get("gene_selection")
        or {"genes": "all", "n_genes": len(info["genes"])},
        embedding_dim=int(info["embedding_dim"]),
        index_kind=index_kind(built.index),
        index_search=built.search.as_dict() if built.search else {},
        metric=check_metric(info),
        normalisation=built.normalisation,
        novelty_quantile=float(settings.novelty_quantile),
        novelty_calibration=built.calibration.to_dict(),
        quality_gate={
            "passed": gate.passed,
            "reason": gate.reason,
            "margin": settings.gate.get("margin"),
        },
        **provenance,
        software=software_versions(),
        files=file_entries(tmp),
    ).to_dict()
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def publish_release(
    *,
    atlas_h5ad: Path,
    model_dir: Path,
    evaluation_dir: Path,
    de_dir: Path | None,
    ontology_obo: Path,
    publish_dir: Path,
    version: str,
    settings: PublishSettings | None = None,
    inputs: dict[str, Any] | None = None,
    device: str = "auto",
) -> Path:
    """Build and publish release ``version``; returns ``publish_dir/version``. ``de_dir``
    None: a release without DE tables (e.g. built from a user's own cells).

    ``settings`` (default: the schema's ``publish:``) choose the faiss index
    (``index``/``large_index``/``flat_max``, :func:`build_index`), the novelty quantile, the
    quality gate (``gate: {margin, metrics}``; margin None: off; a release that evaluates
    worse than the current one raises QualityGateError) and how many versions to ``keep``.

    Idempotent: when a published release was built from the same inputs, evaluation, DE
    and settings (its manifest's ``inputs_sha256``), that release is made current (a publish
    killed between its rename and the ``current`` swap is completed) and returned; no copy
    is made. Pruning never removes the release that was current before.
    """
    settings = settings or PublishSettings()
    validate_version(version)
    sources = {
        "atlas_h5ad": Path(atlas_h5ad),
        "model_dir": Path(model_dir),
        "evaluation_dir": Path(evaluation_dir),
        "de_dir": Path(de_dir) if de_dir is not None else None,
        "ontology_obo": Path(ontology_obo),
    }
    publish_dir = Path(publish_dir)
    final = publish_dir / version
    _check_files(
        sources["atlas_h5ad"], sources["evaluation_dir"], sources["de_dir"], sources["ontology_obo"]
    )
    if inputs is None:
        inputs = _default_inputs(
            sources["atlas_h5ad"], sources["model_dir"], sources["ontology_obo"]
        )
    metrics = _metrics(sources["evaluation_dir"], _model_name(sources["model_dir"]))
    key = inputs_key(inputs, metrics, sources["de_dir"], settings)
    previous = _current_name(publish_dir)
    same = release_with_key(publish_dir, key)
    if same is not None:
        if same != previous:
            swap_current(publish_dir, same)
        log.info("release %s was built from these inputs already; current -> %s", same, same)
        prune_versions(publish_dir, settings.keep, protect=(previous,))
        return publish_dir / same
    if final.exists() or final.is_symlink():
        raise InputError(f"release {version} already exists; choose a new version", path=str(final))
    built = _build(
        sources["atlas_h5ad"],
        sources["model_dir"],
        sources["evaluation_dir"],
        publish_dir,
        settings,
        device,
    )
    publish_dir.mkdir(parents=True, exist_ok=True)
    tmp = publish_dir / f".{version}.tmp"
    if tmp.exists():
        log.warning("removing leftover %s from an interrupted publish", tmp)
        _remove_tree(tmp)
    tmp.mkdir()
    try:
        _write(tmp, built, sources, version, settings, {"inputs": inputs, "inputs_sha256": key})
        _make_read_only(tmp)
        if final.exists():  # published concurrently meanwhile
            raise InputError(f"release {version} already exists", path=str(final))
        os.rename(tmp, final)
    except BaseException:
        if tmp.exists():
            _remove_tree(tmp)
        raise
    swap_current(publish_dir, version)
    log.info(
        "published %s (%d cells, %s index); current -> %s",
        final,
        built.adata.n_obs,
        index_kind(built.index),
        version,
    )
    prune_versions(publish_dir, settings.keep, protect=(previous,))
    return final
