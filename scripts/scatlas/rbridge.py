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
    return ro


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
