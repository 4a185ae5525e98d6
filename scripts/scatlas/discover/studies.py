"""The discover stage: which studies exist upstream, and which of them changed.

:func:`discover_studies` writes ``discover/studies.tsv``: every study scatlas knows, one row each,
with the status discovery gives it and a ``fingerprint`` of its upstream record.

* The date window (``discover.date_from``/``date_to``, set per run by ``scatlas refresh``) is
  searched in GEO (esearch over ``gds`` with the configured term, GEO series of the configured
  organisms, paged) and ArrayExpress (BioStudies search, paged).
* Studies known from earlier refreshes (the catalog keeps each one's discover row) stay in the
  table, so a refresh that searches only the new window still lists the whole atlas; with
  ``discover.recheck_known`` their records are fetched again (GEO: esummary, 200 per request;
  ArrayExpress: the study JSON) and a changed fingerprint re-ingests that study alone
  (the ``sample_sheet`` rule has the fingerprint as a param). A study gone upstream is marked
  "skipped" (withdrawn), never dropped.
* A SuperSeries is "skipped": its sub-series are listed as studies of their own (added when
  the search did not find them), so no sample is counted twice.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from scatlas import accessions
from scatlas.accessions import AccessionError, is_valid, study_source, validate_study
from scatlas.errors import ScatlasError, ServiceError
from scatlas.ingest.catalog import Catalog
from scatlas.logs import progress_enabled
from scatlas.settings import DiscoverSettings, Settings, as_settings
from scatlas.sheets import STUDY_COLUMNS
from scatlas.sources import arrayexpress as ae
from scatlas.sources import geo
from scatlas.sources.http import Services
from scatlas.stage_io import config_date, reason_of, services_for, write_tsv

log = logging.getLogger(__name__)


def _ae_row(
    svc: Services,
    acc: str,
    organisms: Sequence[str],
    sources: Sequence[str],
    hit: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A studies.tsv row for one ArrayExpress study (its PageTab JSON gives the organism)."""
    row: dict[str, Any] = {
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
        "fingerprint": "",
    }
    if acc.startswith("E-GEOD-") and "geo" in sources:
        gse = "GSE" + acc.rsplit("-", 1)[1]
        row.update(status="skipped", reason=f"imported from GEO; taken from GEO as {gse}")
        return row
    info = ae.parse_study(ae.study_json(svc.biostudies, acc))
    matched = [o for o in organisms if o.lower() in {x.lower() for x in info["organisms"]}]
    row.update(
        title=geo.clean_text(info["title"]) or row["title"],
        organism=matched[0] if matched else "; ".join(info["organisms"]),
        submitted=info["release_date"] or row["submitted"],
        n_samples=info["n_samples"],
        fingerprint=ae.study_fingerprint(info),
    )
    reasons = []
    if not matched:
        reasons.append(
            f"organism {'; '.join(info['organisms']) or 'unknown'!r} is not one of "
            f"{', '.join(organisms)}"
        )
    if info["study_type"] and "seq" not in info["study_type"].lower():
        reasons.append(f"study type {info['study_type']!r} is not sequencing")
    if reasons:
        row.update(status="skipped", reason="; ".join(reasons))
    else:
        row["reason"] = f"single-cell candidate ({info['study_type'] or 'sequencing'})"
        if len(matched) > 1:
            row["reason"] += f" (mixed organisms; ingested for {matched[0]})"
    return row


def _failed_row(acc: str, exc: BaseException) -> dict[str, Any]:
    src = study_source(acc) if any(is_valid(acc, k) for k in accessions.STUDY_KINDS) else ""
    log.error("study %s: %s", acc, reason_of(exc))
    return {
        "study": acc,
        "source": src,
        "n_samples": 0,
        "status": "failed",
        "reason": f"{acc}: {reason_of(exc)}",
    }


def _geo_rows(docs: Sequence[Mapping[str, Any]], organisms: Sequence[str]) -> list[dict]:
    """studies.tsv rows of esummary documents; a malformed document fails its study alone,
    and entries that are not series (GSM, GDS, GPL) are dropped (logged)."""
    rows, others = [], []
    for doc in docs:
        acc = str(doc.get("accession", "")).strip()
        if not is_valid(acc, "gse"):
            others.append(acc)
            continue
        try:
            rows.append(geo.summary_to_study(doc, organisms))
        except ScatlasError as exc:
            rows.append(_failed_row(acc, exc))
    if others:
        log.info("GEO: %d non-series entries dropped (e.g. %s)", len(others), others[:3])
    return rows


def _geo_by_accession(
    svc: Services, accs: Sequence[str], organisms: Sequence[str]
) -> tuple[list[dict], dict[str, str]]:
    """Rows for GEO series by accession (esummary of their uids, 200 per request) and
    {accession: error} for those E-utilities no longer has a document for."""
    uids = {geo.gse_uid(a): a for a in accs}
    errors: dict[str, str] = {}
    docs = geo.esummary(svc.eutils, list(uids), errors)
    rows = [r for r in _geo_rows(docs, organisms) if r["study"] in set(accs)]
    return rows, {uids[u]: msg for u, msg in errors.items() if u in uids}


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


