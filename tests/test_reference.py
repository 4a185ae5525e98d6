"""Gene table from GTF (union-of-exons lengths), HISAT2 index building, reference files."""

from __future__ import annotations

import gzip
import hashlib
import logging
from pathlib import Path

import pandas as pd
import pytest

from scatlas.errors import InputError, ToolError
from scatlas.reads.reference import (
    build_hisat2_index,
    load_gene_table,
    read_gene_table,
    resolve_reference_file,
)

# Ensembl-style GTF. Gene A: three isoforms whose exons overlap:
#   t1: 101-200, 301-400      t2: 151-250, 391-450      t3: 601-700
#   union = 101-250 (150) + 301-450 (150) + 601-700 (100) = 400 bp
# Gene B: one exon 1001-1010 contained in another 1001-1100, plus a nested one: 100 bp.
# Gene C: exons on two chromosomes (a PAR-like gene): 10 + 20 = 30 bp.
ENSEMBL_GTF = """\
#!genome-build test
chr1\ttest\tgene\t101\t700\t.\t+\t.\tgene_id "ENSG01"; gene_name "ALPHA"; gene_biotype "protein_coding";
chr1\ttest\ttranscript\t101\t400\t.\t+\t.\tgene_id "ENSG01"; transcript_id "T1"; gene_name "ALPHA";
chr1\ttest\texon\t101\t200\t.\t+\t.\tgene_id "ENSG01"; transcript_id "T1"; exon_number "1";
chr1\ttest\texon\t301\t400\t.\t+\t.\tgene_id "ENSG01"; transcript_id "T1"; exon_number "2";
chr1\ttest\tCDS\t120\t200\t.\t+\t0\tgene_id "ENSG01"; transcript_id "T1";
chr1\ttest\texon\t151\t250\t.\t+\t.\tgene_id "ENSG01"; transcript_id "T2";
chr1\ttest\texon\t391\t450\t.\t+\t.\tgene_id "ENSG01"; transcript_id "T2";
chr1\ttest\texon\t601\t700\t.\t+\t.\tgene_id "ENSG01"; transcript_id "T3";
chr1\ttest\texon\t1001\t1100\t.\t-\t.\tgene_id "ENSG02"; transcript_id "T4"; gene_name "beta"; gene_biotype "lncRNA";
chr1\ttest\texon\t1001\t1010\t.\t-\t.\tgene_id "ENSG02"; transcript_id "T5";
chr1\ttest\texon\t1050\t1060\t.\t-\t.\tgene_id "ENSG02"; transcript_id "T6";
chrX\ttest\texon\t1\t10\t.\t+\t.\tgene_id "ENSG03"; transcript_id "T7";
chrY\ttest\texon\t1\t20\t.\t+\t.\tgene_id "ENSG03"; transcript_id "T8";
"""


def write(path: Path, text: str, gz: bool = False) -> Path:
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_gene_length_is_union_of_exons(tmp_path: Path, gz: bool) -> None:
    # The gzip copy has no .gz suffix: compression is detected from the content.
    table = load_gene_table(write(tmp_path / "genes.gtf", ENSEMBL_GTF, gz=gz))
    assert list(table.index) == ["ENSG01", "ENSG02", "ENSG03"]
    assert table.index.name == "gene_id"
    assert table["length"].tolist() == [400, 100, 30]
    assert table.loc["ENSG01", "gene_symbol"] == "ALPHA"
    assert table.loc["ENSG02", "gene_symbol"] == "beta"
    assert table.loc["ENSG03", "gene_symbol"] == "ENSG03"  # no name: falls back to the id
    assert table["biotype"].tolist() == ["protein_coding", "lncRNA", ""]
    assert table.loc["ENSG02", "strand"] == "-"
    assert table.loc["ENSG03", "chrom"] == "chrX;chrY"


