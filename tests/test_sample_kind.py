"""What a sample is: single cell or bulk, library kind and chemistry, from real records
(../shared/data/geo) and from the kinds of text GEO records hold (mojibake included)."""

import pytest

from scatlas.reads.chemistry import chemistry_of
from scatlas.sources import geo
from scatlas.sources.sample_kind import classify


@pytest.fixture(scope="module")
def family(shared_data, tmp_path_factory):
    """Family SOFT files of the recorded series (series + sample parts)."""
    out = tmp_path_factory.mktemp("soft")
    paths = {}
    for gse in ("GSE100750", "GSE101966", "GSE146540"):
        path = out / f"{gse}_family.soft"
        path.write_bytes(
            (shared_data / "geo" / f"{gse}_GSE.soft").read_bytes()
            + (shared_data / "geo" / f"{gse}_GSM.soft").read_bytes()
        )
        paths[gse] = path
    return paths


def _sample(**fields):
    base = {
        "accession": "GSM1",
        "title": "",
        "source_name": "",
        "characteristics": [],
        "description": "",
        "protocol": "",
        "molecule": "polyA RNA",
        "library_strategy": "RNA-Seq",
        "library_source": "transcriptomic",
        "organism": "Homo sapiens",
    }
    return {**base, **fields}


def test_real_bulk_and_non_rna_records(family):
    for series, cells, libraries in (
        ("GSE146540", {"bulk"}, {"gene_expression"}),  # cell-line replicates, 6-15 ng RNA
        ("GSE100750", {"bulk"}, {"atac"}),  # ATAC of cell lines, no single-cell method
        ("GSE101966", {"bulk"}, {"atac", "other"}),  # a ChIP sample without a strategy too
    ):
        samples = geo.parse_family_soft(family[series])["samples"]
        kinds = [classify(s) for s in samples]
        assert {k.cells for k in kinds} == cells, series
        assert {k.library for k in kinds} == libraries, series
        assert all(k.evidence for k in kinds)


@pytest.mark.parametrize(
    "fields, cells",
    [
        ({"library_source": "transcriptomic single cell", "title": "PBMC donor 1"}, "single_cell"),
        ({"protocol": "Single-cell suspensions were loaded on the 10x Chromium"}, "single_cell"),
        ({"protocol": "TruSeq Stranded mRNA from 500 ng of purified total RNA"}, "bulk"),
        ({"title": "bulk RNA-seq of whole lung"}, "bulk"),
        ({"title": "HeLa rep2", "characteristics": [("cell line", "HeLa")]}, "bulk"),
        ({"title": "sample 4"}, "unknown"),
        (
            {  # a single-cell study comparing with bulk: the single-cell evidence outweighs
                "library_source": "transcriptomic single cell",
                "protocol": "10x Genomics 3' v3; pseudo-bulk profiles were compared",
            },
            "single_cell",
        ),
    ],
)
def test_single_cell_or_bulk(fields, cells):
    assert classify(_sample(**fields)).cells == cells


def test_chromatin_assays_are_bulk_unless_a_single_cell_method_is_named():
    atac = {"library_strategy": "ATAC-seq", "library_source": "genomic", "title": "PC9 ATAC"}
    assert classify(_sample(**atac)).cells == "bulk"
    sc = {**atac, "title": "scATAC-seq of PBMC", "protocol": "10x Chromium single cell ATAC"}
    assert classify(_sample(**sc)).cells == "single_cell"


@pytest.mark.parametrize(
    "fields, library",
    [
        ({"title": "Donor1 TCR"}, "vdj"),
        ({"library_strategy": "OTHER", "characteristics": [("library type", "V(D)J")]}, "vdj"),
        ({"title": "PBMC_HTO library"}, "feature_barcoding"),
        ({"title": "CITE-seq ADT, donor 2"}, "feature_barcoding"),
        (
            {"title": "Donor1 GEX", "protocol": "GEX, TCR and ADT libraries were made"},
            "gene_expression",
        ),
        (
            {"title": "Donor1", "protocol": "GEX, TCR and ADT libraries were made"},
            "gene_expression",
        ),
        ({"library_strategy": "ATAC-seq", "library_source": "genomic"}, "atac"),
        ({"library_strategy": "ChIP-Seq", "library_source": "genomic"}, "other"),
    ],
)
def test_library_kind(fields, library):
    assert classify(_sample(**fields)).library == library


