"""ArrayExpress through the BioStudies API: search, study (PageTab JSON) and SDRF.

* search: ``{biostudies}/api/v1/arrayexpress/search?query=..&page=..&pageSize=..`` answers
  ``{page, pageSize, totalHits, hits: [{accession, title, release_date, ...}]}``;
* study: ``{biostudies}/api/v1/studies/{acc}`` answers PageTab JSON (``accno``,
  ``attributes``, ``section`` with ``attributes``, ``links``, ``files``, ``subsections``);
* SDRF: ``{biostudies}/files/{acc}/{acc}.sdrf.txt``, MAGE-TAB: one row per file or per run,
  repeated ``Comment[FASTQ_URI]`` columns for the mates.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

from scatlas.accessions import is_valid, validate
from scatlas.errors import InputError, ServiceError
from scatlas.sources.geo import fingerprint
from scatlas.sources.http import HttpClient
from scatlas.sources.sra import mate_of

log = logging.getLogger(__name__)

SEARCH_PATH = "api/v1/arrayexpress/search"
SEARCH_WINDOW = 20000  # BioStudies serves at most this many hits of one query


def _iso(value: Any) -> str:
    v = str(value or "").strip()[:10]
    try:
        return dt.date.fromisoformat(v).isoformat()
    except ValueError:
        return ""


def _in_window(date: str, date_from: str | None, date_to: str | None) -> bool:
    if not (date_from or date_to):
        return True
    if not date:
        return False
    return (not date_from or date >= str(date_from)) and (not date_to or date <= str(date_to))


def search(
    client: HttpClient,
    query: str,
    *,
    date_from: str | None = None,
    date_to: str | None = None,
    page_size: int = 100,
    max_results: int | None = None,
) -> list[dict[str, Any]]:
    """ArrayExpress studies matching ``query``, released within [date_from, date_to].

    The window is sent to BioStudies (``release_date=[A TO B]``) and checked again here.
    Hits come newest first, so paging stops at the first page that reaches back before
    ``date_from``, at ``totalHits`` or at BioStudies' 20,000-hit window. Returns hits as
    ``{accession, title, release_date, ...}`` sorted by accession.
    """
    hits: dict[str, dict[str, Any]] = {}
    page = 1
    url = client.url(SEARCH_PATH)
    window = f"[{date_from or '*'} TO {date_to or '*'}]" if (date_from or date_to) else None
    while True:
        params: dict[str, Any] = {
            "query": query,
            "page": page,
            "pageSize": page_size,
            "sortBy": "release_date",
            "sortOrder": "descending",
        }
        if window:
            params["release_date"] = window
        data = client.get_json(SEARCH_PATH, params)
        if not isinstance(data, Mapping) or not isinstance(data.get("hits"), list):
            raise ServiceError(
                "BioStudies search answer has no 'hits' list", url=client.display_url(url, params)
            )
        try:
            total = int(data.get("totalHits", 0))
        except (TypeError, ValueError) as exc:
            raise ServiceError(
                f"totalHits {data.get('totalHits')!r} is not a number",
                url=client.display_url(url, params),
            ) from exc
        for hit in data["hits"]:
            acc = str(hit.get("accession", "")).strip() if isinstance(hit, Mapping) else ""
            if not is_valid(acc, "arrayexpress"):
                log.warning(
                    "ArrayExpress search: skipping hit %r (not an ArrayExpress accession)", acc
                )
                continue
            release = _iso(hit.get("release_date"))
            if _in_window(release, date_from, date_to):
                hits[acc] = {
                    **hit,
                    "accession": acc,
                    "title": str(hit.get("title", "")),
                    "release_date": release,
                }
        log.info("ArrayExpress search page %d: %d hits kept of %d total", page, len(hits), total)
        seen = page * page_size
        dates = [_iso(h.get("release_date")) for h in data["hits"] if isinstance(h, Mapping)]
        older = bool(date_from) and any(d and d < str(date_from) for d in dates)
        if (
            not data["hits"]
            or seen >= total
            or older  # newest first: every later page is older still
            or (max_results is not None and len(hits) >= max_results)
        ):
            break
        if seen >= SEARCH_WINDOW:
            log.warning(
                "ArrayExpress search: %d hits exceed the %d-hit window; narrow the query or dates",
                total,
                SEARCH_WINDOW,
            )
            break
        page += 1
    out = [hits[a] for a in sorted(hits)]
    return out[:max_results] if max_results is not None else out


def study_json(client: HttpClient, acc: str) -> dict[str, Any]:
    """The PageTab JSON of a study from ``{biostudies}/api/v1/studies/{acc}``."""
    acc = validate(acc, "arrayexpress", context="ArrayExpress study")
    path = f"api/v1/studies/{acc}"
    doc = client.get_json(path)
    if not isinstance(doc, Mapping) or str(doc.get("accno", "")) != acc:
        got = doc.get("accno") if isinstance(doc, Mapping) else type(doc).__name__
        raise ServiceError(f"study JSON is for {got!r}, expected {acc}", url=client.url(path))
    return dict(doc)


def _attrs(node: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for a in node.get("attributes") or []:
        if isinstance(a, Mapping) and "name" in a:
            out.append((str(a["name"]).strip(), str(a.get("value", "")).strip()))
    return out


def _flat(items: Any) -> Iterator[Mapping[str, Any]]:
    """PageTab lists may nest one level (tables): yield the dicts."""
    for it in items or []:
        if isinstance(it, Mapping):
            yield it
        elif isinstance(it, list):
            yield from _flat(it)


def _sections(section: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield section
    for sub in _flat(section.get("subsections")):
        yield from _sections(sub)


def parse_study(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Title, release date, organisms, study type, files and links of a PageTab study."""
    acc = str(doc.get("accno", ""))
    top = dict(_attrs(doc))
    section = doc.get("section") if isinstance(doc.get("section"), Mapping) else {}
    sec_attrs = _attrs(section)
    organisms: list[str] = []
    n_samples = 0
    files: list[str] = []
    links: list[dict[str, str]] = []
    for sec in _sections(section):
        for name, value in _attrs(sec):
            if name.lower() == "organism" and value and value not in organisms:
                organisms.append(value)
            elif name.lower() == "sample count" and value.isdigit():
                n_samples = max(n_samples, int(value))
        for f in _flat(sec.get("files")):
            if f.get("path"):
                files.append(str(f["path"]))
        for link in _flat(sec.get("links")):
            kind = dict((k.lower(), v) for k, v in _attrs(link)).get("type", "")
            links.append({"url": str(link.get("url", "")), "type": kind})
    first = {k.lower(): v for k, v in reversed(sec_attrs)}
    ena = [
        lk["url"]
        for lk in links
        if lk["type"].upper() == "ENA"
        and any(is_valid(lk["url"], k) for k in ("sra_study", "bioproject"))
    ]
    sdrf = next((f for f in files if f.endswith(".sdrf.txt")), "")
    return {
        "accession": acc,
        "title": first.get("title") or top.get("Title", ""),
        "description": first.get("description", ""),
        "study_type": first.get("study type", ""),
        "organisms": organisms,
        "n_samples": n_samples,
        "release_date": _iso(top.get("ReleaseDate") or first.get("releasedate")),
        "files": files,
        "sdrf": sdrf,
        "links": links,
        "ena_study": ena[0] if ena else "",
    }


