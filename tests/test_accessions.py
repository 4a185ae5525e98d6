"""Accessions are ASCII and whole strings: Unicode digits and trailing newlines are refused
before any text becomes a path."""

from __future__ import annotations

import pandas as pd
import pytest

from scatlas.accessions import AccessionError, is_valid, validate, validate_study
from scatlas.errors import InputError

ARABIC_INDIC = "GSE" + "\u0661\u0662\u0663"  # GSE١٢٣


@pytest.mark.parametrize(
    "value, kind",
    [
        (ARABIC_INDIC, "gse"),
        ("GSE123\n", "gse"),
        ("SRR" + "\uff11" * 7, "run"),  # fullwidth digits
        ("E-MTAB-\u0967\u0968", "arrayexpress"),  # Devanagari digits
        ("GSM1\nGSM2", "gsm"),
    ],
)
def test_only_ascii_whole_strings_are_accessions(value, kind):
    assert not is_valid(value, kind)
    if value.strip() == value:  # validate strips surrounding whitespace first
        with pytest.raises(AccessionError):
            validate(value, kind)


def test_non_ascii_study_refused_before_any_folder(tmp_path):
    with pytest.raises(AccessionError):
        validate_study(ARABIC_INDIC)
    from scatlas.ingest.sheets import build_sample_sheet

    summary = build_sample_sheet({}, ARABIC_INDIC, tmp_path / "out")
    assert summary["status"] == "failed" and "neither a GEO series" in summary["reason"]
    assert not list(tmp_path.glob("**/*\u0661*"))


def test_schemas_take_ascii_digits_only():
    from scatlas.sheets import validate_sheet

    row = {
        "study": ARABIC_INDIC,
        "source": "geo",
        "title": "",
        "organism": "Homo sapiens",
        "kind": "reads",
        "n_samples": "1",
        "submitted": "",
        "updated": "",
        "status": "ok",
        "reason": "",
    }
    validate_sheet(pd.DataFrame([{**row, "study": "GSE123"}]), "studies")
    with pytest.raises(InputError, match="study"):
        validate_sheet(pd.DataFrame([row]), "studies")
