"""ENA and SRA run metadata: where each run's FASTQ files are, with md5 and size.

:func:`filereport` asks the ENA portal API for a study/experiment/sample/run's read runs;
:func:`parse_filereport` reads its TSV (and the CSV/JSON flavours tools record). Where ENA has
nothing, SRA's own XML (:func:`parse_sra_xml`) or run tables (:func:`parse_sra_runtable`)
still resolve GSM → SRX → SRR. Every function returns *run records*: dicts keyed by ENA's
field names, with ``fastq_ftp``/``fastq_md5``/``fastq_bytes`` as lists in mate order (R1, R2).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from scatlas.accessions import PATTERNS, is_valid
from scatlas.errors import InputError
from scatlas.sources.http import HttpClient

log = logging.getLogger(__name__)

FILEREPORT_FIELDS = (
    "run_accession",
    "experiment_accession",
    "sample_accession",
    "study_accession",
    "sample_alias",
    "library_layout",
    "library_strategy",
    "library_source",
    "tax_id",
    "scientific_name",
    "read_count",
    "base_count",
    "fastq_ftp",
    "fastq_md5",
    "fastq_bytes",
)
_INT_FIELDS = ("read_count", "base_count")
_NA = {"", "<na>", "nan", "none", "null", "n/a"}
_MD5 = re.compile(r"^[0-9a-f]{32}\Z", re.ASCII)
_MATE = re.compile(r"_R?([12])(?:_\d+)?\.f(?:ast)?q(?:\.gz|\.bz2)?$", re.I)
# accessions the ENA portal's filereport accepts
_FILEREPORT_KINDS = ("run", "experiment", "sample", "sra_study", "bioproject", "biosample")


def _na(value: Any) -> str:
    s = "" if value is None else str(value).strip()
    return "" if s.lower() in _NA else s


def _int_or_none(value: str, *, field: str, where: str) -> int | None:
    if value == "":
        return None
    if not value.isdigit():
        raise InputError(f"{value!r} is not a whole number", path=where or None, field=field)
    return int(value)


def mate_of(url: str) -> int | None:
    """1 or 2 from a FASTQ name ending _1/_2 (or _R1/_R2, _R1_001), else None."""
    m = _MATE.search(url.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


def order_mates(files: list[tuple[str, str, int | None]]) -> list[tuple[str, str, int | None]]:
    """(url, md5, bytes) triples in mate order.

    With both mates present, the pair comes out as R1, R2 and an unpaired extra file (ENA's
    ``RUN.fastq.gz`` beside ``RUN_1``/``RUN_2``) is dropped; otherwise the order is kept.
    """
    by_mate: dict[int, tuple[str, str, int | None]] = {}
    for f in files:
        mate = mate_of(f[0])
        if mate is not None and mate not in by_mate:
            by_mate[mate] = f
    if 1 in by_mate and 2 in by_mate:
        return [by_mate[1], by_mate[2]]
    return list(files)


def _finish_record(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Normalise one filereport row: NA → "", ints, validated accessions, mate-ordered lists."""
    rec: dict[str, Any] = {k: _na(v) for k, v in raw.items()}
    for k in FILEREPORT_FIELDS:
        rec.setdefault(k, "")
    run = rec.get("run_accession", "")
    if not is_valid(run, "run"):
        raise InputError(
            f"run accession {run!r} does not match {PATTERNS['run'].pattern}",
            path=where or None,
            field="run_accession",
        )
    exp = rec.get("experiment_accession", "")
    if exp and not is_valid(exp, "experiment"):
        raise InputError(
            f"experiment accession {exp!r} of run {run} is malformed",
            path=where or None,
            field="experiment_accession",
        )
    for f in _INT_FIELDS:
        if f in rec:
            rec[f] = _int_or_none(rec[f], field=f, where=where)
    urls = [u for u in rec.get("fastq_ftp", "").split(";") if u]
    md5s = [m.lower() for m in rec.get("fastq_md5", "").split(";") if m]
    sizes_raw = [b for b in rec.get("fastq_bytes", "").split(";") if b]
    if urls and (len(md5s) not in (0, len(urls)) or len(sizes_raw) not in (0, len(urls))):
        raise InputError(
            f"run {run}: {len(urls)} FASTQ URLs but {len(md5s)} md5s and {len(sizes_raw)} sizes",
            path=where or None,
            field="fastq_ftp/fastq_md5/fastq_bytes",
        )
    bad = [m for m in md5s if not _MD5.match(m)]
    if bad:
        raise InputError(
            f"run {run}: malformed md5 {bad[0]!r}", path=where or None, field="fastq_md5"
        )
    sizes = [_int_or_none(b, field="fastq_bytes", where=where) for b in sizes_raw]
    files = [(u, md5s[i] if md5s else "", sizes[i] if sizes else None) for i, u in enumerate(urls)]
    files = order_mates(files)
    rec["fastq_ftp"] = [f[0] for f in files]
    rec["fastq_md5"] = [f[1] for f in files] if md5s else []
    rec["fastq_bytes"] = [f[2] for f in files] if sizes else []
    if rec.get("library_layout"):
        rec["library_layout"] = rec["library_layout"].upper()
    return rec


