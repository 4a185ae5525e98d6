"""Benchmark: the workflow's align + count rules (through Snakemake) against HISAT2 +
featureCounts run directly on the same inputs, in the same run.

200 per-cell runs (Smart-seq-like, simulated with the demo world's machinery: synthetic
genome and GTF, expression model, read simulator) are aligned and counted twice:

* workflow: ``scatlas.runner.run_workflow`` with the rules ``align`` then ``count`` for one
  study holding the runs (its sample sheet and download manifest placed in ``results/``,
  as the ingest and download stages leave them; the HISAT2 index is built beforehand and
  not timed). The wall time includes Snakemake's start, the DAG and both jobs; the jobs'
  own time and peak memory come from Snakemake's ``benchmark:`` files.
* direct: for each run ``hisat2 -p T -x index -U run.fastq.gz | samtools view -1 -o
  run.bam -`` in turn, then one ``featureCounts`` call on all BAMs with the rule's options
  (peak memory: the summed RSS of the process tree, sampled as Snakemake samples it).

The two counts tables must be identical (checked). Printed: wall times, the workflow's
overhead as a ratio, peak memory per job, reads/s per core, and the machine load before
and after (the machine may be shared).

    .venv/bin/python benchmarks/bench_align.py [--runs 200] [--reads 2500] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from scatlas.demo import spec  # noqa: E402
from scatlas.demo.expression import (  # noqa: E402
    build_model,
    draw_batch,
    library_sizes,
    sample_counts,
)
from scatlas.demo.genome import build_genome, write_fasta, write_gtf  # noqa: E402
from scatlas.demo.reads import ReadSimulator, fastq_bytes, gzip_bytes  # noqa: E402
from scatlas.fileio import md5_file  # noqa: E402
from scatlas.reads.quant import featurecounts_args, read_featurecounts  # noqa: E402
from scatlas.runner import run_workflow  # noqa: E402
from scatlas.sheets import MANIFEST_COLUMNS, SAMPLE_COLUMNS, STUDY_COLUMNS  # noqa: E402

STUDY, GENOME, ORGANISM = "GSE999001", "bench", "Homo sapiens"


def simulate(work: Path, n_runs: int, reads: int, seed: int) -> list[dict]:
    """The genome, GTF and one gzipped single-end FASTQ per run; returns the runs."""
    rng = np.random.default_rng([seed, 1])
    genome = build_genome(rng)
    write_fasta(genome, work / "reference" / "genome.fa")
    write_gtf(genome, work / "reference" / "genes.gtf")
    model = build_model(genome, np.random.default_rng([seed, 2]))
    sim = ReadSimulator(genome, model)
    rng = np.random.default_rng([seed, 3])
    batch = draw_batch(model, rng)
    types = [spec.REFERENCE_TYPES[i % len(spec.REFERENCE_TYPES)] for i in range(n_runs)]
    totals = library_sizes(n_runs, reads, batch, rng)
    n_intr = np.rint(totals * spec.INTRONIC_FRACTION).astype(int)
    n_inter = np.rint(totals * spec.INTERGENIC_FRACTION).astype(int)
    n_cont = np.rint(totals * spec.CONTAMINANT_FRACTION).astype(int)
    counts = sample_counts(model, types, batch, totals - n_intr - n_inter - n_cont, rng)
    runs = []
    (work / "fastq").mkdir(parents=True, exist_ok=True)
    for i in range(n_runs):
        run = f"SRR99{i + 1:06d}"
        lib = sim.library(counts[i], int(n_intr[i]), int(n_inter[i]), int(n_cont[i]), False, rng)
        path = work / "fastq" / f"{run}.fastq.gz"
        path.write_bytes(gzip_bytes(fastq_bytes(run, lib.mates[0], lib.quals[0])))
        runs.append(
            {"run": run, "sample": f"GSM99{i + 1:06d}", "fastq": path, "reads": len(lib.mates[0])}
        )
    return runs


def hand_over(work: Path, runs: list[dict]) -> None:
    """What the query, sample_sheet and download rules leave in results/ for the study."""
    res = work / "results"
    for sub in ("query", f"studies/{STUDY}", f"fastq/{STUDY}"):
        (res / sub).mkdir(parents=True, exist_ok=True)
    row = dict.fromkeys(STUDY_COLUMNS, "")
    row.update(
        study=STUDY,
        source="geo",
        title="bench",
        organism=ORGANISM,
        kind="reads",
        n_samples=str(len(runs)),
        status="ok",
    )
    pd.DataFrame([row], columns=STUDY_COLUMNS).to_csv(
        res / "discover" / "studies.tsv", sep="\t", index=False
    )
    samples, manifest = [], []
    for r in runs:
        md5, size = md5_file(r["fastq"]), r["fastq"].stat().st_size
        s = dict.fromkeys(SAMPLE_COLUMNS, "")
        s.update(
            study=STUDY,
            sample=r["sample"],
            title=r["sample"],
            organism=ORGANISM,
            library_layout="SINGLE",
            technology="smartseq",
            run=r["run"],
            fastq_md5=md5,
            fastq_bytes=str(size),
        )
        samples.append(s)
        manifest.append(
            {
                "run": r["run"],
                "sample": r["sample"],
                "files": str(r["fastq"]),
                "status": "ok",
                "reason": "",
                "bytes": size,
                "md5": md5,
            }
        )
    pd.DataFrame(samples, columns=SAMPLE_COLUMNS).to_csv(
        res / "studies" / STUDY / "samples.tsv", sep="\t", index=False
    )
    (res / "studies" / STUDY / "study.json").write_text(
        json.dumps(
            {
                "study": STUDY,
                "source": "geo",
                "title": "bench",
                "organism": ORGANISM,
                "kind": "reads",
                "status": "ok",
                "reason": "bench",
                "supplementary": [],
                "n_samples": len(runs),
                "n_runs": len(runs),
            }
        )
    )
    pd.DataFrame(manifest).reindex(columns=MANIFEST_COLUMNS).fillna("").to_csv(
        res / "fastq" / STUDY / "manifest.tsv", sep="\t", index=False
    )


def write_config(work: Path, threads: int) -> Path:
    cfg = {
        "discover": {"organisms": [ORGANISM], "studies": [STUDY]},
        "reference": {
            ORGANISM: {
                "name": GENOME,
                "fasta": {"path": str(work / "reference" / "genome.fa")},
                "gtf": {"path": str(work / "reference" / "genes.gtf")},
            }
        },
        "align": {"threads": threads, "index_threads": threads, "min_alignment_rate": 0.4},
        "quant": {"threads": threads, "strandedness": 0},
    }
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class PeakRSS:
    """Summed RSS of a process and its descendants, sampled every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
                rss = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        rss += p.memory_info().rss
                self.peak = max(self.peak, rss)
            except psutil.Error:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_direct(work: Path, runs: list[dict], threads: int, out: Path) -> dict:
    """hisat2 | samtools per run, then one featureCounts call; times and peak memory."""
    index = work / "resources" / "genomes" / GENOME / "hisat2" / "index"
    gtf = work / "resources" / "genomes" / GENOME / "genes.gtf"
    out.mkdir(parents=True)
    script = out / "align.sh"
    lines = ["set -euo pipefail"]
    for r in runs:
        lines.append(
            f"hisat2 -p {threads} -x {index} -U {r['fastq']} 2> {out / r['run']}.log "
            f"| samtools view -1 -o {out / r['run']}.bam -"
        )
    script.write_text("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    proc = subprocess.Popen(["bash", str(script)])
    with PeakRSS(proc.pid) as align_mem:
        if proc.wait() != 0:
            raise SystemExit("direct alignment failed")
    t_align = time.perf_counter() - t0
    bams = [str(out / f"{r['run']}.bam") for r in runs]
    cmd = [
        "featureCounts",
        "-a",
        str(gtf),
        "-o",
        str(out / "counts.tsv"),
        *featurecounts_args(paired=False, threads=threads, strandedness=0),
        *bams,
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with PeakRSS(proc.pid) as count_mem:
        if proc.wait() != 0:
            raise SystemExit("direct featureCounts failed")
    t_count = time.perf_counter() - t0
    return {
        "align_s": t_align,
        "count_s": t_count,
        "wall_s": t_align + t_count,
        "align_rss_mb": align_mem.peak / 2**20,
        "count_rss_mb": count_mem.peak / 2**20,
        "counts": out / "counts.tsv",
    }


def run_snakemake(work: Path, config: Path, threads: int) -> dict:
    for sub in (f"results/align/{STUDY}", f"results/counts/{STUDY}", "logs/benchmarks"):
        shutil.rmtree(work / sub, ignore_errors=True)
    t0 = time.perf_counter()
    ok = run_workflow(
        work,
        snakefile=REPO / "Snakefile",
        configfiles=[config],
        cores=threads,
        targets=[f"results/counts/{STUDY}/counts.tsv"],
    )
    wall = time.perf_counter() - t0
    if not ok:
        raise SystemExit(f"workflow failed; see {work / 'logs'}")
    bench = {
        job: pd.read_csv(work / "logs" / "benchmarks" / job / f"{STUDY}.tsv", sep="\t").iloc[0]
        for job in ("align", "count")
    }
    return {
        "align_s": float(bench["align"]["s"]),
        "count_s": float(bench["count"]["s"]),
        "wall_s": wall,
        "align_rss_mb": float(bench["align"]["max_rss"]),
        "count_rss_mb": float(bench["count"]["max_rss"]),
        "counts": work / "results" / "counts" / STUDY / "counts.tsv",
    }


def load() -> str:
    la = os.getloadavg()
    return f"load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} on {os.cpu_count()} cores"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--reads", type=int, default=2500, help="mean reads per run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=2, help="runs of each (ABBA order)")
    ap.add_argument("--workdir", type=Path, default=None, help="kept; default: a temp folder")
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_align."))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder: {work}")
    t0 = time.perf_counter()
    runs = simulate(work, args.runs, args.reads, args.seed)
    n_reads = sum(r["reads"] for r in runs)
    print(f"simulated {len(runs)} runs, {n_reads} reads in {time.perf_counter() - t0:.1f} s")
    hand_over(work, runs)
    config = write_config(work, args.threads)
    t0 = time.perf_counter()
    ok = run_workflow(
        work,
        snakefile=REPO / "Snakefile",
        configfiles=[config],
        cores=args.threads,
        targets=[f"resources/genomes/{GENOME}/hisat2", f"resources/genomes/{GENOME}/genes.gtf"],
    )
    if not ok:
        raise SystemExit("index build failed")
    print(f"HISAT2 index built in {time.perf_counter() - t0:.1f} s (not timed below)")

    before = load()
    # ABBA order (direct, workflow, workflow, direct, ...) so that a drift of the machine's
    # load weighs on both alike; the medians are reported
    results: dict[str, list[dict]] = {"direct": [], "workflow": []}
    order = ["direct", "workflow", "workflow", "direct"] * args.repeats
    for k, kind in enumerate(order[: 2 * args.repeats]):
        if kind == "direct":
            shutil.rmtree(work / "direct", ignore_errors=True)
            results[kind].append(run_direct(work, runs, args.threads, work / "direct"))
        else:
            results[kind].append(run_snakemake(work, config, args.threads))
        print(f"pass {k + 1}: {kind} {results[kind][-1]['wall_s']:.1f} s; {load()}")
    _report(results, runs, n_reads, args, before)
    print(f"after: {load()}")


