"""Publishing from the workflow: choose the release version, publish, record what was published.

The record (``results/publish/release.json``) says whether the candidate was published. When
the quality gate refuses it, the rule still succeeds (the atlas run is not a failure), the
record holds ``"published": false`` and the gate's reason, and ``path`` names the release
that stays current, so downstream steps (the demo query) and ``scatlas refresh`` report it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scatlas.fileio import atomic_write_text, sha256_file
from scatlas.release.format import current_release
from scatlas.release.gate import QualityGateError
from scatlas.release.publish import publish_release
from scatlas.settings import PublishSettings

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
    return {
        "path": str(path),
        "sha256": {str(f.relative_to(path.parent)): sha256_file(f) for f in files},
    }


def publish_from_workflow(
    *,
    atlas: Path,
    model_dir: Path,
    evaluation_dir: Path,
    de_dir: Path,
    obo: Path,
    publish_dir: Path,
    settings: PublishSettings | Mapping[str, Any],
    record: Path,
) -> Path:
    """Publish a release from the workflow's outputs and write ``record`` (release.json).
    ``settings``: the config's ``publish`` section (absent keys take the defaults)."""
    if not isinstance(settings, PublishSettings):
        settings = PublishSettings.from_config({"publish": settings})
    version = settings.version or next_version(publish_dir)
    inputs = {
        "atlas": _input_record(atlas),
        "model": _input_record(model_dir / "model.json"),
        "encoder": _input_record(model_dir / "encoder.pt"),
        "ontology": _input_record(obo),
    }
    try:
        path = publish_release(
            atlas_h5ad=atlas,
            model_dir=model_dir,
            evaluation_dir=evaluation_dir,
            de_dir=de_dir,
            ontology_obo=obo,
            publish_dir=publish_dir,
            version=version,
            settings=settings,
            inputs=inputs,
        )
    except QualityGateError as exc:
        previous = current_release(publish_dir)
        summary = {  # version/path: the release users still get (the current one)
            "version": previous.name if previous else None,
            "candidate_version": version,
            "published": False,
            "reason": str(exc),
            "path": str(previous) if previous else None,
            "current": str(publish_dir / "current"),
            "decided": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        atomic_write_text(record, json.dumps(summary, indent=2) + "\n")
        log.error("release %s not published: %s", version, exc)
        return previous
    manifest = path / "manifest.json"
    summary = {  # version: the release published, or the one already built from these inputs
        "version": path.name,
        "published": True,
        "reason": json.loads(manifest.read_text(encoding="utf-8"))["quality_gate"]["reason"],
        "path": str(path),
        "current": str(publish_dir / "current"),
        "candidate_version": version,
        "manifest_sha256": sha256_file(manifest),
        "decided": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    atomic_write_text(record, json.dumps(summary, indent=2) + "\n")
    log.info("release %s at %s is current", path.name, path)
    return path
