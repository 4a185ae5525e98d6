"""No child of a scatlas job outlives it: HISAT2 dies with the process that started it, and
the next alignment clears what a killed one left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dm6_pipeline import DM6, dm6_pipeline

from scatlas.reads.align import PID_FILE, reap_leftovers

ALIGN_FOREVER = """
import sys, time
from pathlib import Path
import scatlas.reads.align as align
import scatlas.reads.readfeed as readfeed

# killed before the feed opens HISAT2's input pipe (as while HISAT2 loads a large index):
# HISAT2 then blocks opening a pipe that no process will ever open for writing
readfeed.open_pipe_for_writing = lambda path, proc: time.sleep(3600)
align.align_run(Path(sys.argv[1]), [Path(sys.argv[2])], Path(sys.argv[3]))
"""


@pytest.fixture(scope="module")
def dm6(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> DM6:
    return dm6_pipeline(shared_data, tmp_path_factory)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _hisat2_pid(bam_dir: Path) -> int | None:
    for pid_file in bam_dir.glob(f".align.*/{PID_FILE}"):
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if _alive(pid):
            return pid
    return None


@pytest.mark.parametrize("how", ["process", "group"])
def test_hisat2_dies_with_a_killed_aligner(dm6, tmp_path, repo_root, how):
    """SIGKILL of the aligning process (alone, or its whole process group as a cron kill
    does) takes HISAT2 with it; the next alignment in the folder leaves nothing behind."""
    fastq = tmp_path / "reads.fastq"
    fastq.write_text("@r1\nACGT\n+\nIIII\n")
    bam_dir = tmp_path / "bam"
    env = {**os.environ, "PYTHONPATH": str(repo_root / "scripts")}
    child = subprocess.Popen(
        [sys.executable, "-c", ALIGN_FOREVER, str(dm6.index), str(fastq), str(bam_dir / "r.bam")],
        env=env,
        start_new_session=True,  # its own group, so that "group" kills it and its children only
    )
    try:
        hisat2 = _wait_for(lambda: _hisat2_pid(bam_dir), 60, "HISAT2 to start")
        time.sleep(0.5)  # HISAT2 loading its index / waiting on its pipe
        assert _alive(hisat2)
    finally:
        if how == "group":
            os.killpg(child.pid, signal.SIGKILL)
        else:
            child.kill()
        child.wait()
    _wait_for(lambda: not _alive(hisat2), 10, f"HISAT2 (pid {hisat2}) to die with its parent")
    assert list(bam_dir.glob(".align.*"))  # the killed run's work folder is left ...
    assert reap_leftovers(bam_dir) == 0  # ... and cleared, with no process left to stop
    assert not list(bam_dir.glob(".*"))


def test_reap_stops_a_leftover_hisat2_and_nothing_else(tmp_path):
    """A work folder whose HISAT2 still runs (left by an older scatlas) gets it stopped; a
    pid now used by another program is left alone."""
    bam_dir = tmp_path / "bam"
    leftover, reused = bam_dir / ".align.a", bam_dir / ".align.b"
    for folder in (leftover, reused):
        folder.mkdir(parents=True)
    stray = subprocess.Popen(["sleep", "60"])  # stands in for a stray aligner binary
    other = subprocess.Popen(["sleep", "60"])
    try:
        (leftover / PID_FILE).write_text(f"{stray.pid}\n/usr/bin/sleep\n")
        (reused / PID_FILE).write_text(f"{other.pid}\n/usr/bin/hisat2-align-s\n")
        (bam_dir / ".SRR1.bam.abc123.bam.tmp").write_bytes(b"partial")
        assert reap_leftovers(bam_dir) == 1
        assert stray.wait(timeout=5) == -signal.SIGKILL
        assert other.poll() is None  # not a HISAT2: not ours to stop
        assert not list(bam_dir.iterdir())
    finally:
        for proc in (stray, other):
            proc.kill()
            proc.wait()