def test_gencode_and_refseq_attribute_styles(tmp_path: Path) -> None:
    gtf = write(
        tmp_path / "mixed.gtf",
        (
            'chr1\tHAVANA\tgene\t1\t500\t.\t+\t.\tgene_id "ENSG00000000001.5"; gene_type "lncRNA"; '
            'gene_name "GENC1"; level 2;\n'
            'chr1\tHAVANA\texon\t1\t100\t.\t+\t.\tgene_id "ENSG00000000001.5"; transcript_id "ENST1.1"; '
            'gene_type "lncRNA"; gene_name "GENC1";\n'
            'NC_000001.11\tBestRefSeq\texon\t11874\t12227\t.\t+\t.\tgene_id "DDX11L1"; '
            'transcript_id "NR_046018.2"; db_xref "GeneID:100287102"; gene "DDX11L1"; '
            'gene_biotype "transcribed_pseudogene"; exon_number "1";\n'
            'NC_000001.11\tBestRefSeq\texon\t12613\t12721\t.\t+\t.\tgene_id "DDX11L1"; '
            'transcript_id "NR_046018.2"; gene "DDX11L1"; exon_number "2";\n'
        ),
    )
    table = load_gene_table(gtf)
    assert table.loc["ENSG00000000001.5"].tolist() == ["GENC1", "lncRNA", "chr1", "+", 100]
    assert table.loc["DDX11L1"].tolist() == [
        "DDX11L1",
        "transcribed_pseudogene",
        "NC_000001.11",
        "+",
        (12227 - 11874 + 1) + (12721 - 12613 + 1),
    ]


