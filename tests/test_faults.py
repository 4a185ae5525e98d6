"""Faults and bad input, each against the loopback mirror: the failing study (or run) is
recorded in the catalog with a reason naming the study, the file or URL and the field; the
other studies are not affected; nothing is written half.

The world: three GEO series of two single-cell samples each (a metadata-only demo world
with tiny FASTQ files). Faults are injected into study B (GSE920002) only. The stages run
in-process in workflow order (query, sample sheets, downloads, catalog).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from scatlas.demo.metadata_world import Series, write_metadata_world
from scatlas.demo.mirror import Fault, MirrorServer
from scatlas.demo.run import service_urls
from scatlas.discover.studies import discover_studies
from scatlas.ingest.catalog import Catalog
from scatlas.ingest.catalog_update import update_catalog
from scatlas.ingest.download import download_study
from scatlas.ingest.sheets import build_sample_sheet
from scatlas.sources.http import Services

A, B, C = "GSE920001", "GSE920002", "GSE920003"
SOFT_B = f"/geo/series/GSE920nnn/{B}/soft/{B}_family.soft.gz"
FASTQ_B = "/vol1/fastq/SRR920/201/SRR92000201/SRR92000201.fastq.gz"
REPORT_B = "/ena/portal/api/filereport?accession=SRP920002"
KEY = "secret-test-key"
SERIES = [Series(acc, pd.Timestamp(f"2024-02-0{i}").date(), n_samples=2) for i, acc in
          enumerate((A, B, C), start=1)]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults") / "world"
    write_metadata_world(root, SERIES)
    return root


@pytest.fixture
def mirror(world):
    with MirrorServer(world) as m:
        yield m


def config(mirror: MirrorServer, **services) -> dict:
    return {
        "services": {
            **service_urls(mirror.url),
            "timeout_s": 2,
            "retries": 2,
            "backoff_s": 0.01,
            "ncbi_requests_per_s": None,
            "other_requests_per_s": 200,
            **services,
        },
        "discover": {"sources": ["geo"], "organisms": ["Homo sapiens"], "term": "single cell"},
        "download": {"method": "http", "parallel": 2},
    }


def ingest(work: Path, cfg: dict) -> dict[str, dict]:
    """The ingestion stages in workflow order; returns the catalog's studies by accession."""
    res = work / "results"
    svc = Services(cfg["services"], env={"NCBI_API_KEY": KEY})  # 10 requests/s: quick tests
    studies = res / "discover" / "studies.tsv"
    df = discover_studies(cfg, studies, services=svc, catalog=res / "catalog.sqlite")
    dirs, manifests = [], []
    for acc in df.loc[df["status"] == "ok", "study"]:
        out = res / "studies" / acc
        build_sample_sheet(cfg, acc, out, services=svc, studies_tsv=studies)
        fq = res / "fastq" / acc
        download_study(cfg, out / "samples.tsv", fq, fq / "manifest.tsv", services=svc)
        dirs.append(out)
        manifests.append(fq / "manifest.tsv")
    update_catalog(cfg, res / "catalog.sqlite", studies, dirs, manifests)
    with Catalog(res / "catalog.sqlite") as cat:
        return {r["study"]: r for r in cat.rows("studies")}


def runs_of(work: Path, study: str) -> dict[str, dict]:
    with Catalog(work / "results" / "catalog.sqlite") as cat:
        return {r["run"]: r for r in cat.rows("runs", study=study)}


def assert_nothing_half_written(work: Path) -> None:
    res = work / "results"
    assert [p for p in res.rglob("*") if p.name.endswith((".tmp", ".part"))] == []
    for sj in res.glob("studies/*/study.json"):
        info = json.loads(sj.read_text())
        sheet = pd.read_csv(sj.parent / "samples.tsv", sep="\t", dtype=str)
        if info["status"] == "failed":
            assert len(sheet) == 0  # header only: no half sheet


def assert_others_ok(studies: dict[str, dict]) -> None:
    for acc in (A, C):
        assert studies[acc]["status"] == "ok", studies[acc]["reason"]
        assert studies[acc]["error_file"] == ""


