"""HISAT2 summaries, aligning runs and the per-study alignment table, on real dm6 reads."""

from __future__ import annotations

import gzip
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from dm6_pipeline import DM6, RUNS, SAMPLES, dm6_pipeline, write_manifest

from scatlas.errors import InputError, ToolError
from scatlas.reads.align import (
    ALIGNMENT_COLUMNS,
    align_run,
    align_study,
    mate_files,
    parse_hisat2_summary,
)

# Real HISAT2 2.2.1 output for sample1 of GSE49587 (SRR948304) against dm6.small.
CLASSIC_PAIRED = """\
10100 reads; of these:
  10100 (100.00%) were paired; of these:
    102 (1.01%) aligned concordantly 0 times
    9979 (98.80%) aligned concordantly exactly 1 time
    19 (0.19%) aligned concordantly >1 times
    ----
    102 pairs aligned concordantly 0 times; of these:
      0 (0.00%) aligned discordantly 1 time
    ----
    102 pairs aligned 0 times concordantly or discordantly; of these:
      204 mates make up the pairs; of these:
        198 (97.06%) aligned 0 times
        6 (2.94%) aligned exactly 1 time
        0 (0.00%) aligned >1 times
99.02% overall alignment rate
"""
NEW_PAIRED = """\
HISAT2 summary stats:
\tTotal pairs: 10100
\t\tAligned concordantly or discordantly 0 time: 102 (1.01%)
\t\tAligned concordantly 1 time: 9979 (98.80%)
\t\tAligned concordantly >1 times: 19 (0.19%)
\t\tAligned discordantly 1 time: 0 (0.00%)
\tTotal unpaired reads: 204
\t\tAligned 0 time: 198 (97.06%)
\t\tAligned 1 time: 6 (2.94%)
\t\tAligned >1 times: 0 (0.00%)
\tOverall alignment rate: 99.02%
"""
# The same run's R1 aligned single-end.
CLASSIC_SINGLE = """\
10100 reads; of these:
  10100 (100.00%) were unpaired; of these:
    109 (1.08%) aligned 0 times
    9972 (98.73%) aligned exactly 1 time
    19 (0.19%) aligned >1 times
98.92% overall alignment rate
"""
NEW_SINGLE = """\
HISAT2 summary stats:
\tTotal reads: 10100
\t\tAligned 0 time: 109 (1.08%)
\t\tAligned 1 time: 9972 (98.73%)
\t\tAligned >1 times: 19 (0.19%)
\tOverall alignment rate: 98.92%
"""


@pytest.mark.parametrize("text", [CLASSIC_PAIRED, NEW_PAIRED])
def test_parse_paired_summary(text: str) -> None:
    s = parse_hisat2_summary(text)
    assert s["paired"] is True
    assert s["total_reads"] == 10100 and s["aligned_reads"] == 9979 + 19 + 0
    assert s["total_mates"] == 20200 and s["aligned_mates"] == 2 * 9998 + 6
    assert s["alignment_rate"] == pytest.approx(20002 / 20200)
    assert round(s["alignment_rate"] * 100, 2) == 99.02


@pytest.mark.parametrize("text", [CLASSIC_SINGLE, NEW_SINGLE])
def test_parse_single_summary(text: str) -> None:
    s = parse_hisat2_summary(text)
    assert s["paired"] is False
    assert (s["total_reads"], s["aligned_reads"]) == (10100, 9972 + 19)
    assert round(s["alignment_rate"] * 100, 2) == 98.92


def test_parse_rejects_garbage_and_inconsistency() -> None:
    with pytest.raises(InputError):
        parse_hisat2_summary("Error: reads file does not look like a FASTQ file\n")
    with pytest.raises(InputError, match="prints"):
        parse_hisat2_summary(CLASSIC_SINGLE.replace("98.92%", "12.00%"))


