"""The demo workflow on a real single-node SLURM cluster (Debian's slurm-wlm and munge on
localhost, no accounting database), through ``--profile profiles/slurm``.

The override for the test node is what a site sets: the profile's environment variables
(partition, a memory cap for a small node) and the executor's status command for a cluster
without accounting. Asserts on slurmctld's own job records (jobcomp), not on Snakemake's
word: which rules ran as SLURM jobs, with how many CPUs, and that the release is published.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from slurm_cluster import SlurmCluster

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# rules that run on the submit host (network-bound or bookkeeping), never as SLURM jobs
LOCAL_RULES = {"discover", "sample_sheet", "download", "ingest", "catalog", "publish"}
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: ([^)]*)\)")


@pytest.fixture(scope="module")
def slurm_demo(tmp_path_factory, repo_root):
    from scatlas.demo.mirror import MirrorServer
    from scatlas.demo.run import service_urls
    from scatlas.demo.world import generate_world

    base = tmp_path_factory.mktemp("slurm")
    work = base / "work"
    work.mkdir()
    (work / "config").symlink_to(repo_root / "config")
    world = work / "resources" / "demo-world"
    generate_world(world, seed=1)
    config = yaml.safe_load((repo_root / "config" / "demo.yaml").read_text())
    # 8 CPUs on a 2-core machine: the jobs mostly wait for Snakemake's status checks, so
    # several may share the cores (each still asks for its rule's threads)
    with SlurmCluster(base / "cluster", cpus=8) as cluster, MirrorServer(world) as mirror:
        config["services"].update(service_urls(mirror.url))
        (work / "demo.yaml").write_text(yaml.safe_dump(config))
        env = {
            **cluster.env,
            "SCATLAS_SLURM_PARTITION": "main",
            "SCATLAS_SLURM_MAX_MEM_MB": "3000",
            "SCATLAS_SLURM_MAX_RUNTIME": "30",
            "SCATLAS_SLURM_JOBS": "4",
        }
        cmd = [
            sys.executable, "-m", "snakemake",
            "--snakefile", str(repo_root / "Snakefile"),
            "--directory", str(work),
            "--profile", str(repo_root / "profiles" / "slurm"),
            "--configfile", str(work / "demo.yaml"),
            "--latency-wait", "15",
            "--slurm-status-command", "squeue",
            "--slurm-no-account",
            "--slurm-init-seconds-before-status-checks", "2",
        ]  # fmt: skip
        log = base / "snakemake.log"
        with open(log, "wb") as out:
            proc = subprocess.run(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=1500, check=False
            )
        records = {r.job_id: r for r in cluster.job_records()}
    text = log.read_text(errors="replace")
    submitted = {
        job_id: Path(path).parts[Path(path).parts.index("slurm_logs") + 1].removeprefix("rule_")
        for job_id, path in SUBMITTED.findall(text)
    }
    return {
        "rc": proc.returncode,
        "log": log,
        "text": text,
        "work": work,
        "records": records,
        "submitted": submitted,
        "config": config,
    }


def test_workflow_succeeds_on_slurm(slurm_demo):
    assert slurm_demo["rc"] == 0, (
        f"snakemake failed; see {slurm_demo['log']}:\n" + slurm_demo["text"][-4000:]
    )


def test_jobs_ran_as_slurm_jobs(slurm_demo):
    submitted, records = slurm_demo["submitted"], slurm_demo["records"]
    rules = set(submitted.values())
    assert {"hisat2_index", "align", "count", "atlas", "train", "evaluate", "de"} <= rules
    assert not rules & LOCAL_RULES, "network-bound rules must run on the submit host"
    missing = sorted(set(submitted) - set(records))
    assert not missing, f"jobs Snakemake submitted that slurmctld never recorded: {missing}"
    states = {records[j].state for j in submitted}
    assert states == {"COMPLETED"}
    assert {records[j].partition for j in submitted} == {"main"}


def test_threads_reach_cpus_per_task(slurm_demo):
    config, submitted, records = (
        slurm_demo["config"],
        slurm_demo["submitted"],
        slurm_demo["records"],
    )
    cpus = {}
    for job_id, rule in submitted.items():
        cpus.setdefault(rule, set()).add(records[job_id].cpus)
    assert cpus["hisat2_index"] == {config["align"]["index_threads"]}
    assert cpus["align"] == {config["align"]["threads"]}
    assert cpus["train"] == {2}  # train.threads' default


def test_train_asks_for_no_gpu_by_default(slurm_demo):
    train = [j for j, rule in slurm_demo["submitted"].items() if rule == "train"]
    assert len(train) == len(slurm_demo["config"]["models"])
    for job_id in train:
        assert "gpu" not in slurm_demo["records"][job_id].fields.get("Tres", "")


def test_release_published(slurm_demo):
    current = slurm_demo["work"] / "published" / "current"
    assert (current / "manifest.json").is_file()
    assert os.path.islink(current)
