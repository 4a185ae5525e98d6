"""A rule's log holds the error that stopped it (a full disk included), with what to do."""

from __future__ import annotations

import os
import subprocess
import sys

FAILING_RULE = """
import errno, os, sys
from scatlas.logs import setup_logging
setup_logging(sys.argv[1])
import logging
logging.getLogger("scatlas.release").info("writing the release")
raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "published/.v1.tmp/index.faiss")
"""


def test_uncaught_disk_full_error_reaches_the_rule_log(tmp_path, repo_root):
    log = tmp_path / "logs" / "publish.log"
    env = {**os.environ, "PYTHONPATH": str(repo_root / "scripts")}
    proc = subprocess.run(
        [sys.executable, "-c", FAILING_RULE, str(log)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1
    text = log.read_text()
    assert "writing the release" in text
    assert "stopped by OSError: [Errno 28] No space left on device" in text
    assert "the disk is full: free space there" in text and "index.faiss" in text
    assert "Traceback" in text  # the traceback too, for a bug report
    assert "No space left on device" in proc.stderr  # and on stderr, as before