@pytest.fixture(scope="session")
def dm6(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> DM6:
    return dm6_pipeline(shared_data, tmp_path_factory)


@pytest.mark.tools
def test_align_study_dm6(dm6: DM6) -> None:
    table = pd.read_csv(dm6.alignment_tsv, sep="\t", dtype={"reason": str}, keep_default_na=False)
    assert list(table.columns) == ALIGNMENT_COLUMNS
    assert table["run"].tolist() == RUNS and table["sample"].tolist() == SAMPLES
    assert (table["status"] == "ok").all() and (table["reason"] == "").all()
    assert (table["total_reads"] == 10100).all()
    for rec in table.to_dict("records"):
        log = (dm6.log_dir / f"{rec['run']}.log").read_text()
        printed = float(re.search(r"([\d.]+)% overall alignment rate", log).group(1))
        assert round(rec["alignment_rate"] * 100, 2) == printed
        assert 0.985 < rec["alignment_rate"] < 0.995
        bam = Path(rec["bam"])
        assert bam == dm6.bam_dir / f"{rec['run']}.bam"
        # Every read of the run is in the BAM once as a primary record (unaligned included).
        primary = subprocess.run(
            ["samtools", "view", "-c", "-F", "0x900", str(bam)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert int(primary) == 2 * rec["total_reads"]
    assert sorted(p.name for p in dm6.bam_dir.iterdir()) == [f"{r}.bam" for r in RUNS]


def _subset(src: Path, dest: Path, n_reads: int, skip: int = 0) -> Path:
    with gzip.open(src, "rt") as fh:
        lines = fh.read().splitlines()[4 * skip : 4 * (skip + n_reads)]
    with gzip.open(dest, "wt") as out:
        out.write("\n".join(lines) + "\n")
    return dest


@pytest.mark.tools
def test_bad_runs_fail_alone(dm6: DM6, tmp_path: Path) -> None:
    """Every kind of damaged FASTQ fails its run alone, with the file and what is wrong;
    among them damage HISAT2 itself lets pass (a short sequence, a record cut off, mates
    with other names, a missing gzip trailer)."""
    r1, r2 = dm6.data / "sample1.tiny_R1.fastq.gz", dm6.data / "sample1.tiny_R2.fastq.gz"
    good1, good2 = (
        _subset(r1, tmp_path / "g_R1.fq.gz", 2000),
        _subset(r2, tmp_path / "g_R2.fq.gz", 2000),
    )
    cut = tmp_path / "cut_R1.fq.gz"  # cut mid-stream
    cut.write_bytes(good1.read_bytes()[: good1.stat().st_size // 2])
    trailer = tmp_path / "trailer_R1.fq.gz"  # every read there, only the gzip trailer missing
    trailer.write_bytes(good1.read_bytes()[:-4])
    shifted = _subset(r2, tmp_path / "shift_R2.fq.gz", 1999, skip=1)  # mates out of step
    short = _subset(r2, tmp_path / "short_R2.fq.gz", 1999)  # the last mate missing
    empty = tmp_path / "empty_R1.fq.gz"
    with gzip.open(empty, "wt"):
        pass
    with gzip.open(good1, "rt") as fh:
        lines = fh.read().splitlines()
    mismatch = tmp_path / "mismatch_R1.fq"  # record 11: a base lost, its qualities not
    lines_mm = list(lines)
    lines_mm[41] = lines_mm[41][1:]
    mismatch.write_text("\n".join(lines_mm) + "\n")
    truncated = tmp_path / "trunc_R1.fq"  # the last record cut off after its sequence
    truncated.write_text("\n".join(lines[:-2]) + "\n")
    rows = [
        ("SRR0000001", "GSM0000011", f"{good1};{good2}", "ok", ""),
        ("SRR0000002", "GSM0000012", f"{cut};{good2}", "ok", ""),
        ("SRR0000003", "GSM0000013", f"{trailer};{good2}", "ok", ""),
        ("SRR0000004", "GSM0000014", f"{good1};{shifted}", "ok", ""),
        ("SRR0000005", "GSM0000015", f"{empty};{good2}", "ok", ""),
        ("SRR0000006", "GSM0000016", "", "failed", "md5 mismatch for SRR0000006_1.fastq.gz"),
        ("not-a-run", "GSM0000017", f"{good1};{good2}", "ok", ""),
        ("SRR0000008", "GSM0000018", f"{good1.name};{good2.name}", "ok", ""),  # relative paths
        ("SRR0000009", "GSM0000019", f"{mismatch}", "ok", ""),
        ("SRR0000010", "GSM0000020", f"{truncated}", "ok", ""),
        ("SRR0000011", "GSM0000021", f"{good1};{short}", "ok", ""),
    ]
    manifest = write_manifest(
        tmp_path / "manifest.tsv",
        [dict(zip(["run", "sample", "files", "status", "reason"], r, strict=True)) for r in rows],
    )
    out = tmp_path / "alignment.tsv"
    table = align_study(manifest, dm6.index, tmp_path / "bam", out, threads=2, base_dir=tmp_path)
    by_run = table.set_index("run")
    assert by_run["status"].to_dict() == {
        "SRR0000001": "ok",
        "SRR0000002": "failed",
        "SRR0000003": "failed",
        "SRR0000004": "failed",
        "SRR0000005": "failed",
        "SRR0000006": "failed",
        "not-a-run": "failed",
        "SRR0000008": "ok",
        "SRR0000009": "failed",
        "SRR0000010": "failed",
        "SRR0000011": "failed",
    }
    assert by_run.loc["SRR0000001", "total_reads"] == 2000
    reason = by_run["reason"].to_dict()
    for run, words, path in [
        ("SRR0000002", "corrupt or truncated gzip data", cut),
        ("SRR0000003", "corrupt or truncated gzip data", trailer),
        ("SRR0000004", "mates out of sync at record 1: 'SRR948304.1'", shifted),
        ("SRR0000005", "FASTQ file is empty", empty),
        ("SRR0000009", "record 11 (@SRR948304.10136", mismatch),
        ("SRR0000010", "record 2000 is cut off (2 of its 4 lines present)", truncated),
        ("SRR0000011", "mates out of sync: short_R2.fq.gz ends after 1999 records", short),
    ]:
        assert words in reason[run] and f"file {path}" in reason[run], (run, reason[run])
    assert "47 bases but 48 quality values" in reason["SRR0000009"]
    assert reason["SRR0000006"] == "md5 mismatch for SRR0000006_1.fastq.gz"
    assert "does not match" in reason["not-a-run"]
    assert sorted(p.name for p in (tmp_path / "bam").iterdir()) == [
        "SRR0000001.bam",
        "SRR0000008.bam",
    ]
    on_disk = pd.read_csv(out, sep="\t", keep_default_na=False)
    assert on_disk["status"].tolist() == table["status"].tolist()
    assert not any("\n" in r for r in on_disk["reason"])


@pytest.mark.tools
def test_low_alignment_rate_is_skipped(dm6: DM6, tmp_path: Path) -> None:
    """A run under the threshold is skipped with its rate, and the catalog records it so
    (``ingest.update_catalog`` reads the alignment table)."""
    from scatlas.ingest.catalog import Catalog
    from scatlas.ingest.catalog_update import update_catalog
    from scatlas.sheets import SAMPLE_COLUMNS, STUDY_COLUMNS

    f1, f2 = dm6.data / "sample2.tiny_R1.fastq.gz", dm6.data / "sample2.tiny_R2.fastq.gz"
    study = tmp_path / "studies" / "GSE49587"
    manifest = tmp_path / "fastq" / "GSE49587" / "manifest.tsv"
    manifest.parent.mkdir(parents=True)
    write_manifest(
        manifest,
        [{"run": "SRR948305", "sample": "GSM0000002", "files": f"{f1};{f2}", "status": "ok"}],
    )
    alignment = tmp_path / "align" / "GSE49587" / "alignment.tsv"
    table = align_study(
        manifest,
        dm6.index,
        tmp_path / "bam",
        alignment,
        threads=2,
        min_alignment_rate=0.995,
    )
    rec = table.iloc[0]
    assert rec["status"] == "skipped" and rec["bam"] == ""
    rate = rec["alignment_rate"]
    assert rec["reason"] == f"alignment rate {rate * 100:.1f}% < 99.5%"
    assert 0.98 < rate < 0.995
    assert list((tmp_path / "bam").iterdir()) == []

    row = dict.fromkeys(STUDY_COLUMNS, "")
    row.update(
        study="GSE49587",
        source="geo",
        title="t",
        organism="Drosophila melanogaster",
        kind="reads",
        n_samples="1",
        status="ok",
    )
    pd.DataFrame([row], columns=STUDY_COLUMNS).to_csv(
        tmp_path / "studies.tsv", sep="\t", index=False
    )
    study.mkdir(parents=True)
    sample = dict.fromkeys(SAMPLE_COLUMNS, "")
    sample.update(
        study="GSE49587",
        sample="GSM0000002",
        title="sample2",
        organism="Drosophila melanogaster",
        library_layout="PAIRED",
        technology="smartseq",
        run="SRR948305",
    )
    pd.DataFrame([sample], columns=SAMPLE_COLUMNS).to_csv(
        study / "samples.tsv", sep="\t", index=False
    )
    (study / "study.json").write_text(
        '{"study": "GSE49587", "source": "geo", "kind": "reads", "status": "ok", "reason": "r"}'
    )
    db = tmp_path / "catalog.sqlite"
    update_catalog({}, db, tmp_path / "studies.tsv", [study], [manifest], [alignment])
    with Catalog(db) as cat:
        (run,) = cat.rows("runs", run="SRR948305")
    assert run["status"] == "skipped" and run["reason"] == rec["reason"]
    assert run["alignment_rate"] == pytest.approx(rate)


def test_empty_manifest_gives_header_only(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.tsv", [])
    out = tmp_path / "a.tsv"
    table = align_study(manifest, tmp_path / "no-index", tmp_path / "bam", out)
    assert table.empty
    assert out.read_text().strip().split("\t") == ALIGNMENT_COLUMNS


@pytest.mark.tools
def test_align_run_single_end_and_errors(dm6: DM6, tmp_path: Path) -> None:
    fq = _subset(dm6.data / "sample3.tiny_R1.fastq.gz", tmp_path / "s_R1.fq.gz", 2000)
    log_path = tmp_path / "run.log"
    summary = align_run(dm6.index, [fq], tmp_path / "se.bam", threads=1, log_path=log_path)
    assert summary["paired"] is False and summary["total_reads"] == 2000
    printed = float(re.search(r"([\d.]+)% overall", log_path.read_text()).group(1))
    assert round(summary["alignment_rate"] * 100, 2) == printed
    with pytest.raises(InputError, match="1 or 2 FASTQ"):
        align_run(dm6.index, [fq, fq, fq], tmp_path / "x.bam")
    with pytest.raises(InputError, match="not found"):
        align_run(dm6.index, [tmp_path / "nope.fq"], tmp_path / "x.bam")
    with pytest.raises(ToolError) as err:
        align_run(tmp_path / "no-such-index", [fq], tmp_path / "x.bam")
    assert err.value.tool == "hisat2" and "Could not locate a HISAT2 index" in str(err.value)
    assert not (tmp_path / "x.bam").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.log", "s_R1.fq.gz", "se.bam"]


def test_mate_files() -> None:
    one, r1, r2 = Path("SRR1.fastq.gz"), Path("SRR1_1.fastq.gz"), Path("SRR1_2.fastq.gz")
    assert mate_files([one]) == [one] and mate_files([r1, r2]) == [r1, r2]
    # ENA's paired run with the orphan reads' file first: the mates, in order
    assert mate_files([one, r2, r1]) == [r1, r2]
    with pytest.raises(InputError, match="got 3"):
        mate_files([one, r1, Path("SRR1_3.fastq.gz")])
    with pytest.raises(InputError, match="got 0"):
        mate_files([])
