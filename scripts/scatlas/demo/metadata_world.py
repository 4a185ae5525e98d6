"""A metadata-only demo world: many GEO series, served by :class:`MirrorServer`.

The full demo world (:mod:`scatlas.demo.world`) simulates a genome and reads for a handful
of studies. Ingestion at scale (thousands of series), incremental refreshes and upstream
changes need many series but little data: this module writes, for each :class:`Series`, the
records the real services return (E-utilities esummary documents, a SOFT family file, ENA
filereport rows) and, optionally, a tiny gzipped FASTQ per run, in the mirror's layout
(``mirror/_index/{gds.json,ena_runs.tsv,biostudies.json}`` plus static files).

Series can be SuperSeries of others (their SOFT holds their sub-series' samples, as GEO's
does), mix organisms, or describe a non-RNA assay. Rewriting the world with changed series
(:func:`write_metadata_world` again, then ``MirrorServer.reload()``) stands in for records
that changed upstream.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from scatlas.demo.records import ENA_FIELDS, SeriesSummary, gds_uid, geo_date, gse_folder
from scatlas.fileio import atomic_write_bytes

TAXIDS = {"Homo sapiens": "9606", "Mus musculus": "10090"}
ENA_HOST = "ftp.sra.ebi.ac.uk"
CELL_TYPES = ("B cell", "T cell", "natural killer cell", "monocyte", "hepatocyte", "beta cell")


@dataclass(frozen=True)
class Series:
    """One GEO series. Sample ``i`` has organism ``organisms[i % len(organisms)]``."""

    accession: str
    released: date
    n_samples: int = 4
    organisms: tuple[str, ...] = ("Homo sapiens",)
    strategy: str = "RNA-Seq"
    title: str = ""
    superseries_of: tuple[str, ...] = ()
    updated: date | None = None
    paired: bool = False
    title_suffix: str = ""  # append to every sample title (an upstream edit)
    extra_characteristics: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def number(self) -> int:
        return int(self.accession[3:])


@dataclass
class _Sample:
    gsm: str
    title: str
    organism: str
    cell_type: str
    srx: str
    srr: str
    series: list[str]
    strategy: str
    files: list[str] = field(default_factory=list)
    md5: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    data: list[bytes] = field(default_factory=list)


def _fastq(run: str, mate: int, reads: int, rng: random.Random) -> bytes:
    lines = []
    for i in range(reads):
        seq = "".join(rng.choice("ACGT") for _ in range(30))
        lines.append(f"@{run}.{i + 1} {i + 1}/{mate}\n{seq}\n+\n{'I' * 30}\n")
    return gzip.compress("".join(lines).encode(), mtime=0)


def _samples_of(s: Series, reads: int, seed: int, with_fastq: bool) -> list[_Sample]:
    rng = random.Random(seed * 1_000_003 + s.number)
    out = []
    for i in range(s.n_samples):
        n = s.number * 100 + i + 1
        gsm, srx, srr = f"GSM{n}", f"SRX{n:08d}", f"SRR{n:08d}"
        organism = s.organisms[i % len(s.organisms)]
        cell = CELL_TYPES[(s.number + i) % len(CELL_TYPES)]
        sample = _Sample(
            gsm=gsm,
            title=f"{s.accession} single cell {i + 1} ({cell}){s.title_suffix}",
            organism=organism,
            cell_type=cell,
            srx=srx,
            srr=srr,
            series=[s.accession],
            strategy=s.strategy,
        )
        mates = (1, 2) if s.paired else (0,)
        for mate in mates:
            name = f"{srr}_{mate}.fastq.gz" if mate else f"{srr}.fastq.gz"
            path = f"vol1/fastq/{srr[:6]}/{srr[-3:]}/{srr}/{name}"
            data = _fastq(srr, mate or 1, reads, rng) if with_fastq else b""
            sample.files.append(path)
            sample.md5.append(hashlib.md5(data).hexdigest() if with_fastq else "")
            sample.sizes.append(len(data))
            sample.data.append(data)
        out.append(sample)
    return out


def _soft(s: Series, samples: Sequence[_Sample], relations: Sequence[str]) -> str:
    updated = s.updated or s.released
    out = [
        "^DATABASE = GeoMiame",
        "!Database_name = Gene Expression Omnibus (GEO)",
        f"^SERIES = {s.accession}",
        f"!Series_title = {s.title or s.accession + ' single-cell RNA-seq'}",
        f"!Series_geo_accession = {s.accession}",
        f"!Series_status = Public on {geo_date(s.released)}",
        f"!Series_submission_date = {geo_date(s.released)}",
        f"!Series_last_update_date = {geo_date(updated)}",
        "!Series_summary = "
        + (
            "This SuperSeries is composed of the SubSeries listed below."
            if s.superseries_of
            else "Single-cell RNA-seq of sorted cells (synthetic metadata-only demo record)."
        ),
        "!Series_type = Expression profiling by high throughput sequencing",
    ]
    out += [f"!Series_sample_id = {x.gsm}" for x in samples]
    out += [f"!Series_sample_organism = {o}" for o in sorted({x.organism for x in samples})]
    out += [f"!Series_relation = {r}" for r in relations]
    if not s.superseries_of:
        out.append(
            f"!Series_relation = SRA: https://www.ncbi.nlm.nih.gov/sra?term=SRP{s.number:06d}"
        )
    for x in samples:
        out += [
            f"^SAMPLE = {x.gsm}",
            f"!Sample_title = {x.title}",
            f"!Sample_geo_accession = {x.gsm}",
            f"!Sample_last_update_date = {geo_date(updated)}",
            "!Sample_type = SRA",
            f"!Sample_source_name_ch1 = {x.cell_type}",
            f"!Sample_organism_ch1 = {x.organism}",
            f"!Sample_taxid_ch1 = {TAXIDS.get(x.organism, '0')}",
            f"!Sample_characteristics_ch1 = cell type: {x.cell_type}",
        ]
        out += [f"!Sample_characteristics_ch1 = {k}: {v}" for k, v in s.extra_characteristics]
        out += [
            "!Sample_molecule_ch1 = total RNA",
            "!Sample_extract_protocol_ch1 = Smart-seq2, one cell per well",
            "!Sample_library_selection = cDNA",
            f"!Sample_library_source = {'genomic' if x.strategy != 'RNA-Seq' else 'transcriptomic single cell'}",
            f"!Sample_library_strategy = {x.strategy}",
            f"!Sample_relation = SRA: https://www.ncbi.nlm.nih.gov/sra?term={x.srx}",
            "!Sample_supplementary_file_1 = NONE",
        ]
        out += [f"!Sample_series_id = {g}" for g in x.series]
    return "\n".join(out) + "\n"


def _esummary(s: Series, samples: Sequence[_Sample], relations: list[dict]) -> dict:
    organisms = sorted({x.organism for x in samples}) or list(s.organisms)
    doc = SeriesSummary(
        accession=s.accession,
        title=s.title or f"{s.accession} single-cell RNA-seq",
        summary=(
            "This SuperSeries is composed of the SubSeries listed below."
            if s.superseries_of
            else "Single-cell RNA-seq of sorted cells (synthetic metadata-only demo record)."
        ),
        gpl="16791",
        taxon="; ".join(organisms),
        gdstype="Expression profiling by high throughput sequencing",
        released=s.released,
        suppfile="",
        samples=[(x.gsm, x.title) for x in samples],
        relations=relations,
        extrelations=[]
        if s.superseries_of
        else [{"relationtype": "SRA", "targetobject": f"SRP{s.number:06d}", "targetftplink": ""}],
        bioproject="",
    ).document()
    if s.updated:
        doc["_mdat"] = s.updated.strftime("%Y/%m/%d")  # the mirror's modification date
    return doc


def _ena_row(s: Series, x: _Sample) -> dict[str, str]:
    row = dict.fromkeys(ENA_FIELDS, "")
    row.update(
        run_accession=x.srr,
        experiment_accession=x.srx,
        sample_accession=f"SAMN{x.gsm[3:]}",
        secondary_sample_accession=f"SRS{x.gsm[3:]}",
        study_accession=f"PRJNA{s.number}",
        secondary_study_accession=f"SRP{s.number:06d}",
        sample_alias=x.gsm,
        experiment_alias=x.gsm,
        library_layout="PAIRED" if s.paired else "SINGLE",
        library_strategy=x.strategy,
        library_source="TRANSCRIPTOMIC SINGLE CELL",
        tax_id=TAXIDS.get(x.organism, "0"),
        scientific_name=x.organism,
        read_count="20",
        fastq_ftp=";".join(f"{ENA_HOST}/{p}" for p in x.files),
        fastq_md5=";".join(x.md5),
        fastq_bytes=";".join(str(b) for b in x.sizes),
    )
    return row


def _write_fastqs(mirror: Path, sample: _Sample) -> int:
    """A sample's FASTQ files (rewritten only when they differ); how many it has."""
    for path, data in zip(sample.files, sample.data, strict=True):
        target = mirror / path
        if not target.is_file() or target.read_bytes() != data:
            atomic_write_bytes(target, data)
    return len(sample.files)


