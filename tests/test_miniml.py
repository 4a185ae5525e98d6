"""GEO MINiML sample records read into the records of family SOFT files."""

import pytest

from scatlas.errors import InputError
from scatlas.sources import geo
from scatlas.sources.miniml import parse_miniml_samples

_SOFT = """^SERIES = GSE900012
!Series_title = the same sample as SOFT
!Series_geo_accession = GSE900012
^SAMPLE = GSM9254695
!Sample_title = Heart, scRNA-seq, Sham
!Sample_geo_accession = GSM9254695
!Sample_type = SRA
!Sample_source_name_ch1 = heart
!Sample_organism_ch1 = Mus musculus
!Sample_taxid_ch1 = 10090
!Sample_characteristics_ch1 = tissue: heart
!Sample_characteristics_ch1 = strain: C57BL/6J
!Sample_characteristics_ch1 = cell type: cardiac cells (mixed cell populations)
!Sample_characteristics_ch1 = Sex: male
!Sample_characteristics_ch1 = genotype: wild type
!Sample_characteristics_ch1 = treatment: sham surgery
!Sample_characteristics_ch1 = batch: batch 3
!Sample_molecule_ch1 = polyA RNA
!Sample_description = Library name: Sham_scRNA
!Sample_library_strategy = RNA-Seq
!Sample_library_source = transcriptomic single cell
!Sample_library_selection = cDNA
"""


def test_a_real_miniml_sample_reads_as_its_soft_record(repo_root, tmp_path):
    sample = parse_miniml_samples(repo_root / "benchmarks/data/geo/GSM9254695.xml")[0]
    soft = tmp_path / "GSM9254695.soft"
    soft.write_text(_SOFT)
    from_soft = geo.parse_family_soft(soft)["samples"][0]
    for key in (
        "accession",
        "title",
        "source_name",
        "organism",
        "taxid",
        "characteristics",
        "description",
        "library_strategy",
        "library_source",
        "molecule",
    ):
        assert sample[key] == from_soft[key], key
    assert "Chromium Next GEM Single Cell 3' GEM" in sample["protocol"]


def test_malformed_miniml_names_the_file(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<MINiML><Sample iid='GSM1'>")
    with pytest.raises(InputError, match="not well-formed") as err:
        parse_miniml_samples(bad)
    assert str(bad) in str(err.value)
    other = tmp_path / "other.xml"
    other.write_text("<SRA/>")
    with pytest.raises(InputError, match="not MINiML"):
        parse_miniml_samples(other)
    wrong = tmp_path / "wrong.xml"
    wrong.write_text("<MINiML><Sample iid='X1'><Accession>X1</Accession></Sample></MINiML>")
    with pytest.raises(InputError, match="not a GEO sample accession"):
        parse_miniml_samples(wrong)
