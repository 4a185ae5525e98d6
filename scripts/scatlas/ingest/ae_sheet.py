"""ArrayExpress's sample sheet: the BioStudies study, its SDRF, runs from ENA (the SDRF's
FASTQ URIs when ENA has none), or the processed matrices for droplet samples."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scatlas.accessions import is_valid
from scatlas.errors import ServiceError
from scatlas.fileio import atomic_write_text
from scatlas.ingest.download import ARCHIVE_FILE, MATRIX_FILE
from scatlas.ingest.sheet_rows import (
    StudyContext,
    keep_sample,
    run_fields,
    sample_row,
    study_organism,
    technology_and_reason,
)
from scatlas.sources import arrayexpress as ae
from scatlas.sources import sra
from scatlas.sources.http import Services

log = logging.getLogger(__name__)

# a study file's path inside BioStudies: plain names in plain folders, no ".." segments
_SAFE_REL_PATH = re.compile(
    r"^(?:[A-Za-z0-9][A-Za-z0-9._+-]*/)*[A-Za-z0-9][A-Za-z0-9._+-]*\Z", re.ASCII
)


class ArrayExpressSheet:
    """The ``arrayexpress`` source of :func:`scatlas.ingest.sheets.build_sample_sheet`."""

    name = "arrayexpress"

    def build(
        self, svc: Services, acc: str, ctx: StudyContext, out_dir: Path
    ) -> tuple[list[dict], dict]:
        return _ae_sheet(svc, acc, ctx, out_dir)


def _ae_sample_ids(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each SDRF record's sample accession (ENA sample, BioSample or run, the first valid);
    runs in one ``Comment[technical replicate group]`` share the group's first sample."""
    ids = [
        next(
            (
                v
                for v, k in (
                    (rec["ena_sample"], "sample"),
                    (rec["biosample"], "biosample"),
                    (rec["run"], "run"),
                )
                if is_valid(v, k)
            ),
            "",
        )
        for rec in records
    ]
    group_sample: dict[str, str] = {}
    for rec, sid in zip(records, ids, strict=True):
        group = rec.get("technical_replicate_group", "")
        if group and sid:
            group_sample.setdefault(group, sid)
    return [
        group_sample.get(rec.get("technical_replicate_group", ""), sid) if sid else sid
        for rec, sid in zip(records, ids, strict=True)
    ]


def _ae_sheet(svc: Services, acc: str, ctx: StudyContext, out_dir: Path) -> tuple[list[dict], dict]:
    doc = ae.study_json(svc.biostudies, acc)
    atomic_write_text(out_dir / "raw" / f"{acc}.json", json.dumps(doc, indent=1, sort_keys=True))
    info = ae.parse_study(doc)
    url = ae.sdrf_url(
        acc, svc.bases["biostudies"], info["sdrf"].rsplit("/", 1)[-1] if info["sdrf"] else ""
    )
    text = svc.biostudies.get_text(url, expect="SDRF (TSV)")
    atomic_write_text(out_dir / "raw" / f"{acc}.sdrf.txt", text)
    records = ae.parse_sdrf(text, where=url)
    processed = [
        svc.map_url(f"{svc.bases['biostudies']}/files/{acc}/{p}")
        for p in info["files"]
        if _SAFE_REL_PATH.match(p)
        and not p.endswith((".sdrf.txt", ".idf.txt"))
        and (MATRIX_FILE.search(p) or ARCHIVE_FILE.search(p))
    ]
    ena_runs: dict[str, dict[str, Any]] = {}
    if info["ena_study"]:
        try:
            ena_runs = {
                r["run_accession"]: r for r in sra.filereport(svc.ena_portal, info["ena_study"])
            }
        except ServiceError as exc:
            log.warning("ENA filereport for %s failed (%s); asking per run", info["ena_study"], exc)
    organism = study_organism(ctx, (r["organism"] for r in records))
    rows: list[dict[str, Any]] = []
    excluded: list[tuple[str, str]] = []
    for rec, sample_acc in zip(records, _ae_sample_ids(records), strict=True):
        row, why = _record_row(
            svc, acc, rec, sample_acc, ctx, organism, processed, ena_runs, info["study_type"]
        )
        if row is None:
            excluded.append((sample_acc or rec["source_name"], why))
        else:
            rows.append(row)
    meta = {
        "title": info["title"],
        "organism": organism or "; ".join(info["organisms"]),
        "supplementary": processed,
        "submitted": info["release_date"],
        "updated": "",
        "excluded": [{"sample": s, "reason": why} for s, why in excluded],
    }
    return rows, meta


def _record_row(
    svc: Services,
    acc: str,
    rec: Mapping[str, Any],
    sample_acc: str,
    ctx: StudyContext,
    organism: str,
    processed: list[str],
    ena_runs: Mapping[str, dict[str, Any]],
    experiment_type: str = "",
) -> tuple[dict[str, Any] | None, str]:
    """The sheet row of one SDRF record, or None and why it is left out."""
    sample = ae.sdrf_sample(rec, sample_acc, experiment_type)
    ok, why = keep_sample(sample, ctx, organism)
    if not ok:
        return None, why
    if not sample_acc:
        return None, f"{rec['source_name']!r}: no ENA/BioSample/run accession"
    tech, why = technology_and_reason(sample)
    if not tech:
        if processed:
            return sample_row(acc, sample, "matrix", processed), ""
        return None, f"{sample_acc}: {why} and no processed matrix file"
    if not rec["run"]:
        return None, f"{sample_acc}: no ENA run in the SDRF"
    run = _ena_run(svc, rec, ena_runs)
    return {**sample_row(acc, sample, tech, processed), **run_fields(svc, run)}, ""


def _ena_run(
    svc: Services, rec: Mapping[str, Any], ena_runs: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    """ENA's record of the SDRF record's run (from the study's report, else asked alone);
    the SDRF's own FASTQ URIs when ENA lists no files."""
    run = ena_runs.get(rec["run"])
    if run is None:
        found = [
            r
            for r in sra.filereport(svc.ena_portal, rec["run"])
            if r["run_accession"] == rec["run"]
        ]
        run = found[0] if found else None
    if run is None or not run["fastq_ftp"]:
        run = {
            "run_accession": rec["run"],
            "experiment_accession": rec["experiment"],
            "library_layout": rec["library_layout"],
            "fastq_ftp": rec["fastq_uris"],
            "fastq_md5": [],
            "fastq_bytes": [],
        }
    return run