def parse_filereport(text: str, *, where: str = "") -> list[dict[str, Any]]:
    """Run records from an ENA filereport: TSV (the API's answer), CSV or JSON (as recorded).

    ``where`` (a file or URL) is named in errors.
    """
    body = text.lstrip("\ufeff").strip("\r\n")  # keep trailing tabs: empty last fields
    if not body.strip():
        return []
    if body[0] in "[{":
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON filereport: {exc}", path=where or None) from exc
        rows = data if isinstance(data, list) else [data]
        if not all(isinstance(r, Mapping) for r in rows):
            raise InputError("JSON filereport is not a list of objects", path=where or None)
    else:
        first = body.split("\n", 1)[0]
        delimiter = "\t" if "\t" in first else ","
        reader = csv.DictReader(io.StringIO(body), delimiter=delimiter)
        if not reader.fieldnames or "run_accession" not in reader.fieldnames:
            raise InputError(
                f"filereport has no run_accession column (header {first[:80]!r})",
                path=where or None,
                field="run_accession",
            )
        twice = sorted({c for c in reader.fieldnames if reader.fieldnames.count(c) > 1})
        if twice:  # DictReader would keep the last value silently
            raise InputError(
                f"filereport has the column {twice[0]!r} twice", path=where or None, field=twice[0]
            )
        rows = list(reader)
        short = next((i for i, r in enumerate(rows, 2) if None in r.values()), None)
        if short is not None:
            raise InputError(
                f"line {short} has fewer fields than the header",
                path=where or None,
                field=reader.fieldnames[-1],
            )
    if rows and "run_accession" not in rows[0]:
        raise InputError(
            "filereport rows have no run_accession", path=where or None, field="run_accession"
        )
    return [_finish_record(r, where) for r in rows]


def filereport(client: HttpClient, accession: str) -> list[dict[str, Any]]:
    """Read runs of a study/experiment/sample/run from ``{ena_portal}/filereport``."""
    acc = accession.strip()
    if not any(is_valid(acc, k) for k in _FILEREPORT_KINDS):
        raise InputError(
            f"{accession!r} is not an ENA/SRA accession filereport accepts", field="accession"
        )
    params = {
        "accession": acc,
        "result": "read_run",
        "fields": ",".join(FILEREPORT_FIELDS),
        "format": "tsv",
    }
    text = client.get_text("filereport", params, expect="TSV")
    return parse_filereport(text, where=client.display_url(client.url("filereport"), params))


# -- SRA XML -------------------------------------------------------------------------------------