@pytest.mark.parametrize(
    "text, chemistry",
    [
        ("Chromium Single Cell 3' Reagent Kits v2", "10x_3p_v2"),
        ("10x Genomics Chromium Next GEM Single Cell 3′ v3.1", "10x_3p_v3"),
        ("Chromium Single Cell 5' Library & Gel Bead Kit v1", "10x_5p_v1"),
        ("10x Genomics Chromium Single Cell 5′ v2", "10x_5p_v2"),
        ("Chromium GEM-X Single Cell 3' v4", "10x_3p_v4"),
        ("10x Genomics Chromium", "10x"),
        ("10x v2 and v3 chemistry", ""),
        ("Drop-seq as in Macosko et al.", "dropseq"),
        ("inDrops (1CellBio)", "indrop"),
        ("Seq-Well S^3", "seqwell"),
        ("CEL-Seq2 libraries", "celseq2"),
        ("Smart-seq2 in 384-well plates", "smartseq2"),
        ("Smart-seq3", "smartseq3"),
        ("MARS-seq", "plate"),
        ("TruSeq Stranded mRNA", ""),
        ("Drop-seq, compared with 10x Chromium", ""),
    ],
)
def test_chemistry_from_text(text, chemistry):
    assert chemistry_of(text) == chemistry


def test_double_encoded_text_is_repaired_before_reading():
    # "5′" written as UTF-8 and read as cp1252: the 5' kit must not pass for a 3' one
    broken = "Chromium Single Cell 5\u00e2\u20ac\u00b2 Reagent Kit v2"
    repaired = geo.clean_text(broken)
    assert repaired == "Chromium Single Cell 5′ Reagent Kit v2"
    assert chemistry_of(repaired) == "10x_5p_v2"
    assert geo.clean_text("a\x07b\tc\n") == "a b c"  # control characters and whitespace


def test_exclusions_name_their_reason_and_words():
    ok, why = geo.is_single_cell_rna(_sample(title="Donor1 TCR"), ["Homo sapiens"])
    assert (
        not ok and "a vdj library, not gene expression" in why and "'TCR' names the sample" in why
    )
    ok, why = geo.is_single_cell_rna(
        _sample(protocol="TruSeq Stranded mRNA, 500 ng of purified total RNA"), ["Homo sapiens"]
    )
    assert not ok and "bulk: TruSeq, 500 ng of purified total RNA" in why


# -- real records beyond ../shared/data: ArrayExpress SDRFs and GEO MINiML samples kept in
# benchmarks/data (their provenance is in benchmarks/data/README.md)

_STUDY_KINDS = {  # ArrayExpress study -> (cells, library, chemistry) of every sample
    "E-MTAB-13131": ("single_cell", "atac", "10x"),  # 10x single-nucleus ATAC
    "E-MTAB-13662": ("bulk", "gene_expression", ""),  # KAPA mRNA bulk RNA-seq
    "E-MTAB-14560": ("single_cell", "gene_expression", "10x"),  # Chromium Flex nuclei
    "E-MTAB-14960": ("spatial", "gene_expression", "spatial"),  # 10x Visium
    "E-MTAB-16192": ("bulk", "other", ""),  # ChIP-seq
    "E-MTAB-16253": ("bulk", "gene_expression", ""),  # bacterial RNA-seq
    "E-MTAB-16847": ("bulk", "other", ""),  # Agilent microarray
    "E-MTAB-16856": ("single_cell", "gene_expression", "splitseq"),  # Parse / SPLiT-seq
}


@pytest.fixture(scope="module")
def sdrf_samples(repo_root):
    import pandas as pd

    from scatlas.sources import arrayexpress as ae

    where = repo_root / "benchmarks" / "data" / "arrayexpress"
    types = pd.read_csv(where / "studies.tsv", sep="\t", dtype=str, index_col=0)
    out = {}
    for acc in _STUDY_KINDS:
        path = where / f"{acc}.sdrf.txt"
        records = ae.parse_sdrf(path.read_text(), where=str(path))
        out[acc] = [
            ae.sdrf_sample(r, r["ena_sample"], types.loc[acc, "experiment_type"]) for r in records
        ]
    return out


