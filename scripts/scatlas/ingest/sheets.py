"""Per-study sample sheets (``studies/{study}/samples.tsv`` + ``study.json``) from GEO
(SOFT family files, SRA run tables) and ArrayExpress (BioStudies, SDRF).

:func:`build_sample_sheet` is what the ``sample_sheet`` rule calls. A failing study never
stops the others: its failure is written into ``study.json`` with the reason, the file or
URL and the field, instead of raised.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scatlas.accessions import is_valid, study_source, validate_study
from scatlas.errors import ServiceError
from scatlas.fileio import atomic_write_text
from scatlas.ingest.download import ARCHIVE_FILE, MATRIX_FILE
from scatlas.reads.barcodes import chemistry_from_text
from scatlas.settings import Settings, as_settings
from scatlas.sheets import (
    SAMPLE_COLUMNS,
)
from scatlas.sources import arrayexpress as ae
from scatlas.sources import geo, sra
from scatlas.sources.http import Services
from scatlas.stage_io import (
    error_info,
    join,
    read_rows,
    reason_of,
    services_for,
    write_tsv,
)

log = logging.getLogger(__name__)

# a study file's path inside BioStudies: plain names in plain folders, no ".." segments
_SAFE_REL_PATH = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._+-]*/)*[A-Za-z0-9][A-Za-z0-9._+-]*$")


# -- 2. sample sheet ------------------------------------------------------------------------------


def _characteristics(chars: Iterable[tuple[str, str]]) -> str:
    return "; ".join(f"{k}: {v}" if k else v for k, v in chars)


def _run_fields(svc: Services, rec: Mapping[str, Any]) -> dict[str, str]:
    urls = [svc.map_url(u) for u in rec.get("fastq_ftp") or []]
    layout = (
        "PAIRED"
        if len(urls) == 2
        else "SINGLE"
        if len(urls) == 1
        else (rec.get("library_layout") or "SINGLE")
    )
    return {
        "run": rec["run_accession"],
        "experiment": rec.get("experiment_accession", ""),
        "library_layout": layout,
        "fastq_urls": join(urls),
        "fastq_md5": join(rec.get("fastq_md5") or []),
        "fastq_bytes": join(rec.get("fastq_bytes") or []),
    }


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


def _sample_row(
    study: str, sample: Mapping[str, Any], technology: str, supplementary: Sequence[str]
) -> dict[str, Any]:
    return {
        "study": study,
        "sample": sample["accession"],
        "title": sample.get("title", ""),
        "organism": sample.get("organism", ""),
        "source_name": sample.get("source_name", ""),
        "characteristics": _characteristics(sample.get("characteristics", [])),
        "library_strategy": sample.get("library_strategy", ""),
        "library_source": sample.get("library_source", ""),
        "library_layout": "",
        "technology": technology,
        "run": "",
        "experiment": sample.get("experiment", ""),
        "fastq_urls": "",
        "fastq_md5": "",
        "fastq_bytes": "",
        "supplementary": join(dict.fromkeys(supplementary)),
    }


@dataclass
class StudyContext:
    """What the query decided about the study being sheeted, and about the others.

    ``organism``: the one organism the study is ingested for (its studies.tsv row; empty:
    decided from the samples, first of ``organisms`` present). ``kept``: the studies the
    query kept (status ok), to tell which series owns a sample listed by several series.
    """

    organisms: list[str]
    organism: str = ""
    fingerprint: str = ""
    kept: set[str] = field(default_factory=set)


def _study_context(
    cfg: Settings | Mapping[str, Any], study: str, studies_tsv: str | os.PathLike | None
) -> StudyContext:
    ctx = StudyContext(organisms=list(as_settings(cfg).discover.organisms))
    if studies_tsv is None or not Path(studies_tsv).is_file():
        return ctx
    st = os.stat(studies_tsv)
    kept, rows = _studies_table(str(studies_tsv), st.st_mtime_ns, st.st_size)
    ctx.kept = set(kept)
    if study in rows:
        ctx.organism, ctx.fingerprint = rows[study]
    return ctx


@functools.lru_cache(maxsize=2)
def _studies_table(
    path: str, mtime_ns: int, size: int
) -> tuple[frozenset[str], dict[str, tuple[str, str]]]:
    """The kept studies and each study's (organism, fingerprint), read once per version of
    the file (a process that sheets many studies would otherwise read it for each)."""
    rows = read_rows(path, ["study", "organism", "status"])
    kept = frozenset(r["study"] for r in rows if r["status"] == "ok")
    return kept, {r["study"]: (r["organism"], r.get("fingerprint", "")) for r in rows}


def _study_organism(ctx: StudyContext, sample_organisms: Iterable[str]) -> str:
    """The organism the study is ingested for: the query's choice, else the first configured
    organism among its samples."""
    if ctx.organism and ctx.organism.lower() in {o.lower() for o in ctx.organisms}:
        return ctx.organism
    present = {o.lower() for o in sample_organisms}
    return next((o for o in ctx.organisms if o.lower() in present), "")


def _keep_sample(sample: Mapping[str, Any], ctx: StudyContext, organism: str) -> tuple[bool, str]:
    """Single-cell RNA-seq of the study's organism (samples of another configured organism
    in a mixed series are left out: one organism per study)."""
    ok, why = geo.is_single_cell_rna(sample, ctx.organisms)
    if ok and organism and str(sample.get("organism", "")).lower() != organism.lower():
        return False, (
            f"{sample['accession']}: organism {sample.get('organism')!r}; this study is "
            f"ingested for {organism} (one organism per study, discover.organisms order)"
        )
    return ok, why


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


def _technology(sample: Mapping[str, Any]) -> str:
    """``smartseq`` (one cell per run), the barcoded chemistry scatlas counts itself
    (``10x_v2``, ``10x_v3``, ``dropseq``: see scatlas.reads.barcodes), or "" for a droplet
    protocol it does not (its samples fall back to the authors' matrices)."""
    if not geo.is_droplet(sample):
        return "smartseq"
    text = f"{geo.sample_text(sample)} {sample.get('protocol', '')}"
    return chemistry_from_text(text) or ""


def _geo_sheet(
    svc: Services, acc: str, ctx: StudyContext, out_dir: Path
) -> tuple[list[dict], dict]:
    soft = out_dir / "raw" / f"{acc}_family.soft.gz"
    svc.geo.download(geo.soft_family_url(acc, svc.bases["geo"]), soft)
    parsed = geo.parse_family_soft(soft, expected=acc)
    series = parsed["series"]
    series_supp = [svc.map_url(u) for u in series["supplementary"]]
    organism = _study_organism(ctx, (s["organism"] for s in parsed["samples"]))
    kept, excluded = [], []
    for s in parsed["samples"]:
        ok, why = _keep_sample(s, ctx, organism)
        if ok and (owner := _owner(acc, s, series, ctx)):
            ok, why = False, f"{s['accession']}: also in {owner}, ingested there (counted once)"
        (kept if ok else excluded).append((s, why))
    reads = [s for s, _ in kept if s["experiment"] and _technology(s)]
    matrix = [s for s, _ in kept if not (s["experiment"] and _technology(s))]
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
            rows.append({**_sample_row(acc, s, _technology(s), supp), **_run_fields(svc, rec)})
    for s in matrix:
        supp = [svc.map_url(u) for u in s["supplementary"]] + series_supp
        if not any(MATRIX_FILE.search(u) or ARCHIVE_FILE.search(u) for u in supp):
            why = "droplet protocol (runs pool many cells)" if s["experiment"] else "no SRA reads"
            excluded.append((s, f"{s['accession']}: {why} and no processed matrix file"))
            continue
        rows.append(_sample_row(acc, s, "matrix", supp))
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
    organism = _study_organism(ctx, (r["organism"] for r in records))
    rows: list[dict[str, Any]] = []
    excluded: list[tuple[str, str]] = []
    for rec, sample_acc in zip(records, _ae_sample_ids(records), strict=True):
        sample = {
            "accession": sample_acc or rec["source_name"],
            "title": rec["source_name"],
            "source_name": rec["source_name"],
            "organism": rec["organism"],
            "characteristics": rec["characteristics"],
            "library_strategy": rec["library_strategy"],
            "library_source": rec["library_source"],
            "experiment": rec["experiment"],
            "protocol": f"{rec['library_construction']} {rec['single_cell_isolation']}",
        }
        ok, why = _keep_sample(sample, ctx, organism)
        if not ok:
            excluded.append((sample["accession"], why))
            continue
        if not sample_acc:
            excluded.append(
                (rec["source_name"], f"{rec['source_name']!r}: no ENA/BioSample/run accession")
            )
            continue
        tech = _technology(sample)
        if not tech:
            if processed:
                rows.append(_sample_row(acc, sample, "matrix", processed))
            else:
                excluded.append(
                    (
                        sample_acc,
                        f"{sample_acc}: droplet protocol (runs pool many cells) and no "
                        "processed matrix file",
                    )
                )
            continue
        if not rec["run"]:
            excluded.append((sample_acc, f"{sample_acc}: no ENA run in the SDRF"))
            continue
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
        rows.append({**_sample_row(acc, sample, tech, processed), **_run_fields(svc, run)})
    meta = {
        "title": info["title"],
        "organism": organism or "; ".join(info["organisms"]),
        "supplementary": processed,
        "submitted": info["release_date"],
        "updated": "",
        "excluded": [{"sample": s, "reason": why} for s, why in excluded],
    }
    return rows, meta


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

    ``studies_tsv`` (the query's table) gives the study's organism and the other kept
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
        ctx = _study_context(cfg, acc, studies_tsv)
        summary["fingerprint"] = ctx.fingerprint
        svc = services_for(cfg, services)
        if summary["source"] == "geo":
            rows, meta = _geo_sheet(svc, acc, ctx, out)
        else:
            rows, meta = _ae_sheet(svc, acc, ctx, out)
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
    write_tsv(rows, out / "samples.tsv", SAMPLE_COLUMNS, sort=["sample", "run"], frame=False)
    atomic_write_text(out / "study.json", json.dumps(summary, indent=1, sort_keys=True) + "\n")
    log.info("study %s: %s (%s)", study, summary["status"], summary["reason"])
    return summary