def _txt(el: ET.Element | None, path: str) -> str:
    found = el.find(path) if el is not None else None
    return (found.text or "").strip() if found is not None and found.text else ""


def _layout(exp: ET.Element | None) -> str:
    lay = exp.find("DESIGN/LIBRARY_DESCRIPTOR/LIBRARY_LAYOUT") if exp is not None else None
    if lay is None or not len(lay):
        return ""
    return lay[0].tag.upper()


def _links(el: ET.Element | None, db: str) -> list[str]:
    if el is None:
        return []
    out = []
    for x in el.iter("XREF_LINK"):
        if _txt(x, "DB") == db:
            out.extend(_expand_range(_txt(x, "ID")))
    return out


def _expand_range(value: str) -> list[str]:
    """ "SRR5164436-SRR5164446" → the 11 runs; a single accession → itself."""
    m = re.fullmatch(r"([A-Z]+)(\d+)-([A-Z]+)(\d+)", value)
    if not m or m.group(1) != m.group(3):
        return [value] if value else []
    lo, hi = int(m.group(2)), int(m.group(4))
    width = len(m.group(2))
    if hi < lo or hi - lo > 100000:
        return [value]
    return [f"{m.group(1)}{n:0{width}d}" for n in range(lo, hi + 1)]


def _external_id(el: ET.Element | None, namespace: str) -> str:
    if el is None:
        return ""
    for x in el.iter("EXTERNAL_ID"):
        if x.get("namespace") == namespace and x.text:
            return x.text.strip()
    return ""


def _experiment_fields(exp: ET.Element | None) -> dict[str, Any]:
    lib = "DESIGN/LIBRARY_DESCRIPTOR/"
    return {
        "experiment_accession": exp.get("accession", "") if exp is not None else "",
        "study_accession": exp.find("STUDY_REF").get("accession", "")
        if exp is not None and exp.find("STUDY_REF") is not None
        else "",
        "library_layout": _layout(exp),
        "library_strategy": _txt(exp, lib + "LIBRARY_STRATEGY"),
        "library_source": _txt(exp, lib + "LIBRARY_SOURCE"),
        "library_selection": _txt(exp, lib + "LIBRARY_SELECTION"),
        "experiment_title": _txt(exp, "TITLE"),
    }


def _sample_fields(sample: ET.Element | None) -> dict[str, Any]:
    if sample is None:
        return {}
    return {
        "secondary_sample_accession": sample.get("accession", ""),
        "sample_accession": _external_id(sample, "BioSample") or sample.get("accession", ""),
        "sample_alias": sample.get("alias", "") or _external_id(sample, "GEO"),
        "tax_id": _txt(sample, "SAMPLE_NAME/TAXON_ID"),
        "scientific_name": _txt(sample, "SAMPLE_NAME/SCIENTIFIC_NAME"),
        "sample_title": _txt(sample, "TITLE"),
    }


def _record(run: str, fields: Mapping[str, Any], where: str) -> dict[str, Any]:
    rec: dict[str, Any] = {k: "" for k in FILEREPORT_FIELDS}
    rec["gsm"] = ""
    rec.update(fields)
    rec["run_accession"] = run
    return _finish_record(rec, where)


def parse_sra_xml(xml: str | bytes, *, where: str = "") -> list[dict[str, Any]]:
    """Run records from SRA XML: efetch ``EXPERIMENT_PACKAGE_SET`` or the ENA browser's
    ``EXPERIMENT_SET`` / ``RUN_SET`` / ``SAMPLE_SET`` / ``STUDY_SET`` (run ranges expanded).

    Each record carries run, experiment, sample, GEO sample (``gsm``), library fields and
    counts where the document has them. SRA's own files are not FASTQ, so ``fastq_*`` stay
    empty: these records resolve accessions, ENA's filereport locates the reads.
    """
    try:
        root = ET.fromstring(xml.encode() if isinstance(xml, str) else xml)
    except ET.ParseError as exc:
        raise InputError(f"invalid SRA XML: {exc}", path=where or None) from exc
    reader = _XML_READERS.get(root.tag)
    if reader is None:
        raise InputError(f"unsupported SRA XML document <{root.tag}>", path=where or None)
    return [_record(run, fields, where) for run, fields in reader(root)]


