"""GEO: E-utilities search/summary over the ``gds`` database, and family SOFT files.

The query stage calls :func:`esearch` and :func:`esummary` and turns each summary into a
studies.tsv row with :func:`summary_to_study`; the sample-sheet stage downloads the series'
family SOFT (:func:`soft_family_url`) and reads it (:func:`parse_family_soft`; GEOparse's
metadata parser for each entity).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import logging
import os
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from GEOparse.GEOparse import parse_metadata

from scatlas.accessions import is_valid, validate
from scatlas.errors import InputError, ServiceError
from scatlas.sources.http import HttpClient, looks_like_html
from scatlas.sources.sample_kind import classify, sample_text

log = logging.getLogger(__name__)

HTS_EXPRESSION = "Expression profiling by high throughput sequencing"
ESUMMARY_BATCH = 200
_POST_ABOVE_CHARS = 1000  # id lists longer than this go in a POST body
_DEFAULT_MINDATE = "1900/01/01"
_DEFAULT_MAXDATE = "2100/12/31"

# Library strategies/sources that mean "sequencing of RNA" in GEO and SRA vocabularies.
RNA_STRATEGIES = {"rna-seq", "scrna-seq", "snrna-seq", "ssrna-seq"}
TRANSCRIPTOMIC_SOURCES = {"transcriptomic", "transcriptomic single cell"}
# Droplet/pooled protocols: one run holds many cells, told apart only by barcodes.
_DROPLET = re.compile(
    r"\b(drop-?seq|10x(?:v\d)?|chromium|in-?drops?|seq-?well|microwell-seq|sci-rna-seq|split-?seq|"
    r"splitseq|cel-?seq2?\s+pooled|bd\s+rhapsody|scrb-seq|mars-seq)\b",
    re.I,
)
_SRX = re.compile(r"term=([SED]RX\d+)")
_SRP = re.compile(r"term=([SED]RP\d+)")
_BIOSAMPLE = re.compile(r"(SAM[NED][A-Z]?\d+)")
_GSE_REL = re.compile(r"\b(GSE\d+)\b")
# GEO's own wording in a SuperSeries' summary (its esummary may list no relations)
SUPERSERIES_SUMMARY = "This SuperSeries is composed of the SubSeries listed below"
DATE_TYPES = ("pdat", "mdat", "edat")
# E-utilities uids of GEO series: 200000000 + the series number (GSE93374 -> 200093374)
_GSE_UID_BASE = 200_000_000
# esummary fields that describe a series' content; a change in any of them re-ingests it.
# Left out: uid, ftplink, geo2r, pubmedids/projects (a paper being linked changes no sample).
FINGERPRINT_FIELDS = (
    "accession",
    "title",
    "summary",
    "taxon",
    "entrytype",
    "gdstype",
    "gpl",
    "pdat",
    "suppfile",
    "n_samples",
    "samples",
    "relations",
    "extrelations",
    "bioproject",
)


# -- dates ------------------------------------------------------------------------------------


def to_eutils_date(value: str | dt.date | None) -> str | None:
    """ISO "YYYY-MM-DD" (or a date) → E-utilities "YYYY/MM/DD"."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value.strftime("%Y/%m/%d")
    try:
        return dt.date.fromisoformat(str(value)).strftime("%Y/%m/%d")
    except ValueError as exc:
        raise InputError(
            f"date {value!r} is not YYYY-MM-DD", field="discover.date_from/date_to"
        ) from exc


def iso_date(value: str | None) -> str:
    """GEO dates ("2017/01/31", "Jul 03 2017", "2017-01-31") → "2017-01-31"; "" if unknown."""
    v = (value or "").strip()
    for fmt in ("%Y/%m/%d", "%b %d %Y", "%Y-%m-%d", "%Y/%m", "%Y"):
        try:
            return dt.datetime.strptime(v, fmt).date().isoformat()
        except ValueError:
            continue
    return ""


# -- E-utilities --------------------------------------------------------------------------------


