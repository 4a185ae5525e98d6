"""The ingestion stage: query the repositories, build per-study sample sheets, download reads
and matrices with verification, and record everything in the catalog.

Each public function takes the validated config dict and is what one rule script calls:

* :func:`query_studies` → ``query/studies.tsv``
* :func:`build_sample_sheet` → ``studies/{study}/samples.tsv`` + ``study.json``
* :func:`download_study` → ``fastq/{study}/*.fastq.gz`` + ``manifest.tsv``
* :func:`update_catalog` → ``catalog.sqlite``

A failing study never stops the others: study- and run-level failures are written into the
outputs with their reason instead of raised.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from scatlas import accessions
from scatlas.accessions import AccessionError, is_valid, study_source, validate, validate_study
from scatlas.catalog import Catalog
from scatlas.errors import InputError, ScatlasError, ServiceError
from scatlas.fileio import atomic_path, atomic_write_text, md5_file, sha256_file
from scatlas.logs import progress_enabled
from scatlas.sheets import (
    ALIGNMENT_COLUMNS,
    MANIFEST_COLUMNS,
    SAMPLE_COLUMNS,
    STUDY_COLUMNS,
    validate_sheet,
)
from scatlas.sources import arrayexpress as ae
from scatlas.sources import geo, sra
from scatlas.sources.http import Services, file_matches, looks_like_html

log = logging.getLogger(__name__)


# Supplementary files that can hold a count matrix, and archives that may bundle one.
_MATRIX_FILE = re.compile(r"\.(h5|h5ad|loom|mtx|csv|tsv|txt|rds)(\.gz)?$", re.I)
_ARCHIVE_FILE = re.compile(r"\.(tar|tar\.gz|tgz|zip)$", re.I)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$")
# a study file's path inside BioStudies: plain names in plain folders, no ".." segments
_SAFE_REL_PATH = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._+-]*/)*[A-Za-z0-9][A-Za-z0-9._+-]*$")


# -- small helpers -------------------------------------------------------------------------------


def _services(cfg: Mapping[str, Any], services: Services | None) -> Services:
    return services if services is not None else Services(cfg.get("services") or {})


def _iso(value: Any) -> str | None:
    """Config dates may arrive as strings or (from YAML) as date objects."""
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError as exc:
        raise InputError(
            f"date {value!r} is not YYYY-MM-DD", field="query.date_from/date_to"
        ) from exc


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


def write_tsv(
    rows: Iterable[Mapping[str, Any]] | pd.DataFrame,
    path: str | os.PathLike,
    columns: Sequence[str],
    sort: Sequence[str] = (),
) -> pd.DataFrame:
    """Write rows with exactly ``columns`` (header-only when empty), atomically."""
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for c in columns:
        if c not in df.columns:
            df[c] = ""
    df = df[list(columns)]
    if sort and len(df):
        df = df.sort_values(list(sort), kind="stable").reset_index(drop=True)
    with atomic_path(path, suffix=".tsv") as tmp:
        df.to_csv(tmp, sep="\t", index=False)
    return df


def _display_path(p: Path) -> str:
    """Paths in manifests are relative to the working directory (the repo root) when inside it."""
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p.resolve())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ServiceError):
        return f"{exc} ({exc.reason})" if exc.reason and exc.reason not in str(exc) else str(exc)
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, ScatlasError) else str(exc)


def _join(values: Iterable[Any]) -> str:
    return ";".join("" if v is None else str(v) for v in values)


def _split(value: str) -> list[str]:
    return [v for v in (value or "").split(";") if v]


# -- 1. query -----------------------------------------------------------------------------------


def _ae_row(
    svc: Services,
    acc: str,
    organisms: Sequence[str],
    sources: Sequence[str],
    hit: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A studies.tsv row for one ArrayExpress study (its PageTab JSON gives the organism)."""
    row = {
        "study": acc,
        "source": "arrayexpress",
        "title": geo.clean_text((hit or {}).get("title", "")),
        "organism": "",
        "kind": "reads",
        "n_samples": 0,
        "submitted": (hit or {}).get("release_date", ""),
        "updated": "",
        "status": "ok",
        "reason": "",
    }
    if acc.startswith("E-GEOD-") and "geo" in sources:
        gse = "GSE" + acc.rsplit("-", 1)[1]
        row.update(status="skipped", reason=f"imported from GEO; taken from GEO as {gse}")
        return row
    info = ae.parse_study(ae.study_json(svc.biostudies, acc))
    matched = [o for o in organisms if o.lower() in {x.lower() for x in info["organisms"]}]
    row.update(
        title=geo.clean_text(info["title"]) or row["title"],
        organism="; ".join(matched) or "; ".join(info["organisms"]),
        submitted=info["release_date"] or row["submitted"],
        n_samples=info["n_samples"],
    )
    reasons = []
    if not matched:
        reasons.append(
            f"organism {'; '.join(info['organisms']) or 'unknown'!r} is not one of {', '.join(organisms)}"
        )
    if info["study_type"] and "seq" not in info["study_type"].lower():
        reasons.append(f"study type {info['study_type']!r} is not sequencing")
    if reasons:
        row.update(status="skipped", reason="; ".join(reasons))
    else:
        row["reason"] = f"single-cell candidate ({info['study_type'] or 'sequencing'})"
    return row