_Runs = Iterator[tuple[str, dict[str, Any]]]  # (run accession, its fields)


def _package_runs(root: ET.Element) -> _Runs:
    for pkg in root.findall("EXPERIMENT_PACKAGE"):
        exp = pkg.find("EXPERIMENT")
        sample = pkg.find("SAMPLE")
        base = {**_experiment_fields(exp), **_sample_fields(sample)}
        base["gsm"] = _geo_sample(exp, sample)
        for run in pkg.findall("RUN_SET/RUN"):
            stats = run.find("Statistics")
            bases = run.find("Bases")
            fields = dict(base)
            fields["read_count"] = (
                stats.get("nspots", "") if stats is not None else ""
            ) or run.get("total_spots", "")
            fields["base_count"] = (bases.get("count", "") if bases is not None else "") or run.get(
                "total_bases", ""
            )
            yield run.get("accession", ""), fields


def _experiment_runs(root: ET.Element) -> _Runs:
    for exp in root.findall("EXPERIMENT"):
        fields = _experiment_fields(exp)
        sd = exp.find("DESIGN/SAMPLE_DESCRIPTOR")
        fields["secondary_sample_accession"] = sd.get("accession", "") if sd is not None else ""
        fields["sample_accession"] = (
            _external_id(sd, "BioSample") or fields["secondary_sample_accession"]
        )
        fields["gsm"] = _geo_sample(exp, sd)
        for run in _links(exp, "ENA-RUN"):
            yield run, fields


def _run_set_runs(root: ET.Element) -> _Runs:
    for run in root.findall("RUN"):
        ref = run.find("EXPERIMENT_REF")
        refname = ref.get("refname", "") if ref is not None else ""
        fields = {
            "experiment_accession": ref.get("accession", "") if ref is not None else "",
            "gsm": refname if is_valid(refname, "gsm") else "",
            "study_accession": next(iter(_links(run, "ENA-STUDY")), ""),
            "secondary_sample_accession": next(iter(_links(run, "ENA-SAMPLE")), ""),
        }
        yield run.get("accession", ""), fields


def _sample_runs(root: ET.Element) -> _Runs:
    for sample in root.findall("SAMPLE"):
        fields = _sample_fields(sample)
        fields["gsm"] = _external_id(sample, "GEO")
        fields["study_accession"] = next(iter(_links(sample, "ENA-STUDY")), "")
        exps = _links(sample, "ENA-EXPERIMENT")
        fields["experiment_accession"] = exps[0] if len(exps) == 1 else ""
        for run in _links(sample, "ENA-RUN"):
            yield run, fields


def _study_runs(root: ET.Element) -> _Runs:
    for study in root.findall("STUDY"):
        fields = {"study_accession": study.get("accession", "")}
        for run in _links(study, "ENA-RUN"):
            yield run, fields


_XML_READERS: dict[str, Callable[[ET.Element], _Runs]] = {
    "EXPERIMENT_PACKAGE_SET": _package_runs,
    "EXPERIMENT_SET": _experiment_runs,
    "RUN_SET": _run_set_runs,
    "SAMPLE_SET": _sample_runs,
    "STUDY_SET": _study_runs,
}


parse_sra_experiment_package = parse_sra_xml  # the name the stage contract uses


def _geo_sample(exp: ET.Element | None, sample: ET.Element | None) -> str:
    """The GSM a GEO-brokered experiment/sample belongs to, if any."""
    candidates = [
        _external_id(sample, "GEO"),
        sample.get("alias", "") if sample is not None else "",
        exp.get("alias", "") if exp is not None else "",
    ]
    return next((c for c in candidates if is_valid(c, "gsm")), "")


