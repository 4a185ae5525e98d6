"""featureCounts over a study's BAMs, reading its tables, and RPKM (checked against edgeR)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from dm6_pipeline import DM6, RUNS, dm6_pipeline, edger_rpkm

from scatlas.errors import InputError, ToolError
from scatlas.reads.align import align_run
from scatlas.reads.quant import (
    count_study,
    featurecounts_args,
    layouts_from_samples,
    read_featurecounts,
    rpkm,
    run_featurecounts,
)
from scatlas.reads.reference import load_gene_table


@pytest.fixture(scope="session")
def dm6(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> DM6:
    return dm6_pipeline(shared_data, tmp_path_factory)


def _direct_featurecounts(bams: list[Path], gtf: Path, out: Path, extra: list[str]) -> pd.DataFrame:
    cmd = [
        "featureCounts",
        "-a",
        str(gtf),
        "-o",
        str(out),
        "-t",
        "exon",
        "-g",
        "gene_id",
        "-s",
        "0",
        "-T",
        "1",
        *extra,
        *map(str, bams),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    table = pd.read_csv(out, sep="\t", comment="#", index_col=0)
    return table[[str(b) for b in bams]]


def test_featurecounts_args() -> None:
    assert featurecounts_args(paired=True, threads=4, strandedness=2) == [
        "-t",
        "exon",
        "-g",
        "gene_id",
        "-s",
        "2",
        "-T",
        "4",
        "-p",
        "--countReadPairs",
        "-B",
        "-C",
    ]
    assert "-p" not in featurecounts_args(paired=False, threads=1, strandedness=0)
    with pytest.raises(InputError):
        featurecounts_args(paired=False, threads=1, strandedness=3)


@pytest.mark.tools
def test_count_study_equals_direct_featurecounts(dm6: DM6, tmp_path: Path) -> None:
    counts, summary = read_featurecounts(dm6.counts_tsv)
    assert list(counts.columns) == RUNS and counts.index.name == "gene_id"
    bams = [dm6.bam_dir / f"{r}.bam" for r in RUNS]
    direct = _direct_featurecounts(
        bams, dm6.gtf, tmp_path / "direct.tsv", ["-p", "--countReadPairs", "-B", "-C"]
    )
    np.testing.assert_array_equal(counts.to_numpy(), direct.to_numpy())
    assert list(counts.index) == list(direct.index)
    # Real fragments counted: 86-97% of the pairs are assigned to a gene.
    assigned = summary.loc["Assigned"] / summary.sum(axis=0)
    assert ((assigned > 0.85) & (assigned < 0.98)).all(), assigned.to_dict()
    assert (counts.sum(axis=0) == summary.loc["Assigned"]).all()
    # featureCounts' gene length is the same union of exons as the gene table's.
    genes = load_gene_table(dm6.gtf)
    pd.testing.assert_series_equal(
        counts.attrs["lengths"].sort_index(), genes["length"], check_names=False
    )


@pytest.mark.tools
@pytest.mark.r
def test_rpkm_matches_edger_on_dm6(dm6: DM6) -> None:
    counts, _ = read_featurecounts(dm6.counts_tsv)
    lengths = counts.attrs["lengths"].to_numpy(dtype=float)
    ours = rpkm(counts.to_numpy(), lengths)
    theirs = edger_rpkm(counts.to_numpy(dtype=float), lengths)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=0)
    assert ours.max() > 1000  # real expression, not an all-zero table
    # Cells × genes, sparse, gives the same values.
    cells = rpkm(sp.csr_matrix(counts.to_numpy().T), lengths, axis=1)
    assert sp.isspmatrix_csr(cells)
    np.testing.assert_allclose(cells.toarray(), theirs.T, rtol=1e-6, atol=0)


@pytest.mark.r
def test_rpkm_matches_edger_random() -> None:
    rng = np.random.default_rng(7)
    counts = rng.poisson(rng.gamma(0.5, 20, size=(300, 1)), size=(300, 6)).astype(float)
    lengths = rng.integers(200, 20_000, size=300).astype(float)
    np.testing.assert_allclose(
        rpkm(counts, lengths), edger_rpkm(counts, lengths), rtol=1e-6, atol=0
    )


def test_rpkm_definition_and_orientation() -> None:
    counts = np.array([[10, 0], [30, 5], [60, 5]])  # genes × samples
    lengths = np.array([1000, 2000, 500])
    expected = np.array(
        [
            [10e9 / (100 * 1000), 0.0],
            [30e9 / (100 * 2000), 5e9 / (10 * 2000)],
            [60e9 / (100 * 500), 5e9 / (10 * 500)],
        ]
    )
    np.testing.assert_allclose(rpkm(counts, lengths), expected)
    np.testing.assert_allclose(rpkm(counts.T, lengths, axis=1), expected.T)
    np.testing.assert_allclose(rpkm(sp.csc_matrix(counts), lengths).toarray(), expected)
    # Explicit library sizes (N counted elsewhere, e.g. before genes were dropped).
    np.testing.assert_allclose(rpkm(counts, lengths, lib_sizes=[200, 20]), expected / [2, 2])
    # A sample without counts is all zeros rather than NaN.
    zero = rpkm(np.array([[0, 1], [0, 1]]), np.array([100, 100]))
    assert np.all(zero[:, 0] == 0) and np.all(np.isfinite(zero))
    with pytest.raises(ValueError):
        rpkm(counts, np.array([1000, 0, 500]))
    with pytest.raises(ValueError):
        rpkm(counts, np.array([1000, 500]))


def test_empty_bam_list(tmp_path: Path) -> None:
    out = run_featurecounts([], tmp_path / "no.gtf", tmp_path / "c" / "counts.tsv", paired=True)
    counts, summary = read_featurecounts(out)
    assert counts.shape == (0, 0) and summary.shape[1] == 0
    assert Path(f"{out}.summary").is_file()


@pytest.mark.tools
def test_mixed_layouts_and_wrong_layout(dm6: DM6, tmp_path: Path) -> None:
    single_bam = tmp_path / "bam" / "SRR0000009.bam"
    single_bam.parent.mkdir()
    align_run(dm6.index, [dm6.data / "sample4.tiny_R1.fastq.gz"], single_bam, threads=2)
    paired_bam = dm6.bam_dir / "SRR948304.bam"
    alignment = tmp_path / "alignment.tsv"
    pd.DataFrame(
        {
            "run": ["SRR948304", "SRR0000009", "SRR0000010"],
            "sample": ["GSM0000001", "GSM0000009", "GSM0000010"],
            "total_reads": [10100, 10100, 0],
            "aligned_reads": [1, 1, 0],
            "alignment_rate": [1, 1, 0],
            "status": ["ok", "ok", "failed"],
            "reason": ["", "", "bad"],
            "bam": [str(paired_bam), str(single_bam), ""],
        }
    ).to_csv(alignment, sep="\t", index=False)
    samples = tmp_path / "samples.tsv"
    pd.DataFrame(
        {
            "sample": ["GSM0000001", "GSM0000009", "GSM0000010"],
            "run": ["SRR948304", "SRR0000009", "SRR0000010"],
            "library_layout": ["PAIRED", "SINGLE", "single"],
        }
    ).to_csv(samples, sep="\t", index=False)
    layout = layouts_from_samples(samples)
    assert layout == {"SRR948304": "PAIRED", "SRR0000009": "SINGLE", "SRR0000010": "SINGLE"}
    out = count_study(alignment, dm6.gtf, tmp_path / "counts.tsv", layout=layout)
    counts, summary = read_featurecounts(out)
    assert list(counts.columns) == ["SRR948304", "SRR0000009"]
    assert list(summary.columns) == ["SRR948304", "SRR0000009"]
    paired = _direct_featurecounts(
        [paired_bam], dm6.gtf, tmp_path / "p.tsv", ["-p", "--countReadPairs", "-B", "-C"]
    )
    single = _direct_featurecounts([single_bam], dm6.gtf, tmp_path / "s.tsv", [])
    np.testing.assert_array_equal(counts["SRR948304"].to_numpy(), paired.iloc[:, 0].to_numpy())
    np.testing.assert_array_equal(counts["SRR0000009"].to_numpy(), single.iloc[:, 0].to_numpy())
    assert counts["SRR0000009"].sum() > 8000
    # The rule's way: layouts from samples.tsv, BAMs found in the BAM folder by run id.
    (tmp_path / "bam" / "SRR948304.bam").symlink_to(paired_bam)
    no_bam = tmp_path / "alignment_nobam.tsv"
    pd.read_csv(alignment, sep="\t").drop(columns="bam").to_csv(no_bam, sep="\t", index=False)
    again = count_study(
        no_bam, dm6.gtf, tmp_path / "again.tsv", samples_tsv=samples, bam_dir=tmp_path / "bam"
    )
    pd.testing.assert_frame_equal(read_featurecounts(again)[0], counts)
    # featureCounts refuses paired-end BAMs counted as single-end.
    with pytest.raises(ToolError, match="Paired-end reads were detected"):
        count_study(alignment, dm6.gtf, tmp_path / "bad.tsv", layout="SINGLE")
    assert not (tmp_path / "bad.tsv").exists()
    with pytest.raises(InputError, match="no library layout"):
        count_study(alignment, dm6.gtf, tmp_path / "bad.tsv", layout={"SRR948304": "PAIRED"})