def _geo_explicit(svc: Services, acc: str, organisms: Sequence[str]) -> dict[str, Any]:
    uids = geo.esearch(svc.eutils, f"{acc}[GEO Accession]", page_size=500)
    docs = [d for d in geo.esummary(svc.eutils, uids) if str(d.get("accession", "")) == acc]
    if not docs:
        raise ServiceError(
            f"GEO has no series {acc}",
            url=svc.eutils.url("esearch.fcgi"),
            reason=f"GEO has no series {acc}",
        )
    return geo.summary_to_study(docs[0], organisms)


def _failed_row(acc: str, exc: BaseException) -> dict[str, Any]:
    src = study_source(acc) if any(is_valid(acc, k) for k in accessions.STUDY_KINDS) else ""
    log.error("study %s: %s", acc, _reason(exc), exc_info=exc)
    return {"study": acc, "source": src, "n_samples": 0, "status": "failed", "reason": _reason(exc)}


def query_studies(
    cfg: Mapping[str, Any], out_tsv: str | os.PathLike, *, services: Services | None = None
) -> pd.DataFrame:
    """Find candidate studies and write ``query/studies.tsv`` (sorted by study).

    With ``query.studies`` set, those accessions are taken and no search runs. Otherwise GEO
    (esearch → esummary) and ArrayExpress (BioStudies search → study JSON) are searched within
    ``query.date_from``/``date_to``. ``query.exclude`` and ``query.max_studies`` apply to
    both; skipped studies stay in the table with their reason. A study whose lookup fails is
    a "failed" row; a whole source that cannot be searched raises ServiceError.
    """
    svc = _services(cfg, services)
    q = cfg.get("query") or {}
    organisms = list(q.get("organisms") or [])
    sources = list(q.get("sources") or ["geo", "arrayexpress"])
    date_from, date_to = _iso(q.get("date_from")), _iso(q.get("date_to"))
    page_size = int(q.get("page_size") or 500)
    explicit = [validate_study(s, context="query.studies") for s in q.get("studies") or []]
    exclude = {validate_study(s, context="query.exclude") for s in q.get("exclude") or []}
    rows: list[dict[str, Any]] = []
    if explicit:
        for acc in dict.fromkeys(explicit):
            try:
                if study_source(acc) == "geo":
                    rows.append(_geo_explicit(svc, acc, organisms))
                else:
                    rows.append(_ae_row(svc, acc, organisms, sources))
            except (ScatlasError, AccessionError) as exc:
                rows.append(_failed_row(acc, exc))
    else:
        if "geo" in sources:
            uids = geo.esearch(
                svc.eutils,
                q.get("term", ""),
                mindate=date_from,
                maxdate=date_to,
                page_size=page_size,
            )
            log.info("GEO: %d entries match the query", len(uids))
            geo_rows = [geo.summary_to_study(d, organisms) for d in geo.esummary(svc.eutils, uids)]
            # entries that are not series (GSM, GDS, GPL) are not studies: logged, not listed
            others = [r["study"] for r in geo_rows if not is_valid(r["study"], "gse")]
            if others:
                log.info("GEO: %d non-series entries dropped (e.g. %s)", len(others), others[:3])
            rows.extend(r for r in geo_rows if is_valid(r["study"], "gse"))
        if "arrayexpress" in sources:
            hits = ae.search(
                svc.biostudies,
                q.get("arrayexpress_query", ""),
                date_from=date_from,
                date_to=date_to,
                page_size=min(page_size, 100),
            )
            log.info("ArrayExpress: %d studies match the query", len(hits))
            iterator = tqdm(hits, desc="ArrayExpress studies", disable=not progress_enabled())
            for hit in iterator:
                acc = hit["accession"]
                if acc in exclude:
                    rows.append(
                        {
                            "study": acc,
                            "source": "arrayexpress",
                            "title": geo.clean_text(hit.get("title", "")),
                            "kind": "reads",
                        }
                    )
                    continue
                try:
                    rows.append(_ae_row(svc, acc, organisms, sources, hit))
                except (ScatlasError, AccessionError) as exc:
                    rows.append(_failed_row(acc, exc))
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        full = {c: row.get(c, "") for c in STUDY_COLUMNS}
        full["n_samples"] = int(full["n_samples"] or 0)
        if full["study"] in exclude:
            full.update(status="skipped", reason="excluded by query.exclude")
        table.setdefault(full["study"], full)
    _apply_max_studies(table, q.get("max_studies"))
    df = write_tsv(list(table.values()), out_tsv, STUDY_COLUMNS, sort=["study"])
    counts = Counter(df["status"]) if len(df) else Counter()
    log.info(
        "query: %d studies (%s) -> %s",
        len(df),
        ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        out_tsv,
    )
    return df


