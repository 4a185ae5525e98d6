"""GEO: E-utilities search/summary over the ``gds`` database, and family SOFT files.

The query stage calls :func:`esearch` and :func:`esummary` and turns each summary into a
studies.tsv row with :func:`summary_to_study`; the sample-sheet stage downloads the series'
family SOFT (:func:`soft_family_url`) and reads it with GEOparse (:func:`parse_family_soft`).
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import os
import re
import tempfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import GEOparse

from scatlas.accessions import is_valid, validate
from scatlas.errors import InputError, ServiceError
from scatlas.sources.http import HttpClient, looks_like_html

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
    r"\b(drop-?seq|10x(?:v\d)?|chromium|indrop|in-drop|seq-?well|microwell-seq|sci-rna-seq|split-?seq|"
    r"splitseq|cel-?seq2?\s+pooled|bd\s+rhapsody|scrb-seq|mars-seq)\b",
    re.I,
)
_BULK = re.compile(r"\bbulk\b", re.I)
_SRX = re.compile(r"term=([SED]RX\d+)")
_SRP = re.compile(r"term=([SED]RP\d+)")
_BIOSAMPLE = re.compile(r"(SAM[NED][A-Z]?\d+)")


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
            f"date {value!r} is not YYYY-MM-DD", field="query.date_from/date_to"
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
) -> list[str]:
    """All ``gds`` uids matching ``term`` (published between the dates), paging with retstart."""
    params: dict[str, Any] = {"db": "gds", "term": term, "retmode": "json", "retmax": page_size}
    lo, hi = to_eutils_date(mindate), to_eutils_date(maxdate)
    if lo or hi:  # E-utilities needs both ends of a date range
        params.update(
            datetype="pdat", mindate=lo or _DEFAULT_MINDATE, maxdate=hi or _DEFAULT_MAXDATE
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


def parse_esummary(data: Mapping[str, Any], url: str = "") -> list[dict[str, Any]]:
    """Documents of an esummary JSON answer, in uid order.

    Accepts the E-utilities envelope ``{"result": {"uids": [...], uid: doc}}`` and a bare
    ``{uid: doc}`` mapping (as some tools record it).
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
            continue
        docs.append({"uid": str(uid), **doc})
    return docs


def esummary(client: HttpClient, uids: Sequence[str]) -> list[dict[str, Any]]:
    """esummary documents for ``uids`` (batches of at most 200; POST for long id lists)."""
    docs: list[dict[str, Any]] = []
    for i in range(0, len(uids), ESUMMARY_BATCH):
        batch = [str(u) for u in uids[i : i + ESUMMARY_BATCH]]
        ids = ",".join(batch)
        form = {"db": "gds", "retmode": "json", "id": ids}
        if len(ids) > _POST_ABOVE_CHARS:
            data = client.post_json("esummary.fcgi", form)
        else:
            data = client.get_json("esummary.fcgi", form)
        docs.extend(parse_esummary(data, client.url("esummary.fcgi")))
    return docs


def _matching_organisms(text: str, organisms: Iterable[str]) -> list[str]:
    have = {t.strip().lower() for t in re.split(r"[;,]", text or "") if t.strip()}
    return [o for o in organisms if o.lower() in have]