def test_gene_without_exons(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    gtf = write(
        tmp_path / "noexon.gtf",
        ENSEMBL_GTF
        + (
            'chr2\ttest\tgene\t5\t50\t.\t+\t.\tgene_id "ENSG09"; gene_name "LONELY";\n'
            'chr2\ttest\tCDS\t5\t50\t.\t+\t0\tgene_id "ENSG09"; transcript_id "T9";\n'
        ),
    )
    with pytest.raises(InputError) as err:
        load_gene_table(gtf, on_missing_exons="error")
    assert "ENSG09" in str(err.value) and str(gtf) in str(err.value)
    assert err.value.path == str(gtf)
    with caplog.at_level(logging.WARNING):
        table = load_gene_table(gtf)
    assert "ENSG09" not in table.index and len(table) == 3
    assert "ENSG09" in caplog.text


def test_bad_gtf_is_named(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.gtf", 'chr1\tx\texon\tone\t10\t.\t+\t.\tgene_id "G";\n')
    with pytest.raises(InputError, match="non-integer start") as err:
        load_gene_table(bad)
    assert err.value.path == str(bad) and err.value.field == "start"
    no_id = write(tmp_path / "noid.gtf", 'chr1\tx\texon\t1\t10\t.\t+\t.\ttranscript_id "T";\n')
    with pytest.raises(InputError, match="no gene_id"):
        load_gene_table(no_id)
    with pytest.raises(InputError, match="not found"):
        load_gene_table(tmp_path / "missing.gtf")


def test_dm6_gene_table(shared_data: Path) -> None:
    gtf = shared_data / "reads" / "dm6-GSE49587" / "dm6.small.gtf"
    table = load_gene_table(gtf)
    assert len(table) == 167
    assert table.index.is_monotonic_increasing
    # FlyBase GTF: symbols come from the gene_symbol attribute.
    assert table.loc["FBgn0031208", "gene_symbol"] == "CG11023"
    # FBgn0031208's exons: 7529-8116, 8193-9484 (isoforms overlap inside): 588 + 1292 bp.
    assert table.loc["FBgn0031208", "length"] == 588 + 1292
    assert (table["length"] > 0).all()


def _tiny_reference(tmp_path: Path, shared_data: Path) -> tuple[Path, Path]:
    """The first 60 kb of chr2L and the genes inside it, gzipped."""
    data = shared_data / "reads" / "dm6-GSE49587"
    lines = (data / "dm6.small.fa").read_text().splitlines()
    seq, out = [], [lines[0]]
    for line in lines[1:]:
        if line.startswith(">") or sum(map(len, seq)) >= 60_000:
            break
        seq.append(line)
    out += seq
    fasta = tmp_path / "tiny.fa.gz"
    with gzip.open(fasta, "wt") as fh:
        fh.write("\n".join(out) + "\n")
    gtf_lines = [
        ln
        for ln in (data / "dm6.small.gtf").read_text().splitlines()
        if ln.split("\t")[0] == "chr2L" and int(ln.split("\t")[4]) < 60_000
    ]
    gtf = write(tmp_path / "tiny.gtf.gz", "\n".join(gtf_lines) + "\n", gz=True)
    return fasta, gtf


@pytest.mark.tools
def test_build_index_from_gzipped_files(tmp_path: Path, shared_data: Path) -> None:
    from dm6_pipeline import require_tools

    require_tools()
    fasta, gtf = _tiny_reference(tmp_path, shared_data)
    prefix = build_hisat2_index(fasta, gtf, tmp_path / "ref" / "hisat2", threads=1)
    assert prefix == tmp_path / "ref" / "hisat2" / "index"
    built = sorted(p.name for p in prefix.parent.iterdir())
    assert built == ["genes.tsv"] + [f"index.{i}.ht2" for i in range(1, 9)]
    genes = read_gene_table(prefix.parent / "genes.tsv")
    pd.testing.assert_frame_equal(genes, load_gene_table(gtf))
    assert len(genes) > 3
    # Nothing temporary left beside the index.
    assert sorted(p.name for p in (tmp_path / "ref").iterdir()) == ["hisat2"]
    # A rebuild replaces the folder.
    again = build_hisat2_index(fasta, gtf, tmp_path / "ref" / "hisat2", splice_sites=False)
    assert again == prefix and sorted(p.name for p in (tmp_path / "ref").iterdir()) == ["hisat2"]


@pytest.mark.tools
def test_build_index_failure_is_a_tool_error(tmp_path: Path) -> None:
    from dm6_pipeline import require_tools

    require_tools()
    fasta = write(tmp_path / "n.fa", ">chrN\n" + "N" * 60 + "\n")
    gtf = write(
        tmp_path / "n.gtf", 'chrN\tt\texon\t1\t10\t.\t+\t.\tgene_id "G1"; transcript_id "T1";\n'
    )
    with pytest.raises(ToolError) as err:
        build_hisat2_index(fasta, gtf, tmp_path / "idx")
    assert err.value.tool == "hisat2-build" and "Error" in str(err.value)
    assert not (tmp_path / "idx").exists()
    assert sorted(tmp_path.iterdir()) == sorted([fasta, gtf])
    with pytest.raises(InputError, match="empty"):
        build_hisat2_index(write(tmp_path / "e.fa", ""), gtf, tmp_path / "idx")


def test_resolve_reference_file(tmp_path: Path) -> None:
    local = write(tmp_path / "genome.fa", ">c\nACGT\n")
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    assert resolve_reference_file({"path": str(local)}, tmp_path / "unused") == local
    assert resolve_reference_file({"path": str(local), "sha256": digest}, tmp_path / "x") == local
    with pytest.raises(InputError, match="sha256"):
        resolve_reference_file({"path": str(local), "sha256": "0" * 64}, tmp_path / "x")

    calls: list[str] = []

    def downloader(url: str, dest: Path) -> None:
        calls.append(url)
        dest.write_bytes(local.read_bytes())

    dest = tmp_path / "dl" / "genome.fa"
    spec = {"url": "http://127.0.0.1:9/genome.fa", "sha256": digest}
    assert resolve_reference_file(spec, dest, downloader) == dest
    assert dest.read_bytes() == local.read_bytes() and len(calls) == 1
    assert resolve_reference_file(spec, dest, downloader) == dest and len(calls) == 1  # reused

    bad_dest = tmp_path / "dl" / "other.fa"
    with pytest.raises(InputError, match="expected") as err:
        resolve_reference_file({"url": spec["url"], "sha256": "f" * 64}, bad_dest, downloader)
    assert err.value.field == "sha256"
    assert not bad_dest.exists() and sorted(p.name for p in dest.parent.iterdir()) == ["genome.fa"]
    with pytest.raises(InputError):
        resolve_reference_file({"url": spec["url"]}, bad_dest)  # no downloader
    with pytest.raises(InputError):
        resolve_reference_file({"path": str(local), "url": spec["url"]}, bad_dest)
