"""The download stage: each study's FASTQ files (or author-processed matrices), verified.

``download.method`` picks the route for runs:

* ``http`` (default): ENA's FASTQ URLs over HTTP(S), resumed with ``Range`` after a cut,
  retried with backoff, checked against ENA's size and md5 and renamed into place;
  a mismatch is retried, then recorded as failed with the reason;
* ``fasterq-dump``: SRA's own route (sra-toolkit) for every run;
* ``auto``: HTTP where ENA lists FASTQ URLs, ``fasterq-dump`` for runs it has none for
  (runs resolved through SRA's E-utilities only).

The manifest's reasons say what was checked, never how a file arrived (downloaded, resumed
or kept from an earlier run), so a run that was killed and resumed records the same result
as one that was not.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from scatlas.accessions import validate
from scatlas.errors import InputError, ServiceError
from scatlas.fileio import md5_file
from scatlas.logs import progress_enabled
from scatlas.settings import DownloadSettings, Settings, as_settings
from scatlas.sheets import MANIFEST_COLUMNS, SAMPLE_COLUMNS
from scatlas.sources import geo
from scatlas.sources.fasterq import fasterq_dump
from scatlas.sources.http import ChecksumError, Services, file_matches, looks_like_html
from scatlas.stage_io import (
    WHOLE_FILE,
    display_path,
    error_info,
    join,
    read_tsv,
    reason_of,
    services_for,
    split,
    write_tsv,
)

log = logging.getLogger(__name__)

METHODS = ("http", "fasterq-dump", "auto")
# Supplementary files that can hold a count matrix, and archives that may bundle one.
MATRIX_FILE = re.compile(r"\.(h5|h5ad|loom|mtx|csv|tsv|txt|rds)(\.gz)?$", re.I)
ARCHIVE_FILE = re.compile(r"\.(tar|tar\.gz|tgz|zip)$", re.I)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}\Z", re.ASCII)


def verify_gzip(path: Path) -> None:
    """Read a .gz through to the end: a truncated or corrupt file raises InputError."""
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"corrupt gzip file: {exc}", path=str(path)) from exc


def _row(run: str, sample: str) -> dict[str, Any]:
    return {
        "run": run,
        "sample": sample,
        "files": "",
        "status": "failed",
        "reason": "",
        "bytes": "",
        "md5": "",
        "error_file": "",
        "error_field": "",
    }


def _fail(out: dict[str, Any], exc: BaseException, what: str) -> dict[str, Any]:
    """Record a failure on a manifest row: reason, the file/URL and the field."""
    info = error_info(exc)
    if isinstance(exc, ChecksumError):
        info["field"] = exc.field
    reason = exc.reason if isinstance(exc, ServiceError) and exc.reason else reason_of(exc)
    log.error("%s: %s", what, reason)
    out.update(status="failed", reason=reason, error_file=info["file"], error_field=info["field"])
    return out


def _http_run(svc: Services, run: str, row: Mapping[str, str], fastq_dir: Path) -> dict:
    urls, md5s = split(row["fastq_urls"]), split(row["fastq_md5"])
    sizes = [int(b) for b in split(row["fastq_bytes"])]
    if len(urls) > 2 or (md5s and len(md5s) != len(urls)) or (sizes and len(sizes) != len(urls)):
        raise InputError(
            f"{run}: {len(urls)} FASTQ URLs, {len(md5s)} md5s, {len(sizes)} sizes",
            path="samples.tsv",
            field="fastq_urls/fastq_md5/fastq_bytes",
        )
    names = [f"{run}.fastq.gz"] if len(urls) == 1 else [f"{run}_1.fastq.gz", f"{run}_2.fastq.gz"]
    files, got_md5, got_bytes = [], [], []
    for i, url in enumerate(urls):
        if not url.endswith((".fastq.gz", ".fq.gz")):
            raise InputError(f"{url} is not a gzipped FASTQ", path=url, field="fastq_urls")
        dest = fastq_dir / names[i]
        md5 = md5s[i] if md5s else None
        size = sizes[i] if sizes else None
        if file_matches(dest, md5=md5, size=size):
            log.info("%s: %s already verified, kept", run, dest.name)
            got_md5.append(md5 or "")
            got_bytes.append(dest.stat().st_size)
        else:
            res = svc.client_for(url).download(url, dest, md5=md5, size=size)
            log.info("%s: %s %s", run, "resumed" if res["resumed"] else "downloaded", dest.name)
            got_md5.append(res["md5"])
            got_bytes.append(res["bytes"])
        if md5 is None:
            verify_gzip(dest)
        files.append(display_path(dest))
    checks = (
        "size and md5 verified"
        if md5s and sizes
        else ("md5 verified" if md5s else "gzip integrity checked (no md5 published)")
    )
    return {
        "files": join(files),
        "reason": f"ENA FASTQ, {checks}",
        "bytes": join(got_bytes),
        "md5": join(got_md5),
    }


def _sra_run(run: str, fastq_dir: Path, dl: DownloadSettings, svc: Services) -> dict:
    dumped = fasterq_dump(
        run,
        fastq_dir,
        executable=dl.fasterq_dump,
        threads=dl.threads,
        timeout_s=dl.tool_timeout_s,
        retries=svc.retries,
        backoff_s=svc.backoff,
    )
    reads = "/".join(str(d.reads) for d in dumped)
    return {
        "files": join(display_path(d.path) for d in dumped),
        "reason": f"fasterq-dump from SRA, {reads} reads, FASTQ records checked "
        "(SRA publishes no FASTQ md5)",
        "bytes": join(d.bytes for d in dumped),
        "md5": join(d.md5 for d in dumped),
    }


def download_run(
    svc: Services, row: Mapping[str, str], fastq_dir: Path, dl: DownloadSettings
) -> dict[str, Any]:
    """One run's manifest row; a failure is recorded on the row, never raised."""
    run, sample = row["run"], row["sample"]
    out = _row(run, sample)
    method = dl.method
    try:
        validate(run, "run", context="samples.tsv run")
        has_urls = bool(split(row["fastq_urls"]))
        if method == "fasterq-dump" or (method == "auto" and not has_urls):
            out.update(_sra_run(run, fastq_dir, dl, svc))
        elif not has_urls:
            out.update(
                reason=f"no FASTQ URL for {run} (ENA lists none; download.method 'http' needs "
                "one, 'auto' or 'fasterq-dump' would ask SRA)",
                error_file="samples.tsv",
                error_field="fastq_urls",
            )
            return out
        else:
            out.update(_http_run(svc, run, row, fastq_dir))
        out["status"] = "ok"
    except Exception as exc:  # one run's failure never stops the others
        _fail(out, exc, f"run {run}")
    return out


