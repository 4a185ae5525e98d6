"""Aligning runs with HISAT2 into BAM files, and the per-study alignment table.

A run whose reads align below the threshold (scQuery: 40%) is skipped; a run HISAT2 rejects
is recorded as failed with the tool's message. Neither stops the other runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
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
    FROM_READS,
    Chemistry,
    barcode_and_cdna,
    tag_reads,
)
from scatlas.reads.detect import detect_chemistry
from scatlas.reads.fastq import format_records, read_mates
from scatlas.reads.readfeed import Feed, ReaderGone
from scatlas.settings import AlignSettings
from scatlas.sheets import ALIGNMENT_COLUMNS, MANIFEST_COLUMNS, row_errors
from scatlas.tools import die_with_parent, tail, which

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


class _ReadSource:
    """What is fed to HISAT2 for one run: the input files, the number of pipes and the
    transform of each batch; for barcoded runs it also counts reads per raw barcode."""

    def __init__(self, fastqs: list[Path], chemistry: Chemistry | None):
        self.chemistry = chemistry
        self.barcodes: Counter[bytes] = Counter()
        self.short = 0
        files = mate_files(fastqs) if chemistry is None else fastqs
        for fq in files:
            if not fq.is_file():
                raise InputError("FASTQ file not found", path=str(fq))
        if chemistry is None:
            self.inputs: list[Path] = files
            self.n_pipes = len(files)
        else:
            self.inputs = list(barcode_and_cdna(files, chemistry))
            self.n_pipes = 1

    def transform(self, batches: list, first: int) -> list[bytes]:
        chem = self.chemistry
        if chem is None:
            return [format_records(b) for b in batches]
        r1, r2 = batches
        cb_len = chem.barcode_length
        self.barcodes.update(rec[1][:cb_len] for rec in r1 if len(rec[1]) >= chem.r1_length)
        text, n_short = tag_reads(r1, r2, chem, first)
        self.short += n_short
        return [text]


class _Pipeline:
    """HISAT2 reading named pipes in ``work``, its SAM piped into ``samtools view -1``."""

    def __init__(
        self, index_prefix: Path, source: _ReadSource, work: Path, bam: Path, threads: int
    ):
        self.source = source
        self.pipes = [work / f"reads_{k + 1}.fq" for k in range(source.n_pipes)]
        reads = (
            ["-U", self.pipes[0]]
            if len(self.pipes) == 1
            else ["-1", self.pipes[0], "-2", self.pipes[1]]
        )
        self.summary_file = work / "summary.txt"
        self.hisat_cmd = [
            hisat2_binary(index_prefix),
            "--wrapper",
            "basic-0",
            "-p",
            str(max(1, threads)),
            "-x",
            str(index_prefix),
            *map(str, reads),
            "--summary-file",
            str(self.summary_file),
        ]
        self.sam_cmd = [which("samtools"), "view", "-1", "-o", str(bam), "-"]
        self.hisat_err_path, self.sam_err_path = work / "hisat2.err", work / "samtools.err"
        self.pid_file = work / PID_FILE
        self.hisat_rc = self.sam_rc = -1
        self.feed: Feed | None = None

    def run(self) -> _Pipeline:
        """Start both programs, feed the reads, wait for both (HISAT2 is stopped if the
        feed or the wait is interrupted)."""
        for pipe in self.pipes:
            os.mkfifo(pipe, 0o600)
        with open(self.hisat_err_path, "wb") as h_err, open(self.sam_err_path, "wb") as s_err:
            # both stay in this process group and die with this process (no orphan HISAT2
            # blocked on a pipe nobody will write, holding its index, after a kill)
            hisat = subprocess.Popen(
                self.hisat_cmd, stdout=subprocess.PIPE, stderr=h_err, preexec_fn=die_with_parent
            )
            atomic_write_text(self.pid_file, f"{hisat.pid}\n{self.hisat_cmd[0]}\n")
            assert hisat.stdout is not None
            sam = subprocess.Popen(
                self.sam_cmd, stdin=hisat.stdout, stderr=s_err, preexec_fn=die_with_parent
            )
            hisat.stdout.close()  # samtools holds the only reader: HISAT2 sees SIGPIPE if it dies
            self.feed = feed = Feed(
                read_mates(self.source.inputs), self.pipes, hisat, self.source.transform
            ).start()
            try:
                self.hisat_rc = hisat.wait()
            finally:
                if hisat.poll() is None:
                    hisat.terminate()
                    hisat.wait()
                feed.finish()
            try:
                self.sam_rc = sam.wait(timeout=None if self.hisat_rc == 0 else 30)
            except subprocess.TimeoutExpired:
                sam.kill()
                self.sam_rc = sam.wait()
        return self

    def texts(self) -> tuple[str, str, str]:
        """HISAT2's stderr, samtools' stderr and HISAT2's summary."""
        summary = self.summary_file
        return (
            self.hisat_err_path.read_text(errors="replace"),
            self.sam_err_path.read_text(errors="replace"),
            summary.read_text(errors="replace") if summary.exists() else "",
        )

    def write_log(self, log_path: Path) -> None:
        hisat_err, sam_err, summary = self.texts()
        feed = self.feed
        assert feed is not None
        atomic_write_text(
            log_path,
            f"$ {' '.join(self.hisat_cmd)} | {' '.join(self.sam_cmd)}\n"
            f"--- reads fed: {feed.n_records} from {', '.join(map(str, self.source.inputs))}"
            f"{f' (error: {feed.error})' if feed.error else ''}\n"
            f"--- hisat2 (exit {self.hisat_rc})\n{hisat_err}\n--- summary\n{summary}\n"
            f"--- samtools (exit {self.sam_rc})\n{sam_err}\n",
        )

    def result(self) -> dict:
        """The parsed summary, or the error that stopped the run (bad input first)."""
        hisat_err, sam_err, summary = self.texts()
        feed = self.feed
        assert feed is not None
        if isinstance(feed.error, ScatlasError) and not isinstance(feed.error, ReaderGone):
            raise feed.error
        if self.hisat_rc != 0:
            raise ToolError("hisat2", self.hisat_rc, tail(hisat_err))
        if feed.error is not None:
            raise ToolError("hisat2", 0, f"{feed.error}; stderr: {tail(hisat_err)}")
        if self.sam_rc != 0:
            raise ToolError("samtools", self.sam_rc, tail(sam_err))
        try:
            result = parse_hisat2_summary(summary or hisat_err)
        except InputError as exc:
            raise ToolError("hisat2", 0, f"{exc}; stderr: {tail(hisat_err)}") from exc
        if result["total_reads"] + self.source.short != feed.n_records:
            raise ToolError(
                "hisat2",
                0,
                f"HISAT2 reports {result['total_reads']} reads but {feed.n_records} were fed",
            )
        return result