def _report(results: dict[str, list[dict]], runs: list, n_reads: int, args, before) -> None:
    """The medians side by side as ratios; SystemExit when the counts differ."""

    def median(kind: str) -> dict:
        out = {
            k: float(np.median([r[k] for r in results[kind]]))
            for k in results[kind][0]
            if k != "counts"
        }
        out["counts"] = results[kind][-1]["counts"]
        return out

    direct, flow = median("direct"), median("workflow")

    ours, _ = read_featurecounts(flow["counts"])
    theirs, _ = read_featurecounts(direct["counts"])
    theirs.columns = [c.rsplit("/", 1)[-1] for c in theirs.columns]
    identical = ours.shape == theirs.shape and bool((ours.to_numpy() == theirs.to_numpy()).all())

    def row(name: str, key: str, unit: str, fmt: str = "{:.1f}") -> str:
        a, b = flow[key], direct[key]
        return f"{name:<34}{fmt.format(a):>12}{fmt.format(b):>12}{a / b:>10.3f}  {unit}"

    print()
    print(
        f"{len(runs)} single-end runs, {n_reads} reads, {args.threads} threads, median of "
        f"{args.repeats} pass(es) each; before: {before}"
    )
    print(f"{'':<34}{'workflow':>12}{'direct':>12}{'ratio':>10}")
    print(row("align (all runs)", "align_s", "s  (workflow: the align job)"))
    print(row("count (featureCounts)", "count_s", "s  (workflow: the count job)"))
    print(row("total wall time", "wall_s", "s  (workflow: incl. Snakemake)"))
    print(row("peak memory, align job", "align_rss_mb", "MB (summed RSS of the job)"))
    print(row("peak memory, count job", "count_rss_mb", "MB"))
    rate = {k: n_reads / v["wall_s"] / args.threads for k, v in (("w", flow), ("d", direct))}
    print(
        f"{'reads/s per core (total wall)':<34}{rate['w']:>12.0f}{rate['d']:>12.0f}"
        f"{rate['w'] / rate['d']:>10.3f}"
    )
    overhead = flow["wall_s"] / direct["wall_s"] - 1
    print(f"\nworkflow overhead: {overhead:+.1%} (target <= +15%); counts identical: {identical}")
    if not identical:
        raise SystemExit("the workflow's counts differ from the direct run's")


if __name__ == "__main__":
    main()