def _subseries_from_soft(svc: Services, acc: str, raw_dir: Path) -> list[str]:
    """The sub-series a SuperSeries' family SOFT lists (its esummary named none)."""
    soft = raw_dir / f"{acc}_family.soft.gz"
    svc.geo.download(geo.soft_family_url(acc, svc.bases["geo"]), soft)
    return geo.parse_family_soft(soft, expected=acc)["series"]["superseries_of"]


def _expand_superseries(
    svc: Services, table: dict[str, dict[str, Any]], organisms: Sequence[str], raw_dir: Path
) -> None:
    """Each SuperSeries row names its sub-series; sub-series missing from ``table`` are added
    (their own esummary rows), so every sample is ingested once, through its sub-series."""
    supers = sorted(a for a, r in table.items() if r.get("superseries"))
    wanted: dict[str, str] = {}
    for acc in supers:
        row = table[acc]
        subs = list(row.get("subseries") or [])
        if not subs:
            try:
                subs = _subseries_from_soft(svc, acc, raw_dir)
            except (ScatlasError, AccessionError) as exc:
                table[acc] = {
                    **row,
                    "status": "failed",
                    "reason": f"{acc}: SuperSeries whose sub-series could not be read: "
                    f"{reason_of(exc)}",
                }
                continue
        row["reason"] = (
            f"SuperSeries of {', '.join(subs) or 'no sub-series'}: its samples are ingested "
            "through its sub-series"
        )
        row["status"] = "skipped"
        for sub in subs:
            if sub not in table and is_valid(sub, "gse"):
                wanted.setdefault(sub, acc)
    if not wanted:
        return
    log.info("GEO: adding %d sub-series of %d SuperSeries", len(wanted), len(supers))
    try:
        rows, missing = _geo_by_accession(svc, sorted(wanted), organisms)
    except (ScatlasError, AccessionError) as exc:
        for sub, parent in wanted.items():
            table[sub] = _failed_row(sub, exc)
            table[sub]["reason"] += f" (sub-series of {parent})"
        return
    for row in rows:
        row["reason"] += f" (sub-series of {wanted[row['study']]})"
        table[row["study"]] = row
    for sub, msg in missing.items():
        table[sub] = _failed_row(
            sub, ServiceError(f"esummary has no document for sub-series {sub}: {msg}")
        )


def _known_rows(catalog: str | os.PathLike | None) -> dict[str, dict[str, Any]]:
    """The discover rows of every study an earlier run recorded in the catalog."""
    if not catalog or not Path(catalog).is_file():
        return {}
    with Catalog(catalog) as cat:
        return {r["study"]: r for r in cat.known_studies()}


def _withdrawn(row: Mapping[str, Any], why: str) -> dict[str, Any]:
    return {
        **row,
        "status": "skipped",
        "reason": f"withdrawn upstream ({why}); kept in the catalog, left out of the atlas",
    }


