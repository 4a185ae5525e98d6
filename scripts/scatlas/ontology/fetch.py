"""Download a Cell Ontology release (production: the current ``cl-basic.obo``), verified.

The file goes through `scatlas.sources.http.HttpClient` (timeouts, retries, resume) into a
temporary name beside the destination; its sha256 is checked against the configured one
(when given) and it must load as an ontology with CL terms before it is renamed into place.
A ``<dest>.sha256`` file beside it records the checksum and the URL, so an unpinned download
("trust on first use") can be pinned in the config afterwards.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from scatlas.errors import InputError, ServiceError
from scatlas.fileio import atomic_write_text, sha256_file
from scatlas.ontology.load import load_ontology
from scatlas.sources.http import HttpClient

log = logging.getLogger(__name__)


def download_ontology(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    client: HttpClient | None = None,
) -> dict[str, Any]:
    """Fetch ``url`` to ``dest`` (verified); returns {url, path, sha256, bytes, version,
    n_terms}. A checksum mismatch or a file that is not a loadable OBO raises and leaves
    ``dest`` untouched."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.download")
    http = client or HttpClient(url.rsplit("/", 1)[0], name="ontology")
    try:
        http.download(url, part)
        got = sha256_file(part)
        if sha256 and got.lower() != sha256.lower():
            raise ServiceError(
                f"sha256 mismatch for {url}: expected {sha256.lower()}, got {got}",
                url=url,
                reason="sha256 mismatch",
            )
        try:
            onto = load_ontology(part)
        except InputError as exc:
            raise InputError(f"downloaded file is not a usable ontology: {exc}", path=url) from exc
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    if not sha256:
        log.warning(
            "%s: no sha256 configured; downloaded %s with sha256 %s (set ontology.sha256 to "
            "pin it)",
            dest,
            url,
            got,
        )
    record = {
        "url": url,
        "path": str(dest),
        "sha256": got,
        "bytes": dest.stat().st_size,
        "version": onto.version,
        "n_terms": len(onto),
    }
    atomic_write_text(dest.with_name(dest.name + ".sha256"), json.dumps(record, indent=2) + "\n")
    log.info("ontology %s (%s, %d CL terms) -> %s", url, onto.version, len(onto), dest)
    return record
