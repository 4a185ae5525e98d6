"""What a sample is, read from its record with the words that decided it: single cell or
bulk (or unknown), which library (gene expression, feature barcoding, V(D)J, ATAC, other)
and which chemistry, each with a confidence.

Evidence, never a single keyword: the library source and strategy, protocol words of
single-cell methods (10x, Drop-seq, inDrop, Seq-Well, CEL-seq2, Smart-seq2/3, "single
cell", "single nucleus", barcodes/UMIs) against those of bulk libraries (TruSeq / NEBNext /
KAPA kits, nanograms or micrograms of input RNA, RNeasy, replicates of a cell line, sorted
populations, "bulk"). A side needs two points and more than the other to win; a library
source of "transcriptomic single cell" is worth two. Text is repaired first
(``scatlas.sources.geo.clean_text``: mojibake such as "5â€²" becomes "5′").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scatlas.reads.chemistry import SPATIAL, chemistry_of

#: (pattern, points) of single-cell evidence
SINGLE_CELL_WORDS: tuple[tuple[re.Pattern[str], int], ...] = tuple(
    (re.compile(p, re.I), w)
    for p, w in (
        (r"\bsingle[- ]?(cell|nucle(us|i))\b", 2),
        (r"\bsc-?rna-?seq\b|\bsn-?rna-?seq\b|\bscrna\b|\bsnrna\b", 2),
        (r"\b10x\b|\bchromium\b|\bdrop-?seq\b|\bin-?drop\b|\bseq-?well\b|\bcel-?seq2?\b", 2),
        (r"\bsmart-?seq ?[23]\b|\bsmart-?seq3\b|\bmars-?seq\b|\bbd rhapsody\b", 1),
        (r"\bcell barcodes?\b|\bUMIs?\b|\bunique molecular identifier", 1),
        (r"\bcells? (were )?(captured|encapsulated|partitioned)\b|\bGEMs?\b", 1),
        (r"\bcell ?ranger\b|\bstarsolo\b|\balevin\b", 1),
        (r"\b(per|each) (single )?cell\b|\bone cell per well\b|\bsorted into (96|384)", 1),
    )
)
#: (pattern, points) of bulk evidence
BULK_WORDS: tuple[tuple[re.Pattern[str], int], ...] = tuple(
    (re.compile(p, re.I), w)
    for p, w in (
        (r"\bbulk\b", 2),
        (
            r"\btru-?seq\b|\bnebnext\b|\bkapa (stranded|mrna|rna)|\bribo-?zero\b|\bsmarter stranded\b",
            1,
        ),
        (r"\b\d+(\.\d+)? ?(ng|µg|μg|ug|micrograms?|nanograms?)\b( of)?( \w+){0,2} RNA\b", 2),
        (r"\brneasy\b|\btrizol\b|\bribogreen\b|\bbioanalyzer\b", 1),
        (r"\b(total |m|poly\(?a\)?\+? )?RNAs? (was|were) (extracted|isolated|purified)\b", 1),
        (r"(?<![a-z])(bio(logical)? )?rep(licate)?[ _-]?\d+\b|\breplicates?\b", 1),
        (r"\bsorted (cell )?populations?\b|\bpopulation of cells\b", 1),
        (r"\bcell line\b", 1),
    )
)
_ATAC = re.compile(r"\batac\b", re.I)
#: word edges that also split "Donor1_TCR" and "PBMC_HTO" (underscores join words in titles)
_L, _R = r"(?<![A-Za-z0-9])", r"(?![A-Za-z])"
_VDJ = re.compile(rf"{_L}(V\(D\)J|VDJ|TCRs?|BCRs?|clonotypes?|immune profiling){_R}", re.I)
_FEATURES = re.compile(
    rf"{_L}(ADTs?|HTOs?|hashtags?|cell hashing|CITE-?seq|antibody capture|feature barcod\w*|"
    rf"CSP|cell surface protein|CRISPR guide|s?gRNAs?){_R}",
    re.I,
)
_GEX = re.compile(rf"{_L}(GEX|gene expression|mRNA|transcriptom\w*){_R}", re.I)
_OTHER_ASSAY = re.compile(
    r"\bChIP-?seq|\bHi-?C\b|\bCUT&(RUN|Tag)\b|\bWGBS\b|\bbisulfite|\bDNase-?seq|\bMeDIP", re.I
)
_RNA_STRATEGIES = {"rna-seq", "ssrna-seq", "mrna-seq", "scrna-seq", "snrna-seq"}
#: ArrayExpress's curated experiment types of single-cell studies ("RNA-seq of coding RNA
#: from single cells", "scATAC-seq", "single nucleus RNA sequencing")
_SINGLE_CELL_TYPE = re.compile(r"single[- ]?(cells?|nucle(us|i))|\bs[cn](RNA|ATAC|DNA)", re.I)


@dataclass(frozen=True)
class SampleKind:
    """The classification of one sample and the evidence behind each field."""

    cells: str  # single_cell | bulk | spatial | unknown
    cells_confidence: float
    library: str  # gene_expression | feature_barcoding | vdj | atac | other
    library_confidence: float
    chemistry: str  # a CHEMISTRIES name, or "" when the text names none
    evidence: tuple[str, ...]

    def describe(self) -> str:
        words = "; ".join(self.evidence) or "no deciding words"
        chem = f", chemistry {self.chemistry}" if self.chemistry else ""
        return f"{self.cells} ({self.cells_confidence:.2f}), {self.library} library{chem}: {words}"


def sample_text(sample: Mapping[str, Any]) -> str:
    """All free text describing a sample (title, source, characteristics, description)."""
    chars = " ".join(f"{k}: {v}" for k, v in sample.get("characteristics", []))
    parts = [
        sample.get("title", ""),
        sample.get("source_name", ""),
        chars,
        sample.get("description", ""),
    ]
    return " | ".join(str(p) for p in parts if p)


def named_text(sample: Mapping[str, Any]) -> str:
    """What the sample alone is called and described as (:func:`sample_text` and an SDRF's
    library construction): unlike extract protocols, never shared by the other libraries
    of a study."""
    parts = (sample_text(sample), sample.get("library_construction", ""))
    return " | ".join(str(p) for p in parts if p)


def record_text(sample: Mapping[str, Any]) -> str:
    """:func:`sample_text` and the record's extract protocol and molecule."""
    parts = (sample_text(sample), sample.get("protocol", ""), sample.get("molecule", ""))
    return " | ".join(str(p) for p in parts if p)