def summary_to_study(doc: Mapping[str, Any], organisms: Sequence[str]) -> dict[str, Any]:
    """A studies.tsv row from one ``gds`` esummary document.

    ``kind`` is "reads" when the series links SRA runs, "matrix" when it has none but has
    supplementary files. ``status`` is "ok" or "skipped" (with the reason).
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
    row = {
        "study": acc,
        "source": "geo",
        "title": clean_text(doc.get("title", "")),
        "organism": "; ".join(matched) or clean_text(doc.get("taxon", "")),
        "kind": kind,
        "n_samples": int(n),
        "submitted": iso_date(str(doc.get("pdat", ""))),
        "updated": "",
        "status": "ok",
        "reason": "",
    }
    entrytype = str(doc.get("entrytype", "")).upper()
    reasons = []
    if entrytype != "GSE" or not is_valid(acc, "gse"):
        reasons.append(f"entry type {entrytype or '?'} ({acc}) is not a GEO series")
    if HTS_EXPRESSION.lower() not in str(doc.get("gdstype", "")).lower():
        reasons.append(f"series type {doc.get('gdstype', '')!r} is not {HTS_EXPRESSION!r}")
    if not matched:
        reasons.append(f"organism {doc.get('taxon', '')!r} is not one of {', '.join(organisms)}")
    if not kind:
        reasons.append("no SRA reads and no supplementary files")
    if reasons:
        row.update(status="skipped", reason="; ".join(reasons))
    else:
        row["reason"] = (
            "single-cell candidate with SRA reads"
            if kind == "reads"
            else "single-cell candidate with processed matrix files only"
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


def clean_text(value: Any) -> str:
    """Free text on one line: tabs/newlines/control characters become single spaces."""
    return re.sub(r"[\s\x00-\x1f\x7f]+", " ", str(value or "")).strip()


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


def _check_soft_bytes(path: Path) -> bool:
    """Refuse an HTML page, a corrupt or truncated gzip, or anything that is not SOFT text,
    before GEOparse sees it (GEOparse silently stops at a gzip error). Returns whether the
    file is gzipped."""
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    try:
        opener = gzip.open if gzipped else open
        with opener(path, "rb") as fh:
            start = fh.read(4096)
            while gzipped and fh.read(1 << 20):  # read to the end: truncation raises
                pass
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(
            f"cannot read SOFT file (corrupt or truncated): {exc}", path=str(path)
        ) from exc
    if looks_like_html(start):
        raise InputError("expected a GEO SOFT file but found an HTML page", path=str(path))
    first = start.decode("utf-8", "replace").lstrip("\ufeff \r\n")
    if not first.startswith(("^", "!", "#")):
        raise InputError(f"not a SOFT file (starts with {first[:40]!r})", path=str(path))
    return gzipped


def parse_family_soft(path: str | os.PathLike, expected: str | None = None) -> dict[str, Any]:
    """Parse a series family SOFT (plain or gzipped) with GEOparse.

    Returns ``{"series": {...}, "samples": [...]}``. GEOparse keeps every metadata key as a
    list (repeated ``!Sample_characteristics_ch1`` lines, ``!Sample_relation``...), which is
    read here into ordered (key, value) pairs and lists. Raises InputError naming the file
    and field on anything malformed.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("SOFT file does not exist", path=str(p))
    gzipped = _check_soft_bytes(p)
    try:
        with tempfile.TemporaryDirectory(prefix="scatlas-soft-") as tmp:
            target = p
            if gzipped != p.name.endswith(".gz"):  # GEOparse picks gzip by the file name
                target = Path(tmp) / ("family.soft.gz" if gzipped else "family.soft")
                target.symlink_to(p.resolve())
            gse = GEOparse.get_GEO(filepath=str(target), geotype="GSE", silent=True)
    except Exception as exc:  # GEOparse raises bare Exception/AssertionError/StopIteration
        raise InputError(
            f"GEOparse could not read the SOFT file: {type(exc).__name__}: {exc}", path=str(p)
        ) from exc
    meta = gse.metadata or {}
    acc = _first(meta, "geo_accession") or (gse.name or "")
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
    samples = [_sample_record(name, gsm.metadata or {}, str(p)) for name, gsm in gse.gsms.items()]
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
        "sample_ids": sample_ids,
    }
    return {"series": series, "samples": samples}


# -- sample filters ------------------------------------------------------------------------------


def sample_text(sample: Mapping[str, Any]) -> str:
    """All free text describing a sample (title, source, characteristics, description)."""
    chars = " ".join(f"{k}: {v}" for k, v in sample.get("characteristics", []))
    parts = [
        sample.get("title", ""),
        sample.get("source_name", ""),
        chars,
        sample.get("description", ""),
    ]
    return " | ".join(p for p in parts if p)


def is_single_cell_rna(sample: Mapping[str, Any], organisms: Sequence[str]) -> tuple[bool, str]:
    """Whether a sample's metadata says single-cell RNA-seq of a configured organism.

    Library strategy RNA-Seq (or OTHER with a transcriptomic source), library source
    transcriptomic / transcriptomic single cell, organism in ``organisms``, and no
    description of the sample as bulk RNA-seq. Returns (keep, reason).
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
    if organism.lower() not in {o.lower() for o in organisms}:
        return (
            False,
            f"{acc}: organism {organism or 'missing'!r} is not one of {', '.join(organisms)}",
        )
    text = " ".join(
        [sample.get("title", ""), sample.get("source_name", "")]
        + [f"{k} {v}" for k, v in sample.get("characteristics", [])]
    )
    if _BULK.search(text):
        return False, f"{acc}: metadata describes bulk RNA-seq"
    kind = "single-cell" if src == "transcriptomic single cell" else "transcriptomic"
    return True, f"{acc}: {strategy} of {organism} ({kind} library)"


def is_droplet(sample: Mapping[str, Any]) -> bool:
    """True when a sample's metadata or library protocol names a droplet/pooled protocol
    (10x, Drop-seq, inDrop, Seq-Well, ...).

    Runs of such samples hold many cells told apart only by barcodes; scatlas takes their
    author-processed matrices instead of aligning the reads per run.
    """
    return bool(_DROPLET.search(sample_text(sample) + " " + str(sample.get("protocol", ""))))
