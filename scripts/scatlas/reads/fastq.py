"""Reading FASTQ files in batches of records, checked as they are read.

HISAT2 lets several kinds of damage pass silently (a sequence shorter than its qualities,
a record cut off at the end of a file, mates whose names disagree), so scatlas reads every
FASTQ itself, checks it, and hands HISAT2 the checked records through a pipe: one pass,
and bad input is named (file, record number) instead of turning into wrong counts.

Checks: gzip integrity (by content, not by name), the four-line layout (``@`` header,
``+`` separator), sequence and quality of equal non-zero length, no record cut off at the
end, and for mates the same read names in the same order (``/1``, ``/2`` suffixes and
comments ignored) and the same number of records.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from scatlas.compression import open_binary
from scatlas.errors import InputError

BATCH_RECORDS = 20_000
_READ_BYTES = 1 << 20


class FastqReader:
    """Batches of validated records (``(header, sequence, quality)`` byte strings, without
    line ends) from one FASTQ file, plain or gzipped."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError("FASTQ file not found", path=str(self.path))
        try:
            self._fh: IO[bytes] | None = open_binary(self.path)
        except OSError as exc:
            raise InputError(f"cannot read FASTQ: {exc}", path=str(self.path)) from exc
        self._lines: list[bytes] = []
        self._tail = b""
        self._eof = False
        self.n_records = 0

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> FastqReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fill(self, n_lines: int) -> None:
        while len(self._lines) < n_lines and not self._eof:
            assert self._fh is not None
            try:
                block = self._fh.read(_READ_BYTES)
            except (EOFError, zlib.error, OSError) as exc:
                raise InputError(
                    f"corrupt or truncated gzip data ({exc}; {self.n_records} records "
                    "checked before the damage was met)",
                    path=str(self.path),
                ) from exc
            if not block:
                self._eof = True
                if self._tail:
                    self._lines.append(self._tail)
                    self._tail = b""
                break
            parts = (self._tail + block).split(b"\n")
            self._tail = parts.pop()
            self._lines.extend(parts)

    def batch(self, n: int = BATCH_RECORDS) -> list[tuple[bytes, bytes, bytes]]:
        """The next ``n`` records (fewer at the end of the file, none after it)."""
        self._fill(4 * n)
        take = min(len(self._lines), 4 * n)
        lines, self._lines = self._lines[:take], self._lines[take:]
        if lines and not self._lines and self._eof:
            while lines and not lines[-1].strip() and len(lines) % 4:  # blank lines at the end
                lines.pop()
        if self.n_records == 0 and lines and lines[0][:1] != b"@":
            raise InputError(
                "not a FASTQ file (the first line does not start with '@')",
                path=str(self.path),
                field="record",
            )
        if len(lines) % 4:
            raise InputError(
                f"record {self.n_records + len(lines) // 4 + 1} is cut off "
                f"({len(lines) % 4} of its 4 lines present)",
                path=str(self.path),
            )
        heads, seqs, seps, quals = ([ln.rstrip(b"\r") for ln in lines[k::4]] for k in range(4))
        bad = next(
            (
                i
                for i, (h, s, p, q) in enumerate(zip(heads, seqs, seps, quals, strict=True))
                if h[:1] != b"@" or p[:1] != b"+" or len(s) != len(q) or not s
            ),
            None,
        )
        if bad is not None:
            self._raise_bad(bad, heads[bad], seqs[bad], seps[bad], quals[bad])
        self.n_records += len(heads)
        return list(zip(heads, seqs, quals, strict=True))

    def _raise_bad(self, i: int, head: bytes, seq: bytes, sep: bytes, qual: bytes) -> None:
        rec = self.n_records + i + 1
        if head[:1] != b"@":
            what = "does not start with '@'" if rec > 1 else "is not FASTQ (no '@' header)"
        elif sep[:1] != b"+":
            what = "has no '+' separator line"
        elif not seq:
            what = "has an empty sequence"
        else:
            what = f"has {len(seq)} bases but {len(qual)} quality values"
        name = head[:60].decode("utf-8", "replace")
        raise InputError(f"record {rec} ({name}) {what}", path=str(self.path), field="record")

    def __iter__(self) -> Iterator[list[tuple[bytes, bytes, bytes]]]:
        while True:
            records = self.batch()
            if not records:
                return
            yield records


def read_name(header: bytes) -> bytes:
    """The read's name: the header without ``@``, comment, or a ``/1``/``/2`` mate suffix."""
    name = header[1:].split(None, 1)[0] if len(header) > 1 else b""
    return name[:-2] if name[-2:] in (b"/1", b"/2", b"/3") else name


def check_mates(
    batches: list[list[tuple[bytes, bytes, bytes]]], paths: list[Path], first: int
) -> None:
    """Raise InputError when the mates' batches differ in read names or length."""
    base = batches[0]
    for k in range(1, len(batches)):
        for i, (a, b) in enumerate(zip(base, batches[k], strict=False)):
            if a[0] != b[0] and read_name(a[0]) != read_name(b[0]):
                raise InputError(
                    f"mates out of sync at record {first + i + 1}: "
                    f"{read_name(a[0]).decode('utf-8', 'replace')!r} in {paths[0].name} but "
                    f"{read_name(b[0]).decode('utf-8', 'replace')!r} in {paths[k].name}",
                    path=str(paths[k]),
                    field="record",
                )
    sizes = [len(b) for b in batches]
    if len(set(sizes)) > 1:
        short = min(range(len(sizes)), key=lambda k: sizes[k])
        raise InputError(
            f"mates out of sync: {paths[short].name} ends after {first + sizes[short]} records "
            f"while {', '.join(p.name for k, p in enumerate(paths) if k != short)} goes on",
            path=str(paths[short]),
            field="record",
        )


def read_mates(
    paths: list[str | os.PathLike], n: int = BATCH_RECORDS
) -> Iterator[list[list[tuple[bytes, bytes, bytes]]]]:
    """Batches of records read in lockstep from the files of one run (one file per mate),
    checked to be in sync. An empty file is an error."""
    readers = [FastqReader(p) for p in paths]
    try:
        first = 0
        while True:
            batches = [r.batch(n) for r in readers]
            if first == 0:
                for r, b in zip(readers, batches, strict=True):
                    if not b:
                        raise InputError("FASTQ file is empty", path=str(r.path))
            check_mates(batches, [r.path for r in readers], first)
            if not batches[0]:
                return
            yield batches
            first += len(batches[0])
    finally:
        for r in readers:
            r.close()


def format_records(records: list[tuple[bytes, bytes, bytes]]) -> bytes:
    """Records back as FASTQ text (``+`` lines without the repeated name)."""
    return b"".join(b"%s\n%s\n+\n%s\n" % rec for rec in records)


def first_read_length(path: str | os.PathLike) -> int:
    """Length of the first read of a FASTQ file (0 when it is empty)."""
    with FastqReader(path) as reader:
        records = reader.batch(1)
    return len(records[0][1]) if records else 0
