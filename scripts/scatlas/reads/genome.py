"""The genome FASTA and GTF of an organism, from a local path or a verified download,
stored uncompressed under resources/genomes/{name}/."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scatlas.compression import decompressed_copy
from scatlas.fileio import atomic_path
from scatlas.reads.reference import resolve_reference_file
from scatlas.settings import ServicesSettings, Settings, as_settings
from scatlas.sources.http import HttpClient

log = logging.getLogger(__name__)


def _downloader(services: ServicesSettings):
    def download(url: str, dest: Path) -> None:
        parts = urlsplit(url)
        client = HttpClient(
            f"{parts.scheme}://{parts.netloc}",
            timeout=float(services.timeout_s),
            retries=int(services.retries),
            backoff=float(services.backoff_s),
        )
        log.info("downloading %s", url)
        client.download(url, Path(dest))

    return download


def fetch_reference_file(
    spec: dict, out: Path, services: ServicesSettings | Mapping[str, Any] | None = None
) -> Path:
    """Place the file described by ``spec`` at ``out`` (decompressed), atomically;
    ``services`` (the config's ``services`` section) sets the download client's timeouts."""
    if not isinstance(services, ServicesSettings):
        services = ServicesSettings.from_config({"services": dict(services or {})})
    out = Path(out)
    raw = resolve_reference_file(spec, out.with_name(out.name + ".download"), _downloader(services))
    with atomic_path(out) as tmp:
        decompressed_copy(raw, tmp)
    if "url" in spec:
        raw.unlink(missing_ok=True)
    log.info("reference file %s ready (%d bytes)", out, out.stat().st_size)
    return out


def fetch_reference_files(
    config: Settings | Mapping[str, Any],
    fasta_spec: dict,
    gtf_spec: dict,
    out_fasta: Path,
    out_gtf: Path,
) -> None:
    services = as_settings(config).services
    fetch_reference_file(fasta_spec, Path(out_fasta), services)
    fetch_reference_file(gtf_spec, Path(out_gtf), services)
