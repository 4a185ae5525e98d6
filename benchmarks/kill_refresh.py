"""Fault injection: SIGKILL a whole `scatlas refresh` (its process group, as cron's time-out
does) at several stages of the demo workflow, resume it, and compare with an uninterrupted
refresh.

For each stage, in a fresh folder on the demo world: start `scatlas refresh` in its own
process group, wait until a job of that stage runs (``align``, ``train``, ``publish``) or
until the release folder has appeared (``published``: the moment between the rename and the
``current`` swap is a few microseconds, so the kill comes right after the folder appears),
SIGKILL the group, count the processes of the run still alive 5 s later, resume with a
second refresh, then a third with nothing new. Prints one row per stage: survivors, whether
the resume succeeded, the releases kept, whether the release's content equals the clean
run's, and the jobs the nothing-new refresh ran.

    .venv/bin/python benchmarks/kill_refresh.py [--stages align,train,publish,published]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from scatlas.demo.mirror import MirrorServer  # noqa: E402
from scatlas.demo.run import service_urls  # noqa: E402
from scatlas.demo.world import generate_world  # noqa: E402
from scatlas.discover.refresh import refresh  # noqa: E402
from scatlas.release.publish import list_versions  # noqa: E402

UNTIL = "2026-12-01"
CONFIGS = ["config/demo.yaml", "config/services.yaml"]
# the rule script a stage's jobs run (Snakemake copies it to .snakemake/scripts/tmpXXX.NAME)
STAGE_SCRIPTS = {
    "download": "download_study.py",
    "align": "align_study.py",
    "train": "train_model.py",
    "publish": "publish_release.py",
}


def _processes_in(work: Path) -> dict[int, str]:
    """Live processes whose current folder is ``work``: pid -> command line."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(os.readlink(entry / "cwd")) != work:
                continue
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] in "ZX":
                continue
            out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
    return out


def _setup(work: Path, world: Path, url: str) -> None:
    (work / "config").mkdir(parents=True)
    for f in (REPO / "config").iterdir():
        (work / "config" / f.name).symlink_to(f)
    (work / "config" / "services.yaml").write_text(json.dumps({"services": service_urls(url)}))
    (work / "resources").mkdir()
    (work / "resources" / "demo-world").symlink_to(world)


def _reached(stage: str, work: Path) -> bool:
    if stage == "published":
        return (work / "published").is_dir() and bool(list_versions(work / "published"))
    script = STAGE_SCRIPTS[stage]
    return any(script in cmd for cmd in _processes_in(work).values())


def _kill_at(stage: str, work: Path, log: Path) -> tuple[int, int]:
    """Run a refresh until ``stage``, SIGKILL its group; (processes seen, left alive)."""
    argv = ["refresh", "--workdir", str(work), "--until", UNTIL]
    for c in CONFIGS:
        argv += ["--configfile", c]
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scatlas.cli", *argv],
            cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        seen: dict[int, str] = {}
        try:
            while not _reached(stage, work):
                if proc.poll() is not None:
                    raise SystemExit(f"the refresh ended before {stage}: see {log}")
                seen.update(_processes_in(work))
                time.sleep(0.02)
            seen.update(_processes_in(work))
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    time.sleep(5)
    return len(seen), len(_processes_in(work))


def _release_digest(work: Path) -> str:
    """What the current release holds, less what depends on when it was made: the manifest
    (dates, paths), the evaluation's and training's timings, torch.save's container bytes
    (the weights themselves are compared)."""
    import hashlib
    import re

    import torch

    rel = (work / "published" / "current").resolve()
    digest = hashlib.sha256()
    for p in sorted(rel.rglob("*")):
        if not p.is_file() or p.name in ("manifest.json", "metrics.json"):
            continue
        digest.update(str(p.relative_to(rel)).encode())
        if p.name == "encoder.pt":
            weights = torch.load(p, weights_only=True)
            for k in sorted(weights):
                digest.update(k.encode() + weights[k].cpu().numpy().tobytes())
        elif p.name == "model.json":
            info = json.loads(p.read_text())
            kept = {k: v for k, v in info.items() if not re.search(r"second|time|device", k)}
            digest.update(json.dumps(kept, sort_keys=True).encode())
        else:
            digest.update(p.read_bytes())
    return digest.hexdigest()[:12]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stages", default="align,train,publish,published")
    ap.add_argument("--workdir", type=Path, help="kept; default: a temporary folder")
    args = ap.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="kill_refresh."))
    world = root / "world"
    if not world.exists():
        generate_world(world, seed=1)
    rows = []
    with MirrorServer(world) as mirror:
        clean = root / "clean"
        if not (clean / "published").exists():
            _setup(clean, world, mirror.url)
            assert refresh(clean, configfiles=CONFIGS, until=UNTIL).status == "ok"
        want = _release_digest(clean)
        for stage in args.stages.split(","):
            work = root / f"killed-{stage}"
            shutil.rmtree(work, ignore_errors=True)
            _setup(work, world, mirror.url)
            seen, alive = _kill_at(stage, work, root / f"{stage}.log")
            t0 = time.perf_counter()
            resumed = refresh(work, configfiles=CONFIGS, until=UNTIL)
            resume_s = time.perf_counter() - t0
            again = refresh(work, configfiles=CONFIGS, until=UNTIL)
            versions = list_versions(work / "published") if (work / "published").exists() else []
            rows.append(
                (
                    stage,
                    f"{seen}",
                    f"{alive}",
                    f"{resumed.status} ({len(resumed.jobs)} jobs, {resume_s:.0f} s)",
                    f"{len(versions)}",
                    "yes" if versions and _release_digest(work) == want else "NO",
                    ",".join(sorted({j.rule for j in again.jobs})) or "-",
                )
            )
            print(rows[-1], flush=True)
    head = ("killed at", "procs", "alive 5s", "resumed", "releases", "= clean", "then ran")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print()
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return 0 if all(r[2] == "0" and r[5] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
