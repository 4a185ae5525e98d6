"""`scatlas refresh`: lock, window planning, incremental re-runs, retries, kill and resume.

The workflow runs for real (snakemake.api, target ``ingest``: discover, sample sheets,
downloads, catalog) against a loopback mirror of a metadata-only demo world.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from scatlas import cli
from scatlas.demo.metadata_world import Series, write_metadata_world
from scatlas.demo.mirror import Fault, MirrorServer
from scatlas.demo.run import service_urls
from scatlas.discover.refresh import (
    RERUN_TRIGGERS,
    plan_window,
    refresh,
    retry_failed,
)
from scatlas.errors import InputError
from scatlas.ingest.catalog import Catalog
from scatlas.locks import LockedError, workflow_lock

D = dt.date


def world_series(changed: bool = False, extra: bool = False) -> list[Series]:
    out = [
        Series("GSE910001", D(2024, 1, 2), n_samples=2),
        Series("GSE910002", D(2024, 1, 3), n_samples=2, title_suffix=" (v2)" if changed else ""),
        Series("GSE910003", D(2024, 1, 4), n_samples=2, paired=True),
    ]
    if extra:
        out.append(Series("GSE910004", D(2024, 1, 15), n_samples=2))
    return out


def write_config(work: Path, mirror_url: str | None = None) -> Path:
    services = (
        "".join(f"  {k}: {v}\n" for k, v in service_urls(mirror_url).items()) if mirror_url else ""
    )
    cfg = work / "refresh.yaml"
    cfg.write_text(
        "discover:\n"
        '  organisms: ["Homo sapiens"]\n'
        "  sources: [geo]\n"
        '  date_from: "2024-01-01"\n'
        "reference:\n"
        "  Homo sapiens:\n"
        "    name: none\n"
        "    fasta: {path: none.fa}\n"
        "    gtf: {path: none.gtf}\n"
        "services:\n" + services + "  timeout_s: 5\n  retries: 1\n  backoff_s: 0.05\n"
        "  other_requests_per_s: 200\n"
        "download:\n  parallel: 2\n"
    )
    return cfg


def run(work: Path, mirror: MirrorServer, repo_root: Path, **kw):
    return refresh(
        work,
        configfiles=[write_config(work)],
        config={"services": service_urls(mirror.url)},
        targets=["ingest"],
        snakefile=repo_root / "Snakefile",
        **kw,
    )


def outputs(work: Path) -> dict[str, bytes]:
    """Every result file (bar the lock) by relative path."""
    res = work / "results"
    return {
        str(p.relative_to(res)): p.read_bytes()
        for p in sorted(res.rglob("*"))
        if p.is_file() and p.name != ".workflow.lock" and not p.name.startswith("catalog")
    }


def catalog_rows(work: Path) -> dict[str, list[tuple]]:
    """Catalog rows without their timestamps."""
    db = sqlite3.connect(work / "results" / "catalog.sqlite")
    stamps = {"studies": {"first_seen", "last_seen"}, "samples": set(), "runs": {"updated"}}
    out = {}
    for table, drop in stamps.items():
        cur = db.execute(f"SELECT * FROM {table} ORDER BY rowid")
        names = [d[0] for d in cur.description]
        out[table] = sorted(
            tuple(v for n, v in zip(names, row, strict=True) if n not in drop) for row in cur
        )
    db.close()
    return out


# -- fast tests ------------------------------------------------------------------------------


HOLD_LOCK = """
import sys, time
from scatlas.locks import workflow_lock
with workflow_lock(sys.argv[1], "demo"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_overlapping_refresh_exits_zero_with_a_message(tmp_path, capsys, repo_root):
    """Another scatlas run (here a child process) holds the folder: the refresh exits 0 at
    once naming it; the lock is free again once that process is gone."""
    env = {**os.environ, "PYTHONPATH": str(repo_root / "scripts")}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path)], stdout=subprocess.PIPE, env=env
    )
    try:
        assert holder.stdout.readline().strip() == b"held"
        result = refresh(tmp_path, configfiles=[write_config(tmp_path)])
        assert result.status == "locked"
        assert f"pid {holder.pid}" in result.message and "another scatlas run" in result.message
        assert cli.main(["refresh", "--workdir", str(tmp_path), "--configfile",
                         str(tmp_path / "refresh.yaml")]) == 0  # fmt: skip
        assert "another scatlas run is using" in capsys.readouterr().out
        with pytest.raises(LockedError, match=f"pid {holder.pid}"), workflow_lock(tmp_path):
            pass
    finally:
        holder.kill()  # SIGKILL: the kernel drops its lock
        holder.wait()
    assert not (tmp_path / "results" / "catalog.sqlite").exists()  # nothing was recorded
    with workflow_lock(tmp_path) as again, workflow_lock(tmp_path):  # free; re-entrant
        assert again.name == ".workflow.lock"


