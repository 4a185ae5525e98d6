"""`scatlas demo`: generate the demo world, serve it on loopback, run the whole workflow."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from scatlas.runner import repo_root, run_workflow

log = logging.getLogger(__name__)

WORLD_DIR = Path("resources/demo-world")
DEMO_CONFIG = Path("config/demo.yaml")


def service_urls(base: str) -> dict[str, str]:
    """Base URLs of every service, all served by one loopback mirror at ``base``."""
    return {
        "eutils": f"{base}/entrez/eutils",
        "geo": f"{base}/geo",
        "ena_portal": f"{base}/ena/portal/api",
        "ena_files": base,
        "biostudies": f"{base}/biostudies",
    }


def ensure_world(world: Path, seed: int, regenerate: bool = False) -> dict:
    """Generate the world unless an identical one (same seed) is already there."""
    from scatlas.demo.spec import GENERATOR_VERSION
    from scatlas.demo.world import generate_world

    info = world / "world.json"
    if not regenerate and info.is_file():
        summary = json.loads(info.read_text())
        if summary.get("seed") == seed and summary.get("generator") == GENERATOR_VERSION:
            log.info("demo world %s already generated (seed %d)", world, seed)
            return summary
    log.info("generating the demo world in %s (seed %d)", world, seed)
    return generate_world(world, seed=seed)


@dataclass
class DemoResult:
    ok: bool
    root: Path
    outputs: dict = field(default_factory=dict)

    def report(self, minutes: float) -> str:
        lines = [f"scatlas demo {'finished' if self.ok else 'FAILED'} in {minutes:.1f} min"]
        release = self.outputs.get("release")
        if release and release.get("published") is False:
            lines.append(
                f"release {release.get('candidate_version')} NOT published: {release['reason']}"
            )
        if release and release.get("path"):
            lines.append(f"published reference : {release['path']} (version {release['version']})")
            lines.append(f"                      {release['current']} -> {release['version']}")
        acc = self.outputs.get("accuracy")
        if acc:
            lines.append(f"annotated query     : {acc['annotated']}")
            lines.append(
                f"query accuracy      : {acc['accuracy']:.3f} over {acc['n_scored']} cells "
                "of the held-out study, against the demo world's truth"
            )
            nov = acc.get("novelty")
            if nov:
                lines.append(
                    f"flagged novel       : {nov['n_unseen_flagged']} of {nov['n_unseen']} cells "
                    f"of types the reference never saw; {nov['n_known_flagged']} of "
                    f"{acc['n_scored']} of known types"
                )
        catalog = self.outputs.get("catalog")
        if catalog:
            lines.append(f"catalog             : {self.root / 'results' / 'catalog.sqlite'}")
            for row in catalog.get("failed_studies", []):
                reason = row["reason"].removeprefix(f"{row['study']}: ")
                lines.append(f"  failed study {row['study']}: {reason}")
        report = self.root / "results" / "evaluation" / "report.html"
        if report.exists():
            lines.append(f"evaluation report   : {report}")
        if not self.ok:
            lines.append("see the logs under logs/ and the Snakemake output above")
        return "\n".join(lines)


def _read_json(path: Path, since_ns: int | None = None) -> dict | None:
    """The JSON file, or None when absent or (``since_ns``) older than this run: a failed
    run never reports an earlier run's figures."""
    if not path.is_file() or (since_ns is not None and path.stat().st_mtime_ns < since_ns):
        return None
    return json.loads(path.read_text())


def run_demo(
    *,
    seed: int = 1,
    port: int = 0,
    cores: int = 2,
    regenerate: bool = False,
    root: Path | None = None,
) -> DemoResult:
    from scatlas.demo.mirror import MirrorServer

    root = root or repo_root()
    ensure_world(root / WORLD_DIR, seed, regenerate)
    started_ns = time.time_ns()
    with MirrorServer(root / WORLD_DIR, port=port) as mirror:
        log.info("demo mirror at %s", mirror.url)
        ok = run_workflow(
            root,
            configfiles=[root / DEMO_CONFIG],
            config={"services": service_urls(mirror.url)},
            cores=cores,
        )
    results = root / "results"
    since = None if ok else started_ns  # after a success, every output is up to date
    outputs = {
        "release": _read_json(results / "publish" / "release.json", since),
        "accuracy": _read_json(results / "demo" / "query_accuracy.json", since),
        "catalog": _read_json(results / "catalog" / "update.json", since),
    }
    return DemoResult(ok=ok, root=root, outputs=outputs)
