"""Barcoded (droplet) runs: read structure per chemistry, cell barcodes and cell calling.

A barcoded run holds many cells. Read 1 carries the cell barcode (CB) followed by the
unique molecular identifier (UMI); read 2 carries the cDNA. The chemistries scatlas knows
(lengths in bp, from the start of read 1; overridable in the config):

==========  ==========  ===  ==========================================
chemistry   barcode     UMI  read 2
==========  ==========  ===  ==========================================
10x_v2      16          10   sense strand (``-s 1``): 10x 3′ v2
10x_v3      16          12   sense strand: 10x 3′ v3 / v3.1
10x_5p_v2   16          10   antisense (``-s 2``): 10x 5′ v1 / v2
10x_5p_v3   16          12   antisense: 10x GEM-X 5′ v3
dropseq     12          8    sense strand
==========  ==========  ===  ==========================================

A sample sheet's ``technology`` is one of these, or ``10x`` / ``10x_5p`` when the record
names a 10x 3′ / 5′ kit but not its version: the run's reads then decide among the two
(:data:`FROM_READS`, ``scatlas.reads.detect``).

Read 2 goes to HISAT2 with the barcode and UMI in its name (``@{CB}_{UMI}_{n}``: HISAT2 and
featureCounts keep read names, so each alignment and each gene assignment still knows its
cell and molecule). Cells are then called from the reads per barcode:

* with a barcode whitelist, barcodes are corrected to the list (exact, else the one listed
  barcode at Hamming distance 1; ambiguous or unlisted barcodes are dropped) and, in
  ``auto`` cell calling, every listed barcode with at least ``min_reads`` reads is a cell;
* without one (or with cell calling ``knee``), cells are the barcodes above the inflection
  of the barcode-rank curve (:func:`knee_threshold`), and the remaining barcodes at
  Hamming distance 1 of exactly one cell are merged into it (sequencing errors in the
  barcode).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scatlas.compression import open_text
from scatlas.errors import InputError
from scatlas.reads.chemistry import chemistry_of
from scatlas.reads.fastq import first_read_length

log = logging.getLogger(__name__)

BARCODED_TECHNOLOGIES = ("10x_v2", "10x_v3", "10x_5p_v2", "10x_5p_v3", "dropseq")
#: sheet technologies whose chemistry the reads decide: the candidates
FROM_READS = {"10x": ("10x_v2", "10x_v3"), "10x_5p": ("10x_5p_v2", "10x_5p_v3")}
CELL_CALLING = ("auto", "knee", "whitelist")
_BASE_CODE = np.full(256, 4, dtype=np.uint64)
for _i, _b in enumerate(b"ACGT"):
    _BASE_CODE[_b] = _i
    _BASE_CODE[_b + 32] = _i  # lower case
_BITS = 3  # per base: A C G T = 0-3, N (anything else) = 4; 7 marks a masked position


@dataclass(frozen=True)
class Chemistry:
    """Where the cell barcode and the UMI sit in read 1, and how read 2 is stranded."""

    name: str
    barcode_length: int
    umi_length: int
    strandedness: int = 1
    whitelist: str | None = None

    @property
    def r1_length(self) -> int:
        return self.barcode_length + self.umi_length


DEFAULT_CHEMISTRIES: dict[str, Chemistry] = {
    "10x_v2": Chemistry("10x_v2", 16, 10),
    "10x_v3": Chemistry("10x_v3", 16, 12),
    "10x_5p_v2": Chemistry("10x_5p_v2", 16, 10, strandedness=2),
    "10x_5p_v3": Chemistry("10x_5p_v3", 16, 12, strandedness=2),
    "dropseq": Chemistry("dropseq", 12, 8),
}


def chemistries(config: Mapping | None = None) -> dict[str, Chemistry]:
    """The chemistries with the config's ``barcoded: chemistries:`` overrides applied."""
    out = dict(DEFAULT_CHEMISTRIES)
    given = ((config or {}).get("barcoded") or {}).get("chemistries") or {}
    for name, spec in given.items():
        if name not in out:
            raise InputError(
                f"unknown chemistry {name!r} (known: {', '.join(out)})", field="chemistries"
            )
        base = out[name]
        out[name] = Chemistry(
            name,
            int(spec.get("barcode_length", base.barcode_length)),
            int(spec.get("umi_length", base.umi_length)),
            int(spec.get("strandedness", base.strandedness)),
            spec.get("whitelist", base.whitelist) or None,
        )
        if not (0 < out[name].barcode_length <= 21 and 0 < out[name].umi_length <= 21):
            raise InputError(
                f"chemistry {name}: barcode and UMI must be 1-21 bp", field="chemistries"
            )
    return out