def soft_b(world: Path) -> bytes:
    return gzip.decompress((world / "mirror" / SOFT_B.lstrip("/")).read_bytes())


def edit_soft(world: Path, old: bytes, new: bytes) -> bytes:
    """B's SOFT with its first line that starts with ``old`` replaced by ``new``, gzipped
    (served with a matching Content-Length)."""
    lines = soft_b(world).split(b"\n")
    i = next(i for i, line in enumerate(lines) if line.startswith(old))
    lines[i : i + 1] = new.split(b"\n") if new else []
    return gzip.compress(b"\n".join(lines), mtime=0)


# -- service failures --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_a_service_error_that_persists_fails_that_study_alone(mirror, tmp_path, status):
    faults = [Fault(status=status, headers={"Retry-After": "0"}) for _ in range(3)]
    mirror.inject(SOFT_B, *faults)
    studies = ingest(tmp_path, config(mirror))
    assert_others_ok(studies)
    b = studies[B]
    assert b["status"] == "failed" and f"HTTP {status}" in b["reason"]
    assert b["reason"].startswith(f"{B}: ") and SOFT_B in b["reason"]
    assert b["error_file"].endswith(SOFT_B) and b["error_field"] == "(whole file)"
    assert KEY not in b["reason"] + b["error_file"]  # the API key never reaches a record
    assert_nothing_half_written(tmp_path)
    # retried: 1 + 2 retries
    assert sum(1 for _, _, t in mirror.requests if t == SOFT_B) == 3


def test_429_retry_after_is_honoured_then_the_study_is_ingested(mirror, tmp_path):
    mirror.inject(SOFT_B, Fault(status=429, headers={"Retry-After": "1"}))
    studies = ingest(tmp_path, config(mirror))
    assert studies[B]["status"] == "ok"
    times = [t for t, _, path in mirror.requests if path == SOFT_B]
    assert len(times) == 2 and times[1] - times[0] >= 0.95  # waited Retry-After, not backoff


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_transient_server_error_is_retried(mirror, tmp_path, status):
    mirror.inject(SOFT_B, Fault(status=status))
    mirror.inject(REPORT_B, Fault(status=status))
    assert ingest(tmp_path, config(mirror))[B]["status"] == "ok"


def test_timeouts_fail_only_the_run_that_hangs(mirror, tmp_path):
    mirror.inject(FASTQ_B, *[Fault(delay_s=1.5) for _ in range(2)])
    studies = ingest(tmp_path, config(mirror, timeout_s=0.5, retries=1))
    assert_others_ok(studies)
    runs = runs_of(tmp_path, B)
    bad = runs["SRR92000201"]
    assert bad["status"] == "failed" and "Timeout" in bad["reason"]
    assert bad["error_file"].endswith(FASTQ_B) and bad["error_field"] == "(whole file)"
    assert runs["SRR92000202"]["status"] == "ok"
    assert studies[B]["status"] == "ok" and "downloads 1 ok, 1 failed" in studies[B]["reason"]
    assert_nothing_half_written(tmp_path)


def test_connection_reset_mid_body_is_resumed(mirror, tmp_path, world):
    mirror.inject(FASTQ_B, Fault(reset_at=120))
    studies = ingest(tmp_path, config(mirror))
    assert studies[B]["status"] == "ok"
    ranges = [t for _, m, t in mirror.requests if t == FASTQ_B]
    assert len(ranges) == 2  # the cut transfer, then its rest
    got = (tmp_path / "results/fastq" / B / "SRR92000201.fastq.gz").read_bytes()
    assert got == (world / "mirror" / FASTQ_B.lstrip("/")).read_bytes()


def test_connection_reset_every_time_fails_the_run(mirror, tmp_path):
    mirror.inject(FASTQ_B, *[Fault(reset_at=50) for _ in range(3)])
    studies = ingest(tmp_path, config(mirror))
    bad = runs_of(tmp_path, B)["SRR92000201"]
    assert bad["status"] == "failed" and bad["error_file"].endswith(FASTQ_B)
    assert any(w in bad["reason"] for w in ("reset", "Connection", "IncompleteRead", "received"))
    assert_others_ok(studies)