def build_term(topic: str, organisms: Sequence[str] = ()) -> str:
    """The esearch term: the configured topic, GEO series only, of the configured organisms.

    ``build_term('"single cell"[All Fields]', ["Homo sapiens"])`` →
    ``("single cell"[All Fields]) AND gse[ETYP] AND ("Homo sapiens"[Organism])``.
    """
    parts = [f"({topic.strip()})"] if topic and topic.strip() else []
    parts.append("gse[ETYP]")
    orgs = [o.strip().replace('"', "") for o in organisms if o and o.strip()]
    if orgs:
        parts.append("(" + " OR ".join(f'"{o}"[Organism]' for o in orgs) + ")")
    return " AND ".join(parts)


def gse_uid(gse: str) -> str:
    """The E-utilities gds uid of a GEO series (GSE93374 → "200093374")."""
    gse = validate(gse, "gse")
    number = int(gse[3:])
    if number >= _GSE_UID_BASE:
        raise InputError(f"{gse}: series number too large for a gds uid", field="accession")
    return str(_GSE_UID_BASE + number)


def fingerprint(doc: Mapping[str, Any], fields: Sequence[str] = FINGERPRINT_FIELDS) -> str:
    """sha256 (first 16 hex digits) of a record's content fields, canonical JSON.

    Two esummary answers for the same series give the same fingerprint exactly when the
    fields that describe its content agree (sample lists compared as sets).
    """
    picked: dict[str, Any] = {}
    for f in fields:
        value = doc.get(f)
        if isinstance(value, list):
            value = sorted(
                (json.dumps(v, sort_keys=True) if not isinstance(v, str) else v) for v in value
            )
        picked[f] = value
    text = json.dumps(picked, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_esearch(data: Mapping[str, Any], url: str = "") -> tuple[int, list[str]]:
    """(total count, uids of this page) from an esearch JSON answer."""
    res = data.get("esearchresult") if isinstance(data, Mapping) else None
    if not isinstance(res, Mapping):
        raise ServiceError("esearch answer has no 'esearchresult'", url=url or None)
    if res.get("ERROR") or res.get("error"):
        raise ServiceError(
            f"esearch error: {res.get('ERROR') or res.get('error')}", url=url or None
        )
    try:
        count = int(res.get("count", 0))
    except (TypeError, ValueError) as exc:
        raise ServiceError(
            f"esearch count {res.get('count')!r} is not a number", url=url or None
        ) from exc
    ids = [str(i) for i in res.get("idlist", [])]
    bad = [i for i in ids if not i.isdigit()]
    if bad:
        raise ServiceError(f"esearch returned non-numeric ids {bad[:3]}", url=url or None)
    return count, ids


def esearch(
    client: HttpClient,
    term: str,
    *,
    mindate: str | dt.date | None = None,
    maxdate: str | dt.date | None = None,
    page_size: int = 500,
    max_results: int | None = None,
    datetype: str = "pdat",
) -> list[str]:
    """All ``gds`` uids matching ``term`` with a ``datetype`` date (pdat: publication,
    mdat: modification, edat: Entrez) between the dates, paging with retstart."""
    if datetype not in DATE_TYPES:
        raise InputError(
            f"date type {datetype!r} is not one of {', '.join(DATE_TYPES)}",
            field="query.date_type",
        )
    params: dict[str, Any] = {"db": "gds", "term": term, "retmode": "json", "retmax": page_size}
    lo, hi = to_eutils_date(mindate), to_eutils_date(maxdate)
    if lo or hi:  # E-utilities needs both ends of a date range
        params.update(
            datetype=datetype, mindate=lo or _DEFAULT_MINDATE, maxdate=hi or _DEFAULT_MAXDATE
        )
    uids: list[str] = []
    seen: set[str] = set()
    start = 0
    while True:
        params["retstart"] = start
        if max_results is not None:
            params["retmax"] = max(0, min(page_size, max_results - len(uids)))
        data = client.get_json("esearch.fcgi", params)
        count, ids = parse_esearch(data, client.url("esearch.fcgi"))
        new = [i for i in ids if i not in seen]
        seen.update(new)
        uids.extend(new)
        start += len(ids)
        log.info("esearch: %d of %d uids", len(uids), count)
        if ids and not new:
            log.warning("esearch returned no new uids at retstart %d of %d; stopping", start, count)
        if not new or start >= count or (max_results is not None and len(uids) >= max_results):
            break
    return uids[:max_results] if max_results is not None else uids


def parse_esummary(
    data: Mapping[str, Any], url: str = "", errors: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Documents of an esummary JSON answer, in uid order.

    Accepts the E-utilities envelope ``{"result": {"uids": [...], uid: doc}}`` and a bare
    ``{uid: doc}`` mapping (as some tools record it). Per-uid errors (a withdrawn or unknown
    uid) are logged and, when ``errors`` is given, stored there as {uid: message}.
    """
    if not isinstance(data, Mapping):
        raise ServiceError("esummary answer is not a JSON object", url=url or None)
    if "error" in data and "result" not in data:
        raise ServiceError(f"esummary error: {data['error']}", url=url or None)
    result = data.get("result", data)
    if not isinstance(result, Mapping):
        raise ServiceError("esummary 'result' is not an object", url=url or None)
    uids = result.get("uids") or [k for k in result if k != "uids"]
    docs = []
    for uid in uids:
        doc = result.get(str(uid))
        if not isinstance(doc, Mapping):
            raise ServiceError(
                f"esummary lists uid {uid} but has no document for it", url=url or None
            )
        if doc.get("error"):
            log.warning("esummary uid %s: %s", uid, doc["error"])
            if errors is not None:
                errors[str(uid)] = str(doc["error"])
            continue
        docs.append({"uid": str(uid), **doc})
    return docs


def esummary(
    client: HttpClient, uids: Sequence[str], errors: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """esummary documents for ``uids`` (batches of at most 200; POST for long id lists).

    Per-uid errors go to ``errors`` ({uid: message}) when it is given."""
    docs: list[dict[str, Any]] = []
    for i in range(0, len(uids), ESUMMARY_BATCH):
        batch = [str(u) for u in uids[i : i + ESUMMARY_BATCH]]
        ids = ",".join(batch)
        form = {"db": "gds", "retmode": "json", "id": ids}
        if len(ids) > _POST_ABOVE_CHARS:
            data = client.post_json("esummary.fcgi", form)
        else:
            data = client.get_json("esummary.fcgi", form)
        docs.extend(parse_esummary(data, client.url("esummary.fcgi"), errors))
    return docs


def _matching_organisms(text: str, organisms: Iterable[str]) -> list[str]:
    have = {t.strip().lower() for t in re.split(r"[;,]", text or "") if t.strip()}
    return [o for o in organisms if o.lower() in have]


def relations(doc: Mapping[str, Any], kind: str) -> list[str]:
    """Series named by an esummary document's relations of ``kind`` ("SuperSeries of",
    "SubSeries of"), in order."""
    out: list[str] = []
    for r in doc.get("relations") or []:
        if not isinstance(r, Mapping):
            continue
        if str(r.get("relationtype", "")).strip().lower() == kind.lower():
            out += [g for g in _GSE_REL.findall(str(r.get("targetobject", ""))) if g not in out]
    return out


def is_superseries(doc: Mapping[str, Any]) -> bool:
    """A SuperSeries groups sub-series; its samples are ingested through them."""
    return bool(relations(doc, "SuperSeries of")) or clean_text(doc.get("summary", "")).startswith(
        SUPERSERIES_SUMMARY
    )


def summary_to_study(doc: Mapping[str, Any], organisms: Sequence[str]) -> dict[str, Any]:
    """A studies.tsv row from one ``gds`` esummary document.

    ``kind`` is "reads" when the series links SRA runs, "matrix" when it has none but has
    supplementary files. ``status`` is "ok" or "skipped" (with the reason). ``organism`` is
    ONE organism: the first of ``organisms`` (config order) the series has; a mixed-organism
    series is ingested for that one (its other samples are excluded with the reason).
    A SuperSeries is "skipped" (its sub-series are the studies; the row lists them in
    ``subseries``). ``fingerprint`` summarises the record's content fields.
    """
    acc = str(doc.get("accession", "")).strip()
    ext = doc.get("extrelations") or []
    has_sra = any(
        str(r.get("relationtype", "")).upper() == "SRA" for r in ext if isinstance(r, Mapping)
    )
    suppfile = str(doc.get("suppfile", "")).strip()
    kind = "reads" if has_sra else ("matrix" if suppfile else "")
    matched = _matching_organisms(str(doc.get("taxon", "")), organisms)
    n = doc.get("n_samples")
    if n in (None, ""):
        n = len(doc.get("samples") or [])
    try:
        n_samples = int(n)
    except (TypeError, ValueError) as exc:
        raise ServiceError(
            f"esummary of {acc}: n_samples {n!r} is not a number (field 'n_samples')",
            reason=f"{acc}: esummary field n_samples is {n!r}",
        ) from exc
    row = {
        "study": acc,
        "source": "geo",
        "title": clean_text(doc.get("title", "")),
        "organism": matched[0] if matched else clean_text(doc.get("taxon", "")),
        "kind": kind,
        "n_samples": n_samples,
        "submitted": iso_date(str(doc.get("pdat", ""))),
        "updated": "",
        "status": "ok",
        "reason": "",
        "fingerprint": fingerprint(doc),
        "subseries": relations(doc, "SuperSeries of"),
        "superseries": is_superseries(doc),
    }
    entrytype = str(doc.get("entrytype", "")).upper()
    reasons = []
    if entrytype != "GSE" or not is_valid(acc, "gse"):
        reasons.append(f"entry type {entrytype or '?'} ({acc}) is not a GEO series")
    if HTS_EXPRESSION.lower() not in str(doc.get("gdstype", "")).lower():
        reasons.append(f"series type {doc.get('gdstype', '')!r} is not {HTS_EXPRESSION!r}")
    if not matched:
        reasons.append(f"organism {doc.get('taxon', '')!r} is not one of {', '.join(organisms)}")
    if row["superseries"]:
        subs = ", ".join(row["subseries"]) or "listed in its SOFT file"
        reasons.insert(0, f"SuperSeries of {subs}: its samples are ingested through its sub-series")
    elif not kind:
        reasons.append("no SRA reads and no supplementary files")
    if reasons:
        row.update(status="skipped", reason="; ".join(reasons))
    else:
        row["reason"] = (
            "single-cell candidate with SRA reads"
            if kind == "reads"
            else "single-cell candidate with processed matrix files only"
        )
        if len(matched) > 1:
            row["reason"] += (
                f" (mixed organisms; ingested for {matched[0]}, the first of discover.organisms)"
            )
    return row


# -- SOFT ------------------------------------------------------------------------------------


def series_stub(gse: str) -> str:
    """GEO's directory bucket: the accession with its last three digits replaced by "nnn"."""
    gse = validate(gse, "gse")
    digits = gse[3:]
    return f"GSE{digits[:-3]}nnn"


def soft_family_path(gse: str) -> str:
    """Path of a series' family SOFT under the GEO FTP root."""
    gse = validate(gse, "gse")
    return f"series/{series_stub(gse)}/{gse}/soft/{gse}_family.soft.gz"


def soft_family_url(gse: str, geo_base: str = "https://ftp.ncbi.nlm.nih.gov/geo") -> str:
    """``{geo}/series/GSE93nnn/GSE93374/soft/GSE93374_family.soft.gz``."""
    return f"{geo_base.rstrip('/')}/{soft_family_path(gse)}"


def filelist_url(gse: str, geo_base: str = "https://ftp.ncbi.nlm.nih.gov/geo") -> str:
    """GEO's listing of a series' supplementary files, with sizes:
    ``{geo}/series/GSE100nnn/GSE100750/suppl/filelist.txt``."""
    gse = validate(gse, "gse")
    return f"{geo_base.rstrip('/')}/series/{series_stub(gse)}/{gse}/suppl/filelist.txt"


_FILELIST_HEADER = ["#Archive/File", "Name", "Time", "Size", "Type"]


def parse_filelist(text: str, *, where: str = "") -> list[dict[str, Any]]:
    """Rows of a GEO ``filelist.txt``: ``{kind (Archive|File), name, time, size, type}``.

    GEO publishes sizes (no checksums) of supplementary files: the archive ``GSE_RAW.tar``
    and the per-sample files inside it.
    """
    lines = [ln for ln in text.lstrip("\ufeff").splitlines() if ln.strip()]
    if not lines or lines[0].split("\t") != _FILELIST_HEADER:
        raise InputError(
            f"not a GEO filelist (header {lines[0][:60] if lines else ''!r})",
            path=where or None,
            field="#Archive/File",
        )
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != 5:
            raise InputError(
                f"line {lineno} has {len(cells)} fields, not 5", path=where or None, field="Name"
            )
        kind, name, when, size, ftype = (c.strip() for c in cells)
        if not size.isdigit():
            raise InputError(
                f"line {lineno}: size {size!r} is not a number", path=where or None, field="Size"
            )
        if "/" in name or name in ("", ".", ".."):
            raise InputError(
                f"line {lineno}: {name!r} is not a plain file name",
                path=where or None,
                field="Name",
            )
        rows.append({"kind": kind, "name": name, "time": when, "size": int(size), "type": ftype})
    return rows


def clean_text(value: Any) -> str:
    """Free text on one line, repaired: mojibake (UTF-8 read as Latin-1 or cp1252, e.g.
    "5â€²" for "5′") fixed by ftfy; tabs, newlines and control characters become single
    spaces."""
    text = str(value or "")
    if not text.isascii():  # ASCII text has nothing to repair (and ftfy costs ~30 µs)
        import ftfy

        text = ftfy.fix_text(text, normalization="NFC")
    return re.sub(r"[\s\x00-\x1f\x7f-\x9f]+", " ", text).strip()


def _first(meta: Mapping[str, list[str]], key: str) -> str:
    vals = meta.get(key) or []
    return clean_text(vals[0]) if vals else ""


def _characteristics(meta: Mapping[str, list[str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    keys = sorted(k for k in meta if re.fullmatch(r"characteristics_ch\d+", k))
    for key in keys:
        for raw in meta[key]:
            text = clean_text(raw)
            if not text:
                continue
            k, sep, v = text.partition(":")
            out.append((k.strip(), v.strip()) if sep else ("characteristics", text))
    return out


def _supplementary(meta: Mapping[str, list[str]]) -> list[str]:
    keys = sorted(
        (k for k in meta if re.fullmatch(r"supplementary_file(_\d+)?", k)),
        key=lambda k: int(k.rsplit("_", 1)[1]) if k[-1].isdigit() else 0,
    )
    files = []
    for k in keys:
        for v in meta[k]:
            v = v.strip()
            if v and v.upper() != "NONE" and v not in files:
                files.append(v)
    return files


def _sample_record(name: str, meta: Mapping[str, list[str]], path: str) -> dict[str, Any]:
    acc = _first(meta, "geo_accession") or name
    if not is_valid(acc, "gsm"):
        raise InputError(
            f"sample accession {acc!r} is not a GEO sample accession",
            path=path,
            field="!Sample_geo_accession",
        )
    relations = [clean_text(r) for r in meta.get("relation", [])]
    experiments = [
        m.group(1) for r in relations if r.upper().startswith("SRA") and (m := _SRX.search(r))
    ]
    biosamples = [
        m.group(1)
        for r in relations
        if r.lower().startswith("biosample") and (m := _BIOSAMPLE.search(r))
    ]
    return {
        "accession": acc,
        "title": _first(meta, "title"),
        "source_name": _first(meta, "source_name_ch1"),
        "organism": _first(meta, "organism_ch1"),
        "organisms": [clean_text(o) for o in meta.get("organism_ch1", []) if clean_text(o)],
        "taxid": _first(meta, "taxid_ch1"),
        "characteristics": _characteristics(meta),
        "description": " ".join(clean_text(d) for d in meta.get("description", [])).strip(),
        "protocol": " ".join(clean_text(d) for d in meta.get("extract_protocol_ch1", [])).strip(),
        "type": _first(meta, "type"),
        "library_strategy": _first(meta, "library_strategy"),
        "library_source": _first(meta, "library_source"),
        "library_selection": _first(meta, "library_selection"),
        "molecule": _first(meta, "molecule_ch1"),
        "instrument": _first(meta, "instrument_model"),
        "platform": _first(meta, "platform_id"),
        "experiment": experiments[0] if experiments else "",
        "experiments": experiments,
        "biosample": biosamples[0] if biosamples else "",
        "supplementary": _supplementary(meta),
        "series": [s.strip() for s in meta.get("series_id", []) if s.strip()],
        "submitted": iso_date(_first(meta, "submission_date")),
        "updated": iso_date(_first(meta, "last_update_date")),
    }


# Keys that hold one value per entity: a second, different value is a malformed record.
SINGLE_VALUED = frozenset(
    {
        "!Series_geo_accession",
        "!Series_title",
        "!Sample_geo_accession",
        "!Sample_title",
        "!Sample_library_strategy",
        "!Sample_library_source",
        "!Sample_source_name_ch1",
    }
)


def _soft_lines(path: Path, gzipped: bool) -> Iterable[bytes]:
    opener = gzip.open if gzipped else open
    with opener(path, "rb") as fh:
        yield from fh


def _scan_soft(path: Path) -> list[tuple[str, str, list[str]]]:
    """Read a family SOFT into its entities: ``[(type, name, metadata lines)]``, e.g.
    ``("SAMPLE", "GSM1", ["!Sample_title = ...", ...])``; data-table lines are dropped.

    Refuses what GEOparse's own reader would read wrongly or silently: an HTML page, a corrupt
    or truncated gzip (it stops quietly at a gzip error), text that is not UTF-8 (it drops
    undecodable bytes), an entity given twice (``^SAMPLE = X`` twice: it keeps the last) and
    a single-valued field given two different values within one entity.
    """
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    scan = _SoftScan(path)
    try:
        for raw in _soft_lines(path, gzipped):
            scan.line(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(
            f"cannot read SOFT file (corrupt or truncated after line {scan.lineno}): {exc}",
            path=str(path),
        ) from exc
    if scan.lineno == 0:
        raise InputError("not a SOFT file: it is empty", path=str(path))
    return scan.entities


class _SoftScan:
    """The state of :func:`_scan_soft` reading one file line by line."""

    def __init__(self, path: Path):
        self.path = path
        self.entity = ""
        self.entities: list[tuple[str, str, list[str]]] = []
        self.seen: set[str] = set()
        self.values: dict[str, str] = {}
        self.in_table = False
        self.lineno = 0

    def _error(self, message: str, field: str | None = None) -> InputError:
        return InputError(f"line {self.lineno}: {message}", path=str(self.path), field=field)

    def _check_start(self, raw: bytes) -> None:
        if looks_like_html(raw):
            raise InputError("expected a GEO SOFT file but found an HTML page", path=str(self.path))
        first = raw.decode("utf-8", "replace").lstrip("\ufeff \r\n")
        if first and not first.startswith(("^", "!", "#")):
            raise InputError(f"not a SOFT file (starts with {first[:40]!r})", path=str(self.path))

    def line(self, raw: bytes) -> None:
        self.lineno += 1
        if self.lineno == 1:
            self._check_start(raw)
        key = raw.split(b"=", 1)[0].strip().decode("ascii", "replace")
        try:
            line = raw.decode("utf-8").lstrip("\ufeff").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"line {self.lineno} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                f"column {exc.start + 1}) in {self.entity or 'the header'}",
                path=str(self.path),
                field=key or "?",
            ) from exc
        if self.in_table:
            self.in_table = not key.endswith("_table_end")
        elif line.startswith("^"):
            self._start_entity(line)
        elif line.startswith("!"):
            self._metadata(line, key)

    def _start_entity(self, line: str) -> None:
        entity = clean_text(line[1:])
        if entity in self.seen:
            raise self._error(
                f"entity {entity} appears twice", "^" + entity.split("=", 1)[0].strip()
            )
        self.seen.add(entity)
        self.entity = entity
        kind, _, name = entity.partition("=")
        self.entities.append((kind.strip().upper(), name.strip(), []))
        self.values = {}

    def _metadata(self, line: str, key: str) -> None:
        if key.endswith("_table_begin"):
            self.in_table = True
            return
        if key in SINGLE_VALUED:
            value = clean_text(line.split("=", 1)[1] if "=" in line else "")
            if key in self.values and self.values[key] != value:
                raise self._error(
                    f"{key} given twice in {self.entity} ({self.values[key]!r} and {value!r})",
                    key,
                )
            self.values[key] = value
        if self.entities:
            self.entities[-1][2].append(line)


def parse_family_soft(path: str | os.PathLike, expected: str | None = None) -> dict[str, Any]:
    """Parse a series family SOFT (plain or gzipped).

    The file is split into its entities here (with the checks of :func:`_scan_soft`) and
    each entity's metadata is read by GEOparse's ``parse_metadata``: every key as a list
    (repeated ``!Sample_characteristics_ch1`` lines, ``!Sample_relation``...), read here
    into ordered (key, value) pairs and lists. (``GEOparse.get_GEO`` is not used: it builds
    a DataFrame per sample, empty for sequencing series, which dominated the time of large
    refreshes, and it reads the bytes leniently.) Returns ``{"series": {...}, "samples":
    [...]}``; raises InputError naming the file and field on anything malformed.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("SOFT file does not exist", path=str(p))
    entities = _scan_soft(p)
    series_entities = [e for e in entities if e[0] == "SERIES"]
    if len(series_entities) > 1:
        raise InputError(
            f"the file describes {len(series_entities)} series "
            f"({', '.join(e[1] for e in series_entities)}); a family SOFT has one",
            path=str(p),
            field="^SERIES",
        )
    try:
        meta = parse_metadata(series_entities[0][2]) if series_entities else {}
        gsms = {name: parse_metadata(lines) for kind, name, lines in entities if kind == "SAMPLE"}
    except Exception as exc:  # GEOparse raises bare exceptions on lines it cannot split
        raise InputError(
            f"GEOparse could not read the SOFT metadata: {type(exc).__name__}: {exc}",
            path=str(p),
        ) from exc
    name = series_entities[0][1] if series_entities else ""
    acc = _first(meta, "geo_accession") or name
    if not acc:
        raise InputError("no ^SERIES entry", path=str(p), field="^SERIES")
    if not is_valid(acc, "gse"):
        raise InputError(
            f"series accession {acc!r} is not a GEO series accession",
            path=str(p),
            field="!Series_geo_accession",
        )
    if expected and acc != expected:
        raise InputError(
            f"SOFT describes {acc}, expected {expected}", path=str(p), field="!Series_geo_accession"
        )
    relations = [clean_text(r) for r in meta.get("relation", [])]
    sra = [m.group(1) for r in relations if r.upper().startswith("SRA") and (m := _SRP.search(r))]
    superseries_of = [
        g for r in relations if r.lower().startswith("superseries of") for g in _GSE_REL.findall(r)
    ]
    subseries_of = [
        g for r in relations if r.lower().startswith("subseries of") for g in _GSE_REL.findall(r)
    ]
    samples = [_sample_record(gsm, m, str(p)) for gsm, m in gsms.items()]
    sample_ids = [s.strip() for s in meta.get("sample_id", []) if s.strip()]
    if not samples and sample_ids:
        raise InputError(
            f"series lists {len(sample_ids)} samples but the file has no ^SAMPLE entries",
            path=str(p),
            field="^SAMPLE",
        )
    series = {
        "accession": acc,
        "title": _first(meta, "title"),
        "summary": " ".join(clean_text(s) for s in meta.get("summary", [])).strip(),
        "overall_design": " ".join(clean_text(s) for s in meta.get("overall_design", [])).strip(),
        "types": [clean_text(t) for t in meta.get("type", [])],
        "organisms": [clean_text(o) for o in meta.get("sample_organism", [])],
        "submitted": iso_date(_first(meta, "submission_date")),
        "updated": iso_date(_first(meta, "last_update_date")),
        "supplementary": _supplementary(meta),
        "sra_study": sra[0] if sra else "",
        "relations": relations,
        "superseries_of": superseries_of,
        "subseries_of": subseries_of,
        "sample_ids": sample_ids,
    }
    return {"series": series, "samples": samples}


# -- sample filters ------------------------------------------------------------------------------


def is_single_cell_rna(sample: Mapping[str, Any], organisms: Sequence[str]) -> tuple[bool, str]:
    """Whether a sample's metadata says single-cell RNA-seq of a configured organism.

    Library strategy RNA-Seq (or OTHER with a transcriptomic source), library source
    transcriptomic / transcriptomic single cell, organism in ``organisms``, a gene
    expression library (not V(D)J, feature barcoding or ATAC) and no evidence outweighing
    single cell for bulk (``scatlas.sources.sample_kind``). Returns (keep, reason): the
    reason names the evidence.
    """
    strategy = str(sample.get("library_strategy", "")).strip()
    source = str(sample.get("library_source", "")).strip()
    organism = str(sample.get("organism", "")).strip()
    acc = sample.get("accession", "")
    s, src = strategy.lower(), source.lower()
    if src not in TRANSCRIPTOMIC_SOURCES:
        return (
            False,
            f"{acc}: library source {source or 'missing'!r} is not transcriptomic ({strategy or 'no strategy'})",
        )
    if s not in RNA_STRATEGIES and s != "other":
        return False, f"{acc}: library strategy {strategy or 'missing'!r} is not RNA-Seq"
    several = sample.get("organisms") or []
    if len(several) > 1:
        return False, f"{acc}: several organisms ({'; '.join(several)}); one per sample is needed"
    if organism.lower() not in {o.lower() for o in organisms}:
        return (
            False,
            f"{acc}: organism {organism or 'missing'!r} is not one of {', '.join(organisms)}",
        )
    kind = classify(sample)
    if kind.library != "gene_expression":
        return (
            False,
            f"{acc}: a {kind.library.replace('_', ' ')} library, not gene expression ({kind.describe()})",
        )
    if kind.cells == "bulk":
        return False, f"{acc}: metadata describes bulk RNA-seq ({kind.describe()})"
    if kind.cells == "spatial":
        return False, f"{acc}: spatial capture, spots of several cells ({kind.describe()})"
    return True, f"{acc}: {strategy} of {organism}, {kind.describe()}"


def is_droplet(sample: Mapping[str, Any]) -> bool:
    """True when a sample's metadata or library protocol names a droplet/pooled protocol
    (10x, Drop-seq, inDrop, Seq-Well, ...).

    Runs of such samples hold many cells told apart only by barcodes; scatlas takes their
    author-processed matrices instead of aligning the reads per run.
    """
    return bool(_DROPLET.search(sample_text(sample) + " " + str(sample.get("protocol", ""))))
