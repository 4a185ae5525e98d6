"""Publishing from the workflow: choose the release version, publish, record what was published."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

from scatlas.fileio import atomic_write_text, sha256_file
from scatlas.publish import publish_release

log = logging.getLogger(__name__)


def next_version(publish_dir: Path, today: dt.date | None = None) -> str:
    """The UTC date as ``YYYY.MM.DD``; ``.2``, ``.3``... when that release already exists.

    A published release is never overwritten: a second release on the same day gets the
    next free suffix.
    """
    base = (today or dt.datetime.now(dt.UTC).date()).strftime("%Y.%m.%d")
    version, n = base, 1
    while (publish_dir / version).exists():
        n += 1
        version = f"{base}.{n}"
    return version


def _input_record(path: Path) -> dict:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {"path": str(path), "sha256": {str(f.relative_to(path.parent)): sha256_file(f) for f in files}}


def publish_from_workflow(
    *,
    atlas: Path,
    model_dir: Path,
    evaluation_dir: Path,
    de_dir: Path,
    obo: Path,
    publish_dir: Path,
    settings: dict,
    record: Path,
) -> Path:
    """Publish a release from the workflow's outputs and write ``record`` (release.json)."""
    version = settings.get("version") or next_version(publish_dir)
    inputs = {
        "atlas": _input_record(atlas),
        "model": _input_record(model_dir / "model.json"),
        "encoder": _input_record(model_dir / "encoder.pt"),
        "ontology": _input_record(obo),
    }
    path = publish_release(
        atlas_h5ad=atlas,
        model_dir=model_dir,
        evaluation_dir=evaluation_dir,
        de_dir=de_dir,
        ontology_obo=obo,
        publish_dir=publish_dir,
        version=version,
        keep=int(settings.get("keep", 3)),
        flat_max=int(settings.get("flat_max", 1_000_000)),
        inputs=inputs,
    )
    manifest = path / "manifest.json"
    summary = {
        "version": version,
        "path": str(path),
        "current": str(publish_dir / "current"),
        "manifest_sha256": sha256_file(manifest),
        "published": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    atomic_write_text(record, json.dumps(summary, indent=2) + "\n")
    log.info("published release %s at %s", version, path)
    return path
