"""Read the TSV sheets that pass between stages, validated against the package's schemas
(scatlas/data/schemas/, also workflow/schemas/ for Snakemake)."""

from __future__ import annotations

import functools
from pathlib import Path

import jsonschema
import pandas as pd
import yaml

from scatlas.errors import InputError
from scatlas.package_data import schema_dir

SCHEMA_DIR = schema_dir()

# Column order of the sheets passed between stages (their schemas are in SCHEMA_DIR).
STUDY_COLUMNS = [
    "study",
    "source",
    "title",
    "organism",
    "kind",
    "n_samples",
    "submitted",
    "updated",
    "status",
    "reason",
    "fingerprint",
]
SAMPLE_COLUMNS = [
    "study",
    "sample",
    "title",
    "organism",
    "source_name",
    "characteristics",
    "library_strategy",
    "library_source",
    "library_layout",
    "technology",
    "run",
    "experiment",
    "fastq_urls",
    "fastq_md5",
    "fastq_bytes",
    "supplementary",
]
#: what each sample is (scatlas.sources.sample_kind), written after SAMPLE_COLUMNS; optional
#: when read, so sheets written before them still load
SAMPLE_KIND_COLUMNS = ["cells", "library", "chemistry", "kind_confidence", "technology_reason"]
MANIFEST_COLUMNS = [
    "run",
    "sample",
    "files",
    "status",
    "reason",
    "bytes",
    "md5",
    "error_file",
    "error_field",
]
ALIGNMENT_COLUMNS = [
    "run",
    "sample",
    "total_reads",
    "aligned_reads",
    "alignment_rate",
    "status",
    "reason",
    "bam",
    "chemistry",
]


@functools.cache
def _schema(name: str) -> dict:
    path = SCHEMA_DIR / f"{name}.schema.yaml"
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def row_errors(df: pd.DataFrame, name: str) -> dict[int, str]:
    """Rows of ``df`` that break the schema: {row position: "field: message"}.

    For stages that fail bad rows one by one (a run with a malformed accession fails alone)
    rather than the whole sheet.
    """
    validator = jsonschema.validators.validator_for(_schema(name))(_schema(name))
    errors: dict[int, str] = {}
    for i, record in enumerate(df.to_dict(orient="records")):
        error = next(iter(validator.iter_errors(record)), None)
        if error is not None:
            field = ".".join(str(p) for p in error.path) or "?"
            errors[i] = f"{field}: {error.message}"
    return errors


def validate_sheet(df: pd.DataFrame, name: str, *, path: str | Path = "<table>") -> pd.DataFrame:
    """Validate every row of ``df`` against ``workflow/schemas/{name}.schema.yaml``.

    Raises InputError naming the file, the row and the field of the first problem.
    """
    validate_rows(df.to_dict(orient="records"), name, path=path, columns=list(df.columns))
    return df


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = _schema(name)
    return jsonschema.validators.validator_for(schema)(schema)


def validate_rows(
    rows: list[dict], name: str, *, path: str | Path = "<table>", columns: list[str] | None = None
) -> list[dict]:
    """:func:`validate_sheet` for rows as dicts (``columns``: the header, when known)."""
    header = columns if columns is not None else (list(rows[0]) if rows else [])
    missing = [c for c in _schema(name).get("required", []) if c not in header]
    if missing and (rows or columns is not None):
        raise InputError(
            f"missing column(s) {', '.join(missing)}", path=str(path), field=missing[0]
        )
    validator = _validator(name)
    for i, record in enumerate(rows):
        error = next(iter(validator.iter_errors(record)), None)
        if error is not None:
            field = ".".join(str(p) for p in error.path) or None
            raise InputError(f"row {i + 1}: {error.message}", path=str(path), field=field)
    return rows


def read_sheet(path: str | Path, name: str) -> pd.DataFrame:
    """Read a TSV as text (no NA conversion) and validate it."""
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read sheet: {exc}", path=str(path)) from exc
    return validate_sheet(df, name, path=path)
