"""The genome FASTA and GTF of an organism, from a local path or a verified download,
stored uncompressed under resources/genomes/{name}/."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

from scatlas.compression import decompressed_copy
from scatlas.fileio import atomic_path
from scatlas.reads.reference import resolve_reference_file
from scatlas.sources.http import HttpClient

log = logging.getLogger(__name__)


def _downloader(services: dict):
    def download(url: str, dest: Path) -> None:
        parts = urlsplit(url)
        client = HttpClient(
            f"{parts.scheme}://{parts.netloc}",
            timeout=float(services.get("timeout_s", 60)),
            retries=int(services.get("retries", 5)),
            backoff=float(services.get("backoff_s", 1.0)),
        )
        log.info("downloading %s", url)
        client.download(url, Path(dest))

    return download


def fetch_reference_file(spec: dict, out: Path, services: dict) -> Path:
    """Place the file described by ``spec`` at ``out`` (decompressed), atomically."""
    out = Path(out)
    raw = resolve_reference_file(spec, out.with_name(out.name + ".download"), _downloader(services))
    with atomic_path(out) as tmp:
        decompressed_copy(raw, tmp)
    if "url" in spec:
        raw.unlink(missing_ok=True)
    log.info("reference file %s ready (%d bytes)", out, out.stat().st_size)
    return out


def fetch_reference_files(
    config: dict, fasta_spec: dict, gtf_spec: dict, out_fasta: Path, out_gtf: Path
) -> None:
    services = config.get("services", {})
    fetch_reference_file(fasta_spec, Path(out_fasta), services)
    fetch_reference_file(gtf_spec, Path(out_gtf), services)
