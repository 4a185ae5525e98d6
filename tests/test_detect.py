"""Which barcoded chemistry a run's reads show: real Drop-seq reads, and read-1 layouts of
10x 3′ v2/v3 and 5′ kits built base by base (barcode, UMI, then the bead's poly(dT) or the
template-switch oligo, as the kits' oligos are)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from scatlas.errors import InputError
from scatlas.reads.barcodes import FROM_READS, chemistries
from scatlas.reads.detect import detect_chemistry

TSO = "TTTCTTATATGGG"  # 10x 5′ template-switch oligo, read after the UMI


def _random(rng: np.random.Generator, n: int) -> str:
    return "".join("ACGT"[v] for v in rng.integers(0, 4, n))


def _fastq(path: Path, seqs: list[str]) -> Path:
    with gzip.open(path, "wt") as fh:
        for i, s in enumerate(seqs):
            fh.write(f"@r{i}\n{s}\n+\n{'I' * len(s)}\n")
    return path


def _run(
    tmp_path: Path, umi: int, tail: str, length: int, n: int = 2000, cells: list[str] | None = None
):
    """Read 1 = barcode 16 + UMI + tail, cut to ``length``; read 2 = 90 random bases."""
    rng = np.random.default_rng(umi * 100 + length)
    cells = cells or [_random(rng, 16) for _ in range(50)]
    r1 = [(cells[i % len(cells)] + _random(rng, umi) + tail * 30)[:length] for i in range(n)]
    r2 = [_random(rng, 90) for _ in range(n)]
    return [_fastq(tmp_path / "R1.fastq.gz", r1), _fastq(tmp_path / "R2.fastq.gz", r2)], cells


def test_real_dropseq_reads(shared_data):
    d = shared_data / "reads" / "dropseq-mouse"
    files = [d / "sample1_R1.fastq.gz", d / "sample1_R2.fastq.gz"]
    found = detect_chemistry(files, chemistries())
    assert found.chemistry == "dropseq" and found.barcode_read == files[0]
    assert "read 1 20 bp" in found.evidence
    with pytest.raises(InputError, match="read 1 is 20 bp, shorter than") as err:
        detect_chemistry(files, chemistries(), candidates=FROM_READS["10x"])
    assert "sample1_R1.fastq.gz" in str(err.value)


@pytest.mark.parametrize(
    "umi, tail, length, family, expected",
    [
        (10, "T", 26, "10x", "10x_v2"),  # read 1 ends with the v2 UMI
        (10, "T", 28, "10x", "10x_v2"),  # 28 cycles of a v2 kit: poly(dT) after the UMI
        (10, "T", 150, "10x", "10x_v2"),
        (12, "T", 28, "10x", "10x_v3"),  # bases 27-28 are UMI, not poly(dT)
        (12, "T", 98, "10x", "10x_v3"),
        (10, TSO, 26, "10x_5p", "10x_5p_v2"),
        (10, TSO, 28, "10x_5p", "10x_5p_v2"),
        (12, TSO, 28, "10x_5p", "10x_5p_v3"),
    ],
)
def test_10x_layouts(tmp_path, umi, tail, length, family, expected):
    files, _ = _run(tmp_path, umi, tail, length)
    found = detect_chemistry(files[::-1], chemistries(), candidates=FROM_READS[family])
    assert found.chemistry == expected, found.evidence
    assert found.barcode_read == files[0]  # the shorter reads, whatever the file order


def test_undecided_reads_say_why(tmp_path):
    # read 1 of 30 random bases: no poly(dT) after either UMI, and no exact fit
    rng = np.random.default_rng(1)
    files = [
        _fastq(tmp_path / "R1.fastq.gz", [_random(rng, 30) for _ in range(500)]),
        _fastq(tmp_path / "R2.fastq.gz", [_random(rng, 90) for _ in range(500)]),
    ]
    with pytest.raises(InputError, match="fits 10x_v2, 10x_v3 and no poly") as err:
        detect_chemistry(files, chemistries(), candidates=FROM_READS["10x"])
    assert "whitelist" in str(err.value)
    with pytest.raises(InputError, match="needs read 1"):
        detect_chemistry(files[:1], chemistries())


def test_whitelists_decide_when_configured(tmp_path):
    files, cells = _run(tmp_path, 12, "T", 28)
    v3 = tmp_path / "v3.txt"
    v3.write_text("\n".join(cells) + "\n")
    v2 = tmp_path / "v2.txt.gz"
    rng = np.random.default_rng(5)
    with gzip.open(v2, "wt") as fh:
        fh.write("\n".join(_random(rng, 16) for _ in range(200)) + "\n")
    chems = chemistries(
        {
            "barcoded": {
                "chemistries": {"10x_v2": {"whitelist": str(v2)}, "10x_v3": {"whitelist": str(v3)}}
            }
        }
    )
    found = detect_chemistry(files, chems, candidates=FROM_READS["10x"])
    assert found.chemistry == "10x_v3" and "10x_v3 100.0%" in found.evidence
    chems = chemistries({"barcoded": {"chemistries": {"10x_v3": {"whitelist": str(v2)}}}})
    with pytest.raises(InputError, match="match no whitelist well enough"):
        detect_chemistry(files, chems, candidates=FROM_READS["10x"])


def test_index_reads_are_not_read_1(tmp_path):
    files, _ = _run(tmp_path, 12, "T", 28)
    rng = np.random.default_rng(2)
    index = _fastq(tmp_path / "I1.fastq.gz", [_random(rng, 8) for _ in range(2000)])
    found = detect_chemistry([index, *files], chemistries(), candidates=FROM_READS["10x"])
    assert (found.chemistry, found.barcode_read) == ("10x_v3", files[0])
