"""FASTQ reading and checking: batches, damaged records, mates in sync."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from scatlas.errors import InputError
from scatlas.reads.fastq import (
    FastqReader,
    first_read_length,
    format_records,
    read_mates,
    read_name,
)


def _fastq(n: int, mate: int = 1, prefix: str = "r") -> str:
    return "".join(f"@{prefix}{i} {mate}:N:0:ACGT\nACGTN\n+\nIIII#\n" for i in range(1, n + 1))


def test_batches_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "a.fq.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(_fastq(25))
    with FastqReader(path) as reader:
        batches = [reader.batch(10) for _ in range(4)]
    assert [len(b) for b in batches] == [10, 10, 5, 0]
    assert batches[0][0] == (b"@r1 1:N:0:ACGT", b"ACGTN", b"IIII#")
    text = format_records(batches[0][:2])
    assert text == b"@r1 1:N:0:ACGT\nACGTN\n+\nIIII#\n@r2 1:N:0:ACGT\nACGTN\n+\nIIII#\n"
    assert first_read_length(path) == 5


def test_windows_line_ends_and_trailing_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "crlf.fq"
    path.write_bytes(_fastq(3).replace("\n", "\r\n").encode() + b"\r\n\n")
    with FastqReader(path) as reader:
        records = reader.batch(10)
    assert len(records) == 3 and records[2] == (b"@r3 1:N:0:ACGT", b"ACGTN", b"IIII#")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("@r1\nACGT\n+\nIII\n", "record 1 (@r1) has 4 bases but 3 quality values"),
        ("@r1\nACGT\n+\nIIII\n@r2\nACGT\n", "record 2 is cut off (2 of its 4 lines present)"),
        ("@r1\nACGT\n-\nIIII\n", "has no '+' separator line"),
        (">r1\nACGT\n", "not a FASTQ file"),
        ("@r1\nACGT\n+\nIIII\nr2\nACGT\n+\nIIII\n", "record 2 (r2) does not start with '@'"),
        ("@r1\n\n+\n\n", "has an empty sequence"),
    ],
)
def test_damaged_records_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.fq"
    path.write_text(text)
    with pytest.raises(InputError) as err, FastqReader(path) as reader:
        reader.batch(10)
    assert message in str(err.value) and str(path) in str(err.value)


def test_gzip_damage_named(tmp_path: Path) -> None:
    good = gzip.compress(_fastq(2000).encode(), mtime=0)
    cut = tmp_path / "cut.fq.gz"
    cut.write_bytes(good[: len(good) // 2])
    flipped = tmp_path / "crc.fq.gz"
    flipped.write_bytes(good[:-8] + bytes([good[-8] ^ 1]) + good[-7:])  # CRC no longer matches
    for path in (cut, flipped):
        with pytest.raises(InputError, match="corrupt or truncated gzip data") as err:
            for _ in FastqReader(path):
                pass
        assert str(path) in str(err.value)


def test_mates_in_sync(tmp_path: Path) -> None:
    r1, r2 = tmp_path / "r1.fq", tmp_path / "r2.fq"
    r1.write_text(_fastq(30, 1))
    r2.write_text(_fastq(30, 2))
    batches = list(read_mates([r1, r2], n=8))
    assert [len(b[0]) for b in batches] == [8, 8, 8, 6]
    assert read_name(b"@SRR1.7/2 extra") == b"SRR1.7" == read_name(b"@SRR1.7/1")
    other = tmp_path / "other.fq"
    other.write_text(_fastq(30, 2, prefix="x"))
    with pytest.raises(InputError, match="mates out of sync at record 1: 'r1' in r1.fq but 'x1'"):
        list(read_mates([r1, other]))
    short = tmp_path / "short.fq"
    short.write_text(_fastq(29, 2))
    with pytest.raises(InputError, match="short.fq ends after 29 records"):
        list(read_mates([r1, short], n=8))
    empty = tmp_path / "empty.fq"
    empty.write_text("")
    with pytest.raises(InputError, match="FASTQ file is empty"):
        list(read_mates([empty]))
    with pytest.raises(InputError, match="not found"):
        list(read_mates([tmp_path / "missing.fq"]))
