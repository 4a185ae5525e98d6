"""HISAT2's ``--ss`` and ``--exon`` inputs computed from a GTF, so that building a
splice-aware index needs no helper scripts (Debian's ``hisat2`` ships only the binaries).

The output matches ``hisat2_extract_splice_sites.py`` and ``hisat2_extract_exons.py``:

- exon lines (feature ``exon``, start < end) carrying both ``gene_id`` and
  ``transcript_id`` are grouped by transcript; a transcript's chromosome and strand are
  those of its first exon line;
- a transcript's exons are sorted and merged where the gap between them is at most 5 bp
  (such short "introns" are annotation artefacts, not splicing);
- splice sites are the junctions between consecutive merged exons (a transcript with one
  exon gives none), written as ``chrom, donor, acceptor, strand`` with 0-based coordinates
  of the last exonic base before and the first after the intron;
- exons are written as ``chrom, start, end, strand`` with 0-based inclusive coordinates,
  overlapping exons of a chromosome (any transcript, any strand) merged into one;
- each file holds unique rows sorted by chromosome (as text), then the coordinates.

Lines that are not 9 tab-separated fields are skipped, as HISAT2's scripts skip them; an
exon with a non-integer coordinate is an InputError naming the file, line and field; a
comment after ``#`` inside a line is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scatlas.compression import open_text
from scatlas.errors import InputError
from scatlas.fileio import atomic_path

log = logging.getLogger(__name__)

# Exons closer than this are one exon (HISAT2's scripts use the same threshold).
MERGE_GAP = 5

Row = tuple[str, int, int, str]


@dataclass
class _Transcript:
    chrom: str
    strand: str
    exons: list[list[int]] = field(default_factory=list)

    def merged(self) -> list[list[int]]:
        """Sorted exons (1-based, inclusive) with gaps of at most MERGE_GAP closed."""
        out: list[list[int]] = []
        for start, end in sorted(self.exons):
            if out and start - out[-1][1] <= MERGE_GAP:
                out[-1][1] = end
            else:
                out.append([start, end])
        return out


def _attributes(text: str) -> dict[str, str]:
    """``key "value"; key value;`` → dict (quotes stripped)."""
    attrs: dict[str, str] = {}
    for item in text.split(";"):
        key, _, value = item.strip().partition(" ")
        if key:
            attrs[key] = value.strip().strip('"')
    return attrs


def _exon_lines(
    lines: Iterable[str], source: str = "GTF"
) -> Iterator[tuple[str, str, int, int, str, str]]:
    """(chrom, strand, start, end, gene_id, transcript_id) of each usable exon line.

    A line of an exon with a non-integer start or end raises InputError naming ``source``,
    the line and the field (HISAT2's scripts stop with a traceback there).
    """
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != 9 or fields[2] != "exon":
            continue
        try:
            start, end = int(fields[3]), int(fields[4])
        except ValueError:
            field_name = "start" if not fields[3].strip().isdigit() else "end"
            raise InputError(
                f"non-integer {field_name} on line {number}", path=source, field=field_name
            ) from None
        if start >= end:
            continue
        attrs = _attributes(fields[8])
        if "gene_id" in attrs and "transcript_id" in attrs:
            yield fields[0], fields[6], start, end, attrs["gene_id"], attrs["transcript_id"]


def read_transcripts(lines: Iterable[str], source: str = "GTF") -> dict[str, _Transcript]:
    """Exons per transcript id, in the order the GTF first names each transcript."""
    transcripts: dict[str, _Transcript] = {}
    for chrom, strand, start, end, _gene, tid in _exon_lines(lines, source):
        tx = transcripts.get(tid)
        if tx is None:
            tx = transcripts[tid] = _Transcript(chrom, strand)
        tx.exons.append([start, end])
    return transcripts


def splice_sites(transcripts: dict[str, _Transcript]) -> list[Row]:
    """Unique junctions, 0-based (last base of the upstream exon, first of the downstream)."""
    rows: set[Row] = set()
    for tx in transcripts.values():
        exons = tx.merged()
        for (_, left_end), (right_start, _) in zip(exons, exons[1:], strict=False):
            rows.add((tx.chrom, left_end - 1, right_start - 1, tx.strand))
    return sorted(rows)


def exons(transcripts: dict[str, _Transcript]) -> list[Row]:
    """Merged exons of all transcripts, 0-based inclusive: a chromosome's overlapping exons
    (of any transcript or strand) become one interval that keeps the first one's strand
    (unless that strand is neither ``+`` nor ``-``), as ``hisat2_extract_exons.py`` does."""
    unique = sorted(
        {
            (tx.chrom, start, end, tx.strand)
            for tx in transcripts.values()
            for start, end in tx.merged()
        }
    )
    rows: list[Row] = []
    for chrom, start, end, strand in unique:
        if rows and rows[-1][0] == chrom and start <= rows[-1][2]:
            p_chrom, p_start, p_end, p_strand = rows[-1]
            if end > p_end:
                rows[-1] = (p_chrom, p_start, end, p_strand if p_strand in "+-" else strand)
            continue
        rows.append((chrom, start, end, strand))
    return [(chrom, start - 1, end - 1, strand) for chrom, start, end, strand in rows]


def _write_rows(rows: list[Row], path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(f"{c}\t{a}\t{b}\t{s}\n" for c, a, b, s in rows)


def write_hisat2_annotations(gtf: Path, splice_sites_out: Path, exons_out: Path) -> tuple[int, int]:
    """Write ``--ss`` and ``--exon`` files for ``hisat2-build`` from ``gtf`` (plain or gzip).

    Returns the number of splice sites and exons written. A GTF with no usable exon line
    raises InputError naming the file: an index "with splice sites" built from nothing
    would silently be a plain one.
    """
    gtf = Path(gtf)
    if not gtf.is_file():
        raise InputError("GTF file not found", path=str(gtf))
    try:
        with open_text(gtf) as fh:
            transcripts = read_transcripts(fh, str(gtf))
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise InputError(f"cannot read GTF: {exc}", path=str(gtf)) from exc
    if not transcripts:
        raise InputError(
            "GTF has no exon line with gene_id and transcript_id", path=str(gtf), field="exon"
        )
    ss, ex = splice_sites(transcripts), exons(transcripts)
    _write_rows(ss, Path(splice_sites_out))
    _write_rows(ex, Path(exons_out))
    log.info(
        "%s: %d transcripts, %d splice sites, %d exons", gtf, len(transcripts), len(ss), len(ex)
    )
    return len(ss), len(ex)