STUDY_FINGERPRINT_FIELDS = (
    "accession",
    "title",
    "description",
    "study_type",
    "organisms",
    "n_samples",
    "release_date",
    "files",
    "links",
    "ena_study",
)


def study_fingerprint(info: Mapping[str, Any]) -> str:
    """Fingerprint of a parsed study (:func:`parse_study`): changes when its content does."""
    return fingerprint(info, STUDY_FINGERPRINT_FIELDS)


def sdrf_url(
    acc: str, biostudies_base: str = "https://www.ebi.ac.uk/biostudies", name: str = ""
) -> str:
    """``{biostudies}/files/{acc}/{acc}.sdrf.txt`` (or the SDRF file the study lists)."""
    acc = validate(acc, "arrayexpress", context="ArrayExpress study")
    fname = name or f"{acc}.sdrf.txt"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*\.sdrf\.txt", fname):
        raise InputError(
            f"SDRF file name {fname!r} is not a plain file name", field="section.files.path"
        )
    return f"{biostudies_base.rstrip('/')}/files/{acc}/{fname}"


def _norm(col: str) -> str:
    """'Comment [ENA_RUN]' → 'comment[ena_run]'."""
    return re.sub(r"\s*\[\s*(.*?)\s*\]\s*$", r"[\1]", col.strip()).lower()


_COMMENTS = {
    "library_layout": "comment[library_layout]",
    "library_source": "comment[library_source]",
    "library_strategy": "comment[library_strategy]",
    "library_selection": "comment[library_selection]",
    "run": "comment[ena_run]",
    "experiment": "comment[ena_experiment]",
    "ena_sample": "comment[ena_sample]",
    "biosample": "comment[biosd_sample]",
    "technical_replicate_group": "comment[technical replicate group]",
    "library_construction": "comment[library construction]",
    "single_cell_isolation": "comment[single cell isolation]",
}


def _cell(row: list[str], i: int | None) -> str:
    return row[i].strip() if i is not None and i < len(row) else ""


