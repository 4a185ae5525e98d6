"""The release contract: what a published reference folder holds and how it is checked.

Written by :mod:`scatlas.release.publish`, read by the quality gate and by annotation
(:mod:`scatlas.annotate.reference`). This module imports no training code, so that loading
a release to annotate cells never loads it either.

A release ``{publish_dir}/{version}/`` holds :data:`REQUIRED_FILES` (plus ``de/``), every
one listed in ``manifest.json`` with its size and sha256; ``{publish_dir}/current`` links to
the newest. ``FORMAT_VERSION`` changes whenever a reader of an older format could not read
the new one.

Format history: 1 — the first layout; 2 — adds ``novelty.tsv`` (per-type novelty
thresholds), ``metric``/``normalisation`` in the manifest, and requires ``metrics.json`` and
``ontology.obo``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from scatlas.errors import InputError
from scatlas.fileio import sha256_file

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
METRICS_FILE = "metrics.json"
REQUIRED_FILES = (
    "index.faiss",
    "cells.parquet",
    "encoder.pt",
    "model.json",
    "genes.tsv",
    "novelty.tsv",
    METRICS_FILE,
    "ontology.obo",
)
#: each reference study's title, cells and types (optional: releases before it lack it)
STUDIES_FILE = "studies.tsv"
# columns of cells.parquet, one row per reference cell in index order
CELL_COLUMNS = ["cell_id", "study", "sample", "cl_id", "cl_label", "split", "n_counts", "n_genes"]
METRICS = ("euclidean", "cosine", "hamming")
CURRENT = "current"
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z", re.ASCII)


class ReleaseError(InputError):
    """A published release is missing, partial, tampered with or of an unknown format."""


def validate_version(version: str) -> str:
    """A release name safe as a folder name (``^[A-Za-z0-9][A-Za-z0-9._-]*$``, not ``current``)."""
    if not isinstance(version, str) or not VERSION_RE.match(version) or version == CURRENT:
        raise InputError(
            f"invalid release version {version!r}: use letters, digits, '.', '_', '-' "
            "(starting with a letter or digit), and not 'current'",
            field="version",
        )
    return version


def check_metric(info: dict[str, Any]) -> str:
    """The model's embedding metric (``model.json`` ``metric``, default euclidean), if indexable."""
    metric = str(info.get("metric", "euclidean"))
    if metric not in METRICS:
        raise InputError(
            f"unknown embedding metric {metric!r} (known: {', '.join(METRICS)})", field="metric"
        )
    return metric


def current_release(publish_dir: Path) -> Path | None:
    """The release ``publish_dir/current`` points at, or None."""
    link = Path(publish_dir) / CURRENT
    return link.resolve() if link.is_symlink() and link.resolve().is_dir() else None


@dataclass(frozen=True)
class Manifest:
    """``manifest.json`` of a release, typed (fields in the file's order). ``files`` maps
    each file's path inside the release to ``{"sha256": str, "bytes": int}``."""

    format_version: int = FORMAT_VERSION
    scatlas_version: str = ""
    version: str = ""
    created: str = ""
    model: str = ""
    n_cells: int = 0
    n_genes: int = 0
    # the model's genes: all atlas genes or its highly variable ones, and how they were chosen
    gene_selection: dict[str, Any] = field(default_factory=dict)
    embedding_dim: int = 0
    index_kind: str = ""
    # approximate index: the search breadth chosen and its measured recall (SearchTuning)
    index_search: dict[str, Any] = field(default_factory=dict)
    metric: str = "euclidean"
    normalisation: str = "log1p_cp10k"
    novelty_quantile: float = 0.99
    # what the novelty threshold was calibrated on (scatlas.release.novelty.Calibration)
    novelty_calibration: dict[str, Any] = field(default_factory=dict)
    quality_gate: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    # sha256 of everything the release is built from (inputs, evaluation, DE, settings):
    # publishing the same again finds this release instead of making a copy
    inputs_sha256: str = ""
    # the software it was built with (scatlas.release.software): packages, tools, R
    software: dict[str, str] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, path: str = MANIFEST) -> Manifest:
        """Check the format version first (with advice for older/newer releases), then types."""
        fmt = data.get("format_version")
        if fmt != FORMAT_VERSION:
            raise ReleaseError(
                f"reference format {fmt!r} is not supported (this scatlas reads format "
                f"{FORMAT_VERSION}); {_format_advice(fmt, data)}",
                path=path,
                field="format_version",
            )
        if not isinstance(data.get("files"), dict):
            raise ReleaseError("manifest has no file list", path=path, field="files")
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        if not values.get("version"):
            raise ReleaseError("manifest has no version", path=path, field="version")
        return cls(**values)


def _format_advice(fmt: Any, data: dict[str, Any]) -> str:
    if isinstance(fmt, int) and fmt < FORMAT_VERSION:
        return (
            f"it was published by an older scatlas ({data.get('scatlas_version', '?')}); "
            "download a newer release or re-publish it with this scatlas "
            "(snakemake publish, or scripts/publish_release.py)"
        )
    return "it needs a newer scatlas: upgrade (pip install -U scatlas)"


def read_manifest(root: Path) -> Manifest:
    """The manifest of the release folder ``root``; ReleaseError when absent or unreadable."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise ReleaseError(
            "not a published reference: manifest.json is missing (give a release folder such "
            "as published/current)",
            path=str(path),
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ReleaseError(f"manifest is not valid JSON: {exc}", path=str(path)) from exc
    if not isinstance(data, dict):
        raise ReleaseError("manifest is not a JSON object", path=str(path))
    return Manifest.from_dict(data, path=str(path))


def file_entries(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"bytes", "sha256"}}`` of every file under ``folder`` (sorted)."""
    out = {}
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != MANIFEST:
            out[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return out


# files a release holds beside those its manifest lists: the manifest and its signature
UNLISTED = (MANIFEST, MANIFEST + ".sig")


def verify_files(root: Path, manifest: Manifest) -> None:
    """Check size and sha256 of every file the manifest lists, and that the release holds no
    file it does not list; ReleaseError on the first bad one."""
    listing = str(Path(root) / MANIFEST)
    extra = sorted(
        str(p.relative_to(root))
        for p in Path(root).rglob("*")
        if not p.is_dir()
        and str(p.relative_to(root)) not in manifest.files
        and str(p.relative_to(root)) not in UNLISTED
    )
    if extra:
        raise ReleaseError(
            f"the release holds {len(extra)} file(s) its manifest does not list (added or "
            f"de-listed: {', '.join(extra[:5])}); download the release again",
            path=str(Path(root) / extra[0]),
        )
    for name in REQUIRED_FILES:
        if name not in manifest.files:
            raise ReleaseError("manifest does not list a required file", path=listing, field=name)
    for rel, entry in sorted(manifest.files.items()):
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts:
            raise ReleaseError("manifest lists a path outside the release", path=listing, field=rel)
        _check_file(Path(root) / pure, entry)


def _check_file(path: Path, entry: dict[str, Any]) -> None:
    if not path.is_file():
        raise ReleaseError(
            "release file is missing (partial release? download it again)", path=str(path)
        )
    size = path.stat().st_size
    if size != entry.get("bytes"):
        raise ReleaseError(
            f"release file has {size} bytes, manifest says {entry.get('bytes')} "
            "(partial or altered; download the release again)",
            path=str(path),
        )
    if sha256_file(path) != entry.get("sha256"):
        raise ReleaseError(
            "release file checksum differs from the manifest (tampered or corrupted; "
            "download the release again)",
            path=str(path),
        )