def _recheck_known(
    svc: Services,
    known: Mapping[str, Mapping[str, Any]],
    accs: Sequence[str],
    organisms: Sequence[str],
    sources: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """Fresh rows for known studies the window did not find. A study whose record cannot be
    fetched now keeps its known row (its fingerprint too: nothing is re-run for it)."""
    out: dict[str, dict[str, Any]] = {}
    gses = [a for a in accs if study_source(a) == "geo"]
    if gses:
        try:
            rows, missing = _geo_by_accession(svc, gses, organisms)
            out.update((r["study"], r) for r in rows)
            for acc, msg in missing.items():
                out[acc] = _withdrawn(known[acc], f"E-utilities has no document: {msg}")
        except (ScatlasError, AccessionError) as exc:
            log.warning("re-checking %d known GEO series failed: %s", len(gses), reason_of(exc))
    for acc in (a for a in accs if study_source(a) != "geo"):
        try:
            out[acc] = _ae_row(svc, acc, organisms, sources)
        except ServiceError as exc:
            if (exc.reason or "").startswith("HTTP 404"):
                out[acc] = _withdrawn(known[acc], f"BioStudies: {exc.reason}")
            else:
                log.warning("re-checking %s failed: %s", acc, reason_of(exc))
        except (ScatlasError, AccessionError) as exc:
            log.warning("re-checking %s failed: %s", acc, reason_of(exc))
    return out


def _search(
    svc: Services,
    q: DiscoverSettings,
    organisms: Sequence[str],
    sources: Sequence[str],
    exclude: set[str],
) -> list[dict[str, Any]]:
    """Rows for everything the date window finds in GEO and ArrayExpress."""
    date_from, date_to = config_date(q.date_from), config_date(q.date_to)
    page_size = int(q.page_size)
    rows: list[dict[str, Any]] = []
    if "geo" in sources:
        uids = geo.esearch(
            svc.eutils,
            geo.build_term(q.term, organisms),
            mindate=date_from,
            maxdate=date_to,
            page_size=page_size,
            datetype=q.date_type,
        )
        log.info("GEO: %d entries match the query", len(uids))
        rows += _geo_rows(geo.esummary(svc.eutils, uids), organisms)
    if "arrayexpress" in sources:
        hits = ae.search(
            svc.biostudies,
            q.arrayexpress_query,
            date_from=date_from,
            date_to=date_to,
            page_size=min(page_size, 100),
        )
        log.info("ArrayExpress: %d studies match the query", len(hits))
        for hit in tqdm(hits, desc="ArrayExpress studies", disable=not progress_enabled()):
            acc = hit["accession"]
            if acc in exclude:
                rows.append({"study": acc, "source": "arrayexpress", "title": hit.get("title")})
                continue
            try:
                rows.append(_ae_row(svc, acc, organisms, sources, hit))
            except (ScatlasError, AccessionError) as exc:
                rows.append(_failed_row(acc, exc))
    return rows


def discover_studies(
    cfg: Settings | Mapping[str, Any],
    out_tsv: str | os.PathLike,
    *,
    services: Services | None = None,
    catalog: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Find candidate studies and write ``discover/studies.tsv`` (sorted by study).

    With ``discover.studies`` set, those accessions are looked up and no search runs; otherwise
    the date window is searched. Studies known from ``catalog`` are merged in (re-checked
    upstream with ``discover.recheck_known``). ``discover.exclude`` applies to all;
    ``discover.max_studies`` caps the studies new to this run. Skipped studies stay in the
    table with their reason; a study whose look-up fails is a "failed" row; a whole source
    that cannot be searched raises ServiceError (the refresh then fails and is retried).
    """
    settings = as_settings(cfg)
    svc = services_for(settings, services)
    q = settings.discover
    organisms = list(q.organisms)
    sources = list(q.sources)
    explicit = [validate_study(s, context="discover.studies") for s in q.studies]
    exclude = {validate_study(s, context="discover.exclude") for s in q.exclude}
    known = _known_rows(catalog)
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
        rows = _search(svc, q, organisms, sources, exclude)
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        table.setdefault(row["study"], dict(row))
    stale = sorted(a for a in known if a not in table)  # known, not found in this window
    recheck = [a for a in stale if a not in exclude]
    if recheck and q.recheck_known:
        log.info("re-checking %d studies known from earlier refreshes", len(recheck))
        table.update(_recheck_known(svc, known, recheck, organisms, sources))
    for acc in stale:
        table.setdefault(acc, dict(known[acc]))
    _expand_superseries(svc, table, organisms, Path(out_tsv).parent / "raw")
    final: dict[str, dict[str, Any]] = {}
    for acc, row in table.items():
        full = {c: row.get(c, "") for c in STUDY_COLUMNS}
        full["title"] = geo.clean_text(full["title"])
        full["n_samples"] = int(full["n_samples"] or 0)
        if acc in exclude:
            full.update(status="skipped", reason="excluded by discover.exclude")
        final[acc] = full
    _apply_max_studies(final, q.max_studies, known)
    df = write_tsv(list(final.values()), out_tsv, STUDY_COLUMNS, sort=["study"])
    _log_changes(df, known, out_tsv)
    return df


def _apply_max_studies(
    table: dict[str, dict[str, Any]],
    max_studies: int | None,
    known: Mapping[str, Mapping[str, Any]],
) -> None:
    """Keep the ``max_studies`` most recently submitted eligible studies new to this run
    (studies an earlier run took stay in); mark the rest."""
    if max_studies is None:
        return
    new = [
        r
        for r in table.values()
        if r["status"] == "ok" and (known.get(r["study"]) or {}).get("status") != "ok"
    ]
    new.sort(key=lambda r: (r["submitted"] or "", r["study"]), reverse=True)
    for r in new[int(max_studies) :]:
        r.update(
            status="skipped",
            reason=f"beyond discover.max_studies ({max_studies}, most recent first)",
        )


def _log_changes(
    df: pd.DataFrame, known: Mapping[str, Mapping[str, Any]], out_tsv: str | os.PathLike
) -> None:
    counts = Counter(df["status"]) if len(df) else Counter()
    new = [s for s in df["study"] if s not in known]
    changed = [
        r["study"]
        for r in df.to_dict("records")
        if r["study"] in known
        and known[r["study"]].get("fingerprint")
        and r["fingerprint"] != known[r["study"]]["fingerprint"]
    ]
    log.info(
        "discover: %d studies (%s); %d new, %d changed upstream%s -> %s",
        len(df),
        ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        len(new),
        len(changed),
        f" ({', '.join(changed[:10])})" if changed else "",
        out_tsv,
    )
