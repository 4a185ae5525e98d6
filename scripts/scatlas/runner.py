"""Run the Snakemake workflow in-process through ``snakemake.api``."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scatlas.errors import ScatlasError
from scatlas.locks import stale_snakemake_lock, workflow_lock

log = logging.getLogger(__name__)


def repo_root(start: Path | None = None) -> Path:
    """The checkout holding the top-level Snakefile: the current folder (or one above it),
    else the checkout an editable install of the package lives in. An installed wheel has
    the package but not the workflow: then the error says to run inside a clone."""
    here = Path(__file__).resolve().parent
    for base in (start or Path.cwd(), here):
        for folder in (base, *base.parents):
            if (folder / "Snakefile").is_file() and (folder / "workflow" / "Snakefile").is_file():
                return folder
    raise ScatlasError(
        "cannot find the scatlas workflow (Snakefile + workflow/): run this command inside a "
        "clone of the scatlas repository"
    )


@dataclass(frozen=True)
class PlannedJob:
    """A job Snakemake planned (and, unless a dry run, ran): its rule, wildcards and why."""

    rule: str
    wildcards: dict[str, str]
    reason: str


@dataclass
class RunResult:
    """What :func:`run_workflow` did; true when every job succeeded."""

    ok: bool
    jobs: list[PlannedJob] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok

    def rules(self) -> list[str]:
        """The rules of the planned jobs, one entry per job, in plan order."""
        return [j.rule for j in self.jobs]


class _JobRecorder(logging.Handler):
    """Collects the jobs Snakemake announces (its JOB_INFO log events)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.jobs: list[PlannedJob] = []

    def emit(self, record: logging.LogRecord) -> None:
        if str(getattr(record, "event", "")) != "job_info":
            return
        wildcards = getattr(record, "wildcards", None) or {}
        self.jobs.append(
            PlannedJob(
                str(getattr(record, "rule_name", "")),
                {str(k): str(v) for k, v in dict(wildcards).items()},
                str(getattr(record, "reason", "")),
            )
        )


@dataclass(frozen=True)
class Rerun:
    """When jobs run again. ``triggers``: Snakemake's rerun triggers. ``forcerun``: rules or
    output files to run again (and what depends on them). ``incomplete``: outputs of jobs a
    killed run left unfinished are made again (safe: no other run is alive, see
    :mod:`scatlas.locks`). ``max_checksum_file_size``: inputs up to this size that are newer
    than their outputs but have the same content (sha256) do not re-run their jobs
    (Snakemake's default is 1 MB)."""

    triggers: tuple[str, ...] = ("mtime", "params", "input", "code")
    forcerun: tuple[str, ...] = ()
    incomplete: bool = True
    max_checksum_file_size: int | None = None


def run_workflow(
    workdir: Path,
    *,
    snakefile: Path | None = None,
    configfiles: Sequence[Path] = (),
    config: Mapping | None = None,
    cores: int = 2,
    targets: Sequence[str] = (),
    keep_going: bool = True,
    dryrun: bool = False,
    rerun: Rerun | None = None,
    cache: Sequence[str] = (),
) -> RunResult:
    """Run the workflow; the result is true when every job succeeded and lists the jobs
    Snakemake planned (a dry run: would run).

    ``workdir`` is where ``results/``, ``logs/`` and relative config paths live;
    ``snakefile`` defaults to the repository's top-level Snakefile. The run holds the
    folder's workflow lock (:func:`scatlas.locks.workflow_lock`: LockedError when another
    scatlas run holds it) and removes a Snakemake lock a killed run left behind. ``rerun``:
    see :class:`Rerun`. ``cache``: rules whose outputs are taken from / stored in
    Snakemake's between-workflow cache (``--cache``; the cache folder is
    ``$SNAKEMAKE_OUTPUT_CACHE``), e.g. ``["hisat2_index"]``.
    """
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import RerunTrigger
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        ResourceSettings,
        StorageSettings,
        WorkflowSettings,
    )

    snakefile = snakefile or repo_root() / "Snakefile"
    rerun = rerun or Rerun()
    previous = Path.cwd()
    dag_settings = {
        "targets": set(targets),
        "rerun_triggers": frozenset(RerunTrigger.parse_choice(t) for t in rerun.triggers),
        "forcerun": set(rerun.forcerun),
        "force_incomplete": rerun.incomplete,
    }
    if rerun.max_checksum_file_size is not None:
        dag_settings["max_checksum_file_size"] = int(rerun.max_checksum_file_size)

    def new_workflow(api: SnakemakeApi) -> Any:
        return api.workflow(
            resource_settings=ResourceSettings(cores=cores),
            config_settings=ConfigSettings(
                configfiles=[Path(p).resolve() for p in configfiles], config=dict(config or {})
            ),
            storage_settings=StorageSettings(),
            workflow_settings=WorkflowSettings(cache=list(cache) or None),
            snakefile=Path(snakefile).resolve(),
            workdir=Path(workdir).resolve(),
        )

    with workflow_lock(workdir, "workflow run"):
        stale = not dryrun and stale_snakemake_lock(workdir)  # LockedError: a live run
        # Snakemake prints its own log; keep our root handlers from printing it a second time
        snakemake_log = logging.getLogger("snakemake")
        propagate, snakemake_log.propagate = snakemake_log.propagate, False
        recorder = _JobRecorder()
        snakemake_log.addHandler(recorder)
        try:
            if stale:
                log.warning("removing the Snakemake lock a killed run left in %s", workdir)
                with SnakemakeApi(OutputSettings()) as api:
                    new_workflow(api).dag(DAGSettings(targets=set(targets))).unlock()
                os.chdir(previous)
            _execute(SnakemakeApi, new_workflow, dag_settings, dryrun, keep_going)
            return RunResult(True, recorder.jobs)
        except Exception as exc:  # snakemake reports the details itself
            log.error("workflow failed: %s", exc)
            return RunResult(False, recorder.jobs)
        finally:
            snakemake_log.removeHandler(recorder)
            snakemake_log.propagate = propagate
            os.chdir(previous)


def _execute(api_class, new_workflow, dag_settings: dict, dryrun: bool, keep_going: bool) -> None:
    from snakemake.settings.types import DAGSettings, ExecutionSettings, OutputSettings

    with api_class(
        OutputSettings(printshellcmds=True, show_failed_logs=True, dryrun=dryrun)
    ) as api:
        dag = new_workflow(api).dag(DAGSettings(**dag_settings))
        dag.execute_workflow(
            executor="dryrun" if dryrun else "local",
            execution_settings=ExecutionSettings(keep_going=keep_going),
        )