def test_md5_mismatch_is_retried_then_recorded_failed(mirror, tmp_path):
    flip = Fault(transform=lambda b: b[:-9] + bytes([b[-9] ^ 0xFF]) + b[-8:])
    mirror.inject(FASTQ_B, flip)  # once: the retry gets the right bytes
    assert ingest(tmp_path, config(mirror))[B]["status"] == "ok"
    other = tmp_path / "again"
    mirror.inject(FASTQ_B, *[replace(flip) for _ in range(3)])
    studies = ingest(other, config(mirror))
    bad = runs_of(other, B)["SRR92000201"]
    assert bad["status"] == "failed" and bad["reason"].startswith("md5 mismatch for")
    assert (bad["error_file"].endswith(FASTQ_B), bad["error_field"]) == (True, "fastq_md5")
    assert not (other / "results/fastq" / B / "SRR92000201.fastq.gz").exists()
    assert_others_ok(studies)
    assert_nothing_half_written(other)


# -- bad records ---------------------------------------------------------------------------------


def test_html_error_page_instead_of_soft(mirror, tmp_path):
    mirror.inject(SOFT_B, Fault(body=b"<!DOCTYPE html><html><body>Maintenance</body></html>"))
    studies = ingest(tmp_path, config(mirror))
    b = studies[B]
    assert b["status"] == "failed" and "HTML page" in b["reason"]
    assert b["error_file"].endswith(f"{B}_family.soft.gz") and b["error_field"] == "(whole file)"
    assert_others_ok(studies)
    assert_nothing_half_written(tmp_path)


def test_html_error_page_instead_of_the_filereport_falls_back_per_experiment(mirror, tmp_path):
    mirror.inject(REPORT_B, *[Fault(body=b"<html><body>ENA is down</body></html>")])
    studies = ingest(tmp_path, config(mirror))
    assert studies[B]["status"] == "ok"
    asked = [t for _, _, t in mirror.requests if "filereport?accession=SRX920002" in t]
    assert len(asked) == 2  # one per experiment after the study-level report failed


