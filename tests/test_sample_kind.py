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