def matrix_files(urls: Sequence[str]) -> list[str]:
    """The supplementary files worth fetching for a matrix study: count-matrix formats,
    or (only when there is none) archives that may bundle one."""
    names = list(dict.fromkeys(urls))
    matrices = [u for u in names if MATRIX_FILE.search(u)]
    return matrices or [u for u in names if ARCHIVE_FILE.search(u)]


_GEO_SUPPL = re.compile(r"/series/[^/]+/(GSE\d+)/suppl/([^/]+)$")


def published_sizes(svc: Services, urls: Sequence[str]) -> dict[str, int]:
    """Sizes GEO publishes (``suppl/filelist.txt``) for the GEO supplementary files among
    ``urls``, by URL; a series without a readable listing gives none (logged)."""
    sizes: dict[str, int] = {}
    lists: dict[str, dict[str, int]] = {}
    base = svc.bases["geo"]
    for url in urls:
        m = _GEO_SUPPL.search(url) if url.startswith(base + "/") else None
        if not m:
            continue
        gse, name = m.groups()
        if gse not in lists:
            listing = geo.filelist_url(gse, base)
            try:
                text = svc.geo.get_text(listing, expect="GEO filelist")
                lists[gse] = {r["name"]: r["size"] for r in geo.parse_filelist(text, where=listing)}
            except (ServiceError, InputError) as exc:
                log.info("no file sizes for %s (%s); gzip integrity only", gse, exc)
                lists[gse] = {}
        if name in lists[gse]:
            sizes[url] = lists[gse][name]
    return sizes