@pytest.mark.parametrize("study", sorted(_STUDY_KINDS))
def test_real_arrayexpress_records(sdrf_samples, study):
    cells, library, chemistry = _STUDY_KINDS[study]
    kinds = [classify(s) for s in sdrf_samples[study]]
    assert kinds and {(k.cells, k.library, k.chemistry) for k in kinds} == {
        (cells, library, chemistry)
    }
    kept = {geo.is_single_cell_rna(s, ["Homo sapiens"])[0] for s in sdrf_samples[study]}
    assert kept == {cells == "single_cell" and library == "gene_expression"}


def test_the_curated_experiment_type_decides_when_the_sdrf_is_silent(sdrf_samples):
    # E-MTAB-13662's rows name no kit and no single-cell word: bulk because of the type
    sample = sdrf_samples["E-MTAB-13662"][0]
    assert classify({**sample, "experiment_type": ""}).cells == "unknown"
    kind = classify(sample)
    assert kind.cells == "bulk" and "experiment type 'RNA-seq of coding RNA'" in kind.describe()
    ok, why = geo.is_single_cell_rna(sdrf_samples["E-MTAB-14960"][0], ["Homo sapiens"])
    assert not ok and "spatial capture" in why and "'Visium'" in why


@pytest.fixture(scope="module")
def miniml(repo_root):
    from scatlas.sources.miniml import parse_miniml_samples

    where = repo_root / "benchmarks" / "data" / "geo"
    return {p.stem: parse_miniml_samples(p)[0] for p in sorted(where.glob("GSM*.xml"))}


def test_a_samples_own_chemistry_beats_its_studys_shared_protocol(miniml):
    # GSM5388031: characteristic singlecell_type SC3Pv2; the protocol says "V2 or V3"
    sample = miniml["GSM5388031"]
    assert chemistry_of(sample["protocol"]) == ""
    assert classify(sample).chemistry == "10x_3p_v2"


def test_a_visium_protocol_shared_with_single_nucleus_libraries(miniml):
    # GSM9254695: "Heart, scRNA-seq", source transcriptomic single cell; the extract
    # protocol describes the study's snRNA-seq (3' v3.1) and its Visium libraries
    kind = classify(miniml["GSM9254695"])
    assert (kind.cells, kind.library, kind.chemistry) == (
        "single_cell",
        "gene_expression",
        "10x_3p_v3",
    )
    visium_only = {
        **miniml["GSM9254695"],
        "title": "Heart, Sham",
        "library_source": "transcriptomic",
    }
    assert classify(visium_only).cells == "spatial"