def _score(words, text: str) -> tuple[int, list[str]]:
    points, hits = 0, []
    for pattern, weight in words:
        m = pattern.search(text)
        if m:
            points += weight
            hits.append(m.group(0))
    return points, hits


def cells_kind(sample: Mapping[str, Any], text: str) -> tuple[str, float, list[str]]:
    """single_cell, bulk, spatial or unknown, a confidence, and the evidence.

    A spatial platform named by the sample (Visium, Slide-seq, GeoMx: spots or regions of
    several cells) decides alone. An ArrayExpress experiment type (``experiment_type``,
    curated by the archive) is worth two points: to single cell when it names single
    cells or nuclei, to bulk otherwise ("RNA-seq of coding RNA").
    """
    spatial = _spatial_evidence(sample, text)
    if spatial:
        return "spatial", 1.0, [spatial]
    single, single_hits = _score(SINGLE_CELL_WORDS, text)
    bulk, bulk_hits = _score(BULK_WORDS, text)
    if str(sample.get("library_source", "")).lower() in (
        "transcriptomic single cell",
        "genomic single cell",
    ):
        single += 2
        single_hits.insert(0, f"library source {sample['library_source']!r}")
    kind = str(sample.get("experiment_type", "")).strip()
    if kind and _SINGLE_CELL_TYPE.search(kind):
        single += 2
        single_hits.insert(0, f"experiment type {kind!r}")
    elif kind:
        bulk += 2
        bulk_hits.insert(0, f"experiment type {kind!r} (no single cells)")
    evidence = [f"single cell: {', '.join(single_hits)}"] if single_hits else []
    evidence += [f"bulk: {', '.join(bulk_hits)}"] if bulk_hits else []
    total = single + bulk
    if single >= 2 and single > bulk:
        return "single_cell", single / total, evidence
    if bulk >= 2 and bulk > single:
        return "bulk", bulk / total, evidence
    return "unknown", 0.0, evidence