def download_matrix(
    svc: Services, samples: Sequence[str], urls: Sequence[str], fastq_dir: Path
) -> dict[str, Any]:
    """The manifest row of a matrix study: its supplementary count-matrix files (sizes checked
    against GEO's file listing when it has one, gzip integrity always)."""
    out = _row("", join(samples))
    try:
        wanted = matrix_files(urls)
        if not wanted:
            out.update(
                reason="no supplementary file in a count-matrix format",
                error_file="samples.tsv",
                error_field="supplementary",
            )
            return out
        files, sizes, md5s = [], [], []
        published = published_sizes(svc, wanted)
        for url in wanted:
            name = url.rstrip("/").rsplit("/", 1)[-1]
            if not _SAFE_NAME.match(name):
                raise InputError(
                    f"supplementary file name {name!r} is not a plain file name",
                    path=url,
                    field="supplementary",
                )
            dest = fastq_dir / name
            size = published.get(url)
            if not (dest.is_file() and (size is None or dest.stat().st_size == size)):
                try:
                    svc.client_for(url).download(url, dest, size=size)
                except ChecksumError as exc:
                    exc.field = "supplementary"
                    raise
            with open(dest, "rb") as fh:
                if looks_like_html(fh.read(512)):
                    dest.unlink()
                    raise ServiceError(
                        "expected a matrix file but got an HTML page",
                        url=url,
                        reason=f"HTML instead of a matrix file at {url}",
                    )
            if name.endswith(".gz"):
                try:
                    verify_gzip(dest)
                except InputError as exc:
                    dest.unlink()
                    raise InputError(f"{url}: {exc}", path=url, field=WHOLE_FILE) from exc
            files.append(display_path(dest))
            sizes.append(dest.stat().st_size)
            md5s.append(md5_file(dest))
        out.update(
            files=join(files),
            status="ok",
            reason=f"{len(files)} matrix file(s); "
            + ("size and " if len(published) == len(files) else "")
            + "gzip integrity checked (no md5 published)",
            bytes=join(sizes),
            md5=join(md5s),
        )
    except Exception as exc:
        _fail(out, exc, f"matrix files of {out['sample']}")
    return out


def download_study(
    cfg: Settings | Mapping[str, Any],
    samples_tsv: str | os.PathLike,
    fastq_dir: str | os.PathLike,
    manifest_tsv: str | os.PathLike,
    *,
    services: Services | None = None,
) -> pd.DataFrame:
    """Download every run's FASTQ files (and matrix studies' supplementary matrices) of one
    study, in ``download.parallel`` threads; write ``manifest.tsv``.

    FASTQs land in ``fastq_dir/{run}.fastq.gz`` or ``{run}_1/_2.fastq.gz``; files already
    present with the right size and md5 are kept, a ``.part`` left by a killed run is
    resumed. A run that fails is a "failed" manifest row with the reason, the file or URL
    and the field; nothing is raised for it.
    """
    settings = as_settings(cfg)
    dl = settings.download
    method = dl.method
    if method not in METHODS:
        raise InputError(
            f"download.method {method!r} is not one of {', '.join(METHODS)}",
            field="download.method",
        )
    parallel = max(1, int(dl.parallel))
    svc = services_for(settings, services)
    sheet = read_tsv(samples_tsv, SAMPLE_COLUMNS, "samples")
    fdir = Path(fastq_dir)
    fdir.mkdir(parents=True, exist_ok=True)
    run_rows = sheet[sheet["run"] != ""].drop_duplicates("run")
    matrix_rows = sheet[sheet["run"] == ""]
    jobs = []
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for row in run_rows.to_dict("records"):
            jobs.append(pool.submit(download_run, svc, row, fdir, dl))
        if len(matrix_rows):
            urls = [u for s in matrix_rows["supplementary"] for u in split(s)]
            samples = list(dict.fromkeys(matrix_rows["sample"]))
            jobs.append(pool.submit(download_matrix, svc, samples, urls, fdir))
        done = tqdm(
            as_completed(jobs),
            total=len(jobs),
            desc=f"downloads {fdir.name}",
            disable=not progress_enabled(),
        )
        results = [j.result() for j in done]
    df = write_tsv(results, manifest_tsv, MANIFEST_COLUMNS, sort=["run", "sample"])
    n_ok = int((df["status"] == "ok").sum()) if len(df) else 0
    log.info("downloads for %s: %d ok, %d failed", fdir.name, n_ok, len(df) - n_ok)
    return df
