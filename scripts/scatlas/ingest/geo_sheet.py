"""GEO's sample sheet: the series' family SOFT, its samples' runs from ENA (SRA when ENA has
none), or the authors' matrices for samples without reads scatlas can count."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scatlas.accessions import is_valid
from scatlas.errors import ServiceError
from scatlas.ingest.download import ARCHIVE_FILE, MATRIX_FILE
from scatlas.ingest.sheet_rows import (
    StudyContext,
    keep_sample,
    run_fields,
    sample_row,
    study_organism,
    technology_and_reason,
    technology_of,
)
from scatlas.sources import geo, sra
from scatlas.sources.http import Services

log = logging.getLogger(__name__)


class GeoSheet:
    """The ``geo`` source of :func:`scatlas.ingest.sheets.build_sample_sheet`."""

    name = "geo"

    def build(
        self, svc: Services, acc: str, ctx: StudyContext, out_dir: Path
    ) -> tuple[list[dict], dict]:
        return _geo_sheet(svc, acc, ctx, out_dir)


def _resolve_geo_runs(
    svc: Services, sra_study: str, experiments: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """SRX → run records: one ENA filereport for the series' SRA study, then per experiment
    for anything missing, then SRA's efetch where ENA has nothing (no FASTQ URLs then)."""
    found: dict[str, list[dict[str, Any]]] = {}
    wanted = set(experiments)
    if sra_study and is_valid(sra_study, "sra_study"):
        try:
            found = {
                k: v
                for k, v in sra.runs_by_experiment(
                    sra.filereport(svc.ena_portal, sra_study)
                ).items()
                if k in wanted
            }
        except ServiceError as exc:
            log.warning("ENA filereport for %s failed (%s); asking per experiment", sra_study, exc)
    for exp in experiments:
        if exp in found:
            continue
        recs = sra.filereport(svc.ena_portal, exp)
        if not recs:
            log.info("ENA has no runs for %s; asking SRA", exp)
            try:
                recs = sra.efetch_sra(svc.eutils, exp)
            except ServiceError as exc:  # this sample has no reads; the study goes on
                log.warning("SRA look-up of %s failed: %s", exp, exc)
                recs = []
        found[exp] = sra.runs_by_experiment(recs).get(exp, [])
    return found


def _gse_number(acc: str) -> int:
    return int(acc[3:])


def _owner(
    acc: str, sample: Mapping[str, Any], series: Mapping[str, Any], ctx: StudyContext
) -> str:
    """The other kept series that ingests ``sample`` instead of ``acc`` ("" when ``acc`` does):
    a SuperSeries leaves its samples to its sub-series; of two ordinary series listing the
    same sample, the lower accession takes it. No sample is counted twice."""
    others = sorted(
        (g for g in sample.get("series", []) if g != acc and g in ctx.kept and is_valid(g, "gse")),
        key=_gse_number,
    )
    if not others:
        return ""
    if series.get("superseries_of"):
        return others[0]
    lower = [g for g in others if _gse_number(g) < _gse_number(acc)]
    return lower[0] if lower else ""


def _geo_sheet(
    svc: Services, acc: str, ctx: StudyContext, out_dir: Path
) -> tuple[list[dict], dict]:
    soft = out_dir / "raw" / f"{acc}_family.soft.gz"
    svc.geo.download(geo.soft_family_url(acc, svc.bases["geo"]), soft)
    parsed = geo.parse_family_soft(soft, expected=acc)
    series = parsed["series"]
    series_supp = [svc.map_url(u) for u in series["supplementary"]]
    organism = study_organism(ctx, (s["organism"] for s in parsed["samples"]))
    kept, excluded = [], []
    for s in parsed["samples"]:
        ok, why = keep_sample(s, ctx, organism)
        if ok and (owner := _owner(acc, s, series, ctx)):
            ok, why = False, f"{s['accession']}: also in {owner}, ingested there (counted once)"
        (kept if ok else excluded).append((s, why))
    reads = [s for s, _ in kept if s["experiment"] and technology_of(s)]
    matrix = [s for s, _ in kept if not (s["experiment"] and technology_of(s))]
    runs = (
        _resolve_geo_runs(svc, series["sra_study"], [s["experiment"] for s in reads])
        if reads
        else {}
    )
    rows: list[dict[str, Any]] = []
    for s in reads:
        supp = [svc.map_url(u) for u in s["supplementary"]] + series_supp
        recs = runs.get(s["experiment"], [])
        if not recs:
            excluded.append(
                (s, f"{s['accession']}: no runs found for {s['experiment']} in ENA or SRA")
            )
            continue
        for rec in recs:
            rows.append({**sample_row(acc, s, technology_of(s), supp), **run_fields(svc, rec)})
    for s in matrix:
        supp = [svc.map_url(u) for u in s["supplementary"]] + series_supp
        if not any(MATRIX_FILE.search(u) or ARCHIVE_FILE.search(u) for u in supp):
            why = technology_and_reason(s)[1] if s["experiment"] else "no SRA reads"
            excluded.append((s, f"{s['accession']}: {why} and no processed matrix file"))
            continue
        rows.append(sample_row(acc, s, "matrix", supp))
    info = {
        "title": series["title"],
        "organism": organism or "; ".join(series["organisms"]),
        "supplementary": series_supp,
        "submitted": series["submitted"],
        "updated": series["updated"],
        "superseries_of": series["superseries_of"],
        "subseries_of": series["subseries_of"],
        "excluded": [{"sample": s["accession"], "reason": why} for s, why in excluded],
    }
    return rows, info