# Column names of SRA run tables: NCBI's RunInfo and pysradb's metadata export.
_RUNTABLE_COLUMNS = {
    "experiment_accession": ("experiment_accession", "Experiment"),
    "study_accession": ("study_accession", "SRAStudy"),
    "secondary_sample_accession": ("sample_accession", "Sample"),
    "sample_accession": ("pool_external_id", "BioSample"),
    "sample_alias": ("sample_alias", "SampleName"),
    "library_layout": ("library_layout", "LibraryLayout"),
    "library_strategy": ("experiment_library_strategy", "LibraryStrategy"),
    "library_source": ("experiment_library_source", "LibrarySource"),
    "library_selection": ("experiment_library_selection", "LibrarySelection"),
    "tax_id": ("sample_taxon_id", "TaxID"),
    "scientific_name": ("sample_scientific_name", "ScientificName"),
}


def parse_sra_runtable(text: str, *, where: str = "") -> list[dict[str, Any]]:
    """Run records from an SRA run table (NCBI RunInfo CSV, or pysradb's export where one
    row is an experiment with ``run_1_accession``, ``run_2_accession``... columns)."""
    body = text.lstrip("\ufeff").strip("\r\n")  # keep trailing tabs: empty last fields
    if not body.strip():
        return []
    reader = csv.DictReader(
        io.StringIO(body), delimiter="\t" if "\t" in body.split("\n", 1)[0] else ","
    )
    cols = reader.fieldnames or []
    run_cols = sorted(
        (c for c in cols if re.fullmatch(r"run_\d+_accession", c)),
        key=lambda c: int(c.split("_")[1]),
    )
    single = "Run" if "Run" in cols else ("run_accession" if "run_accession" in cols else "")
    if not run_cols and not single:
        raise InputError(
            "run table has no run accession column", path=where or None, field="Run/run_accession"
        )
    records = []
    for row in reader:
        fields = {}
        for key, names in _RUNTABLE_COLUMNS.items():
            fields[key] = next((_na(row.get(n)) for n in names if _na(row.get(n))), "")
        fields["gsm"] = next(
            (
                _na(row.get(n))
                for n in ("sample_alias", "SampleName", "experiment_alias")
                if is_valid(_na(row.get(n)), "gsm")
            ),
            "",
        )
        if run_cols:
            for c in run_cols:
                run = _na(row.get(c))
                if not run:
                    continue
                n = c.split("_")[1]
                f = dict(fields)
                f["read_count"] = _na(row.get(f"run_{n}_total_spots"))
                f["base_count"] = _na(row.get(f"run_{n}_total_bases"))
                records.append(_record(run, f, where))
        else:
            fields["read_count"] = _na(row.get("spots"))
            fields["base_count"] = _na(row.get("bases"))
            records.append(_record(_na(row.get(single)), fields, where))
    return records


def runs_by_experiment(records: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Group run records by experiment accession (runs sorted by accession)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r.get("experiment_accession", ""), []).append(dict(r))
    for runs in out.values():
        runs.sort(key=lambda r: r["run_accession"])
    return out


def efetch_sra(client: HttpClient, accession: str) -> list[dict[str, Any]]:
    """Run records for an SRA accession from ``{eutils}/efetch.fcgi?db=sra`` (XML)."""
    acc = accession.strip()
    if not any(is_valid(acc, k) for k in ("run", "experiment", "sample", "sra_study")):
        raise InputError(f"{accession!r} is not an SRA accession", field="accession")
    params = {"db": "sra", "id": acc, "rettype": "full", "retmode": "xml"}
    text = client.get_text("efetch.fcgi", params, expect="XML")
    return parse_sra_xml(text, where=client.display_url(client.url("efetch.fcgi"), params))
