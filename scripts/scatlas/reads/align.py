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
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from scatlas.accessions import AccessionError, validate
from scatlas.errors import InputError, ScatlasError, ToolError
from scatlas.fileio import atomic_path, atomic_write_text
from scatlas.reads.barcodes import (
    BARCODED_TECHNOLOGIES,
    DEFAULT_CHEMISTRIES,
    Chemistry,
    barcode_and_cdna,
    tag_reads,
)
from scatlas.reads.fastq import format_records, read_mates
from scatlas.reads.readfeed import Feed, ReaderGone
from scatlas.settings import AlignSettings
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


def hisat2_binary(index_prefix: Path) -> str:
    """``hisat2-align-s``, or ``hisat2-align-l`` for a large index (``.ht2l`` files only).

    scatlas runs the aligner binary itself rather than the ``hisat2`` Perl wrapper: it
    feeds checked reads through named pipes (the wrapper refuses pipes and would read the
    first one to measure read lengths)."""
    prefix = str(index_prefix)
    large = Path(f"{prefix}.1.ht2l").is_file() and not Path(f"{prefix}.1.ht2").is_file()
    return which("hisat2-align-l" if large else "hisat2-align-s")


_MATE = re.compile(r"_([12])\.f(ast)?q(\.gz)?$")


def mate_files(fastqs: list[Path]) -> list[Path]:
    """The FASTQ files of a per-cell run, in mate order: one (single-end) or two (paired).

    ENA lists three files for some paired runs: ``{run}_1``, ``{run}_2`` and ``{run}`` with
    the reads whose mate was lost; the mates are aligned and the orphans left out.
    """
    if len(fastqs) in (1, 2):
        return fastqs
    mates = {m.group(1): f for f in fastqs if (m := _MATE.search(f.name))}
    if len(fastqs) == 3 and set(mates) == {"1", "2"}:
        orphans = [f.name for f in fastqs if f not in mates.values()]
        log.info("paired run with an unpaired-reads file: %s left out", ", ".join(orphans))
        return [mates["1"], mates["2"]]
    raise InputError(
        f"a run needs 1 or 2 FASTQ files (or _1, _2 and unpaired), got {len(fastqs)}: "
        + ", ".join(f.name for f in fastqs),
        path=str(fastqs[0]) if fastqs else None,
        field="files",
    )


def _plain(batches: list, first: int) -> list[bytes]:
    return [format_records(b) for b in batches]