def _characteristics(
    row: list[str], header: list[str], raw_names: list[str], char_cols: list[tuple[int, str]]
) -> list[tuple[str, str]]:
    """A row's characteristics and factor values, ``(key, value unit)``; a factor value
    repeating a characteristic is left out."""
    chars: list[tuple[str, str]] = []
    seen_keys: set[str] = set()
    for i, h in char_cols:
        value = _cell(row, i)
        if not value:
            continue
        key = raw_names[i][raw_names[i].index("[") + 1 : raw_names[i].rindex("]")].strip()
        if i + 1 < len(header) and header[i + 1].startswith("unit[") and _cell(row, i + 1):
            value = f"{value} {_cell(row, i + 1)}"
        if h.startswith("factor value[") and key.lower() in seen_keys:
            continue  # the same fact as a characteristic
        seen_keys.add(key.lower())
        chars.append((key, value))
    return chars


def parse_sdrf(text: str, *, where: str = "") -> list[dict[str, Any]]:
    """One record per run from an SDRF: source name, characteristics (with units), library
    comments, ENA run/experiment/sample, and FASTQ URIs in mate order.

    Both SDRF shapes are read: one row per FASTQ file (two rows per paired run) and one row
    per run with repeated ``Comment[FASTQ_URI]`` columns. Rows without ``Comment[ENA_RUN]``
    are grouped by Assay Name and carry ``run`` "".
    """
    rows = [
        r
        for r in csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter="\t")
        if any(c.strip() for c in r)
    ]
    if not rows:
        raise InputError("SDRF is empty", path=where or None)
    header = [_norm(c) for c in rows[0]]
    if "source name" not in header:
        raise InputError(
            "SDRF has no 'Source Name' column", path=where or None, field="Source Name"
        )
    idx = {name: header.index(name) for name in set(header)}
    uri_cols = [i for i, h in enumerate(header) if h == "comment[fastq_uri]"]
    char_cols = [
        (i, h) for i, h in enumerate(header) if h.startswith(("characteristics[", "factor value["))
    ]
    raw_names = [c.strip() for c in rows[0]]

    cell = _cell
    records: dict[str, dict[str, Any]] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        chars = _characteristics(row, header, raw_names, char_cols)
        rec: dict[str, Any] = {k: cell(row, idx.get(col)) for k, col in _COMMENTS.items()}
        rec["library_layout"] = rec["library_layout"].upper()
        if rec["run"] and not is_valid(rec["run"], "run"):
            raise InputError(
                f"line {lineno}: run accession {rec['run']!r} is malformed",
                path=where or None,
                field="Comment[ENA_RUN]",
            )
        if rec["experiment"] and not is_valid(rec["experiment"], "experiment"):
            raise InputError(
                f"line {lineno}: experiment accession {rec['experiment']!r} is malformed",
                path=where or None,
                field="Comment[ENA_EXPERIMENT]",
            )
        rec.update(
            source_name=cell(row, idx.get("source name")),
            extract_name=cell(row, idx.get("extract name")),
            assay_name=cell(row, idx.get("assay name")),
            organism=next((v for k, v in chars if k.lower() == "organism"), ""),
            characteristics=chars,
        )
        uris = [cell(row, i) for i in uri_cols if cell(row, i)]
        key = rec["run"] or f"assay:{rec['assay_name'] or rec['source_name']}"
        if key in records:
            known = records[key]
            known["fastq_uris"].extend(u for u in uris if u not in known["fastq_uris"])
        else:
            rec["fastq_uris"] = list(dict.fromkeys(uris))
            records[key] = rec
    for rec in records.values():
        rec["fastq_uris"] = _mate_order(rec["fastq_uris"])
    return list(records.values())


def sdrf_sample(
    rec: Mapping[str, Any], sample_acc: str = "", experiment_type: str = ""
) -> dict[str, Any]:
    """A :func:`parse_sdrf` record as the sample record that
    ``scatlas.sources.sample_kind.classify`` and ``geo.is_single_cell_rna`` read; the
    study's experiment type (BioStudies "Study type", curated: "RNA-seq of coding RNA from
    single cells") is evidence of what every sample is."""
    return {
        "accession": sample_acc or rec["source_name"],
        "title": rec["source_name"],
        "source_name": rec["source_name"],
        "organism": rec["organism"],
        "characteristics": rec["characteristics"],
        "library_strategy": rec["library_strategy"],
        "library_source": rec["library_source"],
        "experiment": rec["experiment"],
        "library_construction": rec["library_construction"],
        "protocol": f"{rec['library_construction']} {rec['single_cell_isolation']}".strip(),
        "experiment_type": experiment_type,
    }


def _mate_order(uris: list[str]) -> list[str]:
    mates = {mate_of(u): u for u in uris}
    if 1 in mates and 2 in mates:
        return [mates[1], mates[2]] + [u for u in uris if mate_of(u) not in (1, 2)]
    return uris
