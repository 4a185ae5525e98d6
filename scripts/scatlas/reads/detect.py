"""Which barcoded chemistry a run's reads show, when its record does not say (a 10x run of
unstated kit version), read from the first reads of the run as Cell Ranger and STARsolo do:

1. **read 1's length** (the median of the first reads): a chemistry fits when its barcode +
   UMI fit in it (Drop-seq 20 bp, 10x v2 26 bp, 10x v3 28 bp);
2. **the barcode whitelist hit rate**, for the fitting chemistries with a whitelist
   configured (``barcoded.chemistries.<name>.whitelist``): the share of read-1 barcodes on
   the list; the best rate of at least ``min_hit_rate`` decides;
3. without whitelists, **where the UMI ends**: the two bases of read 1 right after a
   chemistry's UMI are T in most reads when the chemistry is that one (3′ beads: barcode,
   UMI, then poly(dT); 5′: the template-switch oligo TTTCTTATATGGG follows the UMI), and
   random when they are the next chemistry's UMI. The
   shortest fitting chemistry whose following bases are T-rich wins; a read 1 that ends
   exactly with one chemistry's UMI and is not T-rich after any shorter one is that
   chemistry. Anything else is undecided and says why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scatlas.errors import InputError
from scatlas.reads.barcodes import Chemistry, encode, has_n, read_whitelist
from scatlas.reads.fastq import FastqReader

#: the share of T among the bases after a chemistry's UMI that marks its poly(dT); random
#: UMI bases hold about 0.25
POLY_T_SHARE = 0.6
#: bases after the UMI read for the poly(dT) test: 2, the least by which two chemistries'
#: UMIs end apart (10x v2 and v3), so the test never reads into the next chemistry's poly(dT)
POLY_T_BASES = 2


@dataclass(frozen=True)
class Detection:
    """The chemistry the reads show, the read-1 file, and the evidence in words."""

    chemistry: str
    barcode_read: Path
    evidence: str


def first_sequences(path: str | os.PathLike, n: int) -> list[bytes]:
    """The sequences of the first ``n`` reads of a FASTQ file (checked as they are read)."""
    with FastqReader(path) as reader:
        return [rec[1] for rec in reader.batch(n)]


def t_share(seqs: Sequence[bytes], start: int, stop: int) -> float:
    """The share of T among bases ``start:stop`` of the reads long enough to have them."""
    window = [s[start:stop] for s in seqs if len(s) >= stop]
    if not window or stop <= start:
        return 0.0
    return sum(w.upper().count(b"T") for w in window) / (len(window) * (stop - start))


def hit_rate(seqs: Sequence[bytes], chem: Chemistry, whitelist: np.ndarray) -> float:
    """The share of reads whose first ``barcode_length`` bases are on the whitelist."""
    n = chem.barcode_length
    prefixes = [s[:n].decode("ascii", "replace").upper() for s in seqs if len(s) >= n]
    if not prefixes:
        return 0.0
    codes = encode(prefixes, n)
    codes = codes[~has_n(codes, n)]
    hits = np.isin(codes, whitelist)
    return float(hits.sum()) / len(prefixes)


def _barcode_file(files: Sequence[Path], n: int) -> tuple[Path, list[bytes], int]:
    """The read-1 file (the shortest reads), its first sequences and median length."""
    if len(files) < 2:
        raise InputError(
            f"a barcoded run needs read 1 (barcode + UMI) and read 2; got {len(files)} file(s)",
            path=str(files[0]) if files else None,
            field="files",
        )
    reads = {f: first_sequences(f, n) for f in files}
    medians = {
        f: int(np.median([len(s) for s in seqs])) if seqs else 0 for f, seqs in reads.items()
    }
    usable = [f for f in files if medians[f] >= 12]  # index reads (8-10 bp) are not read 1
    if not usable:
        raise InputError(
            f"no read of 12 bp or more among {len(files)} files (read lengths "
            f"{[medians[f] for f in files]})",
            path=str(files[0]),
            field="files",
        )
    r1 = min(usable, key=lambda f: (medians[f], files.index(f)))
    return r1, reads[r1], medians[r1]


def detect_chemistry(
    files: Sequence[str | os.PathLike],
    chemistries: Mapping[str, Chemistry],
    *,
    candidates: Sequence[str] | None = None,
    n_reads: int = 20_000,
    min_hit_rate: float = 0.5,
) -> Detection:
    """The chemistry among ``candidates`` (default: all of ``chemistries``) that a run's
    first ``n_reads`` reads show; InputError naming the file and the evidence when the
    reads fit none, or several alike."""
    paths = [Path(f) for f in files]
    r1, seqs, length = _barcode_file(paths, n_reads)
    names = list(candidates) if candidates is not None else list(chemistries)
    fits = sorted(
        (chemistries[c] for c in names if chemistries[c].r1_length <= length),
        key=lambda c: c.r1_length,
    )
    if not fits:
        need = ", ".join(f"{c} {chemistries[c].r1_length} bp" for c in names)
        raise InputError(
            f"read 1 is {length} bp, shorter than barcode + UMI of every candidate ({need})",
            path=str(r1),
            field="files",
        )
    listed = [c for c in fits if c.whitelist]
    if listed:
        return _by_whitelist(r1, seqs, listed, length, min_hit_rate)
    return _by_poly_t(r1, seqs, fits, length)


def _by_whitelist(
    r1: Path, seqs: list[bytes], listed: list[Chemistry], length: int, min_hit_rate: float
) -> Detection:
    rates = {
        c.name: hit_rate(seqs, c, read_whitelist(str(c.whitelist), c.barcode_length))
        for c in listed
    }
    best = max(rates, key=lambda k: rates[k])
    said = ", ".join(f"{k} {v:.1%}" for k, v in rates.items())
    if rates[best] < min_hit_rate:
        raise InputError(
            f"read-1 barcodes match no whitelist well enough (hit rates {said}; "
            f"at least {min_hit_rate:.0%} needed)",
            path=str(r1),
            field="whitelist",
        )
    return Detection(best, r1, f"read 1 {length} bp; whitelist hit rates {said}")


def _by_poly_t(r1: Path, seqs: list[bytes], fits: list[Chemistry], length: int) -> Detection:
    shares = {
        c.name: t_share(seqs, c.r1_length, min(length, c.r1_length + POLY_T_BASES))
        for c in fits
        if c.r1_length < length
    }
    said = ", ".join(f"after {k}'s UMI {v:.0%} T" for k, v in shares.items())
    for c in fits:  # shortest first: poly(dT) starts right after the true UMI
        if shares.get(c.name, 0.0) >= POLY_T_SHARE:
            return Detection(
                c.name,
                r1,
                f"read 1 {length} bp; T-rich bases follow {c.name}'s UMI ({said})",
            )
    exact = [c for c in fits if c.r1_length == length]
    if len(exact) == 1:
        shorter = f"; {said}" if said else ""
        return Detection(
            exact[0].name, r1, f"read 1 {length} bp = barcode + UMI of {exact[0].name}{shorter}"
        )
    raise InputError(
        f"read 1 is {length} bp: fits {', '.join(c.name for c in fits)} and no poly(dT) tells "
        f"them apart ({said or 'no bases after the UMIs'}); configure the chemistries' "
        "whitelists (barcoded.chemistries.<name>.whitelist)",
        path=str(r1),
        field="files",
    )
