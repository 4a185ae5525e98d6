"""Logging set-up shared by the rule scripts and the command line."""

from __future__ import annotations

import logging
import os
import sys

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_file: str | os.PathLike | None = None, level: int = logging.INFO) -> None:
    """Log to ``log_file`` (a rule's ``log:``) and to stderr.

    Rule scripts call this first so that everything, including progress bars written to
    stderr, ends up in the rule's log file.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w", encoding="utf-8"))
    logging.basicConfig(level=level, format=_FORMAT, handlers=handlers, force=True)


def progress_enabled() -> bool:
    """Progress bars only on an interactive terminal unless SCATLAS_PROGRESS=1."""
    flag = os.environ.get("SCATLAS_PROGRESS")
    if flag is not None:
        return flag not in ("0", "", "false", "no")
    return sys.stderr.isatty()