def _apply_max_studies(table: dict[str, dict[str, Any]], max_studies: int | None) -> None:
    """Keep the ``max_studies`` most recently submitted eligible studies; mark the rest."""
    if max_studies is None:
        return
    ok = [r for r in table.values() if r["status"] == "ok"]
    ok.sort(key=lambda r: (r["submitted"] or "", r["study"]), reverse=True)
    for r in ok[int(max_studies) :]:
        r.update(
            status="skipped", reason=f"beyond query.max_studies ({max_studies}, most recent first)"
        )


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
        "fastq_urls": _join(urls),
        "fastq_md5": _join(rec.get("fastq_md5") or []),
        "fastq_bytes": _join(rec.get("fastq_bytes") or []),
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
        "supplementary": _join(dict.fromkeys(supplementary)),
    }


def _geo_sheet(
    svc: Services, acc: str, organisms: Sequence[str], out_dir: Path
) -> tuple[list[dict], dict]:
    soft = out_dir / "raw" / f"{acc}_family.soft.gz"
    svc.geo.download(geo.soft_family_url(acc, svc.bases["geo"]), soft)
    parsed = geo.parse_family_soft(soft, expected=acc)
    series = parsed["series"]
    series_supp = [svc.map_url(u) for u in series["supplementary"]]
    kept, excluded = [], []
    for s in parsed["samples"]:
        ok, why = geo.is_single_cell_rna(s, organisms)
        (kept if ok else excluded).append((s, why))
    reads = [s for s, _ in kept if s["experiment"] and not geo.is_droplet(s)]
    matrix = [s for s, _ in kept if not s["experiment"] or geo.is_droplet(s)]
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
            rows.append({**_sample_row(acc, s, "smartseq", supp), **_run_fields(svc, rec)})
    for s in matrix:
        supp = [svc.map_url(u) for u in s["supplementary"]] + series_supp
        if not any(_MATRIX_FILE.search(u) or _ARCHIVE_FILE.search(u) for u in supp):
            why = "droplet protocol (runs pool many cells)" if s["experiment"] else "no SRA reads"
            excluded.append((s, f"{s['accession']}: {why} and no processed matrix file"))
            continue
        rows.append(_sample_row(acc, s, "matrix", supp))
    info = {
        "title": series["title"],
        "organism": "; ".join(sorted({r["organism"] for r in rows}))
        or "; ".join(series["organisms"]),
        "supplementary": series_supp,
        "submitted": series["submitted"],
        "updated": series["updated"],
        "excluded": [{"sample": s["accession"], "reason": why} for s, why in excluded],
    }
    return rows, info


