"""Run the Snakemake workflow in-process through ``snakemake.api``."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scatlas.errors import ScatlasError

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
    rerun_triggers: Sequence[str] = ("mtime", "params", "input", "code"),
    forcerun: Sequence[str] = (),
    rerun_incomplete: bool = False,
    unlock_first: bool = False,
    max_checksum_file_size: int | None = None,
    cache: Sequence[str] = (),
) -> bool:
    """Run the workflow; True when every job succeeded.

    ``workdir`` is where ``results/``, ``logs/`` and relative config paths live;
    ``snakefile`` defaults to the repository's top-level Snakefile. ``forcerun``: rules or
    output files to run again (and what depends on them). ``rerun_incomplete``: outputs of
    jobs a killed run left unfinished are made again. ``unlock_first``: remove a Snakemake
    lock a killed run left behind (only for a caller that knows no other run is active, as
    ``scatlas refresh`` does under its own lock). ``max_checksum_file_size``: inputs up to
    this size that are newer than their outputs but have the same content (sha256) do not
    re-run their jobs (Snakemake's default is 1 MB). ``cache``: rules whose outputs are
    taken from / stored in Snakemake's between-workflow cache (``--cache``; the cache
    folder is ``$SNAKEMAKE_OUTPUT_CACHE``), e.g. ``["hisat2_index"]``.
    """
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import RerunTrigger
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        ExecutionSettings,
        OutputSettings,
        ResourceSettings,
        StorageSettings,
        WorkflowSettings,
    )

    snakefile = snakefile or repo_root() / "Snakefile"
    previous = Path.cwd()
    # Snakemake prints its own log; keep our root handlers from printing it a second time
    snakemake_log = logging.getLogger("snakemake")
    propagate, snakemake_log.propagate = snakemake_log.propagate, False
    dag_settings = {
        "targets": set(targets),
        "rerun_triggers": frozenset(RerunTrigger.parse_choice(t) for t in rerun_triggers),
        "forcerun": set(forcerun),
        "force_incomplete": rerun_incomplete,
    }
    if max_checksum_file_size is not None:
        dag_settings["max_checksum_file_size"] = int(max_checksum_file_size)

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

    try:
        if unlock_first and not dryrun:
            with SnakemakeApi(OutputSettings()) as api:
                new_workflow(api).dag(DAGSettings(targets=set(targets))).unlock()
            os.chdir(previous)
        with SnakemakeApi(
            OutputSettings(printshellcmds=True, show_failed_logs=True, dryrun=dryrun)
        ) as api:
            dag = new_workflow(api).dag(DAGSettings(**dag_settings))
            dag.execute_workflow(
                executor="dryrun" if dryrun else "local",
                execution_settings=ExecutionSettings(keep_going=keep_going),
            )
        return True
    except Exception as exc:  # snakemake reports the details itself
        log.error("workflow failed: %s", exc)
        return False
    finally:
        snakemake_log.propagate = propagate
        os.chdir(previous)
