"""R through rpy2 leaves the process environment as it was."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from scatlas.de.rbridge import RUnavailable, r_package, robjects


def test_r_starts_without_leaking_library_path():
    before = os.environ.get("LD_LIBRARY_PATH")
    try:
        ro = robjects()
    except RUnavailable as exc:
        pytest.skip(str(exc))
    assert ro.r("1 + 1")[0] == 2
    assert os.environ.get("LD_LIBRARY_PATH") == before
    # a child Python still imports ssl (R's library path broke it: undefined symbols)
    proc = subprocess.run([sys.executable, "-c", "import ssl"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_missing_r_package_named():
    try:
        robjects()
    except RUnavailable as exc:
        pytest.skip(str(exc))
    with pytest.raises(RUnavailable, match="notARealPackage"):
        r_package("notARealPackage")


def test_r_warnings_in_pieces_are_logged_whole_and_noise_dropped(caplog):
    from scatlas.de import rbridge

    caplog.set_level("INFO", logger="scatlas.R")
    for piece in (
        "Warning in (function (package, help, pos = 2, lib.loc = NULL, character.only = FALSE,  :\n",
        "  library ‘/usr/local/lib/R/site-library’ contains no packages\n",
        "Warning in estimateDisp(y) :",
        " no residual degrees of freedom\n",
    ):
        rbridge._r_console(piece)
    said = [r.getMessage() for r in caplog.records if r.name == "scatlas.R"]
    assert said == ["R: Warning in estimateDisp(y) : no residual degrees of freedom"]
