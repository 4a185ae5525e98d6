"""Small helpers the ingestion stages share: TSV tables, config dates, failure reasons.

A failure that is recorded rather than raised carries three things the catalog keeps: the
message (``reason``), the file or URL it concerns and the record field (``error_info``).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from scatlas.accessions import AccessionError
from scatlas.errors import InputError, ScatlasError, ServiceError, ToolError
from scatlas.fileio import atomic_path
from scatlas.settings import Settings, as_settings
from scatlas.sheets import validate_rows, validate_sheet
from scatlas.sources.http import Services

WHOLE_FILE = "(whole file)"  # error_field of a failure that concerns a transfer, not a field


def services_for(cfg: Settings | Mapping[str, Any], services: Services | None) -> Services:
    """``services`` when given (tests), else clients for the config's ``services``."""
    if services is not None:
        return services
    return Services(dataclasses.asdict(as_settings(cfg).services))


def config_date(value: Any, field: str = "discover.date_from/date_to") -> str | None:
    """Config dates may arrive as strings or (from YAML) as date objects."""
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError as exc:
        raise InputError(f"date {value!r} is not YYYY-MM-DD", field=field) from exc


def read_tsv(
    path: str | os.PathLike, columns: Sequence[str], schema: str | None = None
) -> pd.DataFrame:
    """A TSV with every value as text; missing required columns are an InputError.

    With ``schema`` (a name under workflow/schemas/) every row is validated too.
    """
    p = Path(path)
    try:
        df = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise InputError("table is empty (no header)", path=str(p)) from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", path=str(p), field=missing[0])
    return validate_sheet(df, schema, path=p) if schema else df


def read_rows(
    path: str | os.PathLike, columns: Sequence[str], schema: str | None = None
) -> list[dict[str, str]]:
    """:func:`read_tsv` as a list of dicts (no pandas: the catalog reads thousands of sheets)."""
    p = Path(path)
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter="\t")
            header = list(reader.fieldnames or [])
            rows = [{k: (v or "") for k, v in r.items() if k is not None} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read table: {exc}", path=str(p)) from exc
    if not header:
        raise InputError("table is empty (no header)", path=str(p))
    missing = [c for c in columns if c not in header]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", path=str(p), field=missing[0])
    return validate_rows(rows, schema, path=p, columns=header) if schema else rows


def write_tsv(
    rows: Iterable[Mapping[str, Any]] | pd.DataFrame,
    path: str | os.PathLike,
    columns: Sequence[str],
    sort: Sequence[str] = (),
    *,
    frame: bool = True,
) -> pd.DataFrame | None:
    """Write rows with exactly ``columns`` (header-only when empty), atomically, sorted by
    ``sort``; return them as a DataFrame of text (None with ``frame=False``)."""
    if isinstance(rows, pd.DataFrame):
        records = rows.to_dict(orient="records")
    else:
        records = [dict(r) for r in rows]
    cols = list(columns)
    table = [["" if r.get(c) is None else str(r.get(c)) for c in cols] for r in records]
    if sort:
        keys = [cols.index(c) for c in sort]
        table.sort(key=lambda row: [row[k] for k in keys])
    with (
        atomic_path(path, suffix=".tsv") as tmp,
        open(tmp, "w", newline="", encoding="utf-8") as fh,
    ):
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(cols)
        writer.writerows(table)
    return pd.DataFrame(table, columns=cols, dtype=str) if frame else None


def display_path(p: Path) -> str:
    """Paths in manifests are relative to the working directory (the repo root) when inside it."""
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p.resolve())


def reason_of(exc: BaseException) -> str:
    """A one-line, human-readable reason for a recorded failure."""
    if isinstance(exc, ServiceError):
        text = f"{exc} ({exc.reason})" if exc.reason and exc.reason not in str(exc) else str(exc)
    elif isinstance(exc, ScatlasError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def error_info(exc: BaseException) -> dict[str, str]:
    """{kind, file, field} of a failure: which file or URL, which record field.

    ``kind`` is "service" for a network/service failure (worth trying again later),
    "input" for a malformed record, "tool" for an external program, "error" otherwise.
    """
    if isinstance(exc, ServiceError):
        return {"kind": "service", "file": exc.url or "", "field": WHOLE_FILE}
    if isinstance(exc, InputError):
        return {"kind": "input", "file": exc.path or "", "field": exc.field or WHOLE_FILE}
    if isinstance(exc, AccessionError):
        return {"kind": "input", "file": "", "field": "accession"}
    if isinstance(exc, ToolError):
        return {"kind": "tool", "file": exc.tool, "field": WHOLE_FILE}
    return {"kind": "error", "file": "", "field": ""}


def join(values: Iterable[Any]) -> str:
    return ";".join("" if v is None else str(v) for v in values)


def split(value: str) -> list[str]:
    return [v for v in (value or "").split(";") if v]