# -- which chemistry a sample's metadata names ---------------------------------------------

#: the chemistries a sample's text names (scatlas.reads.chemistry) that scatlas counts, and
#: the layout each is counted with (5′ v1 and v2 kits share one)
COUNTED = {
    "10x_3p_v2": "10x_v2",
    "10x_3p_v3": "10x_v3",
    "10x_5p_v1": "10x_5p_v2",
    "10x_5p_v2": "10x_5p_v2",
    "10x_5p_v3": "10x_5p_v3",
    "dropseq": "dropseq",
}


def chemistry_from_text(text: str) -> str | None:
    """The counted chemistry (:data:`COUNTED`) free text (title, characteristics, protocols)
    names unambiguously; None otherwise (other droplet protocols, a 10x run of unstated
    version: see :func:`scatlas.ingest.sheet_rows.technology_of`)."""
    return COUNTED.get(chemistry_of(text))


def barcode_and_cdna(files: Sequence[Path], chem: Chemistry) -> tuple[Path, Path]:
    """Which of a run's FASTQ files holds the barcode reads and which the cDNA.

    Two files: read 1 then read 2, unless the second has the shorter reads and they cover
    barcode + UMI (mates listed the other way round); the barcode read must cover barcode +
    UMI. Three or four (index reads included, as some ENA runs of 10x data have): by read
    length, the shortest file covering barcode + UMI, and the longest.
    """
    files = [Path(f) for f in files]
    if len(files) < 2:
        raise InputError(
            f"a {chem.name} run needs read 1 (barcode + UMI) and read 2 (cDNA); "
            f"got {len(files)} file(s)",
            path=str(files[0]) if files else None,
            field="files",
        )
    lengths = [first_read_length(f) for f in files]
    if len(files) == 2:
        if chem.r1_length <= lengths[1] < lengths[0]:
            files, lengths = files[::-1], lengths[::-1]
        r1, r2 = files
        if lengths[0] < chem.r1_length:
            raise InputError(
                f"read 1 is {lengths[0]} bp but {chem.name} needs {chem.r1_length} bp "
                f"(barcode {chem.barcode_length} + UMI {chem.umi_length})",
                path=str(r1),
                field="files",
            )
        return r1, r2
    covering = [k for k, n in enumerate(lengths) if n >= chem.r1_length]
    if len(covering) < 2:
        raise InputError(
            f"no barcode read of >= {chem.r1_length} bp among {len(files)} files "
            f"(read lengths {lengths})",
            path=str(files[0]),
            field="files",
        )
    r1 = min(covering, key=lambda k: (lengths[k], k))
    r2 = max(range(len(files)), key=lambda k: (lengths[k], -k))
    return files[r1], files[r2]


def tag_reads(
    r1: list[tuple[bytes, bytes, bytes]],
    r2: list[tuple[bytes, bytes, bytes]],
    chem: Chemistry,
    first: int,
) -> tuple[bytes, int]:
    """FASTQ text of the cDNA reads named ``@{CB}_{UMI}_{n}`` (n counts from ``first`` + 1);
    reads whose read 1 is shorter than barcode + UMI are left out. Returns (text, left out)."""
    cb, end = chem.barcode_length, chem.r1_length
    out = []
    short = 0
    for k, (a, b) in enumerate(zip(r1, r2, strict=True)):
        s = a[1]
        if len(s) < end:
            short += 1
            continue
        out.append(b"@%s_%s_%d\n%s\n+\n%s\n" % (s[:cb], s[cb:end], first + k + 1, b[1], b[2]))
    return b"".join(out), short


# -- barcodes as integers ----------------------------------------------------------------------


