"""``scatlas refresh``: one unattended, incremental refresh of the atlas, for cron.

1. **Lock.** The working directory's workflow lock (:mod:`scatlas.locks`, shared by every
   scatlas command that runs the workflow); a refresh that overlaps another run exits 0 at
   once, saying which process holds the lock. The kernel drops the lock when its holder
   dies, so a killed run never blocks the next one.
2. **Plan the window.** ``--since``/``--until`` when given; otherwise from the end date of
   the last *successful* refresh recorded in the catalog (that boundary day is searched again:
   GEO dates are days, and a study found twice is simply unchanged) to today (UTC); the very
   first refresh starts at the config's ``discover.date_from`` (null: everything).
3. **Run the workflow** through :func:`scatlas.runner.run_workflow` with
   ``discover.date_from/date_to`` set to the window. Only what is new or changed re-runs, by
   choice of rerun triggers (:data:`RERUN_TRIGGERS`, see there). A refresh that was killed
   left incomplete outputs (made again: ``--rerun-incomplete``), a stale Snakemake lock
   (removed once no live process holds it), ``.part`` downloads (resumed with
   ``Range``) and a refresh row without an end (closed as failed). Failures worth another
   try (a service that was down: sample sheets failed by the network, downloads cut off)
   are moved aside so that this refresh tries them again; records that were malformed stay
   failed until their upstream record changes.
4. **Record the refresh** in the catalog: its window, status, and the studies that were
   new or changed upstream. A failed workflow is recorded as failed; the next refresh
   covers the same window again.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scatlas.errors import InputError
from scatlas.fileio import atomic_write_text
from scatlas.ingest.catalog import Catalog
from scatlas.locks import LockedError, workflow_lock
from scatlas.runner import PlannedJob, Rerun, run_workflow
from scatlas.stage_io import WHOLE_FILE, config_date, read_tsv

log = logging.getLogger(__name__)

# Why these and not Snakemake's defaults (mtime, params, input, software-env, code):
# * params — the discover rule's params hold the window and discovery settings (a new window
#   re-runs discovery); the sample_sheet rule's params hold each study's upstream
#   fingerprint (a study changed upstream re-runs its sheet, and through it that study's
#   downloads, alignment... and nothing of any other study).
# * input — a new study changes the input list of the rules that gather all studies
#   (catalog, atlas), so those re-run; a study's own jobs run because their outputs are new.
# * mtime — an input newer than its output; with the checksum guard (inputs up to
#   MAX_CHECKSUM_BYTES whose content did not change do not count) a sheet rewritten
#   identically after a kill does not re-run downloads. Snakemake 9 applies it always.
# * not code, not software-env — a scatlas upgrade that edits a rule script or an env
#   would otherwise re-run that rule for every study of the atlas, unattended, from cron;
#   such a rebuild is started on purpose (snakemake --forcerun RULE), not by a refresh.
RERUN_TRIGGERS = ("mtime", "params", "input")
MAX_CHECKSUM_BYTES = 64 << 20  # sample sheets of very large studies are still compared by content
CATALOG = Path("results") / "catalog.sqlite"
DISCOVERED = Path("results") / "discover" / "studies.tsv"  # the discover checkpoint's output
# the catalog's studies as a refresh found them, kept until the refresh is recorded
BEFORE_FILE = Path("results") / ".refresh.before.json"
RELEASE_RECORD = Path("results") / "publish" / "release.json"


def _mtime(path: Path) -> float | None:
    return path.stat().st_mtime_ns if path.is_file() else None


def publish_outcome(work: Path, before: float | None) -> str:
    """What the publish rule decided during this refresh (``""`` when it did not run):
    the new release, or why the quality gate refused it (see :mod:`scatlas.release.record`)."""
    record = work / RELEASE_RECORD
    if _mtime(record) is None or _mtime(record) == before:
        return ""
    try:
        info = json.loads(record.read_text(encoding="utf-8"))
    except ValueError:
        return "release record unreadable"
    if info.get("published") is False:
        return (
            f"release {info.get('candidate_version')} NOT published: {info.get('reason')} "
            f"(current stays {info.get('version')})"
        )
    return f"release {info.get('version')} published"


@dataclass
class Window:
    since: str | None
    until: str
    why: str


def plan_window(
    catalog: Catalog,
    *,
    since: str | None = None,
    until: str | None = None,
    config_from: str | None = None,
    today: dt.date | None = None,
) -> Window:
    """The date window of this refresh (ISO dates; ``since`` None: from the beginning)."""
    end = config_date(until, "--until") or (today or dt.datetime.now(dt.UTC).date()).isoformat()
    if since:
        start, why = config_date(since, "--since"), "given with --since"
    elif (last := catalog.last_refresh("ok")) is not None:
        start = last["date_to"]
        why = f"since the last successful refresh (#{last['id']}, finished {last['finished']})"
    elif config_from:
        start, why = config_date(config_from), "first refresh: from the config's discover.date_from"
    else:
        start, why = None, "first refresh: everything (no discover.date_from)"
    if start and start > end:
        raise InputError(f"the window starts after it ends ({start} > {end})", field="--since")
    return Window(start, end, why)


def load_config(workdir: Path, configfiles: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """The merged config files (as the Snakefile reads them: config/config.yaml by default)."""
    files = [Path(f) for f in configfiles] or [workdir / "config" / "config.yaml"]
    merged: dict[str, Any] = {}
    for f in files:
        path = f if f.is_absolute() else workdir / f
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read the config file: {exc}", path=str(path)) from exc
        _merge(merged, data)
    return merged


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def retry_failed(results: Path, aside: Path) -> list[str]:
    """Move aside the outputs of failures worth another try, so the workflow makes them
    again: sample sheets that failed on the network (``error.kind`` "service") and download
    manifests with a run cut off by the network (not a checksum mismatch: that stays failed
    until the upstream record changes). Returns "study: what" lines."""
    moved: list[str] = []
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")

    def move(path: Path, study: str) -> None:
        dest = aside / stamp / study / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), dest)

    for sj in sorted((results / "studies").glob("*/study.json")):
        try:
            info = json.loads(sj.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if info.get("status") == "failed" and (info.get("error") or {}).get("kind") == "service":
            for name in ("study.json", "samples.tsv"):
                if (sj.parent / name).exists():
                    move(sj.parent / name, sj.parent.name)
            moved.append(f"{sj.parent.name}: sample sheet ({info.get('reason', '')[:120]})")
    for man in sorted((results / "fastq").glob("*/manifest.tsv")):
        try:
            df = read_tsv(man, ["status"])
        except InputError:
            continue
        if "error_field" not in df.columns or "error_file" not in df.columns:
            continue
        cut = df[
            (df["status"] == "failed")
            & (df["error_field"] == WHOLE_FILE)
            & df["error_file"].str.match(r"^https?://")
        ]
        if len(cut):
            move(man, man.parent.name)
            moved.append(f"{man.parent.name}: {len(cut)} download(s) cut off by the network")
    return moved


@dataclass
class RefreshResult:
    status: str  # ok | failed | locked | planned
    message: str
    window: Window | None = None
    refresh_id: int | None = None
    new: list[str] | None = None
    changed: list[str] | None = None
    jobs: list[PlannedJob] = field(default_factory=list)  # what Snakemake ran (or planned)


def refresh(
    workdir: str | os.PathLike = ".",
    *,
    configfiles: Sequence[str | os.PathLike] = (),
    config: Mapping[str, Any] | None = None,
    since: str | None = None,
    until: str | None = None,
    cores: int = 2,
    targets: Sequence[str] = (),
    snakefile: Path | None = None,
    dryrun: bool = False,
    today: dt.date | None = None,
) -> RefreshResult:
    """One refresh (see the module docstring). Never raises for a failed workflow: the result
    says what happened; the catalog records it."""
    work = Path(workdir).resolve()
    try:
        with workflow_lock(work, "refresh"):
            return _refresh_locked(
                work, configfiles, config, since, until, cores, targets, snakefile, dryrun, today
            )
    except LockedError as exc:
        msg = f"{exc}: it has nothing to do and exits"
        log.warning(msg)
        return RefreshResult("locked", msg)


def _refresh_locked(
    work: Path,
    configfiles: Sequence[str | os.PathLike],
    config: Mapping[str, Any] | None,
    since: str | None,
    until: str | None,
    cores: int,
    targets: Sequence[str],
    snakefile: Path | None,
    dryrun: bool,
    today: dt.date | None,
) -> RefreshResult:
    cfg = load_config(work, configfiles)
    _merge(cfg, dict(config or {}))
    config_from = (cfg.get("discover") or {}).get("date_from")
    window, rid, before = _begin(work, since, until, config_from, dryrun, today)
    retried = [] if dryrun else retry_failed(work / "results", work / "logs" / "retried")
    for line in retried:
        log.info("trying again: %s", line)
    overrides = dict(config or {})
    overrides["discover"] = {
        **dict(overrides.get("discover") or {}),
        "date_from": window.since,
        "date_to": window.until,
    }
    release_before = _mtime(work / RELEASE_RECORD)
    run = functools.partial(
        run_workflow,
        work,
        snakefile=snakefile,
        configfiles=[Path(f) if Path(f).is_absolute() else work / f for f in configfiles],
        config=overrides,
        cores=cores,
        keep_going=True,
        dryrun=dryrun,
        rerun=Rerun(RERUN_TRIGGERS, max_checksum_file_size=MAX_CHECKSUM_BYTES),
    )
    # Discovery first, on its own: planned together with the rest, the checkpoint leaves
    # every job after it marked as needing a run ("input updated by another job") even when
    # discovery found nothing new. Planned after it, only what changed runs.
    ok, jobs = True, []
    if not dryrun:
        discovered = run(targets=[str(DISCOVERED)])
        ok, jobs = bool(discovered), list(discovered.jobs)
    if ok:
        rest = run(targets=targets)
        ok, jobs = bool(rest), jobs + rest.jobs
    if dryrun:
        return RefreshResult(
            "planned" if ok else "failed",
            f"dry run of the window {window.since or 'the beginning'} .. {window.until} "
            "(the jobs after discovery are planned as if it found something new)",
            window,
            jobs=jobs,
        )
    result = _record(work, rid, before, window, ok, retried, publish_outcome(work, release_before))
    result.jobs = jobs
    (work / BEFORE_FILE).unlink(missing_ok=True)
    return result


def _begin(
    work: Path,
    since: str | None,
    until: str | None,
    config_from: str | None,
    dryrun: bool,
    today: dt.date | None,
) -> tuple[Window, int | None, dict[str, str]]:
    """Close refreshes that never finished, plan the window, open this refresh's row; and
    what the catalog knew before (new and changed studies are told apart from it, not by
    timestamps, which a quick second refresh could share with the first)."""
    snapshot = work / BEFORE_FILE
    with Catalog(work / CATALOG) as cat:
        closed = 0
        if not dryrun:
            closed = cat.close_interrupted_refreshes(
                "interrupted: it never finished (killed or crashed); a later refresh covers "
                "its window again"
            )
        window = plan_window(cat, since=since, until=until, config_from=config_from, today=today)
        before = {r["study"]: r.get("fingerprint", "") for r in cat.rows("studies")}
        rid = None
        if not dryrun:
            rid = cat.start_refresh(
                window.since, window.until, reason=f"running; window {window.why}"
            )
    if closed:
        log.warning("closed %d refresh(es) that never finished", closed)
    if snapshot.is_file():
        # a killed refresh may have catalogued its new studies already: they stay new
        before = json.loads(snapshot.read_text(encoding="utf-8"))
        log.info("an interrupted refresh left its view of the catalog: studies new to it stay new")
    elif not dryrun:
        atomic_write_text(snapshot, json.dumps(before, sort_keys=True))
    log.info(
        "refresh window %s .. %s (%s)", window.since or "the beginning", window.until, window.why
    )
    return window, rid, before


def _record(
    work: Path,
    rid: int | None,
    before: Mapping[str, str],
    window: Window,
    ok: bool,
    retried: list[str],
    published: str = "",
) -> RefreshResult:
    studies_tsv = work / "results" / "discover" / "studies.tsv"
    n_studies = len(read_tsv(studies_tsv, ["study"])) if studies_tsv.is_file() else 0
    with Catalog(work / CATALOG) as cat:
        now = {r["study"]: r.get("fingerprint", "") for r in cat.rows("studies")}
        new = sorted(s for s in now if s not in before)
        changed = sorted(s for s in now if before.get(s) and now[s] != before[s])
        span = f"{window.since or 'the beginning'} .. {window.until}"
        if ok:
            status = "ok"
            reason = (
                f"window {span} ({window.why}): {n_studies} studies, {len(new)} new, "
                f"{len(changed)} changed upstream"
                + (f" ({', '.join(changed[:20])})" if changed else "")
                + (f"; {len(retried)} earlier failure(s) tried again" if retried else "")
                + (f"; {published}" if published else "")
            )
        else:
            status = "failed"
            reason = (
                f"window {span}: the workflow failed (see logs/ and .snakemake/log/); "
                "the next refresh covers this window again"
            )
        assert rid is not None
        cat.finish_refresh(
            rid,
            status=status,
            n_studies=n_studies,
            n_new=len(new),
            n_changed=len(changed),
            reason=reason,
        )
    (log.info if ok else log.error)("refresh #%d %s: %s", rid, status, reason)
    return RefreshResult(status, f"refresh #{rid} {status}: {reason}", window, rid, new, changed)