@pytest.mark.parametrize(
    "text, chemistry",
    [  # protocol text of real records and 10x datasets (sources in the comments)
        # GEO GSM6975354 (Cell Ranger's version is data processing, not read)
        (
            "Library was performed according to the manufacter’s instructions (single cell 3’ v2 protocol, 10x Genomics).",
            "10x_3p_v2",
        ),
        # GEO GSM8288494: two kits named, the sample's own is not said
        (
            "Single-cell library preparation was performed according to the manual of the Chromium Next GEM Single-cell 3' Reagent Kits v3.1 the Chromium Next GEM Single Cell 5′ Kit v2 for Dual Index (10x Genomics).",
            "",
        ),
        # 10x dataset "10k Human PBMCs, 5' v2.0, Chromium X"
        (
            "Chromium Single Cell 5' Reagent Kits User Guide (v2 Chemistry Dual Index) Read 1: 26 cycles (16 bp barcode, 10 bp UMI)",
            "10x_5p_v2",
        ),
        # 10x dataset "10k 5p Human diseased PBMC ALL Fix stored"
        (
            "Gene Expression and V(D)J libraries were generated as outlined in the Chromium GEM-X Single Cell 5' v3 Gene Expression User Guide (CG000733) or fixed following the demonstrated protocol, Cell Fixation Protocol for GEM-X Single Cell 3' & 5' Assays (CG000776).",
            "10x_5p_v3",
        ),
        # 10x dataset "10k Human PBMCs, 3' HT v3.1"
        (
            "Chromium Single Cell 3' Reagent Kits User Guide (v3.1 Chemistry Dual Index) Read 1: 28 cycles (16 bp barcode, 12 bp UMI)",
            "10x_3p_v3",
        ),
        # 10x GEM-X Flex v2 user guide: probe-based, not a 3' v2 kit
        (
            "GEM-X Flex v2 – Gene Expression libraries comprise standard Illumina paired-end constructs, which begin with P5 and end with P7. These libraries include 16 bp 10x GEM Barcodes encoded at the start of TruSeq Read 1.",
            "10x_flex",
        ),
        # GEO GSM1520438: bacterial 5' end mapping, no single-cell kit
        (
            "5' end mapping libraries were constructed by direct ligation of adapters to RNA 5' ends after differential treatment with or without 5' polyphosphatase.",
            "",
        ),
        ("SPLiT-seq, Evercode Whole Transcriptome v2 kit (Parse Biosciences)", "splitseq"),
    ],
)
def test_chemistry_of_real_protocol_text(text, chemistry):
    assert chemistry_of(text) == chemistry


def test_how_real_samples_runs_are_read(miniml, sdrf_samples):
    from scatlas.ingest.sheet_rows import technology_and_reason

    assert technology_and_reason(miniml["GSM5388031"]) == (
        "10x_v2",
        "the record names 10x_3p_v2",
    )
    assert technology_and_reason(miniml["GSM9254695"])[0] == "10x_v3"
    tech, why = technology_and_reason(sdrf_samples["E-MTAB-14560"][0])  # "10x feature barcode"
    assert tech == "10x" and "the reads decide" in why
    tech, why = technology_and_reason(sdrf_samples["E-MTAB-16856"][0])
    assert tech == "" and why.startswith("author matrix only: splitseq is not counted")


@pytest.mark.parametrize(
    "protocol, technology, words",
    [
        (
            "Chromium Single Cell 5' Reagent Kits User Guide (v2 Chemistry Dual Index)",
            "10x_5p_v2",
            "names 10x_5p_v2",
        ),
        ("Chromium Single Cell 5' kit, 10x Genomics", "10x_5p", "5′ kit of unstated version"),
        ("10x Genomics Chromium, v2 or v3 chemistry", "10x", "3′ kit of unstated version"),
        (
            "Chromium Next GEM Single-cell 3' Reagent Kits v3.1 the Chromium Next GEM Single Cell 5′ Kit v2",
            "",
            "both 3′ and 5′ kits named",
        ),
        ("inDrops (1CellBio) v3", "", "indrop is not counted"),
        ("GEM-X Flex v2 Gene Expression, 10x Genomics", "", "10x_flex is not counted"),
        ("Smart-seq2 in 384-well plates", "smartseq", "one cell per run"),
    ],
)
def test_technology_and_reason(protocol, technology, words):
    from scatlas.ingest.sheet_rows import technology_and_reason

    tech, why = technology_and_reason(
        _sample(protocol=protocol, library_source="transcriptomic single cell")
    )
    assert tech == technology and words in why


@pytest.mark.parametrize(
    "title",
    # titles of real GEO feature-barcoding samples (RNA-Seq, transcriptomic single cell)
    # as cellgeni/nf-reprocessing-public-10x docs/archive-pathologies.md quotes them:
    # GSE216914, GSE216040, GSE216999 ("Library N cell hashing"), GSE215842
    [
        "PSA1 CSP",
        "PSA2 CSP",
        "gRNA enrichment library",
        "Library 7 cell hashing",
        "scrnaseq with hashtags [HT]",
    ],
)
def test_real_feature_barcoding_titles(title):
    sample = _sample(title=title, library_source="transcriptomic single cell")
    assert classify(sample).library == "feature_barcoding"
    assert not geo.is_single_cell_rna(sample, ["Homo sapiens"])[0]
