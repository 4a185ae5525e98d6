"""The fasterq-dump route (download.method fasterq-dump / auto).

SRA cannot be reached offline, so the success paths use a fake ``fasterq-dump`` put first
on PATH: a small script that writes FASTQ files the way the real tool does
(``--outdir DIR --split-files ... ACCESSION`` → ``DIR/ACC_1.fastq``, ``DIR/ACC_2.fastq``)
and records its argument list. The real sra-toolkit binary, when installed, is run too: it
fails offline, and that failure must be recorded with its exit status.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pandas as pd
import pytest
from _http_loopback import Loopback

from scatlas.ingest.download import download_study
from scatlas.sheets import SAMPLE_COLUMNS
from scatlas.sources.fasterq import fasterq_dump
from scatlas.sources.http import Services

FAKE = """#!{python}
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
log = Path(os.environ["FAKE_FQD_LOG"])
calls = json.loads(log.read_text()) if log.exists() else []
calls.append(args)
log.write_text(json.dumps(calls))
mode = os.environ.get("FAKE_FQD_MODE", "paired")
if mode == "fail-once" and len(calls) == 1:
    sys.stderr.write("err: connection to SRA timed out\\n")
    sys.exit(3)
out = Path(args[args.index("--outdir") + 1])
run = args[-1]
def reads(mate, n=5, bad=False):
    recs = []
    for i in range(n):
        qual = "I" * (10 if not bad else 7)
        recs.append(f"@{{run}}.{{i + 1}} {{i + 1}} length=10\\nACGTACGTAC\\n+{{run}}.{{i + 1}}\\n{{qual}}\\n")
    return "".join(recs)
if mode == "single":
    (out / f"{{run}}.fastq").write_text(reads(1))
elif mode == "broken":
    (out / f"{{run}}.fastq").write_text(reads(1, bad=True))
elif mode == "uneven":
    (out / f"{{run}}_1.fastq").write_text(reads(1, 5))
    (out / f"{{run}}_2.fastq").write_text(reads(2, 4))
