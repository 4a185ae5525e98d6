"""R through rpy2, started so that it does not disturb the rest of the process.

Starting the embedded R sets ``LD_LIBRARY_PATH`` to R's library folders in this process's
environment; every program started afterwards (HISAT2, a Snakemake job's Python) would
inherit it and may load the wrong shared libraries. We restore the variable once R is up:
R's own libraries are already loaded by then.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Any

from scatlas.errors import ScatlasError

_RESTORED = ("LD_LIBRARY_PATH",)


class RUnavailable(ScatlasError):
    """R, rpy2 or an R package cannot be loaded."""


def robjects() -> ModuleType:
    """``rpy2.robjects``, with R started and the environment left as it was."""
    saved = {k: os.environ.get(k) for k in _RESTORED}
    try:
        import rpy2.robjects as ro
    except Exception as exc:  # ImportError, or R itself failing to start
        raise RUnavailable(f"cannot start R through rpy2: {type(exc).__name__}: {exc}") from exc
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    # rpy2 logs at interpreter exit, when test runners have closed their streams
    logging.getLogger("rpy2").setLevel(logging.WARNING)
    _route_console()
    return ro


_ROUTED = False
_RLOG = logging.getLogger("scatlas.R")
# R's notice when an empty site library is on the search path (Debian's default
# /usr/local/lib/R/site-library): noise, not a problem of the analysis
_NOISE = ("contains no packages",)


_PENDING: list[str] = []


def _r_console(text: str) -> None:
    """R's warnings and messages into our log (the rule's log file) one message per line,
    minus known noise. R writes a warning in pieces ("Warning in f(...) :" then its
    message on the next line): pieces are joined before the noise is judged."""
    _PENDING.append(text)
    joined = "".join(_PENDING)
    if not joined.endswith("\n") or joined.rstrip().endswith(":"):
        return  # the rest of the message is still to come
    _PENDING.clear()
    message = " ".join(joined.split())
    if message and not any(n in message for n in _NOISE):
        _RLOG.info("R: %s", message)


def _route_console() -> None:
    """Once per process: R's stderr console into logging, warnings printed as they occur
    (``options(warn = 1)``) rather than deferred to interpreter exit, when log streams are
    already closed."""
    global _ROUTED
    if _ROUTED:
        return
    import rpy2.rinterface_lib.callbacks as callbacks
    import rpy2.robjects as ro

    callbacks.consolewrite_warnerror = _r_console
    ro.r("options(warn = 1)")
    _ROUTED = True


def r_package(name: str) -> Any:
    """An R package (``importr``), with a clear error when it is not installed."""
    robjects()
    from rpy2.robjects.packages import PackageNotInstalledError, importr

    try:
        return importr(name)
    except PackageNotInstalledError as exc:
        raise RUnavailable(
            f"R package {name!r} is not installed (Debian: r-bioc-{name.lower()})"
        ) from exc
