"""SIGKILL of a whole refresh (its process group, as a cron time-out or an OOM killer of the
session does) while it aligns: no process of the run survives, the next refresh resumes to
what an uninterrupted run makes (catalog rows, atlas, release content), and a refresh
after it with nothing new runs no heavy job and publishes nothing.

The uninterrupted run is the session's demo run (``demo_run``: the same demo world, config
and workflow, run once through snakemake.api)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from test_refresh import catalog_rows

from scatlas.demo.mirror import MirrorServer
from scatlas.demo.run import service_urls
from scatlas.demo.world import generate_world
from scatlas.discover.refresh import refresh
from scatlas.release.publish import list_versions

UNTIL = "2026-12-01"
# every rule but these is heavy: a refresh with nothing new runs none of them
LIGHT = {"discover"}


def _pstat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a live process, None when gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in "ZX" else (fields[0], int(fields[1]), int(fields[19]))


def _tree(root: int) -> dict[int, tuple[int, str]]:
    """The live descendants of ``root`` (and ``root``): pid -> (start time, command)."""
    parents: dict[int, int] = {}
    starts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _pstat(int(entry.name))) is not None:
            parents[int(entry.name)], starts[int(entry.name)] = st[1], st[2]
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in starts:
            tree[pid] = (starts[pid], _command(pid))
            todo.extend(p for p, parent in parents.items() if parent == pid)
    return tree


def _command(pid: int) -> str:
    """The command line, or ``[name]`` for a process whose command line is gone (exiting)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160]
        return cmd or f"[{Path(f'/proc/{pid}/comm').read_text().strip()}]"
    except OSError:
        return ""


def _aligning(tree: dict[int, tuple[int, str]]) -> bool:
    return any("hisat2-align" in cmd for _, cmd in tree.values())


def _hisat2_pids(work: Path) -> list[int]:
    """Live HISAT2 processes working in ``work`` (Snakemake runs jobs there, with paths
    relative to it)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes()
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if b"hisat2-align" in cmd and cwd == work and _pstat(int(entry.name)):
            found.append(int(entry.name))
    return found


def _release_content(work: Path) -> dict[str, object]:
    """What a release holds that does not depend on when it was made (not the manifest's
    dates and paths, not the evaluation's timings)."""
    rel = (work / "published" / "current").resolve()
    content: dict[str, object] = {
        name: (rel / name).read_bytes() for name in ("genes.tsv", "novelty.tsv", "ontology.obo")
    }
    content["de"] = {
        str(p.relative_to(rel)): p.read_bytes() for p in sorted(rel.glob("de/**/*")) if p.is_file()
    }
    content["cells"] = pd.read_parquet(rel / "cells.parquet")
    content["weights"] = torch.load(rel / "encoder.pt", weights_only=True)
    return content


def _same_release(a: dict, b: dict) -> None:
    pd.testing.assert_frame_equal(a.pop("cells"), b.pop("cells"))
    wa, wb = a.pop("weights"), b.pop("weights")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a == b


@pytest.mark.slow
def test_killed_refresh_leaves_no_process_and_resumes_to_a_clean_run(demo_run, tmp_path, repo_root):
    assert demo_run["ok"]
    clean = demo_run["work"]
    work = tmp_path / "killed"
    (work / "config").mkdir(parents=True)
    for f in (repo_root / "config").iterdir():
        (work / "config" / f.name).symlink_to(f)
    world = work / "resources" / "demo-world"
    generate_world(world, seed=1)
    # the clean run's port: URLs recorded in the catalog and study files are then the same
    with MirrorServer(world, port=int(demo_run["url"].rsplit(":", 1)[1])) as mirror:
        (work / "config" / "services.yaml").write_text(
            json.dumps({"services": service_urls(mirror.url)})
        )
        argv = ["refresh", "--workdir", str(work), "--until", UNTIL, "--configfile",
                "config/demo.yaml", "--configfile", "config/services.yaml"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(repo_root / "scripts")}
        with open(tmp_path / "killed.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "scatlas.cli", *argv],
                cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 300
                # one snapshot of the tree that shows HISAT2 at work: a demo run aligns in
                # milliseconds, so HISAT2 seen a moment ago may be gone (or exiting, with an
                # empty command line) by the time the tree is read
                while not _aligning(tree := _tree(proc.pid)):
                    assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
                    assert time.monotonic() < deadline, "the refresh never reached alignment"
                    time.sleep(0.02)
            finally:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        deadline = time.monotonic() + 10
        while (alive := _survivors(tree, work)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive, f"processes of the killed refresh still alive: {alive}"
        assert not (work / "published").exists()  # killed long before publishing

        resumed = refresh(work, configfiles=["config/demo.yaml", "config/services.yaml"],
                          until=UNTIL)  # fmt: skip
        assert resumed.status == "ok", resumed.message
        versions = list_versions(work / "published")
        release_record = (work / "results" / "publish" / "release.json").read_bytes()

        again = refresh(work, configfiles=["config/demo.yaml", "config/services.yaml"],
                        until=UNTIL)  # fmt: skip
    assert again.status == "ok", again.message
    heavy = sorted({j.rule for j in again.jobs} - LIGHT)
    assert heavy == [], f"a refresh with nothing new ran {heavy}"
    assert (again.new, again.changed) == ([], [])
    assert list_versions(work / "published") == versions and len(versions) == 1
    assert (work / "results" / "publish" / "release.json").read_bytes() == release_record

    # the resumed run equals the uninterrupted one
    assert resumed.new == sorted(r[0] for r in catalog_rows(clean)["studies"])
    assert catalog_rows(work) == catalog_rows(clean)
    a, b = (ad.read_h5ad(w / "results" / "atlas" / "atlas.h5ad") for w in (work, clean))
    assert (a.obs_names == b.obs_names).all() and (a.var_names == b.var_names).all()
    np.testing.assert_array_equal(a.X.toarray(), b.X.toarray())
    pd.testing.assert_frame_equal(a.obs, b.obs)
    _same_release(_release_content(work), _release_content(clean))


def _survivors(tree: dict[int, tuple[int, str]], work: Path) -> list[str]:
    """Processes of the killed tree still alive (the same pid and start time), and any
    HISAT2 working in this run's folder."""
    alive = [pid for pid, (start, _) in tree.items() if (st := _pstat(pid)) and st[2] == start]
    alive += [p for p in _hisat2_pids(work) if p not in alive]
    return [f"{pid}: {_command(pid)}" for pid in alive]
