"""HISAT2's --ss/--exon inputs computed by scatlas (no hisat2_extract_*.py scripts)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from scatlas.errors import InputError
from scatlas.reads.splice_sites import write_hisat2_annotations

# Hand-checkable: t1's exons 300-400 and 403-500 are 2 bp apart (merged); t2 shares t1's
# first junction (written once); t3 (minus strand) overlaps t1's first exon, so the exon
# file merges them; t4 is one base long (skipped); t5 has one exon (no junction) and a
# line without transcript_id (skipped); chr1 sorts before chrA as text.
SMALL_GTF = """\
# header comment
chrA\tt\tgene\t100\t900\t.\t+\t.\tgene_id "g1";
chrA\tt\texon\t100\t200\t.\t+\t.\tgene_id "g1"; transcript_id "t1";
chrA\tt\texon\t300\t400\t.\t+\t.\tgene_id "g1"; transcript_id "t1";
chrA\tt\texon\t403\t500\t.\t+\t.\tgene_id "g1"; transcript_id "t1"; # 2-bp gap: merged
chrA\tt\texon\t800\t900\t.\t+\t.\tgene_id "g1"; transcript_id "t1";
chrA\tt\texon\t100\t200\t.\t+\t.\tgene_id "g1"; transcript_id "t2";
chrA\tt\texon\t300\t450\t.\t+\t.\tgene_id "g1"; transcript_id "t2";
chrA\tt\texon\t150\t180\t.\t-\t.\tgene_id "g2"; transcript_id "t3";
chrA\tt\texon\t600\t600\t.\t+\t.\tgene_id "g3"; transcript_id "t4";
chrB\tt\texon\t10\t50\t.\t-\t.\tgene_id "g4"; transcript_id "t5";
chrB\tt\texon\t70\t90\t.\t-\t.\tgene_id "g4";
chrB\tt\tCDS\t60\t90\t.\t-\t.\tgene_id "g4"; transcript_id "t5";
chr1\tt\texon\t5\t20\t.\t+\t.\tgene_id "g5"; transcript_id "t6";
"""
SMALL_SS = "chrA\t199\t299\t+\nchrA\t499\t799\t+\n"
SMALL_EXONS = (
    "chr1\t4\t19\t+\nchrA\t99\t199\t+\nchrA\t299\t499\t+\nchrA\t799\t899\t+\nchrB\t9\t49\t-\n"
)

# hisat2_extract_splice_sites.py / hisat2_extract_exons.py (HISAT2 2.2.3, git 0d24432) on dm6.small.gtf
DM6_SS = (557, "11f219119001292bb6a6b0adcbd40d50e8019992e30a76bb0b8cd63abd991937")
DM6_EXONS = (546, "2aebe10d24fda92d20703cc0bd25403e84ac551569d36dacfe603d6a79b3dcf9")


def _run(tmp_path: Path, gtf: Path) -> tuple[str, str, tuple[int, int]]:
    ss, ex = tmp_path / "ss.txt", tmp_path / "exons.txt"
    counts = write_hisat2_annotations(gtf, ss, ex)
    return ss.read_text(), ex.read_text(), counts


def test_small_gtf_by_hand(tmp_path):
    gtf = tmp_path / "small.gtf"
    gtf.write_text(SMALL_GTF)
    ss, ex, counts = _run(tmp_path, gtf)
    assert ss == SMALL_SS
    assert ex == SMALL_EXONS
    assert counts == (2, 5)


def test_gzipped_gtf_gives_the_same(tmp_path):
    gtf = tmp_path / "small.gtf.gz"
    gtf.write_bytes(gzip.compress(SMALL_GTF.encode()))
    ss, ex, _ = _run(tmp_path, gtf)
    assert (ss, ex) == (SMALL_SS, SMALL_EXONS)


def test_single_exon_transcripts_give_no_splice_site(tmp_path):
    gtf = tmp_path / "one.gtf"
    gtf.write_text('c\tt\texon\t1\t10\t.\t+\t.\tgene_id "g"; transcript_id "t";\n')
    ss, ex, counts = _run(tmp_path, gtf)
    assert ss == "" and ex == "c\t0\t9\t+\n" and counts == (0, 1)


def test_non_integer_coordinate_names_file_line_and_field(tmp_path):
    gtf = tmp_path / "bad.gtf"
    gtf.write_text(SMALL_GTF + 'chrB\tt\texon\t10\tx\t.\t-\t.\tgene_id "g4"; transcript_id "t5";\n')
    with pytest.raises(InputError) as err:
        _run(tmp_path, gtf)
    assert err.value.path == str(gtf) and err.value.field == "end"
    assert "line 15" in str(err.value)


def test_gtf_without_usable_exons_is_refused(tmp_path):
    gtf = tmp_path / "genes.gtf"
    gtf.write_text('c\tt\tgene\t1\t10\t.\t+\t.\tgene_id "g";\n')
    with pytest.raises(InputError, match="no exon line"):
        _run(tmp_path, gtf)
    assert not (tmp_path / "ss.txt").exists()


def test_dm6_matches_hisat2_scripts(tmp_path, shared_data):
    gtf = shared_data / "reads" / "dm6-GSE49587" / "dm6.small.gtf"
    ss, ex, counts = _run(tmp_path, gtf)
    assert counts == (DM6_SS[0], DM6_EXONS[0])
    assert hashlib.sha256(ss.encode()).hexdigest() == DM6_SS[1]
    assert hashlib.sha256(ex.encode()).hexdigest() == DM6_EXONS[1]