def _spatial_evidence(sample: Mapping[str, Any], text: str) -> str:
    """Why the sample is spatial capture, or "": a spatial platform named by the sample, or
    by its protocol when nothing the sample is called says single cell (a study's shared
    protocol may describe its Visium and its single-nucleus libraries alike)."""
    named = named_text(sample)
    m = SPATIAL.search(named)
    if m:
        return f"spatial: {m.group(0)!r} (spots of several cells)"
    m = SPATIAL.search(text)
    source = str(sample.get("library_source", "")).lower()
    if m and not _score(SINGLE_CELL_WORDS, named)[0] and "single cell" not in source:
        return f"spatial: {m.group(0)!r} in the protocol, nothing naming single cells"
    return ""


def sample_chemistry(sample: Mapping[str, Any], text: str, cells: str) -> str:
    """The chemistry the sample's own fields name (a characteristic "SC3Pv2"), else its
    protocol's (shared by the study: "10x kit V2 or V3" is ambiguous there)."""
    spatial = cells == "spatial"
    own = chemistry_of(named_text(sample), spatial=spatial)
    if own not in ("", "10x"):
        return own
    return chemistry_of(text, spatial=spatial) or own


def library_kind(sample: Mapping[str, Any], text: str) -> tuple[str, float, str]:
    """The library's kind, a confidence and the deciding words. The title speaks first
    (a GEX library of a multi-library sample names the others in its protocol)."""
    strategy = str(sample.get("library_strategy", "")).lower()
    source = str(sample.get("library_source", "")).lower()
    title = str(sample.get("title", ""))
    if "array" in str(sample.get("experiment_type", "")).lower():
        return "other", 1.0, f"a microarray ({sample['experiment_type']})"
    if strategy == "atac-seq" or (_ATAC.search(title) and not _GEX.search(title)):
        return "atac", 1.0, f"ATAC ({strategy or title})"
    if source and "transcriptomic" not in source:
        return "other", 1.0, f"library source {source!r}, strategy {strategy!r}"
    if strategy and strategy not in _RNA_STRATEGIES and strategy != "other":
        return "other", 1.0, f"library strategy {strategy!r}"
    m = _OTHER_ASSAY.search(title)
    if m:
        return "other", 1.0, f"{m.group(0)!r} in the title"
    if _GEX.search(title):
        return "gene_expression", 1.0, f"the title names gene expression ({title})"
    # what the sample is called (title, source, characteristics); protocols describe every
    # library of a multi-library experiment, so they do not decide
    named = " | ".join(
        [title, str(sample.get("source_name", ""))]
        + [f"{k}: {v}" for k, v in sample.get("characteristics", [])]
    )
    for kind, pattern in (("vdj", _VDJ), ("feature_barcoding", _FEATURES)):
        m = pattern.search(named)
        if m:
            return kind, 1.0, f"{m.group(0)!r} names the sample"
    return "gene_expression", 0.9, "a transcriptomic library naming no other kind"


def classify(sample: Mapping[str, Any]) -> SampleKind:
    """The :class:`SampleKind` of a parsed sample record (``scatlas.sources.geo``)."""
    text = record_text(sample)
    cells, cells_conf, evidence = cells_kind(sample, text)
    library, lib_conf, lib_why = library_kind(sample, text)
    if (
        cells == "unknown"
        and library in ("atac", "other")
        and "single cell:" not in " ".join(evidence)
    ):
        # chromatin and DNA assays are run on cell populations unless a single-cell method
        # is named (scATAC says so); RNA libraries stay unknown, and kept
        cells, cells_conf = "bulk", 0.6
        evidence.append(f"bulk: a {library} assay naming no single-cell method")
    return SampleKind(
        cells=cells,
        cells_confidence=round(cells_conf, 3),
        library=library,
        library_confidence=lib_conf,
        chemistry=sample_chemistry(sample, text, cells),
        evidence=(*evidence, f"library: {lib_why}"),
    )