def _ae_sheet(
    svc: Services, acc: str, organisms: Sequence[str], out_dir: Path
) -> tuple[list[dict], dict]:
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
        and (_MATRIX_FILE.search(p) or _ARCHIVE_FILE.search(p))
    ]
    ena_runs: dict[str, dict[str, Any]] = {}
    if info["ena_study"]:
        try:
            ena_runs = {
                r["run_accession"]: r for r in sra.filereport(svc.ena_portal, info["ena_study"])
            }
        except ServiceError as exc:
            log.warning("ENA filereport for %s failed (%s); asking per run", info["ena_study"], exc)
    rows: list[dict[str, Any]] = []
    excluded: list[tuple[str, str]] = []
    for rec in records:
        sample_acc = next(
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
        ok, why = geo.is_single_cell_rna(sample, organisms)
        if not ok:
            excluded.append((sample["accession"], why))
            continue
        if not sample_acc:
            excluded.append(
                (rec["source_name"], f"{rec['source_name']!r}: no ENA/BioSample/run accession")
            )
            continue
        if geo.is_droplet(sample):
            if processed:
                rows.append(_sample_row(acc, sample, "matrix", processed))
            else:
                excluded.append(
                    (
                        sample_acc,
                        f"{sample_acc}: droplet protocol (runs pool many cells) and no processed matrix file",
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
        rows.append({**_sample_row(acc, sample, "smartseq", processed), **_run_fields(svc, run)})
    organism_set = sorted({r["organism"] for r in rows})
    meta = {
        "title": info["title"],
        "organism": "; ".join(organism_set) or "; ".join(info["organisms"]),
        "supplementary": processed,
        "submitted": info["release_date"],
        "updated": "",
        "excluded": [{"sample": s, "reason": why} for s, why in excluded],
    }
    return rows, meta


def build_sample_sheet(
    cfg: Mapping[str, Any],
    study: str,
    out_dir: str | os.PathLike,
    *,
    services: Services | None = None,
) -> dict[str, Any]:
    """Write ``samples.tsv`` (one row per run; matrix samples one row with empty run) and
    ``study.json`` for one study; return the study.json content.

    Never raises for a study-level failure (network error after retries, malformed SOFT or
    SDRF, bad accession, HTML instead of JSON...): the outputs then hold a header-only
    samples.tsv and status "failed" with the reason, and the traceback is logged.
    """
    out = Path(out_dir)
    q = cfg.get("query") or {}
    organisms = list(q.get("organisms") or [])
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
    }
    rows: list[dict[str, Any]] = []
    try:
        acc = validate_study(study, context="sample sheet")
        summary["source"] = study_source(acc)
        svc = _services(cfg, services)
        if summary["source"] == "geo":
            rows, meta = _geo_sheet(svc, acc, organisms, out)
        else:
            rows, meta = _ae_sheet(svc, acc, organisms, out)
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
                f"no single-cell RNA-seq samples of {', '.join(organisms)} ({detail or 'no samples'})"
            )
    except Exception as exc:  # a study-level failure is recorded, never raised
        log.exception("study %s: sample sheet failed", study)
        rows = []
        summary.update(status="failed", reason=_reason(exc), n_samples=0, n_runs=0)
    write_tsv(rows, out / "samples.tsv", SAMPLE_COLUMNS, sort=["sample", "run"])
    atomic_write_text(out / "study.json", json.dumps(summary, indent=1, sort_keys=True) + "\n")
    log.info("study %s: %s (%s)", study, summary["status"], summary["reason"])
    return summary


# -- 3. downloads --------------------------------------------------------------------------------


def _verify_gzip(path: Path) -> None:
    """Read a .gz through to the end: a truncated or corrupt file raises InputError."""
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"corrupt gzip file: {exc}", path=str(path)) from exc


