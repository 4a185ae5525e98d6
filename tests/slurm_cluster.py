"""A real single-node SLURM cluster on localhost for the tests: munged, slurmctld and slurmd
from Debian's packages, each in a private state folder with its own slurm.conf (no
accounting database; finished jobs go to a jobcomp text file), on free ports.

Used as a context manager: the daemons it starts are stopped (and their process groups
killed) on exit, whatever happened inside.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Debian packages that bring the daemons and the client commands
PACKAGES = {
    "munged": "munge",
    "slurmctld": "slurmctld",
    "slurmd": "slurmd",
    "sbatch": "slurm-client",
}


class ClusterError(RuntimeError):
    """The test cluster could not be installed or started (the message says why)."""


def ensure_installed() -> None:
    """apt-get install the SLURM and munge packages that are missing (as root), else fail."""
    missing = sorted({pkg for cmd, pkg in PACKAGES.items() if shutil.which(cmd) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        raise ClusterError(f"SLURM packages missing ({' '.join(missing)}) and not root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _memory_mb() -> int:
    text = Path("/proc/meminfo").read_text()
    total_kb = int(re.search(r"MemTotal:\s+(\d+)", text).group(1))
    return max(1024, total_kb // 1024 - 1024)  # leave 1 GB to the system


@dataclass
class JobRecord:
    """One finished job as slurmctld's jobcomp plugin recorded it."""

    job_id: str
    name: str
    state: str
    partition: str
    cpus: int
    fields: dict[str, str]


class SlurmCluster:
    """munged + slurmctld + slurmd on localhost, configured under ``root``."""

    def __init__(self, root: Path, *, cpus: int | None = None, min_job_age: int = 600):
        """``cpus``: CPUs the node offers (default: the machine's); more than the machine
        has oversubscribes it (slurmd then uses the configured count)."""
        self.root = Path(root)
        self.cpus = cpus or os.cpu_count() or 1
        self.min_job_age = min_job_age
        self.node = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.jobcomp = self.root / "log" / "jobcomp.txt"
        self.socket = self.root / "munge" / "munge.socket"
        self._procs: dict[str, subprocess.Popen] = {}

    @property
    def env(self) -> dict[str, str]:
        """Environment for clients (sbatch, squeue, the Snakemake executor) of this cluster.

        Clients find this cluster's slurm.conf through SLURM_CONF. The executor's job step
        (snakemake-executor-plugin-slurm-jobstep) removes every SLURM_* variable before it
        calls ``srun`` inside a job, so ``bin/srun`` here, first on PATH, puts SLURM_CONF
        back; a site whose config is at /etc/slurm/slurm.conf, or configless, needs none.
        """
        path = f"{self.root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": path}

    def _write_srun_shim(self) -> None:
        real = shutil.which("srun")
        if real is None:
            raise ClusterError("srun is not on PATH (package slurm-client)")
        shim = self.root / "bin" / "srun"
        shim.parent.mkdir(parents=True, exist_ok=True)
        shim.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec "{real}" "$@"\n')
        shim.chmod(0o755)

    def _write_config(self) -> None:
        for sub in ("munge", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o711)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        ctld_port, d_port = _free_ports(2)
        r = self.root
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=scatlastest",
                    f"SlurmctldHost={self.node}(127.0.0.1)",
                    f"SlurmctldPort={ctld_port}",
                    f"SlurmdPort={d_port}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={self.socket}",
                    f"StateSaveLocation={r}/state",
                    f"SlurmdSpoolDir={r}/spool",
                    f"SlurmctldPidFile={r}/slurmctld.pid",
                    f"SlurmdPidFile={r}/slurmd.pid",
                    f"SlurmctldLogFile={r}/log/slurmctld.log",
                    f"SlurmdLogFile={r}/log/slurmd.log",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "MpiDefault=none",
                    "ReturnToService=2",
                    "SchedulerType=sched/backfill",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/filetxt",
                    f"JobCompLoc={self.jobcomp}",
                    # finished jobs stay visible to squeue this long (status without sacct)
                    f"MinJobAge={self.min_job_age}",
                    "SlurmctldTimeout=30",
                    # the node's CPUs and memory as configured, not as detected
                    "SlurmdParameters=config_overrides",
                    "SlurmdTimeout=30",
                    f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} "
                    f"RealMemory={_memory_mb()} State=UNKNOWN",
                    "PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )

    def _start(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")  # noqa: SIM115 (kept by Popen)
        self._procs[name] = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        log.close()

    def _wait_for(self, what: str, check, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    out = (self.root / "log" / f"{name}.out").read_text(errors="replace")
                    raise ClusterError(f"{name} exited with {proc.returncode}: {out[-2000:]}")
            if check():
                return
            time.sleep(0.3)
        raise ClusterError(f"timed out waiting for {what}")

    def start(self) -> SlurmCluster:
        ensure_installed()
        self._write_config()
        self._write_srun_shim()
        r = self.root
        self._start(
            "munged",
            [
                "munged", "--foreground", "--force", f"--socket={self.socket}",
                f"--key-file={r}/munge/munge.key", f"--pid-file={r}/munge/munged.pid",
                f"--seed-file={r}/munge/seed", f"--log-file={r}/log/munged.log",
            ],
        )  # fmt: skip
        self._wait_for("munged", self.socket.exists)
        self._start("slurmctld", ["slurmctld", "-D", "-c", "-f", str(self.conf)])
        self._wait_for("slurmctld", self._controller_up)
        self._start("slurmd", ["slurmd", "-D", "-f", str(self.conf)])
        self._wait_for("the node to be idle", self._node_idle, timeout=60)
        return self

    def _controller_up(self) -> bool:
        proc = subprocess.run(["scontrol", "ping"], env=self.env, capture_output=True, text=True)
        return proc.returncode == 0 and "UP" in proc.stdout

    def _node_idle(self) -> bool:
        proc = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True, text=True
        )
        return proc.returncode == 0 and proc.stdout.strip() == "idle"

    def stop(self) -> None:
        """Cancel leftover jobs, then stop the daemons and everything they started."""
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            subprocess.run(["scancel", "--full", "--user=root"], env=self.env, check=False,
                           capture_output=True, timeout=30)  # fmt: skip
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.pop(name, None)
            if proc is None:
                continue
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=10)
                    break
                except subprocess.TimeoutExpired:
                    continue

    def __enter__(self) -> SlurmCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def job_records(self) -> list[JobRecord]:
        """Finished jobs from the jobcomp file (slurmctld writes one line per job)."""
        if not self.jobcomp.is_file():
            return []
        return list(_parse_jobcomp(self.jobcomp.read_text()))


def _parse_jobcomp(text: str) -> Iterator[JobRecord]:
    for line in text.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            yield JobRecord(
                job_id=fields["JobId"],
                name=fields.get("Name", ""),
                state=fields.get("JobState", ""),
                partition=fields.get("Partition", ""),
                cpus=int(fields.get("ProcCnt", "0") or 0),
                fields=fields,
            )
