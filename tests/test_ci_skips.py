"""Under CI=true a skipped test fails (tests/conftest.py), unless marked may_skip."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()
TESTS = """
import pytest

def test_missing_tool():
    pytest.skip("tools not on PATH: hisat2")

@pytest.mark.skipif(True, reason="sra-toolkit not installed")
def test_skipif():
    pass

@pytest.mark.may_skip
def test_allowed():
    pytest.skip("optional")

def test_passes():
    pass
"""


@pytest.fixture
def suite(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    may_skip: allowed to skip\n")
    pytester.makepyfile(test_suite=TESTS)
    return pytester


def test_skips_fail_under_ci(suite, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1)
    result.stdout.fnmatch_lines(["*skipped under CI=true*hisat2*"])


def test_skips_stay_skips_outside_ci(suite, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=3)
