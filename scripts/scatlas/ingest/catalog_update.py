"""Recording a run of the ingestion stages in the catalog (``catalog.sqlite``): every
study of ``discover/studies.tsv``, the samples and runs of each study's sample sheet, and the
download and alignment outcomes (:func:`update_catalog`, what the ``ingest`` and ``catalog``
rules call)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from scatlas.accessions import study_source, validate_study
from scatlas.fileio import sha256_file
from scatlas.ingest.catalog import Catalog
from scatlas.sheets import (
    ALIGNMENT_COLUMNS,
    SAMPLE_COLUMNS,
    STUDY_COLUMNS,
)
from scatlas.stage_io import (
    WHOLE_FILE,
    join,
    read_rows,
)

log = logging.getLogger(__name__)


def _by_study(paths: Iterable[str | os.PathLike]) -> dict[str, Path]:
    """Map per-study files (``.../{study}/file``) to their study accession."""
    out = {}
    for p in paths:
        path = Path(p)
        out[validate_study(path.parent.name, context=str(path))] = path
    return out


def update_catalog(
    cfg: Mapping[str, Any],
    db_path: str | os.PathLike,
    studies_tsv: str | os.PathLike,
    study_dirs: Sequence[str | os.PathLike],
    fastq_manifests: Sequence[str | os.PathLike] = (),
    alignment_tables: Sequence[str | os.PathLike] = (),
) -> dict[str, Any]:
    """Record every study of ``studies.tsv`` (its discover row and fingerprint), the samples and
    runs of each study directory, and download and alignment outcomes, in one transaction.
    Returns ``Catalog.summary()``. (Refreshes are recorded by ``scatlas refresh``.)

    A study is "failed" when its sample sheet failed or every download failed (the catalog
    row names the file and field), "new" when the query found it but no sample sheet exists
    yet, otherwise its query/sample-sheet status. Changes are kept in the history table.
    """
    studies = read_rows(studies_tsv, STUDY_COLUMNS, "studies")
    dirs = {validate_study(Path(d).name, context=str(d)): Path(d) for d in study_dirs}
    manifests = _by_study(fastq_manifests)
    alignments = _by_study(alignment_tables)
    query_rows = {r["study"]: r for r in studies}
    with Catalog(db_path) as cat:
        with cat.transaction():
            for acc in sorted(set(query_rows) | set(dirs)):
                _catalog_study(
                    cat,
                    acc,
                    query_rows.get(acc),
                    dirs.get(acc),
                    manifests.get(acc),
                    alignments.get(acc),
                )
        summary = cat.summary()
    log.info(
        "catalog %s: studies %s",
        db_path,
        ", ".join(f"{k} {v}" for k, v in summary["studies"].items() if v),
    )
    return summary


def _sample_status(technology: str, runs: list[tuple[str, str]]) -> tuple[str, str]:
    """A sample is ok when one of its runs is; otherwise it takes its runs' outcome."""
    if not runs:
        return "ok", f"{technology} sample, no runs (author matrix)"
    statuses = [st for st, _ in runs]
    if "ok" in statuses:
        return "ok", f"{technology} sample, {statuses.count('ok')} of {len(runs)} run(s) ok"
    for wanted in ("new", "failed", "skipped"):
        if wanted in statuses:
            return wanted, next(reason for st, reason in runs if st == wanted)
    return statuses[0], runs[0][1]


def _discover_fields(qrow: Mapping[str, Any] | None) -> dict[str, Any]:
    """The discover row's columns the catalog keeps (a later refresh rebuilds studies.tsv)."""
    if qrow is None:
        return {}
    return {
        "n_samples": int(qrow.get("n_samples") or 0),
        "submitted": qrow.get("submitted", ""),
        "updated": qrow.get("updated", ""),
        "fingerprint": qrow.get("fingerprint", ""),
        "discover_status": qrow.get("status", ""),
        "discover_reason": qrow.get("reason", "") or qrow.get("status", ""),
    }


def _study_fields(acc: str, qrow: Mapping[str, str] | None, sj: dict | None) -> dict[str, Any]:
    """The study row's descriptive columns: study.json over the discovery row."""
    base = dict(qrow or {})
    got = sj or {}
    fields: dict[str, Any] = {
        "source": base.get("source") or got.get("source") or study_source(acc),
        "title": got.get("title") or base.get("title", ""),
        "organism": got.get("organism") or base.get("organism", ""),
        "kind": got.get("kind") or base.get("kind", ""),
        **_discover_fields(qrow),
    }
    if sj is not None:
        fields["supplementary"] = join(sj.get("supplementary") or [])
        if sj.get("updated"):
            fields["updated"] = sj["updated"]  # the SOFT's last-update date
    return fields


def _read_if(path: Path | None, columns: Sequence[str], schema: str | None = None):
    return read_rows(path, columns, schema) if path and path.is_file() else None


