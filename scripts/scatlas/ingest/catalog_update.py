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
    """Record every study of ``studies.tsv`` (its query row and fingerprint), the samples and
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
    """The query row's columns the catalog keeps (a later refresh rebuilds studies.tsv)."""
    if qrow is None:
        return {}
    return {
        "n_samples": int(qrow.get("n_samples") or 0),
        "submitted": qrow.get("submitted", ""),
        "updated": qrow.get("updated", ""),
        "fingerprint": qrow.get("fingerprint", ""),
        "query_status": qrow.get("status", ""),
        "query_reason": qrow.get("reason", "") or qrow.get("status", ""),
    }


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
    base = dict(qrow or {})
    source = base.get("source") or (sj or {}).get("source") or study_source(acc)
    fields: dict[str, Any] = {
        "source": source,
        "title": (sj or {}).get("title") or base.get("title", ""),
        "organism": (sj or {}).get("organism") or base.get("organism", ""),
        "kind": (sj or {}).get("kind") or base.get("kind", ""),
        **_discover_fields(qrow),
    }
    if sj is not None:
        fields["supplementary"] = join(sj.get("supplementary") or [])
        if sj.get("updated"):
            fields["updated"] = sj["updated"]  # the SOFT's last-update date
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
            acc, **fields, status="new", reason="found by the query; sample sheet not built yet"
        )
    sheet = (
        read_rows(samples_path, SAMPLE_COLUMNS, "samples")
        if samples_path and samples_path.is_file()
        else []
    )
    man = (
        read_rows(manifest, ["run", "sample", "files", "status", "reason"], "manifest")
        if manifest and manifest.is_file()
        else None
    )
    for m in man or []:
        m.setdefault("error_file", "")
        m.setdefault("error_field", "")
    aln = read_rows(alignment, ALIGNMENT_COLUMNS) if alignment and alignment.is_file() else None
    status, reason = sj.get("status", "failed"), sj.get("reason") or "no reason recorded"
    error = sj.get("error") or {}
    err_file, err_field = str(error.get("file", "")), str(error.get("field", ""))
    if status == "ok" and man and all(m["status"] == "failed" for m in man):
        first = man[0]
        status, reason = (
            "failed",
            f"{acc}: all {len(man)} downloads failed; first: {first['reason']}",
        )
        err_file, err_field = first["error_file"], first["error_field"] or WHOLE_FILE
    elif status == "ok" and man is not None:
        n_ok = sum(m["status"] == "ok" for m in man)
        reason = f"{reason}; downloads {n_ok} ok, {len(man) - n_ok} failed"
        if aln:
            reason += f"; alignment {sum(a['status'] == 'ok' for a in aln)} ok of {len(aln)}"
    result = cat.upsert_study(
        acc,
        **fields,
        status=status,
        reason=reason,
        metadata_sha256=sha,
        error_file=err_file,
        error_field=err_field,
    )
    man_by_run = {r["run"]: r for r in man or []}
    aln_by_run = {r["run"]: r for r in aln or []}
    run_status: dict[str, tuple[str, str]] = {}
    runs_of: dict[str, list[str]] = {}
    first_row: dict[str, dict[str, str]] = {}
    first_run: dict[str, dict[str, str]] = {}
    for r in sheet:
        first_row.setdefault(r["sample"], r)
        if r["run"]:
            first_run.setdefault(r["run"], r)
            if r["run"] not in runs_of.setdefault(r["sample"], []):
                runs_of[r["sample"]].append(r["run"])
    for r in first_run.values():
        rate: float | None = None
        efile = efield = ""
        if r["run"] in aln_by_run:
            a = aln_by_run[r["run"]]
            rstatus, rreason = a["status"], a["reason"] or f"alignment {a['status']}"
            rate = float(a["alignment_rate"]) if a["alignment_rate"] not in ("", "nan") else None
        elif r["run"] in man_by_run:
            m = man_by_run[r["run"]]
            rstatus, rreason = m["status"], m["reason"] or f"download {m['status']}"
            efile, efield = m["error_file"], m["error_field"]
        else:
            rstatus, rreason = "new", "in the sample sheet; not downloaded yet"
        run_status[r["run"]] = (rstatus, rreason)
        cat.upsert_run(
            r["run"],
            sample=r["sample"],
            study=acc,
            layout=r["library_layout"],
            alignment_rate=rate,
            status=rstatus,
            reason=rreason,
            error_file=efile,
            error_field=efield,
        )
    for row in first_row.values():
        runs = runs_of.get(row["sample"], [])
        sstatus, sreason = _sample_status(row["technology"], [run_status[r] for r in runs])
        cat.upsert_sample(
            acc,
            row["sample"],
            title=row["title"],
            organism=row["organism"],
            status=sstatus,
            reason=sreason,
        )
    for ex in sj.get("excluded") or []:
        cat.upsert_sample(
            acc,
            str(ex.get("sample", "")),
            status="skipped",
            reason=str(ex.get("reason") or "excluded"),
        )
    return result