PID_FILE = "hisat2.pid"  # in the run's work folder: what reap_leftovers looks for


def reap_leftovers(bam_dir: Path) -> int:
    """Clear what a killed alignment left in ``bam_dir``: its work folders (``.align.*``),
    stopping a HISAT2 still running from one (a kill that outran the parent-death signal,
    or a run of an older scatlas), and temporary BAMs. Returns the processes stopped."""
    stopped = 0
    for work in sorted(Path(bam_dir).glob(".align.*")):
        try:
            pid_text, binary = (work / PID_FILE).read_text().split("\n")[:2]
            pid = int(pid_text)
            alive = Path(f"/proc/{pid}/exe").resolve().name == Path(binary).name
        except (OSError, ValueError):
            alive = False
        if alive and pid != os.getpid():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                stopped += 1
                log.warning("stopped HISAT2 (pid %d) left running by a killed alignment", pid)
        shutil.rmtree(work, ignore_errors=True)
    for tmp in Path(bam_dir).glob(".*.tmp"):  # atomic_path's temporary files
        tmp.unlink(missing_ok=True)
    return stopped


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
    source = _ReadSource([Path(f) for f in fastqs], chemistry)
    out_bam = Path(out_bam)
    out_bam.parent.mkdir(parents=True, exist_ok=True)
    with (
        atomic_path(out_bam, suffix=".bam") as tmp_bam,
        tempfile.TemporaryDirectory(prefix=".align.", dir=out_bam.parent) as work,
    ):
        pipeline = _Pipeline(index_prefix, source, Path(work), tmp_bam, threads).run()
        if log_path is not None:
            pipeline.write_log(log_path)
        result = pipeline.result()
    if chemistry is not None:
        result["short_barcode_reads"] = source.short
        if barcode_counts is not None:
            write_barcode_counts(source.barcodes, barcode_counts)
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
    aligned_reads, alignment_rate, status, reason, bam, chemistry`` (a barcoded run's); ``status`` is ``ok``, ``skipped``
    (alignment rate below ``min_alignment_rate``: its BAM is removed) or ``failed`` (a
    download that failed, a bad FASTQ, or HISAT2/samtools rejecting the run: the reason says
    which). One run failing never stops the others. FASTQ paths relative in the manifest
    are taken relative to ``base_dir`` (default: the working directory). ``log_dir``, when
    given, receives one HISAT2 log per run.

    ``technologies`` maps runs to their ``technology`` (samples.tsv; see
    :func:`run_technologies`): a barcoded run (``10x_v2``, ``10x_v3``, ``10x_5p_v2``,
    ``10x_5p_v3``, ``dropseq``; ``10x`` / ``10x_5p``: the one its reads show, or the run fails
    saying why) is aligned with its chemistry from ``chemistries`` (default
    :data:`scatlas.reads.barcodes.DEFAULT_CHEMISTRIES`) and gets ``bam_dir/{run}.barcodes.tsv.gz``
    (reads per raw barcode); its total/aligned reads are cDNA reads. Manifest rows without
    a run (author matrices) are not runs and are left out of the table.
    """
    aligner = _StudyAligner(
        Path(index_prefix),
        Path(bam_dir),
        threads=threads,
        min_alignment_rate=min_alignment_rate,
        log_dir=Path(log_dir) if log_dir else None,
        technologies=technologies or {},
        chemistries=dict(chemistries or DEFAULT_CHEMISTRIES),
    )
    manifest = read_manifest(Path(manifest_tsv))
    todo = int((manifest["status"] == "ok").sum())
    rows: list[dict] = []
    for rec in manifest.to_dict("records"):
        if not rec["run"] and not rec["invalid"]:
            log.info(
                "manifest row of sample %r has no run (a matrix file): not aligned", rec["sample"]
            )
            continue
        row = {c: "" for c in ALIGNMENT_COLUMNS}
        row.update(run=rec["run"], sample=rec["sample"])
        if rec["invalid"]:
            row.update(status="failed", reason=rec["invalid"])
            log.warning("%s", rec["invalid"])
        elif rec["status"] != "ok":
            row.update(status="failed", reason=rec["reason"] or f"download status {rec['status']}")
        else:
            aligner.done += 1
            files = [_resolve(f, base_dir) for f in rec["files"].split(";") if f.strip()]
            row.update(aligner.align(rec["run"], files, context=f"manifest {manifest_tsv}"))
            log.info("aligned %d/%d runs", aligner.done, todo)
        rows.append(row)
    table = pd.DataFrame(rows, columns=ALIGNMENT_COLUMNS)
    with atomic_path(alignment_tsv, suffix=".tsv") as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    n_ok = int((table["status"] == "ok").sum())
    log.info("%s: %d of %d runs aligned ok", alignment_tsv, n_ok, len(table))
    return table


class _StudyAligner:
    """Aligns the runs of one study, one at a time, into alignment-table fields."""

    def __init__(
        self,
        index_prefix: Path,
        bam_dir: Path,
        *,
        threads: int,
        min_alignment_rate: float,
        log_dir: Path | None,
        technologies: Mapping[str, str],
        chemistries: Mapping[str, Chemistry],
    ):
        self.index_prefix, self.bam_dir, self.log_dir = index_prefix, bam_dir, log_dir
        self.threads, self.min_alignment_rate = threads, min_alignment_rate
        self.technologies, self.chemistries = technologies, chemistries
        self.done = 0
        bam_dir.mkdir(parents=True, exist_ok=True)
        reap_leftovers(bam_dir)

    def _chemistry(self, run: str, fastqs: list[Path]) -> Chemistry | None:
        """The run's barcoded chemistry: its sheet's, or the one its reads show when the
        sheet says only ``10x`` / ``10x_5p`` (:func:`scatlas.reads.detect.detect_chemistry`)."""
        tech = self.technologies.get(run, "")
        if tech in FROM_READS:
            found = detect_chemistry(fastqs, self.chemistries, candidates=FROM_READS[tech])
            log.info("run %s: %s from the reads (%s)", run, found.chemistry, found.evidence)
            tech = found.chemistry
        if tech not in BARCODED_TECHNOLOGIES:
            return None
        if tech not in self.chemistries:
            raise InputError(f"no chemistry configured for {tech}", field="technology")
        return self.chemistries[tech]

    def align(self, run: str, fastqs: list[Path], context: str) -> dict:
        """``status``/``reason`` and, once aligned, the read counts and ``bam`` of one run."""
        try:
            run = validate(run, "run", context=context)
        except AccessionError as exc:
            log.warning("run %r: %s", run, exc)
            return {"status": "failed", "reason": str(exc)}
        bam = self.bam_dir / f"{run}.bam"
        barcode_counts = self.bam_dir / f"{run}.barcodes.tsv.gz"
        try:
            chem = self._chemistry(run, fastqs)
            summary = align_run(
                self.index_prefix,
                fastqs,
                bam,
                threads=self.threads,
                log_path=(self.log_dir / f"{run}.log") if self.log_dir else None,
                chemistry=chem,
                barcode_counts=barcode_counts if chem else None,
            )
        except ScatlasError as exc:
            for path in (bam, barcode_counts):
                path.unlink(missing_ok=True)
            reason = str(exc).replace("\n", " ").replace("\t", " ")
            log.warning("run %s failed: %s", run, reason)
            return {"status": "failed", "reason": reason}
        rate = summary["alignment_rate"]
        row = {
            "total_reads": summary["total_reads"],
            "aligned_reads": summary["aligned_reads"],
            "alignment_rate": round(rate, 6),
            "chemistry": chem.name if chem else "",
        }
        if rate < self.min_alignment_rate:
            bam.unlink()
            barcode_counts.unlink(missing_ok=True)
            floor = self.min_alignment_rate * 100
            row.update(status="skipped", reason=f"alignment rate {_format_rate(rate)} < {floor:g}%")
            log.warning("run %s skipped: %s", run, row["reason"])
        else:
            row.update(status="ok", bam=str(bam))
            log.info("run %s aligned: %s", run, _format_rate(rate))
        return row


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