def test_window_planning(tmp_path):
    today = D(2024, 3, 1)
    with Catalog(tmp_path / "c.sqlite") as cat:
        w = plan_window(cat, config_from="2024-01-01", today=today)
        assert (w.since, w.until) == ("2024-01-01", "2024-03-01") and "first refresh" in w.why
        assert plan_window(cat, today=today).since is None
        rid = cat.start_refresh("2024-01-01", "2024-02-01")
        cat.finish_refresh(rid, status="ok", n_studies=1, n_new=1, reason="ok")
        failed = cat.start_refresh("2024-02-01", "2024-02-15")
        cat.finish_refresh(failed, status="failed", n_studies=0, n_new=0, reason="down")
        w = plan_window(cat, today=today)  # from the last *successful* refresh
        assert (w.since, w.until) == ("2024-02-01", "2024-03-01") and f"#{rid}" in w.why
        w = plan_window(cat, since="2023-12-01", until="2023-12-31", today=today)
        assert (w.since, w.until, w.why) == ("2023-12-01", "2023-12-31", "given with --since")
        with pytest.raises(InputError, match="starts after it ends"):
            plan_window(cat, since="2024-04-01", today=today)
        with pytest.raises(InputError, match="is not YYYY-MM-DD"):
            plan_window(cat, since="01/04/2024", today=today)
    assert set(RERUN_TRIGGERS) == {"mtime", "params", "input"}


def test_retry_moves_aside_network_failures_only(tmp_path):
    res = tmp_path / "results"
    for study, error in (
        ("GSE1", {"kind": "service", "file": "http://x/soft.gz", "field": "(whole file)"}),
        ("GSE2", {"kind": "input", "file": "raw/GSE2.soft.gz", "field": "!Sample_title"}),
    ):
        (res / "studies" / study).mkdir(parents=True)
        (res / "studies" / study / "study.json").write_text(
            json.dumps({"status": "failed", "reason": "r", "error": error})
        )
        (res / "studies" / study / "samples.tsv").write_text("study\n")
    header = "run\tsample\tfiles\tstatus\treason\tbytes\tmd5\terror_file\terror_field\n"
    for study, row in (
        ("GSE1", "SRR1000001\tGSM1\t\tfailed\tcut\t\t\thttp://x/1.fastq.gz\t(whole file)\n"),
        ("GSE2", "SRR1000002\tGSM2\t\tfailed\tmd5\t\t\thttp://x/2.fastq.gz\tfastq_md5\n"),
    ):
        (res / "fastq" / study).mkdir(parents=True)
        (res / "fastq" / study / "manifest.tsv").write_text(header + row)
    moved = retry_failed(res, tmp_path / "aside")
    assert [m.split(":")[0] for m in moved] == ["GSE1", "GSE1"]
    assert not (res / "studies" / "GSE1" / "study.json").exists()
    assert not (res / "fastq" / "GSE1" / "manifest.tsv").exists()
    assert (res / "studies" / "GSE2" / "study.json").exists()  # malformed: stays failed
    assert (res / "fastq" / "GSE2" / "manifest.tsv").exists()  # md5 mismatch: stays failed
    kept = sorted(p.name for p in (tmp_path / "aside").rglob("*") if p.is_file())
    assert kept == ["manifest.tsv", "samples.tsv", "study.json"]  # moved, not deleted


def test_failed_workflow_is_recorded_and_its_window_covered_again(tmp_path, repo_root):
    world = tmp_path / "world"
    write_metadata_world(world, world_series())
    with MirrorServer(world) as mirror:
        html = Fault(body=b"<html><body>Service unavailable</body></html>")
        mirror.inject("/entrez/eutils/esearch.fcgi", html, html)
        result = run(tmp_path, mirror, repo_root, until="2024-01-10")
    assert result.status == "failed" and "the workflow failed" in result.message
    with Catalog(tmp_path / "results" / "catalog.sqlite") as cat:
        last = cat.last_refresh(status=None)
        assert (last["status"], last["date_from"], last["date_to"]) == (
            "failed",
            "2024-01-01",
            "2024-01-10",
        )
        assert cat.last_refresh("ok") is None
        assert plan_window(cat, config_from="2024-01-01").since == "2024-01-01"
    log = (tmp_path / "logs" / "discover" / "discover.log").read_text()
    assert "HTML" in log and "esearch.fcgi" in log


# -- the workflow, incrementally -----------------------------------------------------------