def _download_run(svc: Services, row: Mapping[str, str], fastq_dir: Path) -> dict[str, Any]:
    run, sample = row["run"], row["sample"]
    out = {
        "run": run,
        "sample": sample,
        "files": "",
        "status": "failed",
        "reason": "",
        "bytes": "",
        "md5": "",
    }
    try:
        validate(run, "run", context="samples.tsv run")
        urls = _split(row["fastq_urls"])
        md5s = _split(row["fastq_md5"])
        sizes = [int(b) for b in _split(row["fastq_bytes"])]
        if not urls:
            out["reason"] = (
                f"no FASTQ URL for {run} (ENA lists none; download.method 'http' needs one)"
            )
            return out
        if (
            len(urls) > 2
            or (md5s and len(md5s) != len(urls))
            or (sizes and len(sizes) != len(urls))
        ):
            out["reason"] = f"{run}: {len(urls)} FASTQ URLs, {len(md5s)} md5s, {len(sizes)} sizes"
            return out
        names = (
            [f"{run}.fastq.gz"] if len(urls) == 1 else [f"{run}_1.fastq.gz", f"{run}_2.fastq.gz"]
        )
        files, got_md5, got_bytes, notes = [], [], [], []
        for i, url in enumerate(urls):
            if not url.endswith((".fastq.gz", ".fq.gz")):
                raise InputError(f"{url} is not a gzipped FASTQ", field="fastq_urls")
            dest = fastq_dir / names[i]
            md5 = md5s[i] if md5s else None
            size = sizes[i] if sizes else None
            if file_matches(dest, md5=md5, size=size):
                notes.append("kept")
                got_md5.append(md5 or "")
                got_bytes.append(dest.stat().st_size)
            else:
                res = svc.client_for(url).download(url, dest, md5=md5, size=size)
                notes.append("resumed" if res["resumed"] else "downloaded")
                got_md5.append(res["md5"])
                got_bytes.append(res["bytes"])
            if md5 is None:
                _verify_gzip(dest)
            files.append(_display_path(dest))
        checks = (
            "size and md5 verified"
            if md5s and sizes
            else ("md5 verified" if md5s else "gzip integrity checked (no md5 published)")
        )
        out.update(
            files=_join(files),
            status="ok",
            reason=f"{', '.join(dict.fromkeys(notes))}; {checks}",
            bytes=_join(got_bytes),
            md5=_join(got_md5),
        )
    except Exception as exc:  # one run's failure never stops the others
        log.error("run %s: %s", run, _reason(exc))
        out.update(
            status="failed",
            reason=exc.reason if isinstance(exc, ServiceError) and exc.reason else _reason(exc),
        )
    return out


def matrix_files(urls: Sequence[str]) -> list[str]:
    """The supplementary files worth fetching for a matrix study: count-matrix formats,
    or (only when there is none) archives that may bundle one."""
    names = list(dict.fromkeys(urls))
    matrices = [u for u in names if _MATRIX_FILE.search(u)]
    return matrices or [u for u in names if _ARCHIVE_FILE.search(u)]


