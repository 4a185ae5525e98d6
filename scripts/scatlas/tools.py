"""Running external programs (HISAT2, samtools, featureCounts): argument lists only, never a
shell, and a ToolError carrying the tail of stderr when one fails."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from scatlas.errors import ToolError

log = logging.getLogger(__name__)

STDERR_TAIL = 2000

try:  # Linux: a child can ask to be killed when its parent dies
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _LIBC = None
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` of every external program scatlas starts: the kernel sends it SIGKILL
    when the scatlas process that started it dies (killed, or crashed), so that no HISAT2
    holding a genome index outlives a killed run. Children stay in the caller's process
    group too, so a signal to the group reaches them."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def which(tool: str) -> str:
    """Absolute path of ``tool`` on PATH, or a ToolError saying it is missing."""
    found = shutil.which(tool)
    if found is None:
        raise ToolError(tool, 127, f"{tool} is not on PATH")
    return found


def tail(text: str | bytes, n: int = STDERR_TAIL) -> str:
    """The end of a program's stderr, ending with its error lines (HISAT2 follows its error
    message with clean-up chatter that would push it out of a plain tail; ToolError keeps
    the end of the text)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.strip()
    errors = [
        ln.strip() for ln in text.splitlines() if re.search(r"error|exception|fatal", ln, re.I)
    ]
    head = " | ".join(dict.fromkeys(errors[:5]))
    if not head:
        return text[-n:]
    return f"{text[-max(0, n - len(head) - 12) :]} || errors: {head}"


def run_tool(
    cmd: Sequence[str | os.PathLike],
    *,
    stdout: Path | None = None,
    cwd: Path | None = None,
) -> str:
    """Run ``cmd`` (an argument list); return its stderr text.

    ``stdout`` names a file that receives the program's standard output (otherwise it is
    discarded). A non-zero exit raises ToolError with the last lines of stderr.
    """
    args = [str(a) for a in cmd]
    args[0] = which(args[0])
    tool = Path(args[0]).name
    log.debug("running %s", " ".join(args))
    if stdout is not None:
        with open(stdout, "wb") as out:
            proc = subprocess.run(
                args,
                stdout=out,
                stderr=subprocess.PIPE,
                cwd=cwd,
                check=False,
                preexec_fn=die_with_parent,
            )
    else:
        proc = subprocess.run(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=cwd,
            check=False,
            preexec_fn=die_with_parent,
        )
    err = proc.stderr.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        raise ToolError(tool, proc.returncode, tail(err))
    return err