def encode(seqs: Sequence[str] | np.ndarray, length: int) -> np.ndarray:
    """Barcodes (strings or bytes of ``length`` bases) as uint64 codes, 3 bits per base."""
    arr = np.asarray(seqs, dtype=f"S{length}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.uint64)
    raw = np.frombuffer(arr.tobytes(), dtype=np.uint8).reshape(len(arr), length)
    codes = np.zeros(len(arr), dtype=np.uint64)
    for i in range(length):
        codes = (codes << np.uint64(_BITS)) | _BASE_CODE[raw[:, i]]
    return codes


def has_n(codes: np.ndarray, length: int) -> np.ndarray:
    """True where a code holds an N (or any base other than ACGT)."""
    out = np.zeros(len(codes), dtype=bool)
    for i in range(length):
        out |= ((codes >> np.uint64(_BITS * i)) & np.uint64(7)) == np.uint64(4)
    return out


def hamming1_match(queries: np.ndarray, targets: np.ndarray, length: int) -> np.ndarray:
    """For every query code, the index of the target equal to it, else of the only target at
    Hamming distance 1 (an N counts as a mismatch); -1 when there is none or several."""
    queries = np.asarray(queries, dtype=np.uint64)
    targets = np.asarray(targets, dtype=np.uint64)
    out = np.full(len(queries), -1, dtype=np.int64)
    if not len(queries) or not len(targets):
        return out
    order = np.argsort(targets, kind="stable")
    sorted_t = targets[order]
    pos = np.searchsorted(sorted_t, queries)
    exact = (pos < len(sorted_t)) & (sorted_t[np.minimum(pos, len(sorted_t) - 1)] == queries)
    out[exact] = order[pos[exact]]
    todo = np.flatnonzero(~exact)
    if not len(todo):
        return out
    q = queries[todo]
    n_hits = np.zeros(len(q), dtype=np.int64)
    hit = np.full(len(q), -1, dtype=np.int64)
    for i in range(length):
        mask = np.uint64(7) << np.uint64(_BITS * i)
        t_masked = targets | mask
        t_order = np.argsort(t_masked, kind="stable")
        t_sorted = t_masked[t_order]
        qk = q | mask
        lo = np.searchsorted(t_sorted, qk, side="left")
        hi = np.searchsorted(t_sorted, qk, side="right")
        n = hi - lo
        n_hits += n
        one = n == 1
        hit[one] = t_order[lo[one]]
    unique = n_hits == 1
    out[todo[unique]] = hit[unique]
    return out


def read_whitelist(path: str | os.PathLike, length: int) -> np.ndarray:
    """Barcodes of a whitelist file (one per line, first column, gzip or plain; a ``-1``
    style suffix is dropped), as sorted unique codes."""
    path = Path(path)
    if not path.is_file():
        raise InputError("barcode whitelist not found", path=str(path), field="whitelist")
    with open_text(path) as fh:
        seqs = [ln.split()[0].split("-")[0] for ln in fh if ln.strip()]
    bad = next((s for s in seqs if len(s) != length or not re.fullmatch(r"[ACGTN]+", s)), None)
    if bad is not None:
        raise InputError(
            f"whitelist barcode {bad!r} is not {length} bases of ACGTN",
            path=str(path),
            field="whitelist",
        )
    if not seqs:
        raise InputError("barcode whitelist is empty", path=str(path), field="whitelist")
    return np.unique(encode(seqs, length))


# -- cell calling ------------------------------------------------------------------------------


def knee_threshold(
    reads_per_barcode: np.ndarray, *, lower: int = 10, fit_from: int = 1, grid: int = 400
) -> int:
    """Reads per barcode at the inflection of the barcode-rank curve.

    The curve is log10(reads) against log10(rank) over the barcodes with at least
    ``fit_from`` reads (tied barcodes at their middle rank, as DropletUtils'
    ``barcodeRanks`` does). It is resampled on ``grid`` evenly spaced log-ranks and
    smoothed with a moving average (window 1/20 of the range); the inflection is where it
    falls most steeply, and the threshold is the read count there (rounded up), but at
    least ``lower``: barcodes with at least that many reads are cells. The curve reaches
    down into the empty droplets so that the step from cells to background is on it even
    when there are few cells. Returns ``lower`` when there are fewer than three distinct
    counts.
    """
    totals = np.asarray(reads_per_barcode, dtype=np.float64)
    totals = np.sort(totals[totals >= max(1, fit_from)])[::-1]
    values, first, counts = np.unique(-totals, return_index=True, return_counts=True)
    if len(values) < 3:
        return int(lower)
    mid_rank = first + (counts + 1) / 2.0  # 1-based middle rank of each tie group
    x, y = np.log10(mid_rank), np.log10(-values)
    xs = np.linspace(x[0], x[-1], grid)
    ys = np.interp(xs, x, y)
    w = max(3, grid // 20)
    kernel = np.ones(w) / w
    padded = np.concatenate([np.full(w, ys[0]), ys, np.full(w, ys[-1])])
    smooth = np.convolve(padded, kernel, mode="same")[w:-w]
    slope = np.gradient(smooth, xs)
    inner = slice(w // 2, grid - w // 2)  # the ends are flattened by the padding
    i = int(np.argmin(slope[inner])) + w // 2
    return max(int(lower), int(np.ceil(10 ** smooth[i])))


@dataclass
class CellCall:
    """The outcome of cell calling for one sample."""

    cells: pd.Index  # cell barcodes (strings), by decreasing reads
    corrected: pd.Series  # raw barcode -> corrected barcode ("" when dropped)
    reads: pd.Series  # corrected barcode -> reads
    method: str
    threshold: int


def call_cells(
    reads_per_barcode: pd.Series,
    chem: Chemistry,
    *,
    whitelist: np.ndarray | None = None,
    method: str = "auto",
    min_reads: int = 10,
) -> CellCall:
    """Correct barcodes and call cells (see the module docstring).

    ``reads_per_barcode``: raw barcode string -> reads. ``whitelist``: sorted codes
    (:func:`read_whitelist`). ``method``: ``auto`` (whitelist if given, else knee),
    ``knee`` or ``whitelist``. ``min_reads``: the fewest reads a cell can have (also the
    knee's lower bound).
    """
    if method not in CELL_CALLING:
        raise InputError(f"cell calling {method!r} is not one of {CELL_CALLING}", field="cells")
    if method == "whitelist" and whitelist is None:
        raise InputError("cell calling 'whitelist' needs a barcode whitelist", field="whitelist")
    length = chem.barcode_length
    raw = reads_per_barcode[reads_per_barcode > 0]
    raw = raw[raw.index.str.len() == length]
    codes = encode(list(raw.index), length)
    if whitelist is not None:
        hit = hamming1_match(codes, whitelist, length)
        keep = hit >= 0
        corrected_codes = np.where(keep, whitelist[np.maximum(hit, 0)], 0)
        decoded = decode(corrected_codes[keep], length)
        corrected = pd.Series("", index=raw.index, dtype=object)
        corrected[keep] = decoded
        reads = raw[keep].groupby(np.asarray(decoded)).sum().sort_values(ascending=False)
        log.info(
            "%d of %d barcodes (%d of %d reads) match the whitelist",
            int(keep.sum()),
            len(raw),
            int(raw[keep].sum()),
            int(raw.sum()),
        )
        if method in ("auto", "whitelist"):
            cells = reads.index[reads >= min_reads]
            return CellCall(pd.Index(cells), corrected, reads, "whitelist", int(min_reads))
    else:
        corrected = pd.Series(raw.index, index=raw.index, dtype=object)
        reads = raw.sort_values(ascending=False)
    threshold = knee_threshold(reads.to_numpy(), lower=min_reads)
    cells = reads.index[reads >= threshold]
    if whitelist is None and len(cells):
        # merge the barcodes one sequencing error away from exactly one cell into it
        others = corrected.index[~corrected.isin(set(cells))]
        hit = hamming1_match(encode(list(others), length), encode(list(cells), length), length)
        merged = hit >= 0
        corrected[others[merged]] = np.asarray(cells)[hit[merged]]
        reads = raw.groupby(corrected.to_numpy()).sum().sort_values(ascending=False)
        log.info("merged %d barcodes one mismatch away from a cell", int(merged.sum()))
    return CellCall(pd.Index(cells), corrected, reads, "knee", threshold)


def decode(codes: np.ndarray, length: int) -> list[str]:
    """Barcode strings of :func:`encode` codes."""
    letters = np.frombuffer(b"ACGTNNNN", dtype=np.uint8)
    codes = np.asarray(codes, dtype=np.uint64)
    out = np.empty((len(codes), length), dtype=np.uint8)
    for i in range(length):
        out[:, length - 1 - i] = letters[((codes >> np.uint64(_BITS * i)) & np.uint64(7))]
    return [row.tobytes().decode() for row in out]