def _download_matrix(
    svc: Services, samples: Sequence[str], urls: Sequence[str], fastq_dir: Path
) -> dict[str, Any]:
    out = {
        "run": "",
        "sample": _join(samples),
        "files": "",
        "status": "failed",
        "reason": "",
        "bytes": "",
        "md5": "",
    }
    try:
        wanted = matrix_files(urls)
        if not wanted:
            out["reason"] = "no supplementary file in a count-matrix format"
            return out
        files, sizes, md5s, notes = [], [], [], []
        for url in wanted:
            name = url.rstrip("/").rsplit("/", 1)[-1]
            if not _SAFE_NAME.match(name):
                raise InputError(
                    f"supplementary file name {name!r} is not a plain file name",
                    field="supplementary",
                )
            dest = fastq_dir / name
            if dest.is_file():
                notes.append("kept")
            else:
                svc.client_for(url).download(url, dest)
                notes.append("downloaded")
            with open(dest, "rb") as fh:
                if looks_like_html(fh.read(512)):
                    dest.unlink()
                    raise ServiceError(
                        "expected a matrix file but got an HTML page",
                        url=url,
                        reason=f"HTML instead of a matrix file at {url}",
                    )
            if name.endswith(".gz"):
                try:
                    _verify_gzip(dest)
                except InputError:
                    dest.unlink()
                    raise
            files.append(_display_path(dest))
            sizes.append(dest.stat().st_size)
            md5s.append(md5_file(dest))
        out.update(
            files=_join(files),
            status="ok",
            reason=f"{len(files)} matrix file(s) {', '.join(dict.fromkeys(notes))}; gzip integrity checked (no md5 published)",
            bytes=_join(sizes),
            md5=_join(md5s),
        )
    except Exception as exc:
        log.error("matrix files of %s: %s", out["sample"], _reason(exc))
        out.update(
            status="failed",
            reason=exc.reason if isinstance(exc, ServiceError) and exc.reason else _reason(exc),
        )
    return out


def download_study(
    cfg: Mapping[str, Any],
    samples_tsv: str | os.PathLike,
    fastq_dir: str | os.PathLike,
    manifest_tsv: str | os.PathLike,
    *,
    services: Services | None = None,
) -> pd.DataFrame:
    """Download every run's FASTQ files (and matrix studies' supplementary matrices) of one
    study, verified by size and md5, in ``download.parallel`` threads; write ``manifest.tsv``.

    FASTQs land in ``fastq_dir/{run}.fastq.gz`` or ``{run}_1/_2.fastq.gz``; files already
    present with the right size and md5 are kept. A run that fails is a "failed" manifest
    row with the reason; nothing is raised for it.
    """
    dl = cfg.get("download") or {}
    method = dl.get("method", "http")
    if method != "http":
        raise InputError(
            f"download.method {method!r} is not implemented in this release (use 'http')",
            field="download.method",
        )
    parallel = max(1, int(dl.get("parallel", 4)))
    svc = _services(cfg, services)
    sheet = read_tsv(samples_tsv, SAMPLE_COLUMNS, "samples")
    fdir = Path(fastq_dir)
    fdir.mkdir(parents=True, exist_ok=True)
    run_rows = sheet[sheet["run"] != ""].drop_duplicates("run")
    matrix_rows = sheet[sheet["run"] == ""]
    jobs = []
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for row in run_rows.to_dict("records"):
            jobs.append(pool.submit(_download_run, svc, row, fdir))
        if len(matrix_rows):
            urls = [u for s in matrix_rows["supplementary"] for u in _split(s)]
            samples = list(dict.fromkeys(matrix_rows["sample"]))
            jobs.append(pool.submit(_download_matrix, svc, samples, urls, fdir))
        done = tqdm(
            as_completed(jobs),
            total=len(jobs),
            desc=f"downloads {fdir.name}",
            disable=not progress_enabled(),
        )
        results = [j.result() for j in done]
    df = write_tsv(results, manifest_tsv, MANIFEST_COLUMNS, sort=["run", "sample"])
    n_ok = int((df["status"] == "ok").sum()) if len(df) else 0
    log.info("downloads for %s: %d ok, %d failed", fdir.name, n_ok, len(df) - n_ok)
    return df