def align_run(
    index_prefix: Path,
    fastqs: list[Path],
    out_bam: Path,
    *,
    threads: int = 1,
    log_path: Path | None = None,
    chemistry: Chemistry | None = None,
    barcode_counts: Path | None = None,
) -> dict:
    """Align one run with HISAT2 into an (unsorted, mates adjacent) BAM file.

    Per-cell runs: one FASTQ → single-end, two → paired (``-1``/``-2``). Barcoded runs
    (``chemistry`` given): the cDNA read is aligned single-end, named
    ``{CB}_{UMI}_{n}`` (:func:`scatlas.reads.barcodes.tag_reads`), and the reads per raw barcode
    are written to ``barcode_counts`` (TSV ``barcode, reads``, gzipped).

    The FASTQ files are read and checked by scatlas (:mod:`scatlas.reads.fastq`) and fed to
    HISAT2 through named pipes; its SAM goes into ``samtools view -1`` (fast compression:
    the BAM is temporary), written to a temporary name renamed to ``out_bam``. Returns
    :func:`parse_hisat2_summary` of HISAT2's summary (plus ``short_barcode_reads`` for
    barcoded runs). Bad input raises InputError naming the file and record; a failure of
    HISAT2 or samtools ToolError.
    """
    fastqs = [Path(f) for f in fastqs]
    if chemistry is None:
        fastqs = mate_files(fastqs)
    for fq in fastqs:
        if not fq.is_file():
            raise InputError("FASTQ file not found", path=str(fq))
    barcodes: Counter[bytes] = Counter()
    short = [0]
    if chemistry is not None:
        inputs = list(barcode_and_cdna(fastqs, chemistry))
        n_pipes = 1
        cb_len = chemistry.barcode_length

        def transform(batches: list, first: int) -> list[bytes]:
            r1, r2 = batches
            barcodes.update(rec[1][:cb_len] for rec in r1 if len(rec[1]) >= chemistry.r1_length)
            text, n_short = tag_reads(r1, r2, chemistry, first)
            short[0] += n_short
            return [text]
    else:
        inputs, n_pipes, transform = fastqs, len(fastqs), _plain
    out_bam = Path(out_bam)
    out_bam.parent.mkdir(parents=True, exist_ok=True)
    with (
        atomic_path(out_bam, suffix=".bam") as tmp_bam,
        tempfile.TemporaryDirectory(prefix=".align.", dir=out_bam.parent) as work,
    ):
        pipes = [Path(work) / f"reads_{k + 1}.fq" for k in range(n_pipes)]
        for pipe in pipes:
            os.mkfifo(pipe, 0o600)
        reads = ["-U", pipes[0]] if n_pipes == 1 else ["-1", pipes[0], "-2", pipes[1]]
        summary_file = Path(work) / "summary.txt"
        hisat_cmd = [
            hisat2_binary(index_prefix),
            "--wrapper",
            "basic-0",
            "-p",
            str(max(1, threads)),
            "-x",
            str(index_prefix),
            *map(str, reads),
            "--summary-file",
            str(summary_file),
        ]
        sam_cmd = [which("samtools"), "view", "-1", "-o", str(tmp_bam), "-"]
        hisat_err_path, sam_err_path = Path(work) / "hisat2.err", Path(work) / "samtools.err"
        with open(hisat_err_path, "wb") as h_err, open(sam_err_path, "wb") as s_err:
            hisat = subprocess.Popen(
                hisat_cmd, stdout=subprocess.PIPE, stderr=h_err, start_new_session=True
            )
            assert hisat.stdout is not None
            sam = subprocess.Popen(sam_cmd, stdin=hisat.stdout, stderr=s_err)
            hisat.stdout.close()  # samtools holds the only reader: HISAT2 sees SIGPIPE if it dies
            feed = Feed(read_mates(inputs), pipes, hisat, transform).start()
            try:
                hisat_rc = hisat.wait()
            finally:
                if hisat.poll() is None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(hisat.pid, signal.SIGTERM)
                    hisat.wait()
                feed.finish()
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
                f"--- reads fed: {feed.n_records} from {', '.join(map(str, inputs))}"
                f"{f' (error: {feed.error})' if feed.error else ''}\n"
                f"--- hisat2 (exit {hisat_rc})\n{hisat_err}\n--- summary\n{summary}\n"
                f"--- samtools (exit {sam_rc})\n{sam_err}\n",
            )
        if isinstance(feed.error, ScatlasError) and not isinstance(feed.error, ReaderGone):
            raise feed.error
        if hisat_rc != 0:
            raise ToolError("hisat2", hisat_rc, tail(hisat_err))
        if feed.error is not None:
            raise ToolError("hisat2", 0, f"{feed.error}; stderr: {tail(hisat_err)}")
        if sam_rc != 0:
            raise ToolError("samtools", sam_rc, tail(sam_err))
        try:
            result = parse_hisat2_summary(summary or hisat_err)
        except InputError as exc:
            raise ToolError("hisat2", 0, f"{exc}; stderr: {tail(hisat_err)}") from exc
        if result["total_reads"] + short[0] != feed.n_records:
            raise ToolError(
                "hisat2",
                0,
                f"HISAT2 reports {result['total_reads']} reads but {feed.n_records} were fed",
            )
    if chemistry is not None:
        result["short_barcode_reads"] = short[0]
        if barcode_counts is not None:
            write_barcode_counts(barcodes, barcode_counts)
    return result


def write_barcode_counts(counts: Counter[bytes] | dict, path: Path) -> Path:
    """Reads per raw barcode, most first, as gzipped TSV ``barcode, reads`` (atomic)."""
    table = pd.DataFrame(
        {
            "barcode": [
                b.decode("ascii", "replace") if isinstance(b, bytes) else b for b in counts
            ],
            "reads": np.fromiter(counts.values(), dtype=np.int64, count=len(counts)),
        }
    ).sort_values(["reads", "barcode"], ascending=[False, True], kind="stable")
    with atomic_path(path, suffix=".tsv.gz") as tmp:
        table.to_csv(tmp, sep="\t", index=False, compression={"method": "gzip", "mtime": 0})
    return Path(path)


