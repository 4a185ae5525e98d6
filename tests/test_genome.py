"""Genome files: local paths and verified downloads, stored decompressed."""

from __future__ import annotations

import gzip
import hashlib

import pytest
from _http_loopback import Loopback

from scatlas.errors import InputError
from scatlas.reads.genome import fetch_reference_file

FASTA = b">chr1\nACGTACGTAC\nGGTTAACC\n"
SERVICES = {"timeout_s": 5, "retries": 1, "backoff_s": 0.01}


def test_local_gzipped_path_is_decompressed(tmp_path):
    src = tmp_path / "genome.fa.gz"
    src.write_bytes(gzip.compress(FASTA))
    out = fetch_reference_file({"path": str(src)}, tmp_path / "ref" / "genome.fa", SERVICES)
    assert out.read_bytes() == FASTA


def test_url_verified_by_sha256(tmp_path):
    payload = gzip.compress(FASTA, mtime=0)
    good = hashlib.sha256(payload).hexdigest()
    server = Loopback()
    server.routes["/genomes/genome.fa.gz"] = payload
    with server:
        url = server.url("/genomes/genome.fa.gz")
        out = fetch_reference_file(
            {"url": url, "sha256": good}, tmp_path / "a" / "genome.fa", SERVICES
        )
        assert out.read_bytes() == FASTA
        assert not (tmp_path / "a" / "genome.fa.download").exists()
        with pytest.raises(InputError, match="sha256"):
            fetch_reference_file(
                {"url": url, "sha256": "0" * 64}, tmp_path / "b" / "genome.fa", SERVICES
            )
    assert not (tmp_path / "b" / "genome.fa").exists()  # nothing half-written


def test_missing_local_file_named(tmp_path):
    with pytest.raises(InputError, match="not found"):
        fetch_reference_file({"path": str(tmp_path / "nope.fa")}, tmp_path / "x.fa", SERVICES)
