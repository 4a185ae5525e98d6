"""Per-study sample sheets (``studies/{study}/samples.tsv`` + ``study.json``), one source
interface (:class:`SheetSource`) for GEO (:mod:`~scatlas.ingest.geo_sheet`: SOFT family files,
SRA run tables) and ArrayExpress (:mod:`~scatlas.ingest.ae_sheet`: BioStudies, SDRF).

:func:`build_sample_sheet` is what the ``sample_sheet`` rule calls. A failing study never
stops the others: its failure is written into ``study.json`` with the reason, the file or
URL and the field, instead of raised.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from scatlas.accessions import study_source, validate_study
from scatlas.fileio import atomic_write_text
from scatlas.ingest.ae_sheet import ArrayExpressSheet
from scatlas.ingest.geo_sheet import GeoSheet
from scatlas.ingest.sheet_rows import StudyContext, study_context
from scatlas.settings import Settings
from scatlas.sheets import SAMPLE_COLUMNS, SAMPLE_KIND_COLUMNS
from scatlas.sources.http import Services
from scatlas.stage_io import error_info, reason_of, services_for, write_tsv

log = logging.getLogger(__name__)


class SheetSource(Protocol):
    """A repository scatlas builds sample sheets from."""

    name: str

    def build(
        self, svc: Services, acc: str, ctx: StudyContext, out_dir: Path
    ) -> tuple[list[dict], dict]:
        """The sheet's rows (one per run; a matrix sample: one row without a run) and the
        study's fields of study.json (title, organism, supplementary, dates, excluded);
        raw records are kept under ``out_dir/raw``."""
        ...


SOURCES: dict[str, SheetSource] = {s.name: s for s in (GeoSheet(), ArrayExpressSheet())}


def build_sample_sheet(
    cfg: Settings | Mapping[str, Any],
    study: str,
    out_dir: str | os.PathLike,
    *,
    services: Services | None = None,
    studies_tsv: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Write ``samples.tsv`` (one row per run; matrix samples one row with empty run) and
    ``study.json`` for one study; return the study.json content.

    ``studies_tsv`` (discovery's table) gives the study's organism and the other kept
    studies (a sample listed by several series is ingested once). Never raises for a
    study-level failure (network error after retries, malformed SOFT or SDRF, bad
    accession, HTML instead of JSON...): the outputs then hold a header-only samples.tsv and
    status "failed" with the reason and ``error`` = {kind, file, field}; the traceback is
    logged.
    """
    out = Path(out_dir)
    summary: dict[str, Any] = {
        "study": str(study),
        "source": "",
        "title": "",
        "organism": "",
        "kind": "",
        "status": "failed",
        "reason": "",
        "supplementary": [],
        "n_samples": 0,
        "n_runs": 0,
        "excluded": [],
        "fingerprint": "",
    }
    rows: list[dict[str, Any]] = []
    try:
        acc = validate_study(study, context="sample sheet")
        summary["source"] = study_source(acc)
        ctx = study_context(cfg, acc, studies_tsv)
        summary["fingerprint"] = ctx.fingerprint
        svc = services_for(cfg, services)
        rows, meta = SOURCES[summary["source"]].build(svc, acc, ctx, out)
        summary.update(meta)
        runs = {r["run"] for r in rows if r["run"]}
        summary["n_samples"] = len({r["sample"] for r in rows})
        summary["n_runs"] = len(runs)
        summary["kind"] = "reads" if runs else ("matrix" if rows else "")
        if rows:
            summary["status"] = "ok"
            summary["reason"] = (
                f"{summary['n_samples']} single-cell RNA-seq samples ({summary['n_runs']} runs); "
                f"{len(summary['excluded'])} samples excluded"
            )
        else:
            counts = Counter(e["reason"].split(": ", 1)[-1] for e in summary["excluded"])
            detail = "; ".join(f"{n} x {r}" for r, n in counts.most_common(3))
            summary["status"] = "skipped"
            summary["reason"] = (
                f"no single-cell RNA-seq samples of {summary['organism'] or ', '.join(ctx.organisms)}"
                f" ({detail or 'no samples'})"
            )
    except Exception as exc:  # a study-level failure is recorded, never raised
        log.exception("study %s: sample sheet failed", study)
        rows = []
        summary.update(
            status="failed",
            reason=f"{study}: {reason_of(exc)}",
            n_samples=0,
            n_runs=0,
            error=error_info(exc),
        )
    columns = SAMPLE_COLUMNS + SAMPLE_KIND_COLUMNS
    write_tsv(rows, out / "samples.tsv", columns, sort=["sample", "run"], frame=False)
    atomic_write_text(out / "study.json", json.dumps(summary, indent=1, sort_keys=True) + "\n")
    log.info("study %s: %s (%s)", study, summary["status"], summary["reason"])
    return summary
