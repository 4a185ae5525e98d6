"""SRA's own route to FASTQ: ``fasterq-dump`` (sra-toolkit), for runs ENA lists no FASTQ for.

:func:`fasterq_dump` runs the tool for one validated run accession (an argument list, never
a shell) into a private folder, checks every FASTQ it wrote (four-line records, sequence and
quality of equal length, mates with the same number of reads), gzips them under the names
the HTTP route uses (``RUN.fastq.gz`` or ``RUN_1/_2.fastq.gz``) and renames them into place.
SRA publishes no FASTQ md5: the tool checks its own download; scatlas checks the structure
and records the md5 and size of what it wrote.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from scatlas.accessions import validate
from scatlas.errors import InputError, ToolError
from scatlas.fileio import atomic_path, md5_file
from scatlas.tools import die_with_parent

log = logging.getLogger(__name__)

TOOL = "fasterq-dump"
_OUTPUT = re.compile(r"^(?P<run>[SED]RR\d+)(?:_(?P<mate>[0-9]))?\.fastq\Z", re.ASCII)


@dataclass
class DumpedFile:
    path: Path
    reads: int
    bytes: int
    md5: str


def _check_and_gzip(src: Path, dest: Path) -> int:
    """Copy a FASTQ into ``dest`` (gzip), checking its records; return the read count."""
    reads = 0
    with (
        open(src, "rb") as fh,
        atomic_path(dest, suffix=".gz") as tmp,
        gzip.open(tmp, "wb", compresslevel=4) as out,
    ):
        while True:
            header = fh.readline()
            if not header:
                break
            seq, plus, qual = fh.readline(), fh.readline(), fh.readline()
            lineno = reads * 4 + 1
            if not header.startswith(b"@") or not plus.startswith(b"+"):
                raise InputError(
                    f"record {reads + 1} (line {lineno}) is not a FASTQ record",
                    path=str(src),
                    field="FASTQ record",
                )
            if not qual or len(seq.rstrip(b"\r\n")) != len(qual.rstrip(b"\r\n")):
                raise InputError(
                    f"record {reads + 1} (line {lineno}): sequence and quality lengths differ"
                    " or the file ends mid-record",
                    path=str(src),
                    field="FASTQ quality",
                )
            out.write(header + seq + plus + qual)
            reads += 1
    return reads


def fasterq_dump(
    run: str,
    out_dir: str | os.PathLike,
    *,
    executable: str = TOOL,
    threads: int = 2,
    timeout_s: float | None = None,
    retries: int = 2,
    backoff_s: float = 1.0,
) -> list[DumpedFile]:
    """Dump one run's reads into ``out_dir`` as gzipped FASTQ (mate order); retried with
    backoff when the tool fails. Raises ToolError (exit status and the end of its stderr) or
    InputError (what it wrote is not well-formed FASTQ)."""
    run = validate(run, "run", context="fasterq-dump")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = out / f".{run}.fasterq"
    last: Exception | None = None
    for attempt in range(retries + 1):
        shutil.rmtree(work, ignore_errors=True)
        (work / "tmp").mkdir(parents=True)
        cmd = [
            executable,
            "--split-files",
            "--skip-technical",
            "--threads",
            str(max(1, int(threads))),
            "--outdir",
            str(work),
            "--temp",
            str(work / "tmp"),
            run,
        ]
        log.info("%s (attempt %d of %d)", " ".join(cmd), attempt + 1, retries + 1)
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout_s,
                preexec_fn=die_with_parent,
            )
        except FileNotFoundError as exc:  # not installed: no point in trying again
            shutil.rmtree(work, ignore_errors=True)
            raise ToolError(executable, 127, f"{executable} not found on PATH") from exc
        except subprocess.TimeoutExpired:
            last = ToolError(executable, -1, f"timed out after {timeout_s} s")
            log.warning("%s %s: %s", executable, run, last)
        else:
            if proc.returncode == 0:
                try:
                    return _collect(run, work, out)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
            last = ToolError(executable, proc.returncode, (proc.stderr or "")[-2000:])
            log.warning("%s %s: %s", executable, run, last)
        if attempt < retries:
            time.sleep(backoff_s * (2**attempt))
    shutil.rmtree(work, ignore_errors=True)
    assert last is not None
    raise last


def _collect(run: str, work: Path, out: Path) -> list[DumpedFile]:
    """The tool's FASTQ files for ``run`` in mate order, checked, gzipped into ``out``."""
    found: dict[str, Path] = {}
    for f in sorted(work.iterdir()):
        m = _OUTPUT.match(f.name)
        if f.is_file() and m and m.group("run") == run:
            found[m.group("mate") or "0"] = f
    if "1" in found and "2" in found:
        pairs = [(found["1"], f"{run}_1.fastq.gz"), (found["2"], f"{run}_2.fastq.gz")]
    elif len(found) == 1:
        pairs = [(next(iter(found.values())), f"{run}.fastq.gz")]
    else:
        names = ", ".join(p.name for p in found.values()) or "nothing"
        raise InputError(
            f"{TOOL} wrote {names} for {run}; expected {run}.fastq or {run}_1/_2.fastq",
            path=str(work),
            field="FASTQ files",
        )
    result = []
    for src, name in pairs:
        dest = out / name
        reads = _check_and_gzip(src, dest)
        if reads == 0:
            dest.unlink(missing_ok=True)
            raise InputError(f"{TOOL} wrote no reads for {run}", path=str(src), field="reads")
        result.append(DumpedFile(dest, reads, dest.stat().st_size, md5_file(dest)))
    if len(result) == 2 and result[0].reads != result[1].reads:
        for r in result:
            r.path.unlink(missing_ok=True)
        raise InputError(
            f"mates of {run} differ: {result[0].reads} and {result[1].reads} reads",
            path=str(work),
            field="FASTQ mates",
        )
    return result
