"""One workflow lock per folder; a Snakemake lock is removed only when no live run holds it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scatlas.demo.run import _read_json
from scatlas.locks import LockedError, snakemake_processes, stale_snakemake_lock, workflow_lock
from scatlas.runner import run_workflow

HOLD = """
import sys, time
from scatlas.locks import workflow_lock
with workflow_lock(sys.argv[1], "demo"):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(work: Path, repo_root: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(repo_root / "scripts")}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(work)], stdout=subprocess.PIPE, env=env
    )
    assert proc.stdout.readline().strip() == b"held"
    return proc


def test_run_workflow_refuses_a_folder_another_run_holds(tmp_path, repo_root):
    (tmp_path / ".snakemake" / "locks").mkdir(parents=True)
    (tmp_path / ".snakemake" / "locks" / "0.input.lock").write_text("x")
    holder = _holder(tmp_path, repo_root)
    try:
        with pytest.raises(LockedError, match=f"pid {holder.pid} .*did not start"):
            run_workflow(tmp_path, snakefile=repo_root / "Snakefile", dryrun=True)
    finally:
        holder.kill()
        holder.wait()
    # the holder's Snakemake lock is left alone while it lives
    assert (tmp_path / ".snakemake" / "locks" / "0.input.lock").exists()


def test_stale_snakemake_lock_only_without_a_live_snakemake(tmp_path):
    assert not stale_snakemake_lock(tmp_path)  # no lock at all
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text("x")
    assert stale_snakemake_lock(tmp_path)  # nobody works there: a killed run's lock
    # a live process working in the folder under Snakemake (as a rule script would be)
    script = tmp_path / ".snakemake" / "scripts" / "tmp_snakemake_job.py"
    script.parent.mkdir(parents=True)
    script.write_text("import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"up"
        assert [pid for pid, _ in snakemake_processes(tmp_path)] == [proc.pid]
        with pytest.raises(LockedError, match=f"Snakemake run is working .*pid {proc.pid}"):
            stale_snakemake_lock(tmp_path)
    finally:
        proc.kill()
        proc.wait()
    assert stale_snakemake_lock(tmp_path)


def test_lock_is_dropped_when_its_holder_is_killed(tmp_path, repo_root):
    holder = _holder(tmp_path, repo_root)
    with pytest.raises(LockedError), workflow_lock(tmp_path):
        pass
    holder.kill()
    holder.wait()
    with workflow_lock(tmp_path) as path:
        assert f"pid {os.getpid()}" in path.read_text()
    assert path.read_text() == ""  # released: no holder recorded


def test_a_failed_demo_never_reports_an_earlier_runs_figures(tmp_path):
    old = tmp_path / "query_accuracy.json"
    old.write_text('{"accuracy": 1.0}')
    started = time.time_ns()
    assert _read_json(old, since_ns=started) is None  # written before this run
    assert _read_json(old) == {"accuracy": 1.0}  # a successful run: up to date
    time.sleep(0.01)
    old.write_text('{"accuracy": 0.5}')
    assert _read_json(old, since_ns=started) == {"accuracy": 0.5}


TINY = """
rule all:
    input:
        "out.txt",


rule make:
    output:
        "out.txt",
    log:
        "make.log",
    shell:
        "echo made > {output} 2> {log}"
"""


def test_a_killed_runs_snakemake_lock_is_cleared_and_the_run_goes_on(tmp_path):
    """What a SIGKILLed `scatlas demo` leaves (a Snakemake lock, no live holder) no longer
    stops the next run (it used to fail, pointing at an --unlock flag scatlas lacks)."""
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(TINY)
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text("out.txt\n")  # as Snakemake writes it: relative
    result = run_workflow(tmp_path, snakefile=snakefile, cores=1)
    assert result and result.rules() == ["make", "all"]
    assert (tmp_path / "out.txt").read_text() == "made\n"
    assert not locks.exists() or not any(locks.iterdir())