else:
    (out / f"{{run}}_1.fastq").write_text(reads(1))
    (out / f"{{run}}_2.fastq").write_text(reads(2))
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A fake fasterq-dump first on PATH; returns a function giving its recorded calls."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "fasterq-dump"
    exe.write_text(FAKE.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "calls.json"
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_FQD_LOG", str(log))
    return lambda: json.loads(log.read_text()) if log.exists() else []


def sheet(tmp_path: Path, rows: list[dict]) -> Path:
    base = dict.fromkeys(SAMPLE_COLUMNS, "")
    base.update(study="GSE900001", organism="Homo sapiens", technology="smartseq",
                library_layout="PAIRED", title="t")  # fmt: skip
    path = tmp_path / "samples.tsv"
    pd.DataFrame([{**base, **r} for r in rows])[SAMPLE_COLUMNS].to_csv(path, sep="\t", index=False)
    return path


def cfg(method: str, **dl) -> dict:
    return {
        "services": {"retries": 1, "backoff_s": 0.01},
        "download": {"method": method, "parallel": 2, **dl},
    }


def test_fasterq_dump_route_checks_and_gzips(fake, tmp_path):
    path = sheet(tmp_path, [{"sample": "GSM1", "run": "SRR10000001"}])
    fq = tmp_path / "fastq"
    df = download_study(cfg("fasterq-dump", threads=3), path, fq, fq / "manifest.tsv")
    [row] = df.to_dict("records")
    assert row["status"] == "ok", row["reason"]
    assert row["reason"] == (
        "fasterq-dump from SRA, 5/5 reads, FASTQ records checked (SRA publishes no FASTQ md5)"
    )
    files = [fq / "SRR10000001_1.fastq.gz", fq / "SRR10000001_2.fastq.gz"]
    assert row["files"].split(";") == [str(f.resolve()) for f in files]
    assert row["md5"].split(";") == [hashlib.md5(f.read_bytes()).hexdigest() for f in files]
    with gzip.open(files[1], "rt") as fh:
        assert fh.readline().startswith("@SRR10000001.1 1")
    [call] = fake()
    assert call[-1] == "SRR10000001" and call[call.index("--threads") + 1] == "3"
    assert "--split-files" in call and "--skip-technical" in call
    assert not any(p.name.startswith(".") for p in fq.iterdir())  # work folder removed


def test_tool_failure_is_retried(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FQD_MODE", "fail-once")
    dumped = fasterq_dump("SRR10000002", tmp_path, retries=1, backoff_s=0.01)
    assert [d.path.name for d in dumped] == ["SRR10000002_1.fastq.gz", "SRR10000002_2.fastq.gz"]
    assert len(fake()) == 2


@pytest.mark.parametrize(
    "mode, field, words",
    [
        ("broken", "FASTQ quality", "sequence and quality lengths differ"),
        ("uneven", "FASTQ mates", "mates of SRR10000003 differ: 5 and 4 reads"),
    ],
)
def test_malformed_output_fails_the_run_alone(fake, tmp_path, monkeypatch, mode, field, words):
    monkeypatch.setenv("FAKE_FQD_MODE", mode)
    path = sheet(tmp_path, [{"sample": "GSM3", "run": "SRR10000003"}])
    df = download_study(cfg("fasterq-dump"), path, tmp_path / "fq", tmp_path / "fq" / "m.tsv")
    [row] = df.to_dict("records")
    assert row["status"] == "failed" and words in row["reason"]
    assert row["error_field"] == field
    assert list((tmp_path / "fq").glob("*.fastq.gz")) == []  # nothing half written


def test_auto_uses_http_where_ena_has_fastq_and_sra_elsewhere(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FQD_MODE", "single")
    data = gzip.compress(b"@r1\nACGT\n+\nIIII\n", mtime=0)
    with Loopback() as server:
        url_path = "/vol1/fastq/SRR100/004/SRR10000004/SRR10000004.fastq.gz"
        server.routes[url_path] = data
        path = sheet(
            tmp_path,
            [
                {"sample": "GSM4", "run": "SRR10000004", "library_layout": "SINGLE",
                 "fastq_urls": server.url(url_path), "fastq_md5": hashlib.md5(data).hexdigest(),
                 "fastq_bytes": str(len(data))},
                {"sample": "GSM5", "run": "SRR10000005", "library_layout": "SINGLE"},
            ],
        )  # fmt: skip
        c = cfg("auto")
        c["services"]["ena_files"] = server.base
        svc = Services(c["services"], env={})
        df = download_study(c, path, tmp_path / "fq", tmp_path / "fq" / "m.tsv", services=svc)
    rows = {r["run"]: r for r in df.to_dict("records")}
    assert rows["SRR10000004"]["reason"] == "ENA FASTQ, size and md5 verified"
    assert rows["SRR10000005"]["reason"].startswith("fasterq-dump from SRA, 5 reads")
    assert [c[-1] for c in fake()] == ["SRR10000005"]
    http_only = download_study(cfg("http"), path, tmp_path / "h", tmp_path / "h" / "m.tsv")
    no_url = http_only[http_only["run"] == "SRR10000005"].iloc[0]
    assert no_url["status"] == "failed" and no_url["error_field"] == "fastq_urls"


def test_missing_tool_is_a_clear_failure(tmp_path):
    path = sheet(tmp_path, [{"sample": "GSM6", "run": "SRR10000006"}])
    df = download_study(
        cfg("fasterq-dump", fasterq_dump=str(tmp_path / "no-such-tool")),
        path,
        tmp_path / "fq",
        tmp_path / "fq" / "m.tsv",
    )
    [row] = df.to_dict("records")
    assert row["status"] == "failed" and "exited with status 127" in row["reason"]
    assert "not found on PATH" in row["reason"]


def test_crafted_run_accession_never_reaches_the_tool(fake, tmp_path):
    from scatlas.accessions import AccessionError

    with pytest.raises(AccessionError):
        fasterq_dump("SRR1; rm -rf ~", tmp_path)
    assert fake() == []


@pytest.mark.skipif(shutil.which("fasterq-dump") is None, reason="sra-toolkit not installed")
def test_real_fasterq_dump_offline_failure_is_recorded(tmp_path):
    """The real sra-toolkit binary cannot reach SRA here: a failed manifest row with the
    tool's exit status, nothing left behind."""
    path = sheet(tmp_path, [{"sample": "GSM7", "run": "SRR11250001"}])
    df = download_study(
        cfg("fasterq-dump", tool_timeout_s=60), path, tmp_path / "fq", tmp_path / "fq" / "m.tsv"
    )
    [row] = df.to_dict("records")
    assert row["status"] == "failed" and row["reason"].startswith("fasterq-dump exited with status")
    assert row["error_file"] == "fasterq-dump"
    assert [p.name for p in (tmp_path / "fq").iterdir()] == ["m.tsv"]
