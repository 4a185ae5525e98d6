"""Aligning runs with HISAT2 into BAM files, and the per-study alignment table.

A run whose reads align below the threshold (scQuery: 40%) is skipped; a run HISAT2 rejects
is recorded as failed with the tool's message. Neither stops the other runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

from scatlas.accessions import AccessionError, validate
from scatlas.compression import open_binary
from scatlas.errors import InputError, ScatlasError, ToolError
from scatlas.fileio import atomic_path, atomic_write_text
from scatlas.sheets import ALIGNMENT_COLUMNS, MANIFEST_COLUMNS, row_errors
from scatlas.tools import tail, which

log = logging.getLogger(__name__)


_INT = r"(\d+)"
_PCT = r"\(\s*[\d.]+%\)"


def _num(pattern: str, text: str) -> int | None:
    m = re.search(pattern, text, flags=re.MULTILINE)
    return int(m.group(1)) if m else None


def _parse_classic(text: str) -> dict[str, int]:
    """Counts of the classic summary, read line by line (the same phrases recur per section)."""
    counts: dict[str, int] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if m := re.match(rf"{_INT} reads; of these:", line):
            counts["total"] = int(m.group(1))
        elif m := re.match(rf"{_INT} {_PCT} were paired; of these:", line):
            counts["pairs"], section = int(m.group(1)), "pairs"
        elif m := re.match(rf"{_INT} {_PCT} were unpaired; of these:", line):
            counts["unpaired"], section = int(m.group(1)), "unpaired"
        elif m := re.match(rf"{_INT} mates make up the pairs; of these:", line):
            counts["mates"], section = int(m.group(1)), "mates"
        elif m := re.match(rf"{_INT} {_PCT} aligned concordantly (exactly 1 time|>1 times)", line):
            counts["concordant"] = counts.get("concordant", 0) + int(m.group(1))
        elif m := re.match(rf"{_INT} {_PCT} aligned discordantly 1 time", line):
            counts["discordant"] = int(m.group(1))
        elif (m := re.match(rf"{_INT} {_PCT} aligned (exactly 1 time|>1 times)", line)) and section:
            key = f"{section}_aligned"
            counts[key] = counts.get(key, 0) + int(m.group(1))
    return counts


def parse_hisat2_summary(text: str) -> dict:
    """Parse HISAT2's alignment summary (classic or ``--new-summary``; single or paired).

    Returns ``paired`` (bool), ``total_reads`` (fragments: read pairs plus unpaired reads),
    ``aligned_reads`` (pairs aligned concordantly or discordantly, plus aligned unpaired
    reads), ``total_mates``/``aligned_mates`` (individual reads, as HISAT2 counts them for
    its rate) and ``alignment_rate`` = aligned_mates / total_mates as a fraction, which is
    exactly HISAT2's "overall alignment rate" (HISAT2 prints it rounded to 0.01%).
    Raises InputError when the text holds no summary.
    """
    printed = re.search(r"([\d.]+)% overall alignment rate|Overall alignment rate: ([\d.]+)%", text)
    if printed is None:
        raise InputError("no HISAT2 alignment summary found", field="overall alignment rate")
    printed_rate = float(printed.group(1) or printed.group(2)) / 100

    if "HISAT2 summary stats:" in text:
        pairs = _num(rf"^\s*Total pairs: {_INT}", text) or 0
        pairs_unaligned = (
            _num(rf"^\s*Aligned concordantly or discordantly 0 time: {_INT}", text) or 0
        )
        singles = _num(rf"^\s*Total (?:unpaired )?reads: {_INT}", text) or 0
        singles_aligned = (_num(rf"^\s*Aligned 1 time: {_INT}", text) or 0) + (
            _num(rf"^\s*Aligned >1 times: {_INT}", text) or 0
        )
        pairs_aligned = pairs - pairs_unaligned
        # "Total unpaired reads" holds the mates of the unaligned pairs plus true singles.
        true_singles = singles - 2 * pairs_unaligned if pairs else singles
        total_mates = 2 * pairs + true_singles
        aligned_mates = 2 * pairs_aligned + singles_aligned
        aligned_fragments = pairs_aligned + (singles_aligned if not pairs else 0)
        fragments = pairs + true_singles
    else:
        c = _parse_classic(text)
        if "total" not in c:
            raise InputError("HISAT2 summary lacks the 'reads; of these' line", field="total reads")
        pairs = c.get("pairs", 0)
        unpaired = c.get("unpaired", 0)
        pairs_aligned = c.get("concordant", 0) + c.get("discordant", 0)
        fragments = pairs + unpaired
        total_mates = 2 * pairs + unpaired
        aligned_mates = 2 * pairs_aligned + c.get("mates_aligned", 0) + c.get("unpaired_aligned", 0)
        aligned_fragments = pairs_aligned + c.get("unpaired_aligned", 0)
    rate = aligned_mates / total_mates if total_mates else printed_rate
    if abs(rate - printed_rate) > 0.00006:
        raise InputError(
            f"HISAT2 summary counts give {rate:.4%} but it prints {printed_rate:.2%}",
            field="overall alignment rate",
        )
    return {
        "paired": pairs > 0,
        "total_reads": int(fragments),
        "aligned_reads": int(aligned_fragments),
        "total_mates": int(total_mates),
        "aligned_mates": int(aligned_mates),
        "alignment_rate": float(rate),
    }


def check_fastq(path: Path) -> None:
    """Refuse a missing or empty FASTQ (plain or gzipped) before HISAT2 sees it."""
    path = Path(path)
    if not path.is_file():
        raise InputError("FASTQ file not found", path=str(path))
    try:
        with open_binary(path) as fh:
            head = fh.read(1)
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read FASTQ: {exc}", path=str(path)) from exc
    if not head:
        raise InputError("FASTQ file is empty", path=str(path))
    if head != b"@":
        raise InputError("not a FASTQ file (does not start with '@')", path=str(path))


def align_run(
    index_prefix: Path,
    fastqs: list[Path],
    out_bam: Path,
    *,
    threads: int = 1,
    log_path: Path | None = None,
) -> dict:
    """Align one run with HISAT2 into an (unsorted, mates adjacent) BAM file.

    One FASTQ → single-end (``-U``); two → paired (``-1 R1 -2 R2``). HISAT2's SAM goes
    straight into ``samtools view -b``, written to a temporary name renamed to ``out_bam``.
    Returns :func:`parse_hisat2_summary` of HISAT2's summary. A failure of either program
    (or a gzip error HISAT2 lets pass) raises ToolError; a missing/empty FASTQ InputError.
    """
    fastqs = [Path(f) for f in fastqs]
    if len(fastqs) not in (1, 2):
        raise InputError(f"a run needs 1 or 2 FASTQ files, got {len(fastqs)}", field="files")
    for fq in fastqs:
        check_fastq(fq)
    reads = ["-U", fastqs[0]] if len(fastqs) == 1 else ["-1", fastqs[0], "-2", fastqs[1]]
    out_bam = Path(out_bam)
    with (
        atomic_path(out_bam, suffix=".bam") as tmp_bam,
        tempfile.TemporaryDirectory(prefix=".align.", dir=out_bam.parent) as work,
    ):
        summary_file = Path(work) / "summary.txt"
        hisat_cmd = [
            which("hisat2"),
            # wrapper options go before "--": its named pipes (/tmp/<pid>.unp by default) go
            # in our own folder, as stale ones left in /tmp by killed runs collide when a PID
            # is reused
            "--temp-directory",
            str(work),
            "--",
            "-p",
            str(max(1, threads)),
            "-x",
            str(index_prefix),
            *map(str, reads),
            "--summary-file",
            str(summary_file),
        ]
        sam_cmd = [which("samtools"), "view", "-b", "-o", str(tmp_bam), "-"]
        hisat_err_path, sam_err_path = Path(work) / "hisat2.err", Path(work) / "samtools.err"
        with open(hisat_err_path, "wb") as h_err, open(sam_err_path, "wb") as s_err:
            # HISAT2 in its own process group: its perl wrapper forks helpers (decompressors)
            # that can outlive it and keep the pipe open, so they are ended with it.
            hisat = subprocess.Popen(
                hisat_cmd, stdout=subprocess.PIPE, stderr=h_err, start_new_session=True
            )
            assert hisat.stdout is not None
            sam = subprocess.Popen(sam_cmd, stdin=hisat.stdout, stderr=s_err)
            hisat.stdout.close()  # samtools holds the only reader: HISAT2 sees SIGPIPE if it dies
            hisat_rc = hisat.wait()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(hisat.pid, signal.SIGTERM)
            try:
                sam_rc = sam.wait(timeout=None if hisat_rc == 0 else 30)
            except subprocess.TimeoutExpired:
                sam.kill()
                sam_rc = sam.wait()
        hisat_err = hisat_err_path.read_text(errors="replace")
        sam_err = sam_err_path.read_text(errors="replace")
        summary = summary_file.read_text(errors="replace") if summary_file.exists() else ""
        if log_path is not None:
            atomic_write_text(
                log_path,
                f"$ {' '.join(hisat_cmd)} | {' '.join(sam_cmd)}\n"
                f"--- hisat2 (exit {hisat_rc})\n{hisat_err}\n--- summary\n{summary}\n"
                f"--- samtools (exit {sam_rc})\n{sam_err}\n",
            )
        if hisat_rc != 0:
            raise ToolError("hisat2", hisat_rc, tail(hisat_err))
        if sam_rc != 0:
            raise ToolError("samtools", sam_rc, tail(sam_err))
        # HISAT2 decompresses through gzip and ignores its complaints about a truncated file.
        if re.search(r"gzip: .*(unexpected end of file|invalid|crc error)", hisat_err, re.I):
            raise ToolError("hisat2", 0, tail(hisat_err))
        try:
            return parse_hisat2_summary(summary or hisat_err)
        except InputError as exc:
            raise ToolError("hisat2", 0, f"{exc}; stderr: {tail(hisat_err)}") from exc


def read_manifest(path: Path) -> pd.DataFrame:
    """The download manifest (``run, sample, files, status, reason, bytes, md5``) as strings."""
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame(columns=MANIFEST_COLUMNS)
    missing = [c for c in ("run", "sample", "files", "status", "reason") if c not in df.columns]
    if missing:
        raise InputError(f"manifest lacks column(s) {missing}", path=str(path), field=missing[0])
    # rows that break the schema fail alone (their runs are recorded as failed)
    invalid = row_errors(df, "manifest")
    df["invalid"] = [
        f"manifest {path} row {i + 1}: {invalid[i]}" if i in invalid else "" for i in range(len(df))
    ]
    return df


def _resolve(path: str, base_dir: Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or base_dir is None else base_dir / p


def _format_rate(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def align_study(
    manifest_tsv: Path,
    index_prefix: Path,
    bam_dir: Path,
    alignment_tsv: Path,
    *,
    threads: int = 1,
    min_alignment_rate: float = 0.40,
    base_dir: Path | None = None,
    log_dir: Path | None = None,
) -> pd.DataFrame:
    """Align every ``ok`` run of a study's download manifest; write ``alignment_tsv``.

    Each run gets ``bam_dir/{run}.bam``. Columns of the table: ``run, sample, total_reads,
    aligned_reads, alignment_rate, status, reason, bam``; ``status`` is ``ok``, ``skipped``
    (alignment rate below ``min_alignment_rate``: its BAM is removed) or ``failed`` (a
    download that failed, a bad FASTQ, or HISAT2/samtools rejecting the run: the reason says
    which). One run failing never stops the others. FASTQ paths relative in the manifest
    are taken relative to ``base_dir`` (default: the working directory). ``log_dir``, when
    given, receives one HISAT2 log per run.
    """
    manifest = read_manifest(Path(manifest_tsv))
    bam_dir = Path(bam_dir)
    bam_dir.mkdir(parents=True, exist_ok=True)
    todo = int((manifest["status"] == "ok").sum())
    rows: list[dict] = []
    done = 0
    for rec in manifest.to_dict("records"):
        row = {c: "" for c in ALIGNMENT_COLUMNS}
        row.update(run=rec["run"], sample=rec["sample"])
        if rec["invalid"]:
            row.update(status="failed", reason=rec["invalid"])
            rows.append(row)
            log.warning("%s", rec["invalid"])
            continue
        if rec["status"] != "ok":
            row.update(status="failed", reason=rec["reason"] or f"download status {rec['status']}")
            rows.append(row)
            continue
        done += 1
        try:
            run = validate(rec["run"], "run", context=f"manifest {manifest_tsv}")
        except AccessionError as exc:
            row.update(status="failed", reason=str(exc))
            rows.append(row)
            log.warning("run %r: %s", rec["run"], exc)
            continue
        bam = bam_dir / f"{run}.bam"
        fastqs = [_resolve(f, base_dir) for f in rec["files"].split(";") if f.strip()]
        try:
            summary = align_run(
                index_prefix,
                fastqs,
                bam,
                threads=threads,
                log_path=(Path(log_dir) / f"{run}.log") if log_dir else None,
            )
        except ScatlasError as exc:
            with contextlib.suppress(FileNotFoundError):
                bam.unlink()
            row.update(status="failed", reason=str(exc).replace("\n", " ").replace("\t", " "))
            rows.append(row)
            log.warning("run %s failed: %s", run, row["reason"])
            log.info("aligned %d/%d runs", done, todo)
            continue
        rate = summary["alignment_rate"]
        row.update(
            total_reads=summary["total_reads"],
            aligned_reads=summary["aligned_reads"],
            alignment_rate=round(rate, 6),
        )
        if rate < min_alignment_rate:
            bam.unlink()
            row.update(
                status="skipped",
                reason=f"alignment rate {_format_rate(rate)} < {min_alignment_rate * 100:g}%",
            )
            log.warning("run %s skipped: %s", run, row["reason"])
        else:
            row.update(status="ok", bam=str(bam))
        rows.append(row)
        log.info("aligned %d/%d runs (%s: %s)", done, todo, run, _format_rate(rate))
    table = pd.DataFrame(rows, columns=ALIGNMENT_COLUMNS)
    with atomic_path(alignment_tsv, suffix=".tsv") as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    n_ok = int((table["status"] == "ok").sum())
    log.info("%s: %d of %d runs aligned ok", alignment_tsv, n_ok, len(table))
    return table


def read_alignment_table(path: Path) -> pd.DataFrame:
    """Read ``alignment.tsv`` (all columns as strings; numbers parsed where present)."""
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame(columns=ALIGNMENT_COLUMNS)
    missing = [c for c in ("run", "sample", "status") if c not in df.columns]
    if missing:
        raise InputError(
            f"alignment table lacks column(s) {missing}", path=str(path), field=missing[0]
        )
    return df