def read_barcode_counts(path: Path) -> pd.Series:
    """:func:`write_barcode_counts`' table as a Series barcode -> reads."""
    try:
        table = pd.read_csv(path, sep="\t", dtype={"barcode": str, "reads": np.int64})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read barcode counts: {exc}", path=str(path)) from exc
    return pd.Series(table["reads"].to_numpy(), index=table["barcode"].to_numpy(), name="reads")


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
    threads: int = AlignSettings.threads,
    min_alignment_rate: float = AlignSettings.min_alignment_rate,
    base_dir: Path | None = None,
    log_dir: Path | None = None,
    technologies: Mapping[str, str] | None = None,
    chemistries: Mapping[str, Chemistry] | None = None,
) -> pd.DataFrame:
    """Align every ``ok`` run of a study's download manifest; write ``alignment_tsv``.

    Each run gets ``bam_dir/{run}.bam``. Columns of the table: ``run, sample, total_reads,
    aligned_reads, alignment_rate, status, reason, bam``; ``status`` is ``ok``, ``skipped``
    (alignment rate below ``min_alignment_rate``: its BAM is removed) or ``failed`` (a
    download that failed, a bad FASTQ, or HISAT2/samtools rejecting the run: the reason says
    which). One run failing never stops the others. FASTQ paths relative in the manifest
    are taken relative to ``base_dir`` (default: the working directory). ``log_dir``, when
    given, receives one HISAT2 log per run.

    ``technologies`` maps runs to their ``technology`` (samples.tsv; see
    :func:`run_technologies`): a barcoded run (``10x_v2``, ``10x_v3``, ``dropseq``) is
    aligned with its chemistry from ``chemistries`` (default
    :data:`scatlas.reads.barcodes.DEFAULT_CHEMISTRIES`) and gets ``bam_dir/{run}.barcodes.tsv.gz``
    (reads per raw barcode); its total/aligned reads are cDNA reads. Manifest rows without
    a run (author matrices) are not runs and are left out of the table.
    """
    chems = dict(chemistries or DEFAULT_CHEMISTRIES)
    technologies = technologies or {}
    manifest = read_manifest(Path(manifest_tsv))
    bam_dir = Path(bam_dir)
    bam_dir.mkdir(parents=True, exist_ok=True)
    todo = int((manifest["status"] == "ok").sum())
    rows: list[dict] = []
    done = 0
    for rec in manifest.to_dict("records"):
        row = {c: "" for c in ALIGNMENT_COLUMNS}
        row.update(run=rec["run"], sample=rec["sample"])
        if not rec["run"] and not rec["invalid"]:
            log.info(
                "manifest row of sample %r has no run (a matrix file): not aligned", rec["sample"]
            )
            continue
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
        barcode_counts = bam_dir / f"{run}.barcodes.tsv.gz"
        fastqs = [_resolve(f, base_dir) for f in rec["files"].split(";") if f.strip()]
        tech = technologies.get(run, "")
        try:
            chem = None
            if tech in BARCODED_TECHNOLOGIES:
                if tech not in chems:
                    raise InputError(f"no chemistry configured for {tech}", field="technology")
                chem = chems[tech]
            summary = align_run(
                index_prefix,
                fastqs,
                bam,
                threads=threads,
                log_path=(Path(log_dir) / f"{run}.log") if log_dir else None,
                chemistry=chem,
                barcode_counts=barcode_counts if chem else None,
            )
        except ScatlasError as exc:
            for path in (bam, barcode_counts):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
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
            barcode_counts.unlink(missing_ok=True)
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


def run_technologies(samples_tsv: Path) -> dict[str, str]:
    """``run -> technology`` from a study's ``samples.tsv`` (rows with a run); empty when
    the sheet has no ``technology`` column (every run is then a per-cell run)."""
    try:
        df = pd.read_csv(samples_tsv, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return {}
    if "run" not in df.columns:
        raise InputError("samples sheet lacks column 'run'", path=str(samples_tsv), field="run")
    if "technology" not in df.columns:
        return {}
    df = df[df["run"] != ""]
    return dict(zip(df["run"], df["technology"], strict=True))


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