# -- 4. catalog ----------------------------------------------------------------------------------


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
    """Record one refresh in the catalog: every study of ``studies.tsv``, the samples and runs
    of each study directory, download and alignment outcomes. Returns ``Catalog.summary()``.

    A study is "failed" when its sample sheet failed or every download failed, "new" when the
    query found it but no sample sheet exists yet, otherwise its query/sample-sheet status.
    """
    q = cfg.get("query") or {}
    studies = read_tsv(studies_tsv, STUDY_COLUMNS, "studies")
    dirs = {validate_study(Path(d).name, context=str(d)): Path(d) for d in study_dirs}
    manifests = _by_study(fastq_manifests)
    alignments = _by_study(alignment_tables)
    query_rows = {r["study"]: r for r in studies.to_dict("records")}
    with Catalog(db_path) as cat:
        rid = cat.start_refresh(_iso(q.get("date_from")), _iso(q.get("date_to")))
        try:
            with cat.transaction():
                n_new = 0
                for acc in sorted(set(query_rows) | set(dirs)):
                    n_new += (
                        _catalog_study(
                            cat,
                            acc,
                            query_rows.get(acc),
                            dirs.get(acc),
                            manifests.get(acc),
                            alignments.get(acc),
                        )
                        == "inserted"
                    )
                statuses = Counter(r["status"] for r in cat.rows("studies"))
                cat.finish_refresh(
                    rid,
                    status="ok",
                    n_studies=len(query_rows),
                    n_new=n_new,
                    reason=f"{len(query_rows)} studies queried, {n_new} new; catalog: "
                    + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
                )
        except Exception as exc:
            cat.finish_refresh(
                rid, status="failed", n_studies=len(query_rows), n_new=0, reason=_reason(exc)
            )
            raise
        return cat.summary()


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
    fields = {
        "source": source,
        "title": (sj or {}).get("title") or base.get("title", ""),
        "organism": (sj or {}).get("organism") or base.get("organism", ""),
        "kind": (sj or {}).get("kind") or base.get("kind", ""),
    }
    samples_path = study_dir / "samples.tsv" if study_dir else None
    sha = sha256_file(samples_path) if samples_path and samples_path.is_file() else ""
    if qrow is not None and qrow["status"] != "ok":
        return cat.upsert_study(
            acc,
            **fields,
            status=qrow["status"],
            reason=qrow["reason"] or qrow["status"],
            metadata_sha256=sha,
        )
    if sj is None:
        return cat.upsert_study(
            acc, **fields, status="new", reason="found by the query; sample sheet not built yet"
        )
    sheet = (
        read_tsv(samples_path, SAMPLE_COLUMNS, "samples")
        if samples_path and samples_path.is_file()
        else pd.DataFrame(columns=SAMPLE_COLUMNS)
    )
    man = (
        read_tsv(manifest, MANIFEST_COLUMNS, "manifest")
        if manifest and manifest.is_file()
        else None
    )
    aln = read_tsv(alignment, ALIGNMENT_COLUMNS) if alignment and alignment.is_file() else None
    status, reason = sj.get("status", "failed"), sj.get("reason") or "no reason recorded"
    if status == "ok" and man is not None and len(man) and (man["status"] == "failed").all():
        status, reason = (
            "failed",
            f"all {len(man)} downloads failed; first: {man['reason'].iloc[0]}",
        )
    elif status == "ok" and man is not None:
        n_ok = int((man["status"] == "ok").sum())
        reason = f"{reason}; downloads {n_ok} ok, {len(man) - n_ok} failed"
        if aln is not None and len(aln):
            reason += f"; alignment {int((aln['status'] == 'ok').sum())} ok of {len(aln)}"
    result = cat.upsert_study(acc, **fields, status=status, reason=reason, metadata_sha256=sha)
    man_by_run = {r["run"]: r for r in man.to_dict("records")} if man is not None else {}
    aln_by_run = {r["run"]: r for r in aln.to_dict("records")} if aln is not None else {}
    run_status: dict[str, tuple[str, str]] = {}
    for r in sheet[sheet["run"] != ""].drop_duplicates("run").to_dict("records"):
        rate: float | None = None
        if r["run"] in aln_by_run:
            a = aln_by_run[r["run"]]
            rstatus, rreason = a["status"], a["reason"] or f"alignment {a['status']}"
            rate = float(a["alignment_rate"]) if a["alignment_rate"] not in ("", "nan") else None
        elif r["run"] in man_by_run:
            m = man_by_run[r["run"]]
            rstatus, rreason = m["status"], m["reason"] or f"download {m['status']}"
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
        )
    for row in sheet.drop_duplicates("sample").to_dict("records"):
        runs = [r for r in sheet.loc[sheet["sample"] == row["sample"], "run"] if r]
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