@pytest.mark.slow
def test_incremental_refresh_reruns_only_what_is_new_or_changed(tmp_path, repo_root):
    world = tmp_path / "world"
    write_metadata_world(world, world_series())
    with MirrorServer(world) as mirror:
        first = run(tmp_path, mirror, repo_root, until="2024-01-10")
        assert first.status == "ok", first.message
        assert first.new == ["GSE910001", "GSE910002", "GSE910003"] and first.changed == []
        before = {p: b for p, b in outputs(tmp_path).items()}
        stamps = {p: (tmp_path / "results" / p).stat().st_mtime_ns for p in before}
        # upstream: GSE910002's sample titles change, GSE910004 is published after the window
        write_metadata_world(world, world_series(changed=True, extra=True))
        mirror.reload()
        second = run(tmp_path, mirror, repo_root, until="2024-01-20")
    assert second.status == "ok", second.message
    assert second.window.since == "2024-01-10"  # from the first refresh's end
    assert (second.new, second.changed) == (["GSE910004"], ["GSE910002"])
    after = outputs(tmp_path)
    rewritten = {p for p in before if (tmp_path / "results" / p).stat().st_mtime_ns != stamps[p]}
    assert {p.split("/")[1] for p in rewritten if p.startswith(("studies/", "fastq/"))} == {
        "GSE910002"
    }
    for study in ("GSE910001", "GSE910003"):  # untouched, byte for byte and by mtime
        assert all(after[p] == before[p] for p in before if f"/{study}/" in p), study
    sheet = pd.read_csv(tmp_path / "results/studies/GSE910002/samples.tsv", sep="\t")
    assert sheet["title"].str.endswith("(v2)").all()
    assert (tmp_path / "results/fastq/GSE910004/manifest.tsv").is_file()
    with Catalog(tmp_path / "results" / "catalog.sqlite") as cat:
        hist = cat.history("studies", "GSE910002")
        assert [h["field"] for h in hist].count("fingerprint") == 1  # the change, recorded
        refreshes = cat.rows("refreshes")
        assert [(r["status"], r["n_new"], r["n_changed"]) for r in refreshes] == [
            ("ok", 3, 0),
            ("ok", 1, 1),
        ]
        assert "1 new, 1 changed upstream (GSE910002)" in refreshes[1]["reason"]
        assert len(cat.rows("studies")) == 4  # the first window's studies are still listed


@pytest.mark.slow
def test_killed_refresh_resumes_to_the_same_result(tmp_path, repo_root):
    """Kill a refresh (the whole process group, SIGKILL) while a download hangs; the next
    refresh resumes (stale lock, incomplete outputs, unfinished refresh row) and ends with
    exactly what an uninterrupted refresh produces."""
    world = tmp_path / "world"
    write_metadata_world(world, world_series())
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    clean.mkdir()
    killed.mkdir()
    with MirrorServer(world) as mirror:
        assert run(clean, mirror, repo_root, until="2024-01-10").status == "ok"
        hang = "/vol1/fastq/SRR910/201/SRR91000201/SRR91000201.fastq.gz"
        mirror.inject(hang, Fault(delay_s=30))
        n_before = len(mirror.requests)
        cfg = write_config(killed, mirror.url)
        env = {**os.environ, "PYTHONPATH": str(repo_root / "scripts")}
        with open(killed / "first-run.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "scatlas.cli", "refresh", "--workdir", str(killed),
                 "--configfile", str(cfg), "--target", "ingest", "--until", "2024-01-10"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 90
                while not any(t == hang for _, _, t in mirror.requests[n_before:]):
                    assert proc.poll() is None, (killed / "first-run.log").read_text()[-3000:]
                    assert time.monotonic() < deadline, "the hanging download never started"
                    time.sleep(0.1)
            finally:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        mirror.clear_faults()
        assert not (killed / "results" / "catalog" / "ingest.json").exists()  # killed mid-way
        with Catalog(killed / "results" / "catalog.sqlite") as cat:
            assert cat.last_refresh(status=None)["status"] == "new"  # never finished
        resumed = run(killed, mirror, repo_root, until="2024-01-10")
    assert resumed.status == "ok", resumed.message
    assert outputs(killed) == outputs(clean)
    assert catalog_rows(killed) == catalog_rows(clean)
    with Catalog(killed / "results" / "catalog.sqlite") as cat:
        statuses = [r["status"] for r in cat.rows("refreshes")]
        assert statuses == ["failed", "ok"]
        assert cat.rows("refreshes")[0]["reason"].startswith("interrupted")


@pytest.mark.slow
def test_refresh_killed_after_cataloguing_keeps_its_new_studies(tmp_path, repo_root, monkeypatch):
    """A refresh stopped after the workflow catalogued its studies, before it recorded
    itself: the resumed refresh still reports those studies as new."""
    import scatlas.discover.refresh as refresh_module

    world = tmp_path / "world"
    write_metadata_world(world, world_series())
    recorder = refresh_module._record

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as a SIGINT right after the workflow ends

    with MirrorServer(world) as mirror:
        monkeypatch.setattr(refresh_module, "_record", killed)
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path, mirror, repo_root, until="2024-01-10")
        with Catalog(tmp_path / "results" / "catalog.sqlite") as cat:
            assert len(cat.rows("studies")) == 3  # already catalogued
        monkeypatch.setattr(refresh_module, "_record", recorder)
        resumed = run(tmp_path, mirror, repo_root, until="2024-01-10")
        assert resumed.status == "ok", resumed.message
        assert resumed.new == ["GSE910001", "GSE910002", "GSE910003"]
        again = run(tmp_path, mirror, repo_root, until="2024-01-10")
        assert again.new == [] and again.changed == []  # recorded once, then known
    assert not (tmp_path / refresh_module.BEFORE_FILE).exists()
    with Catalog(tmp_path / "results" / "catalog.sqlite") as cat:
        rows = cat.rows("refreshes")
    assert [(r["status"], r["n_new"]) for r in rows] == [("failed", None), ("ok", 3), ("ok", 0)]
