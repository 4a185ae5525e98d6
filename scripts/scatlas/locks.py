"""One lock per working directory for every scatlas command that runs the workflow.

``scatlas refresh``, ``scatlas demo`` and :func:`scatlas.runner.run_workflow` take an
exclusive ``flock`` on ``results/.workflow.lock``. The kernel drops it when its holder dies,
so holding it proves that no other scatlas run is alive in that folder; the file records the
holder (pid, command, start) for the message a second run prints. The lock is re-entrant
within a process (``refresh`` holds it around the catalog steps and the workflow run).

A Snakemake lock (``.snakemake/locks``) left by a killed run is removed only while this lock
is held and no live process is working in the folder under Snakemake (a plain
``snakemake`` run or a job it started); otherwise the run stops and names that process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from scatlas.errors import ScatlasError

log = logging.getLogger(__name__)

LOCK_FILE = Path("results") / ".workflow.lock"
_held: dict[Path, int] = {}  # lock file -> depth, for the re-entrant use in one process
_guard = threading.Lock()


class LockedError(ScatlasError):
    """Another live run holds the working directory."""

    def __init__(self, message: str, holder: str = ""):
        super().__init__(message)
        self.holder = holder


def _describe_self() -> str:
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    command = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:200]
    return f"pid {os.getpid()} ({command or 'python'}), started {started}"


@contextlib.contextmanager
def workflow_lock(workdir: str | os.PathLike, what: str = "scatlas run") -> Iterator[Path]:
    """Hold the working directory's lock; LockedError naming the holder when another process
    holds it. Yields the lock file."""
    path = (Path(workdir) / LOCK_FILE).resolve()
    with _guard:
        if path in _held:
            _held[path] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield path
        finally:
            with _guard:
                _held[path] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            raise LockedError(
                f"another scatlas run is using {Path(workdir).resolve()} "
                f"({holder or 'holder unknown'}); this {what} did not start",
                holder,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, (_describe_self() + "\n").encode(), 0)
        with _guard:
            _held[path] = 1
        try:
            yield path
        finally:
            with _guard:
                del _held[path]
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def snakemake_processes(workdir: str | os.PathLike) -> list[tuple[int, str]]:
    """Live processes (other than this one) working in ``workdir`` under Snakemake: their
    current folder is ``workdir`` and their command line names snakemake (a ``snakemake``
    run, or a rule script it started from ``.snakemake/scripts``)."""
    work = Path(workdir).resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if Path(os.readlink(entry / "cwd")).resolve() != work:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        command = " ".join(a.decode("utf-8", "replace") for a in argv if a)
        if "snakemake" in command:
            found.append((int(entry.name), command[:200]))
    return found


def stale_snakemake_lock(workdir: str | os.PathLike) -> bool:
    """True when ``workdir`` has a Snakemake lock that no live process holds (call it while
    holding :func:`workflow_lock`). LockedError when a live Snakemake process works there."""
    locks = Path(workdir) / ".snakemake" / "locks"
    if not locks.is_dir() or not any(locks.iterdir()):
        return False
    live = snakemake_processes(workdir)
    if live:
        pid, command = live[0]
        raise LockedError(
            f"a Snakemake run is working in {Path(workdir).resolve()} (pid {pid}: {command}); "
            "wait for it to finish or stop it",
            f"pid {pid}",
        )
    return True