def write_metadata_world(
    root: str | Path,
    series: Sequence[Series],
    *,
    reads: int = 20,
    seed: int = 0,
    with_fastq: bool = True,
) -> dict:
    """Write (or rewrite) the world's records under ``root/mirror``; return a summary.

    Without FASTQ files (``with_fastq=False``) the ENA rows publish no md5 or size: the
    world is for querying and planning only.
    """
    mirror = Path(root) / "mirror"
    samples = {s.accession: _samples_of(s, reads, seed, with_fastq) for s in series}
    parents: dict[str, list[str]] = {}
    for s in series:
        for sub in s.superseries_of:
            parents.setdefault(sub, []).append(s.accession)
            for x in samples.get(sub, []):
                x.series.append(s.accession)
    gds: dict[str, dict] = {}
    ena: list[dict[str, str]] = []
    n_files = 0
    for s in series:
        own = (
            [x for sub in s.superseries_of for x in samples.get(sub, [])]
            if s.superseries_of
            else samples[s.accession]
        )
        rel_text = [f"SuperSeries of: {g}" for g in s.superseries_of] + [
            f"SubSeries of: {g}" for g in parents.get(s.accession, [])
        ]
        rel_docs = [{"relationtype": "SuperSeries of", "targetobject": g} for g in s.superseries_of]
        rel_docs += [
            {"relationtype": "SubSeries of", "targetobject": g}
            for g in parents.get(s.accession, [])
        ]
        soft = _soft(s, own, rel_text)
        atomic_write_bytes(
            mirror / "geo" / gse_folder(s.accession) / "soft" / f"{s.accession}_family.soft.gz",
            gzip.compress(soft.encode(), mtime=0),
        )
        gds[gds_uid(s.accession)] = _esummary(s, own, rel_docs)
        if s.superseries_of:
            continue
        for x in own:
            ena.append(_ena_row(s, x))
            if with_fastq:
                n_files += _write_fastqs(mirror, x)
    if not with_fastq:
        for row in ena:
            row["fastq_md5"] = row["fastq_bytes"] = ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(ENA_FIELDS), delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(ena)
    index = mirror / "_index"
    atomic_write_bytes(index / "ena_runs.tsv", buf.getvalue().encode())
    atomic_write_bytes(index / "gds.json", json.dumps(gds, indent=1).encode())
    if not (index / "biostudies.json").is_file():
        atomic_write_bytes(index / "biostudies.json", b"[]\n")
    return {"series": len(series), "runs": len(ena), "fastq_files": n_files}
