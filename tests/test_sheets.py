"""Sheets passed between stages are validated against workflow/schemas/."""

from __future__ import annotations

import pandas as pd
import pytest

from scatlas.errors import InputError
from scatlas.sheets import read_sheet, validate_sheet

STUDY = {
    "study": "GSE900001",
    "source": "geo",
    "title": "A study",
    "organism": "Homo sapiens",
    "kind": "reads",
    "n_samples": "48",
    "submitted": "2024-03-15",
    "updated": "2024-03-15",
    "status": "ok",
    "reason": "",
}


def test_valid_studies_sheet(tmp_path):
    path = tmp_path / "studies.tsv"
    pd.DataFrame([STUDY]).to_csv(path, sep="\t", index=False)
    df = read_sheet(path, "studies")
    assert df.loc[0, "n_samples"] == "48"  # read as text, never as numbers


@pytest.mark.parametrize(
    "field, value",
    [("study", "../../etc"), ("status", "great"), ("submitted", "15/03/2024"), ("source", "sra")],
)
def test_bad_field_named(tmp_path, field, value):
    path = tmp_path / "studies.tsv"
    pd.DataFrame([STUDY, {**STUDY, field: value}]).to_csv(path, sep="\t", index=False)
    with pytest.raises(InputError) as err:
        read_sheet(path, "studies")
    assert "row 2" in str(err.value)
    assert err.value.field == field
    assert str(path) in str(err.value)


def test_missing_column_named():
    df = pd.DataFrame([{k: v for k, v in STUDY.items() if k != "kind"}])
    with pytest.raises(InputError) as err:
        validate_sheet(df, "studies", path="x.tsv")
    assert err.value.field == "kind"


def test_samples_sheet_rejects_malformed_md5():
    row = {
        "study": "GSE900001",
        "sample": "GSM99000001",
        "title": "t",
        "organism": "Homo sapiens",
        "source_name": "blood",
        "characteristics": "cell type: B cell",
        "library_strategy": "RNA-Seq",
        "library_source": "transcriptomic",
        "library_layout": "PAIRED",
        "technology": "smartseq",
        "run": "SRR99000001",
        "experiment": "SRX99000001",
        "fastq_urls": "http://x/1.fastq.gz;http://x/2.fastq.gz",
        "fastq_md5": "0" * 32 + ";" + "1" * 32,
        "fastq_bytes": "10;12",
        "supplementary": "",
    }
    validate_sheet(pd.DataFrame([row]), "samples")
    with pytest.raises(InputError):
        validate_sheet(pd.DataFrame([{**row, "fastq_md5": "not-an-md5"}]), "samples")
    with pytest.raises(InputError):
        validate_sheet(pd.DataFrame([{**row, "run": "SRR1; echo pwned"}]), "samples")
