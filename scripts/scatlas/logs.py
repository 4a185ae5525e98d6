"""Logging set-up shared by the rule scripts and the command line."""

from __future__ import annotations

import errno
import logging
import os
import sys
from types import TracebackType

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(
    log_file: str | os.PathLike | None = None,
    level: int = logging.INFO,
    *,
    libraries: int | None = None,
) -> None:
    """Log to ``log_file`` (a rule's ``log:``) and to stderr.

    Rule scripts call this first so that everything, including progress bars written to
    stderr, ends up in the rule's log file. ``libraries``: the level of every logger but
    scatlas's (the command line passes WARNING unless ``-v``: faiss' loader and anndata's
    "storing ... as categorical" stay out of a user's terminal); default ``level``.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w", encoding="utf-8"))
        sys.excepthook = log_uncaught  # the error that stops a rule goes into its log too
    root_level = level if libraries is None else max(level, libraries)
    logging.basicConfig(level=root_level, format=_FORMAT, handlers=handlers, force=True)
    logging.getLogger("scatlas").setLevel(level)


def log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None):
    """``sys.excepthook`` of rule scripts: the exception, its traceback and, for a full disk
    or a read-only folder, what to do, logged to the rule's log (and stderr)."""
    hint = ""
    if isinstance(exc, OSError) and exc.errno in _OS_HINTS:
        where = f" ({exc.filename})" if exc.filename else ""
        hint = f"; {_OS_HINTS[exc.errno]}{where}"
    logging.getLogger("scatlas").critical(
        "stopped by %s: %s%s", exc_type.__name__, exc, hint, exc_info=(exc_type, exc, tb)
    )
    for handler in logging.getLogger().handlers:
        handler.flush()


_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space there (or move that folder) and run again",
    errno.EDQUOT: "the disk quota is used up: free space (or move that folder) and run again",
    errno.EROFS: "the folder is on a read-only file system: point the output elsewhere",
    errno.EACCES: "no permission to write there: fix the folder's permissions or move it",
}


def progress_enabled() -> bool:
    """Progress bars only on an interactive terminal unless SCATLAS_PROGRESS=1."""
    flag = os.environ.get("SCATLAS_PROGRESS")
    if flag is not None:
        return flag not in ("0", "", "false", "no")
    return sys.stderr.isatty()