def test_truncated_gzip(mirror, tmp_path):
    mirror.inject(SOFT_B, Fault(transform=lambda b: b[: len(b) // 2]))
    studies = ingest(tmp_path, config(mirror))
    b = studies[B]
    assert b["status"] == "failed" and "corrupt or truncated" in b["reason"]
    assert b["error_file"].endswith(f"raw/{B}_family.soft.gz")
    assert_others_ok(studies)
    assert_nothing_half_written(tmp_path)


@pytest.mark.parametrize(
    "old, new, field, words",
    [
        (  # a malformed accession
            b"!Sample_geo_accession = GSM92000201",
            b"!Sample_geo_accession = GSM92000201; rm -rf ~",
            "!Sample_geo_accession",
            "is not a GEO sample accession",
        ),
        (  # a duplicated single-valued field
            b"!Sample_library_strategy = RNA-Seq",
            b"!Sample_library_strategy = RNA-Seq\n!Sample_library_strategy = ATAC-seq",
            "!Sample_library_strategy",
            "given twice",
        ),
        (  # non-UTF-8 text (Latin-1)
            b"!Sample_characteristics_ch1 = cell type:",
            "!Sample_characteristics_ch1 = donor: Müller".encode("latin-1"),
            "!Sample_characteristics_ch1",
            "is not UTF-8 text (byte 0xfc",
        ),
        (  # a duplicated entity
            b"^SAMPLE = GSM92000202",
            b"^SAMPLE = GSM92000201",
            "^SAMPLE",
            "appears twice",
        ),
    ],
)
def test_malformed_soft_names_study_file_and_field(mirror, world, tmp_path, old, new, field, words):
    mirror.inject(SOFT_B, Fault(body=edit_soft(world, old, new), content_type="application/gzip"))
    studies = ingest(tmp_path, config(mirror))
    b = studies[B]
    assert b["status"] == "failed" and words in b["reason"], b["reason"]
    assert b["reason"].startswith(f"{B}: ")
    assert b["error_file"].endswith(f"{B}/raw/{B}_family.soft.gz")
    assert b["error_field"] == field
    assert_others_ok(studies)
    assert_nothing_half_written(tmp_path)


def test_missing_field_excludes_the_sample_with_the_reason(mirror, world, tmp_path):
    body = edit_soft(world, b"!Sample_library_strategy = RNA-Seq", b"")
    mirror.inject(SOFT_B, Fault(body=body, content_type="application/gzip"))
    ingest(tmp_path, config(mirror))
    with Catalog(tmp_path / "results" / "catalog.sqlite") as cat:
        sample = cat.rows("samples", sample="GSM92000201")[0]
    assert sample["status"] == "skipped"
    assert "library strategy 'missing'" in sample["reason"]


@pytest.mark.parametrize(
    "transform, field, words",
    [
        (lambda b: b.replace(b"run_accession\t", b"", 1), "run_accession", "no run_accession"),
        (
            lambda b: b.replace(b"fastq_md5\t", b"fastq_md5\tfastq_md5\t", 1),
            "fastq_md5",
            "twice",
        ),
        (lambda b: b.replace(b"SRR92000201", b"SRR92000201;rm", 1), "run_accession", "does not"),
        (lambda b: b.replace(b"SINGLE", "SINGLE\xe9".encode("latin-1"), 1), None, "not utf-8"),
    ],
)
def test_malformed_filereport(mirror, tmp_path, transform, field, words):
    """The study-level report and the per-experiment fall-back get the same bad TSV."""
    mirror.inject(REPORT_B, Fault(transform=transform))
    mirror.inject("/ena/portal/api/filereport?accession=SRX920002", *[
        Fault(transform=transform) for _ in range(2)])  # fmt: skip
    studies = ingest(tmp_path, config(mirror))
    b = studies[B]
    assert b["status"] == "failed" and words in b["reason"], b["reason"]
    assert "filereport" in b["error_file"]
    assert b["error_field"] == (field or "(whole file)")
    assert_others_ok(studies)


def test_metadata_crafted_as_paths_and_commands_stays_text(mirror, world, tmp_path):
    crafted_title = "../../../../etc/passwd; $(touch /tmp/scatlas-pwned) `id`"
    body = edit_soft(
        world,
        b"!Sample_title = GSE920002 single cell 1 ",
        f"!Sample_title = {crafted_title}".encode(),
    )
    mirror.inject(SOFT_B, Fault(body=body, content_type="application/gzip"))
    studies = ingest(tmp_path, config(mirror))
    assert studies[B]["status"] == "ok"
    sheet = pd.read_csv(tmp_path / f"results/studies/{B}/samples.tsv", sep="\t", dtype=str)
    assert crafted_title in set(sheet["title"])
    assert not Path("/tmp/scatlas-pwned").exists()
    files = {p.name for p in (tmp_path / "results").rglob("*") if p.is_file()}
    assert not any("passwd" in f or "$(" in f for f in files)
    assert {p.parent.name for p in (tmp_path / "results/fastq").rglob("*.fastq.gz")} == {A, B, C}


@pytest.mark.parametrize("env, rate", [({}, 3.0), ({"NCBI_API_KEY": KEY}, 10.0)])
def test_rate_limit_to_ncbi_is_measured(mirror, env, rate):
    """E-utilities and GEO share NCBI's limit: 3 requests/s, 10 with NCBI_API_KEY; the
    measured rate of back-to-back requests (both services mixed) stays at the limit."""
    svc = Services(config(mirror)["services"], env=env)
    n = int(rate * 2) + 1
    for i in range(n):
        if i % 2:
            svc.geo.get(SOFT_B.removeprefix("/geo/"))
        else:
            svc.eutils.get_json("esearch.fcgi", {"db": "gds", "term": A, "retmode": "json"})
    times = [t for t, _, path in mirror.requests if path.startswith(("/entrez", "/geo"))]
    measured = (len(times) - 1) / (times[-1] - times[0])
    assert measured <= rate * 1.02, measured  # the limit (a loaded machine only goes slower)
    sent = [p for _, _, p in mirror.requests if p.startswith("/entrez")]
    assert all(("api_key=" in p) == bool(env) for p in sent)
