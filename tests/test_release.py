"""Release versions are dated and never reuse an existing folder."""

from __future__ import annotations

import datetime as dt

from scatlas.release.record import next_version


def test_next_version_dated_and_unique(tmp_path):
    day = dt.date(2026, 11, 21)
    assert next_version(tmp_path, day) == "2026.11.21"
    (tmp_path / "2026.11.21").mkdir()
    assert next_version(tmp_path, day) == "2026.11.21.2"
    (tmp_path / "2026.11.21.2").mkdir()
    assert next_version(tmp_path, day) == "2026.11.21.3"
    assert next_version(tmp_path, dt.date(2026, 11, 22)) == "2026.11.22"
