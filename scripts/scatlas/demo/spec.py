"""The fixed design of the demo world: cell types, marker genes and the studies.

Everything random (genome, expression, reads) is drawn by the generator from the seed;
what is written here is the world's *script*: which studies exist, which accessions they
carry, which cell types they hold and in which words each study describes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

GENERATOR_VERSION = "scatlas-demo-world/1"

ORGANISM = "Homo sapiens"
TAXID = "9606"


@dataclass(frozen=True)
class CellType:
    key: str
    cl_id: str
    cl_label: str
    markers: tuple[str, ...]


CELL_TYPES: dict[str, CellType] = {
    t.key: t
    for t in (
        CellType(
            "B",
            "CL:0000236",
            "B cell",
            ("CD19", "MS4A1", "CD79A", "CD79B", "PAX5", "CD22", "BANK1"),
        ),
        CellType(
            "T",
            "CL:0000084",
            "T cell",
            ("CD3E", "CD3D", "CD3G", "CD2", "IL7R", "LCK", "TRAC", "CD4"),
        ),
        CellType(
            "NK",
            "CL:0000623",
            "natural killer cell",
            ("NKG7", "GNLY", "KLRD1", "KLRF1", "NCAM1", "PRF1", "GZMB"),
        ),
        CellType(
            "Mono",
            "CL:0000576",
            "monocyte",
            ("CD14", "LYZ", "S100A8", "S100A9", "FCN1", "CSF1R", "FCGR3A"),
        ),
        CellType(
            "Beta",
            "CL:0000169",
            "type B pancreatic cell",
            ("INS", "IAPP", "PDX1", "NKX6-1", "MAFA", "G6PC2", "ADCYAP1"),
        ),
        CellType(
            "Hep",
            "CL:0000182",
            "hepatocyte",
            ("ALB", "APOA1", "TTR", "APOB", "SERPINA1", "HP", "FGB", "APOC3"),
        ),
        CellType(
            "Fib",
            "CL:0000057",
            "fibroblast",
            ("COL1A1", "COL1A2", "COL3A1", "DCN", "LUM", "PDGFRA", "FBLN1"),
        ),
        CellType(
            "Endo",
            "CL:0000115",
            "endothelial cell",
            ("PECAM1", "VWF", "CDH5", "KDR", "CLDN5", "ESAM", "EGFL7"),
        ),
        # Only in the held-out query: a type the reference has never seen (novelty detection).
        CellType("Alpha", "CL:0000171", "pancreatic A cell", ("GCG", "ARX", "IRX2", "LOXL4")),
    )
}
REFERENCE_TYPES = ("B", "T", "NK", "Mono", "Beta", "Hep", "Fib", "Endo")

# Genes shared by several types (lineage programmes) and housekeeping genes.
SHARED_GENES: dict[str, tuple[str, ...]] = {
    "PTPRC": ("B", "T", "NK", "Mono"),
    "HLA-DRA": ("B", "Mono"),
    "CD74": ("B", "Mono"),
    "CCL5": ("T", "NK"),
    "CD52": ("B", "T", "NK"),
    "SPARC": ("Fib", "Endo"),
    "CHGA": ("Beta", "Alpha"),
    "SST": ("Beta", "Alpha"),
}
HOUSEKEEPING = (
    "ACTB",
    "GAPDH",
    "B2M",
    "EEF1A1",
    "TPT1",
    "RPL13A",
    "RPS18",
    "FTL",
    "TMSB4X",
    "MALAT1",
    "NEAT1",
)
LNCRNA_SYMBOLS = ("MALAT1", "NEAT1")


def named_genes() -> list[str]:
    """Real human symbols carried by the synthetic genes, in a fixed order."""
    out: list[str] = []
    for t in CELL_TYPES.values():
        out.extend(t.markers)
    out.extend(SHARED_GENES)
    out.extend(HOUSEKEEPING)
    seen: set[str] = set()
    return [g for g in out if not (g in seen or seen.add(g))]


@dataclass(frozen=True)
class CellGroup:
    """``n`` cells of one type, described by the study as ``text``."""

    type_key: str
    n: int
    text: str
    tissue: str
    source_name: str


@dataclass(frozen=True)
class StudySpec:
    accession: str
    source: str  # geo | arrayexpress
    kind: str  # reads | matrix | not-scrna
    title: str
    summary: str
    design: str
    released: date
    submitted: date
    updated: date
    groups: tuple[CellGroup, ...] = ()
    layout: str = "SINGLE"  # SINGLE | PAIRED
    instrument: str = "Illumina HiSeq 2500"
    library_strategy: str = "RNA-Seq"
    library_source: str = "transcriptomic"  # GEO wording
    library_selection: str = "cDNA"
    molecule: str = "total RNA"
    gds_type: str = "Expression profiling by high throughput sequencing"
    ct_key: str = "cell type"
    expected: str = "ok"  # ok | excluded | failed
    reason: str = ""
    corrupt_fastq: bool = False  # served FASTQ differs from the md5 published in ENA
    title_prefix: str = "SC"
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    # barcoded (droplet) study: one sample and run per group, many cells per run
    chemistry: str = ""  # "" | "10x_v3" | "dropseq"

    @property
    def n_cells(self) -> int:
        return sum(g.n for g in self.groups)

    @property
    def number(self) -> int:
        """The serial number of the study (GSE900007 -> 7, E-MTAB-99001 -> 1)."""
        return (
            int(self.accession[-2:])
            if self.source == "geo"
            else int(self.accession.rsplit("-", 1)[1][-2:])
        )


PLATFORMS = {
    "Illumina HiSeq 2500": "GPL16791",
    "Illumina NextSeq 500": "GPL18573",
    "Illumina NovaSeq 6000": "GPL24676",
}

_SMART_DESIGN = (
    "Single cells were sorted by FACS into 96-well plates; full-length cDNA was generated "
    "with Smart-seq2 and libraries were prepared with Nextera XT. One run per cell."
)

STUDIES: tuple[StudySpec, ...] = (
    StudySpec(
        accession="GSE900001",
        source="geo",
        kind="reads",
        title="Smart-seq2 profiling of sorted human peripheral blood lymphocytes and monocytes",
        summary=(
            "We profiled single B lymphocytes, T lymphocytes, natural killer cells and monocytes "
            "sorted from the peripheral blood of two healthy donors by full-length single-cell RNA-seq."
        ),
        design=_SMART_DESIGN,
        released=date(2024, 3, 15),
        submitted=date(2024, 1, 10),
        updated=date(2024, 6, 1),
        layout="SINGLE",
        instrument="Illumina HiSeq 2500",
        library_source="transcriptomic single cell",
        ct_key="cell type",
        title_prefix="PB",
        groups=(
            CellGroup("B", 16, "B lymphocyte", "peripheral blood", "PBMC"),
            CellGroup("T", 16, "T lymphocyte", "peripheral blood", "PBMC"),
            CellGroup("NK", 16, "natural killer cell", "peripheral blood", "PBMC"),
            CellGroup("Mono", 16, "monocyte", "peripheral blood", "PBMC"),
        ),
    ),
    StudySpec(
        accession="GSE900002",
        source="geo",
        kind="reads",
        title="Full-length single-cell transcriptomes of circulating immune cells from healthy adults",
        summary=(
            "Circulating immune cells were index-sorted and sequenced with a plate-based "
            "full-length protocol to compare lineage programmes across donors."
        ),
        design=_SMART_DESIGN + " Paired-end 2x50 bp sequencing.",
        released=date(2024, 5, 22),
        submitted=date(2024, 3, 2),
        updated=date(2024, 9, 12),
        layout="PAIRED",
        instrument="Illumina NovaSeq 6000",
        library_source="transcriptomic",
        ct_key="celltype",
        title_prefix="IMM",
        groups=(
            CellGroup("B", 15, "B cells", "blood", "whole blood"),
            CellGroup("T", 15, "T cells", "blood", "whole blood"),
            CellGroup("NK", 15, "NK cells", "blood", "whole blood"),
            CellGroup("Mono", 15, "CD14+ Mono", "blood", "whole blood"),
        ),
    ),
    StudySpec(
        accession="GSE900003",
        source="geo",
        kind="reads",
        title="Single-cell RNA-seq of human pancreatic islet preparations",
        summary=(
            "Islets from two organ donors were dissociated and single cells were profiled by "
            "Smart-seq2 to describe endocrine and non-endocrine islet populations."
        ),
        design=_SMART_DESIGN,
        released=date(2024, 8, 9),
        submitted=date(2024, 6, 20),
        updated=date(2024, 8, 30),
        layout="SINGLE",
        instrument="Illumina HiSeq 2500",
        library_source="transcriptomic",
        ct_key="cell type",
        title_prefix="ISL",
        groups=(
            CellGroup("Beta", 20, "pancreatic beta cell", "pancreatic islet", "islet preparation"),
            CellGroup("Endo", 14, "endothelial cell", "pancreatic islet", "islet preparation"),
            CellGroup("Fib", 14, "fibroblast", "pancreatic islet", "islet preparation"),
        ),
    ),
    StudySpec(
        accession="GSE900004",
        source="geo",
        kind="reads",
        title="A Smart-seq3 survey of parenchymal and non-parenchymal cells of the adult human liver",
        summary=(
            "Liver resection specimens were dissociated; hepatocytes and non-parenchymal fractions "
            "were sorted and profiled by full-length single-cell RNA-seq."
        ),
        design=_SMART_DESIGN.replace("Smart-seq2", "Smart-seq3")
        + " Paired-end 2x50 bp sequencing.",
        released=date(2024, 11, 27),
        submitted=date(2024, 9, 30),
        updated=date(2025, 1, 8),
        layout="PAIRED",
        instrument="Illumina NovaSeq 6000",
        library_source="transcriptomic single cell",
        ct_key="cell population",
        title_prefix="LIV",
        groups=(
            CellGroup("Hep", 20, "Hepatocytes", "liver", "liver resection"),
            CellGroup("Endo", 14, "Endothelial cells", "liver", "liver resection"),
            CellGroup("Fib", 14, "Fibroblasts", "liver", "liver resection"),
        ),
    ),
    StudySpec(
        accession="GSE900005",
        source="geo",
        kind="reads",
        title="The islet microenvironment at single-cell resolution",
        summary=(
            "Endocrine, immune and vascular cells of the human pancreas were profiled one cell per "
            "well to map their interactions."
        ),
        design=_SMART_DESIGN,
        released=date(2025, 2, 14),
        submitted=date(2024, 12, 1),
        updated=date(2025, 3, 3),
        layout="SINGLE",
        instrument="Illumina NextSeq 500",
        library_source="transcriptomic",
        ct_key="cell type",
        title_prefix="PAN",
        groups=(
            CellGroup("Beta", 16, "type B pancreatic cells", "pancreas", "pancreas"),
            CellGroup("T", 16, "T-cell", "pancreas", "pancreas"),
            CellGroup("Endo", 16, "CD31+ EC", "pancreas", "pancreas"),
        ),
    ),
    StudySpec(
        accession="GSE900006",
        source="geo",
        kind="reads",
        title="Intrahepatic lymphocytes and hepatocytes profiled by Smart-seq2",
        summary=(
            "Lymphocytes resident in the human liver were compared with hepatocytes from the same "
            "specimens by plate-based single-cell RNA-seq."
        ),
        design=_SMART_DESIGN + " Paired-end 2x50 bp sequencing.",
        released=date(2025, 4, 30),
        submitted=date(2025, 2, 27),
        updated=date(2025, 6, 2),
        layout="PAIRED",
        instrument="Illumina NovaSeq 6000",
        library_source="transcriptomic single cell",
        ct_key="celltype",
        title_prefix="IHL",
        groups=(
            CellGroup("Hep", 16, "hepatocyte", "liver", "liver biopsy"),
            CellGroup("NK", 16, "NK cell", "liver", "liver biopsy"),
            CellGroup("B", 16, "B-cell", "liver", "liver biopsy"),
        ),
    ),
    StudySpec(
        accession="GSE900007",
        source="geo",
        kind="matrix",
        title="Single-cell transcriptomes of human islets, liver and blood (processed counts)",
        summary=(
            "Processed count matrix of single cells from pancreatic islets, liver and blood. "
            "Raw data are available from the authors on request."
        ),
        design="Single cells were profiled with a plate-based full-length protocol; counts per gene are provided.",
        released=date(2025, 6, 18),
        submitted=date(2025, 4, 2),
        updated=date(2025, 6, 20),
        layout="",
        instrument="Illumina NovaSeq 6000",
        library_source="transcriptomic single cell",
        ct_key="cell type",
        title_prefix="MX",
        groups=(
            CellGroup("T", 10, "T cell", "blood", "PBMC"),
            CellGroup("NK", 10, "natural killer cell", "blood", "PBMC"),
            CellGroup("Beta", 10, "pancreatic beta cells", "pancreatic islet", "islets"),
            CellGroup("Hep", 10, "hepatocyte", "liver", "liver"),
        ),
    ),
    StudySpec(
        accession="GSE900008",
        source="geo",
        kind="not-scrna",
        title="Single-cell ATAC-seq of human peripheral blood lymphocytes",
        summary=(
            "Chromatin accessibility of single-cell nuclei from peripheral blood lymphocytes "
            "measured by single-cell ATAC-seq."
        ),
        design="Nuclei were sorted into plates and tagmented individually (single-cell ATAC-seq).",
        released=date(2025, 1, 20),
        submitted=date(2024, 11, 11),
        updated=date(2025, 1, 21),
        layout="PAIRED",
        instrument="Illumina NextSeq 500",
        library_strategy="ATAC-seq",
        library_source="genomic single cell",
        library_selection="other",
        molecule="genomic DNA",
        gds_type="Genome binding/occupancy profiling by high throughput sequencing",
        ct_key="cell type",
        expected="excluded",
        reason="not single-cell RNA-seq (ATAC-seq)",
        title_prefix="ATAC",
        groups=(
            CellGroup("T", 4, "T cell", "peripheral blood", "PBMC nuclei"),
            CellGroup("B", 4, "B cell", "peripheral blood", "PBMC nuclei"),
        ),
    ),
    StudySpec(
        accession="GSE900009",
        source="geo",
        kind="reads",
        title="Smart-seq2 of human tonsil lymphocytes",
        summary="B and T lymphocytes from a tonsillectomy specimen profiled by Smart-seq2.",
        design=_SMART_DESIGN,
        released=date(2025, 9, 5),
        submitted=date(2025, 7, 14),
        updated=date(2025, 9, 6),
        layout="SINGLE",
        instrument="Illumina HiSeq 2500",
        library_source="transcriptomic single cell",
        ct_key="cell type",
        expected="failed",
        reason="FASTQ md5 does not match ENA",
        corrupt_fastq=True,
        title_prefix="TON",
        groups=(
            CellGroup("B", 4, "B cell", "tonsil", "tonsil"),
            CellGroup("T", 4, "T cell", "tonsil", "tonsil"),
        ),
    ),
    StudySpec(
        accession="E-MTAB-99001",
        source="arrayexpress",
        kind="reads",
        title="Smart-seq2 of human dermal fibroblasts, dermal endothelial cells and blood leukocytes",
        summary=(
            "Single cells from healthy skin and matched blood were sorted and profiled by Smart-seq2 "
            "to compare stromal, vascular and immune transcriptomes."
        ),
        design="cell type comparison design",
        released=date(2024, 10, 2),
        submitted=date(2024, 7, 22),
        updated=date(2024, 10, 3),
        layout="PAIRED",
        instrument="Illumina NovaSeq 6000",
        library_source="transcriptomic single cell",
        ct_key="cell type",
        title_prefix="SKB",
        groups=(
            CellGroup("Fib", 12, "fibroblast", "skin", "skin"),
            CellGroup("Endo", 12, "endothelial cell", "skin", "skin"),
            CellGroup("Mono", 12, "monocyte", "blood", "blood"),
            CellGroup("B", 12, "B cell", "blood", "blood"),
        ),
    ),
    StudySpec(
        accession="E-MTAB-99002",
        source="arrayexpress",
        kind="not-scrna",
        title="Transcription profiling by array of human monocytes stimulated with LPS",
        summary="Bulk monocytes from six donors were stimulated with LPS or left untreated and hybridised to arrays.",
        design="stimulus or stress design",
        released=date(2025, 3, 11),
        submitted=date(2025, 1, 15),
        updated=date(2025, 3, 12),
        layout="",
        library_strategy="",
        library_source="",
        library_selection="",
        gds_type="",
        expected="excluded",
        reason="not single-cell RNA-seq (transcription profiling by array)",
        title_prefix="ARR",
    ),
)

# Appended last so that the accessions and random streams of the studies above stay as
# they were: a 10x Chromium v3 series of sorted populations, one run of many cells each.
STUDIES = STUDIES + (
    StudySpec(
        accession="GSE900010",
        source="geo",
        kind="reads",
        title="Droplet single-cell RNA-seq of FACS-sorted human blood lymphocytes and monocytes",
        summary=(
            "Sorted populations from the peripheral blood of healthy donors were each "
            "profiled on one lane of a droplet microfluidics platform."
        ),
        design=(
            "Sorted cells were loaded on a Chromium Controller (10x Genomics); libraries were "
            "prepared with the Chromium Single Cell 3' Reagent Kit v3 and sequenced 28+50 bp."
        ),
        released=date(2025, 10, 1),
        submitted=date(2025, 8, 12),
        updated=date(2025, 10, 2),
        layout="PAIRED",
        instrument="Illumina NovaSeq 6000",
        library_source="transcriptomic single cell",
        ct_key="cell type",
        title_prefix="DRP",
        chemistry="10x_v3",
        groups=(
            CellGroup("B", 60, "B cell", "peripheral blood", "sorted CD19+ PBMC"),
            CellGroup("Mono", 60, "monocyte", "peripheral blood", "sorted CD14+ PBMC"),
        ),
    ),
)

HELDOUT_ACCESSION = "GSE900099"
HELDOUT_GROUPS: tuple[tuple[str, int], ...] = (
    ("B", 8),
    ("T", 8),
    ("NK", 7),
    ("Mono", 7),
    ("Beta", 7),
    ("Hep", 8),
    ("Fib", 7),
    ("Endo", 8),
    ("Alpha", 6),
)

# Read-level parameters of the simulated libraries.
READ_LENGTH = 50
FRAGMENT_MIN, FRAGMENT_MAX = 200, 350
INTRONIC_FRACTION = 0.04  # pre-mRNA fragments from gene bodies
INTERGENIC_FRACTION = 0.03  # genomic background
CONTAMINANT_FRACTION = 0.02  # non-genomic sequence (adapter dimers, contaminants): unalignable
SUBSTITUTION_RATE = 0.003
ASSIGNED_FRACTION = 1.0 - INTRONIC_FRACTION - INTERGENIC_FRACTION - CONTAMINANT_FRACTION

# Barcoded runs (read 1 = cell barcode + UMI, read 2 = 50 bp of cDNA from the 3' end).
DROPLET_LAYOUT = {"10x_v3": (16, 12), "dropseq": (12, 8)}  # barcode, UMI lengths
DROPLET_READS_FACTOR = 0.6  # reads per droplet cell, relative to a per-cell run (keeps it fast)
READS_PER_MOLECULE = 3.0  # mean PCR copies sequenced per molecule (1 + Poisson(2))
AMBIENT_BARCODES = 1500  # empty droplets per run, each with a few ambient molecules
AMBIENT_MOLECULES_MEAN = 2.0


def study(accession: str) -> StudySpec:
    for s in STUDIES:
        if s.accession == accession:
            return s
    raise KeyError(accession)