def _study_outcome(
    acc: str, sj: dict, man: list[dict] | None, aln: list[dict] | None
) -> tuple[str, str, str, str]:
    """(status, reason, error file, error field) of an ingested study: its sheet's, unless
    every download failed; the reason counts downloads and alignments."""
    status, reason = sj.get("status", "failed"), sj.get("reason") or "no reason recorded"
    error = sj.get("error") or {}
    err_file, err_field = str(error.get("file", "")), str(error.get("field", ""))
    if status == "ok" and man and all(m["status"] == "failed" for m in man):
        first = man[0]
        reason = f"{acc}: all {len(man)} downloads failed; first: {first['reason']}"
        return "failed", reason, first["error_file"], first["error_field"] or WHOLE_FILE
    if status == "ok" and man is not None:
        n_ok = sum(m["status"] == "ok" for m in man)
        reason = f"{reason}; downloads {n_ok} ok, {len(man) - n_ok} failed"
        if aln:
            reason += f"; alignment {sum(a['status'] == 'ok' for a in aln)} ok of {len(aln)}"
    return status, reason, err_file, err_field


def _run_outcome(
    run: str, man_by_run: Mapping[str, dict], aln_by_run: Mapping[str, dict]
) -> tuple[str, str, float | None, str, str]:
    """(status, reason, alignment rate, error file, error field) of one run: its alignment
    when aligned, else its download, else new."""
    if run in aln_by_run:
        a = aln_by_run[run]
        rate = float(a["alignment_rate"]) if a["alignment_rate"] not in ("", "nan") else None
        return a["status"], a["reason"] or f"alignment {a['status']}", rate, "", ""
    if run in man_by_run:
        m = man_by_run[run]
        reason = m["reason"] or f"download {m['status']}"
        return m["status"], reason, None, m["error_file"], m["error_field"]
    return "new", "in the sample sheet; not downloaded yet", None, "", ""


def _catalog_runs(
    cat: Catalog, acc: str, sheet: list[dict], man: list[dict] | None, aln: list[dict] | None
) -> dict[str, tuple[str, str]]:
    """Record every run of the sheet; returns run -> (status, reason)."""
    man_by_run = {r["run"]: r for r in man or []}
    aln_by_run = {r["run"]: r for r in aln or []}
    first_run: dict[str, dict[str, str]] = {}
    for r in sheet:
        if r["run"]:
            first_run.setdefault(r["run"], r)
    run_status: dict[str, tuple[str, str]] = {}
    for run, r in first_run.items():
        status, reason, rate, efile, efield = _run_outcome(run, man_by_run, aln_by_run)
        run_status[run] = (status, reason)
        cat.upsert_run(
            run,
            sample=r["sample"],
            study=acc,
            layout=r["library_layout"],
            alignment_rate=rate,
            status=status,
            reason=reason,
            error_file=efile,
            error_field=efield,
        )
    return run_status


def _catalog_samples(
    cat: Catalog, acc: str, sheet: list[dict], run_status: Mapping, excluded: list[dict]
) -> None:
    """Record every sample of the sheet (status from its runs) and the excluded ones."""
    first_row: dict[str, dict[str, str]] = {}
    runs_of: dict[str, list[str]] = {}
    for r in sheet:
        first_row.setdefault(r["sample"], r)
        if r["run"] and r["run"] not in runs_of.setdefault(r["sample"], []):
            runs_of[r["sample"]].append(r["run"])
    for row in first_row.values():
        runs = runs_of.get(row["sample"], [])
        status, reason = _sample_status(row["technology"], [run_status[r] for r in runs])
        cat.upsert_sample(
            acc,
            row["sample"],
            title=row["title"],
            organism=row["organism"],
            status=status,
            reason=reason,
        )
    for ex in excluded:
        cat.upsert_sample(
            acc,
            str(ex.get("sample", "")),
            status="skipped",
            reason=str(ex.get("reason") or "excluded"),
        )


def _catalog_study(
    cat: Catalog,
    acc: str,
    qrow: Mapping[str, str] | None,
    study_dir: Path | None,
    manifest: Path | None,
    alignment: Path | None,
) -> str:
    sj_path = study_dir / "study.json" if study_dir else None
    sj = json.loads(sj_path.read_text()) if sj_path and sj_path.is_file() else None
    fields = _study_fields(acc, qrow, sj)
    samples_path = study_dir / "samples.tsv" if study_dir else None
    sha = sha256_file(samples_path) if samples_path and samples_path.is_file() else ""
    if qrow is not None and qrow["status"] != "ok":
        return cat.upsert_study(
            acc,
            **fields,
            status=qrow["status"],
            reason=qrow["reason"] or qrow["status"],
            metadata_sha256=sha,
            error_file="",
            error_field="",
        )
    if sj is None:
        return cat.upsert_study(
            acc, **fields, status="new", reason="found by discovery; sample sheet not built yet"
        )
    sheet = _read_if(samples_path, SAMPLE_COLUMNS, "samples") or []
    man = _read_if(manifest, ["run", "sample", "files", "status", "reason"], "manifest")
    for m in man or []:
        m.setdefault("error_file", "")
        m.setdefault("error_field", "")
    aln = _read_if(alignment, ALIGNMENT_COLUMNS)
    status, reason, err_file, err_field = _study_outcome(acc, sj, man, aln)
    result = cat.upsert_study(
        acc,
        **fields,
        status=status,
        reason=reason,
        metadata_sha256=sha,
        error_file=err_file,
        error_field=err_field,
    )
    run_status = _catalog_runs(cat, acc, sheet, man, aln)
    _catalog_samples(cat, acc, sheet, run_status, sj.get("excluded") or [])
    return result
