"""Barcoded runs: chemistries, barcode codes and matching, the knee, cell calling — on the
real Drop-seq reads of dropSeqPipe's test data where it matters."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scatlas.errors import InputError
from scatlas.reads.barcodes import (
    DEFAULT_CHEMISTRIES,
    Chemistry,
    barcode_and_cdna,
    call_cells,
    chemistries,
    chemistry_from_text,
    decode,
    encode,
    hamming1_match,
    has_n,
    knee_threshold,
    read_whitelist,
    tag_reads,
)
from scatlas.reads.fastq import FastqReader, read_mates

DROPSEQ = DEFAULT_CHEMISTRIES["dropseq"]


@pytest.fixture(scope="module")
def dropseq(shared_data: Path) -> Path:
    path = shared_data / "reads" / "dropseq-mouse"
    if not (path / "sample1_R1.fastq.gz").is_file():
        pytest.skip(f"{path} is not present")
    return path


def _reads_per_barcode(path: Path, length: int) -> pd.Series:
    counts: Counter[str] = Counter()
    with FastqReader(path) as reader:
        for batch in reader:
            counts.update(rec[1][:length].decode() for rec in batch)
    return pd.Series(counts)


def test_chemistry_from_text() -> None:
    assert chemistry_from_text("Chromium Single Cell 3' Reagent Kit v3 (10x Genomics)") == "10x_v3"
    assert chemistry_from_text("10x Genomics Chromium, 3' v2 chemistry") == "10x_v2"
    assert chemistry_from_text("library construction: 10X v3.1") == "10x_v3"
    assert chemistry_from_text("Drop-seq (Macosko et al. 2015)") == "dropseq"
    assert chemistry_from_text("Dropseq libraries") == "dropseq"
    # 5' kits are counted from read 2 on the antisense strand; v1 and v2 share a layout
    assert chemistry_from_text("Chromium Single Cell 5' v2 with V(D)J") == "10x_5p_v2"
    assert chemistry_from_text("Chromium Single Cell 5' Library & Gel Bead Kit v1") == "10x_5p_v2"
    assert chemistry_from_text("Chromium GEM-X Single Cell 5' v3") == "10x_5p_v3"
    # not named unambiguously (the reads or the authors' matrix decide), or not counted
    assert chemistry_from_text("10x Genomics Chromium") is None
    assert chemistry_from_text("inDrop v3") is None
    assert chemistry_from_text("Smart-seq2 v3 protocol") is None
    assert chemistry_from_text("10x v2 and v3 libraries") is None


def test_chemistries_from_config(tmp_path: Path) -> None:
    chems = chemistries(
        {"barcoded": {"chemistries": {"dropseq": {"umi_length": 9, "whitelist": "w.txt"}}}}
    )
    assert chems["dropseq"] == Chemistry("dropseq", 12, 9, 1, "w.txt")
    assert chems["10x_v3"].r1_length == 28 and chems["10x_v2"].r1_length == 26
    with pytest.raises(InputError, match="unknown chemistry"):
        chemistries({"barcoded": {"chemistries": {"celseq": {}}}})
    with pytest.raises(InputError, match="1-21 bp"):
        chemistries({"barcoded": {"chemistries": {"10x_v3": {"barcode_length": 22}}}})


def test_encode_decode_and_n() -> None:
    seqs = ["ACGTACGTACGT", "NNNNACGTACGT", "TTTTTTTTTTTT"]
    codes = encode(seqs, 12)
    assert decode(codes, 12) == seqs
    assert has_n(codes, 12).tolist() == [False, True, False]
    assert len(set(codes.tolist())) == 3
    assert encode([b"acgt"], 4) == encode(["ACGT"], 4)


def test_hamming1_match() -> None:
    targets = encode(["AAAAAA", "CCCCCC", "AAAAAT"], 6)
    queries = encode(["AAAAAA", "CCCCCA", "AAAAAG", "GGGGGG", "NCCCCC", "CCAACC"], 6)
    # exact; one mismatch from one target; one mismatch from two targets (ambiguous);
    # none; an N counts as the mismatch; two mismatches
    assert hamming1_match(queries, targets, 6).tolist() == [0, 1, -1, -1, 1, -1]
    assert hamming1_match(queries[:0], targets, 6).tolist() == []


def test_knee_separates_cells_from_empty_droplets() -> None:
    rng = np.random.default_rng(3)
    cells = np.rint(np.exp(rng.normal(np.log(2000), 0.4, size=150)))
    empty = 1 + rng.geometric(0.15, size=5000)
    threshold = knee_threshold(np.concatenate([cells, empty]), lower=10)
    assert empty.max() < threshold <= cells.min()
    # the lower bound wins when the curve has no step above it
    assert knee_threshold(np.array([5, 4, 3, 2, 1]), lower=50) == 50


def test_dropseq_reads_tagged(dropseq: Path) -> None:
    r1, r2 = dropseq / "sample1_R1.fastq.gz", dropseq / "sample1_R2.fastq.gz"
    assert barcode_and_cdna([r1, r2], DROPSEQ) == (r1, r2)
    assert barcode_and_cdna([r2, r1], DROPSEQ) == (r1, r2)  # mates given the other way
    n = 0
    for r1_batch, r2_batch in read_mates([r1, r2]):
        text, short = tag_reads(r1_batch, r2_batch, DROPSEQ, n)
        assert short == 0
        lines = text.split(b"\n")
        first = lines[0].decode()
        cb, umi, k = first[1:].split("_")
        assert (cb, umi) == (r1_batch[0][1][:12].decode(), r1_batch[0][1][12:20].decode())
        assert int(k) == n + 1 and lines[1] == r2_batch[0][1] and lines[3] == r2_batch[0][2]
        n += len(r1_batch)
    assert n == 20_000
    with pytest.raises(InputError, match="read 1 is 20 bp but 10x_v3 needs 28"):
        barcode_and_cdna([r1, r1], DEFAULT_CHEMISTRIES["10x_v3"])
    with pytest.raises(InputError, match="needs read 1"):
        barcode_and_cdna([r2], DROPSEQ)


@pytest.mark.parametrize(("sample", "low", "high"), [("sample1", 60, 130), ("sample2", 80, 160)])
def test_knee_on_real_dropseq_barcodes(dropseq: Path, sample: str, low: int, high: int) -> None:
    reads = _reads_per_barcode(dropseq / f"{sample}_R1.fastq.gz", 12)
    assert reads.sum() == 20_000 and len(reads) > 4000  # mostly barcodes of empty beads
    call = call_cells(reads, DROPSEQ, min_reads=10)
    assert call.method == "knee" and low <= len(call.cells) <= high
    ranked = call.reads.sort_values(ascending=False).to_numpy()
    n = len(call.cells)
    assert ranked[:n].min() >= call.threshold > ranked[n]
    assert ranked[:n].sum() > 0.4 * reads.sum()  # cells hold a large share of the reads

    def slope(a: int, b: int) -> float:  # of log10(reads) against log10(rank)
        return float(np.log10(ranked[b - 1] / ranked[a - 1]) / np.log10(b / a))

    # the cut sits on the steep fall of the barcode-rank curve (slope < -2 in log-log),
    # more than twice as steep as among the cells or among the empty beads
    at_cut = slope(int(n / 1.5), int(n * 1.5))
    assert at_cut < -2 and at_cut < 2 * slope(n // 4, n // 2) and at_cut < 2 * slope(2 * n, 4 * n)
    # barcodes one error away from a cell were merged into it
    raw_top = reads.sort_values(ascending=False)
    assert call.reads.iloc[0] >= raw_top.iloc[0]
    merged = call.corrected[call.corrected != call.corrected.index]
    assert len(merged) > 0 and merged.isin(set(call.cells)).all()
    assert all(
        sum(a != b for a, b in zip(raw, cell, strict=True)) == 1 for raw, cell in merged.items()
    )


def test_whitelist_correction_and_calling(tmp_path: Path) -> None:
    chem = Chemistry("dropseq", 12, 8)
    listed = ["AAAAAAAAAAAA", "CCCCCCCCCCCC", "GGGGGGGGGGGG"]
    wl = tmp_path / "whitelist.txt"
    wl.write_text("\n".join(f"{b}-1" for b in listed) + "\n")
    whitelist = read_whitelist(wl, 12)
    reads = pd.Series(
        {
            "AAAAAAAAAAAA": 500,
            "AAAAAAAAAAAT": 20,  # corrected to the first
            "CCCCCCCCCCCC": 300,
            "GGGGGGGGGGGG": 5,  # listed, too few reads to be a cell
            "TTTTTTTTTTTT": 900,  # not listed: dropped
        }
    )
    call = call_cells(reads, chem, whitelist=whitelist, min_reads=10)
    assert call.method == "whitelist"
    assert list(call.cells) == ["AAAAAAAAAAAA", "CCCCCCCCCCCC"]
    assert call.reads["AAAAAAAAAAAA"] == 520
    assert call.corrected["TTTTTTTTTTTT"] == "" and call.corrected["AAAAAAAAAAAT"] == listed[0]
    with pytest.raises(InputError, match="needs a barcode whitelist"):
        call_cells(reads, chem, method="whitelist")
    bad = tmp_path / "bad.txt"
    bad.write_text("ACGT\n")
    with pytest.raises(InputError, match="is not 12 bases"):
        read_whitelist(bad, 12)
