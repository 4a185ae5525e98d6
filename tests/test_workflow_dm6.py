"""Real reads through the workflow's rules: GSE49587 (4 paired-end D. melanogaster samples,
2 Mb genome excerpt and its GTF) from reference_files to expression, via snakemake.api.

The run starts from what the ingest and download stages hand over — a studies table, the
study's sample sheet and study.json, and a download manifest with the files' real md5 and
size — placed in ``results/`` of a temporary working directory. (The ingest -> download
path over the loopback mirror is exercised by the demo workflow test; dressing these bulk
RNA-seq reads up as a single-cell GEO series to route them through it would test nothing
more about alignment and counting.) Snakemake then runs reference_files, hisat2_index
(through the between-workflow cache), align, count and expression.

Checked: the alignment rate is the one HISAT2 reports (~99%), the counts equal a direct
HISAT2 + featureCounts run on the same index and reads, the RPKM layer equals
``edgeR::rpkm`` (rpy2), BAMs are temporary, and the index comes from the cache in a second
working directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from dm6_pipeline import RUNS, SAMPLES, edger_rpkm, require_tools

from scatlas.fileio import md5_file
from scatlas.reads.quant import read_featurecounts
from scatlas.sheets import MANIFEST_COLUMNS, SAMPLE_COLUMNS, STUDY_COLUMNS

pytestmark = [pytest.mark.tools, pytest.mark.slow]

STUDY, GENOME, ORGANISM = "GSE49587", "dm6-small", "Drosophila melanogaster"
TARGET = f"results/studies/{STUDY}/expression.h5ad"


def _write_tsv(path: Path, rows: list[dict], columns: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=columns).fillna("").to_csv(path, sep="\t", index=False)


def _config(work: Path, data: Path) -> Path:
    cfg = {
        "discover": {"organisms": [ORGANISM], "studies": [STUDY]},
        "reference": {
            ORGANISM: {
                "name": GENOME,
                "fasta": {"path": str(data / "dm6.small.fa")},
                "gtf": {"path": str(data / "dm6.small.gtf")},
            }
        },
        "align": {"threads": 2, "index_threads": 2, "min_alignment_rate": 0.4},
        "quant": {"threads": 2, "strandedness": 0},
        "atlas": {"organism": ORGANISM},
    }
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _handover(work: Path, data: Path) -> None:
    """What query, sample_sheet and download leave in results/ for this study."""
    res = work / "results"
    _write_tsv(
        res / "discover" / "studies.tsv",
        [
            {
                "study": STUDY,
                "source": "geo",
                "title": "RNA-seq of wild type and Smn mutant Drosophila larvae",
                "organism": ORGANISM,
                "kind": "reads",
                "n_samples": "4",
                "submitted": "2013-08-05",
                "updated": "",
                "status": "ok",
                "reason": "test hand-over",
            }
        ],
        STUDY_COLUMNS,
    )
    samples, manifest = [], []
    for i, (run, sample) in enumerate(zip(RUNS, SAMPLES, strict=True), start=1):
        files = [data / f"sample{i}.tiny_R{m}.fastq.gz" for m in (1, 2)]
        samples.append(
            {
                "study": STUDY,
                "sample": sample,
                "title": f"sample{i}",
                "organism": ORGANISM,
                "source_name": "third instar larvae",
                "characteristics": f"genotype: {'wild type' if i <= 2 else 'Smn mutant'}",
                "library_strategy": "RNA-Seq",
                "library_source": "transcriptomic",
                "library_layout": "PAIRED",
                "technology": "smartseq",
                "run": run,
                "fastq_urls": ";".join(
                    f"http://127.0.0.1:1/vol1/fastq/{run[:6]}/{run}/{run}_{m}.fastq.gz"
                    for m in (1, 2)
                ),
                "fastq_md5": ";".join(md5_file(f) for f in files),
                "fastq_bytes": ";".join(str(f.stat().st_size) for f in files),
            }
        )
        manifest.append(
            {
                "run": run,
                "sample": sample,
                "files": ";".join(str(f) for f in files),
                "status": "ok",
                "bytes": sum(f.stat().st_size for f in files),
                "md5": ";".join(md5_file(f) for f in files),
            }
        )
    _write_tsv(res / "studies" / STUDY / "samples.tsv", samples, SAMPLE_COLUMNS)
    (res / "studies" / STUDY / "study.json").write_text(
        json.dumps(
            {
                "study": STUDY,
                "source": "geo",
                "title": "RNA-seq of wild type and Smn mutant Drosophila larvae",
                "organism": ORGANISM,
                "kind": "reads",
                "status": "ok",
                "reason": "test hand-over",
                "supplementary": [],
                "n_samples": 4,
                "n_runs": 4,
            }
        )
    )
    _write_tsv(res / "fastq" / STUDY / "manifest.tsv", manifest, MANIFEST_COLUMNS)


@pytest.fixture(scope="module")
def dm6_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory, repo_root: Path):
    require_tools()
    from scatlas.runner import run_workflow

    data = shared_data / "reads" / "dm6-GSE49587"
    work = tmp_path_factory.mktemp("dm6-workflow")
    cache = tmp_path_factory.mktemp("snakemake-cache")
    _handover(work, data)
    config = _config(work, data)
    previous = os.environ.get("SNAKEMAKE_OUTPUT_CACHE")
    os.environ["SNAKEMAKE_OUTPUT_CACHE"] = str(cache)
    try:
        ok = run_workflow(
            work,
            snakefile=repo_root / "Snakefile",
            configfiles=[config],
            cores=2,
            targets=[TARGET],
            cache=["hisat2_index"],
        )
        # a second working directory: the index comes from the cache, hisat2-build does not run
        second = tmp_path_factory.mktemp("dm6-second")
        again = run_workflow(
            second,
            snakefile=repo_root / "Snakefile",
            configfiles=[_config(second, data)],
            cores=2,
            targets=[f"resources/genomes/{GENOME}/hisat2"],
            cache=["hisat2_index"],
        )
    finally:
        if previous is None:
            os.environ.pop("SNAKEMAKE_OUTPUT_CACHE", None)
        else:
            os.environ["SNAKEMAKE_OUTPUT_CACHE"] = previous
    return {"ok": ok, "again": again, "work": work, "second": second, "cache": cache, "data": data}


def test_rules_ran(dm6_run) -> None:
    assert dm6_run["ok"], f"see the logs under {dm6_run['work'] / 'logs'}"
    work = dm6_run["work"]
    for rel in (
        f"resources/genomes/{GENOME}/genes.tsv",
        f"results/align/{STUDY}/alignment.tsv",
        f"results/counts/{STUDY}/counts.tsv",
        TARGET,
    ):
        assert (work / rel).is_file(), rel
    assert not (work / "results" / "align" / STUDY / "bam").exists()  # temp(): removed
    genes = pd.read_csv(work / f"resources/genomes/{GENOME}/genes.tsv", sep="\t")
    assert list(genes.columns) == ["gene_id", "gene_symbol", "biotype", "chrom", "strand", "length"]
    assert len(genes) == 167 and genes["gene_id"].str.startswith("FBgn").all()


def test_alignment_rate_is_what_hisat2_reports(dm6_run) -> None:
    work = dm6_run["work"]
    table = pd.read_csv(work / "results" / "align" / STUDY / "alignment.tsv", sep="\t")
    assert table["run"].tolist() == RUNS and (table["status"] == "ok").all()
    assert (table["total_reads"] == 10100).all()
    for rec in table.to_dict("records"):
        log = (work / "logs" / "align" / STUDY / f"{rec['run']}.log").read_text()
        printed = float(re.search(r"([\d.]+)% overall alignment rate", log).group(1))
        assert round(rec["alignment_rate"] * 100, 2) == printed
        assert 98.5 < printed < 99.5
    # sample1 (SRR948304) against the splice-aware dm6 excerpt index: HISAT2 2.2.1 prints 99.02%
    assert round(table.loc[0, "alignment_rate"] * 100, 2) == 99.02


def _direct_counts(work: Path, data: Path, out: Path) -> pd.DataFrame:
    """HISAT2 (the hisat2 wrapper, reading the gzipped files itself) + featureCounts on the
    same index, outside the workflow."""
    index = work / "resources" / "genomes" / GENOME / "hisat2" / "index"
    bams = []
    for i, run in enumerate(RUNS, start=1):
        bam = out / f"{run}.bam"
        hisat = subprocess.Popen(
            [
                "hisat2",
                "-p",
                "2",
                "-x",
                str(index),
                "-1",
                str(data / f"sample{i}.tiny_R1.fastq.gz"),
                "-2",
                str(data / f"sample{i}.tiny_R2.fastq.gz"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        subprocess.run(
            ["samtools", "view", "-b", "-o", str(bam), "-"], stdin=hisat.stdout, check=True
        )
        assert hisat.wait() == 0
        bams.append(bam)
    subprocess.run(
        [
            "featureCounts",
            "-a",
            str(data / "dm6.small.gtf"),
            "-o",
            str(out / "direct.tsv"),
            "-t",
            "exon",
            "-g",
            "gene_id",
            "-s",
            "0",
            "-T",
            "2",
            "-p",
            "--countReadPairs",
            "-B",
            "-C",
            *map(str, bams),
        ],
        check=True,
        capture_output=True,
    )
    table = pd.read_csv(out / "direct.tsv", sep="\t", comment="#", index_col=0)
    return table[[str(b) for b in bams]].set_axis(RUNS, axis=1)


def test_counts_equal_direct_featurecounts(dm6_run, tmp_path: Path) -> None:
    counts, summary = read_featurecounts(
        dm6_run["work"] / "results" / "counts" / STUDY / "counts.tsv"
    )
    direct = _direct_counts(dm6_run["work"], dm6_run["data"], tmp_path)
    assert list(counts.index) == list(direct.index) and list(counts.columns) == RUNS
    np.testing.assert_array_equal(counts.to_numpy(), direct.to_numpy())
    assigned = summary.loc["Assigned"] / summary.sum(axis=0)
    assert ((assigned > 0.85) & (assigned < 0.98)).all()


@pytest.mark.r
def test_rpkm_layer_equals_edger(dm6_run) -> None:
    work = dm6_run["work"]
    counts, _ = read_featurecounts(work / "results" / "counts" / STUDY / "counts.tsv")
    adata = ad.read_h5ad(work / TARGET)
    assert adata.obs_names.tolist() == SAMPLES and adata.obs["run"].tolist() == RUNS
    lengths = counts.attrs["lengths"].to_numpy(dtype=float)
    expected = edger_rpkm(counts.to_numpy(dtype=float), lengths)  # genes x runs
    got = adata[:, counts.index].layers["rpkm"].toarray().T
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(adata[:, counts.index].X.toarray().T, counts.to_numpy())
    assert adata.uns["scatlas"]["status"] == "ok" and expected.max() > 1000


def test_index_built_once_and_cached(dm6_run) -> None:
    assert dm6_run["again"]
    second = dm6_run["second"] / "resources" / "genomes" / GENOME
    entries = sorted(p for p in (second / "hisat2").iterdir() if not p.name.startswith("."))
    assert {p.name for p in entries} >= {f"index.{i}.ht2" for i in range(1, 9)}
    # Snakemake's local cache links every file of a cached directory into place
    cache = Path(dm6_run["cache"]).resolve()
    assert all(p.is_symlink() and cache in p.resolve().parents for p in entries)
    assert (second / "genes.tsv").is_symlink()
    # the job's log stays empty in the second directory: the index was not built there
    log = Path("logs") / "reference" / f"{GENOME}.hisat2_build.log"
    assert "building HISAT2 index" in (dm6_run["work"] / log).read_text()
    assert (dm6_run["second"] / log).read_text() == ""
    first = dm6_run["work"] / "resources" / "genomes" / GENOME / "hisat2" / "index.1.ht2"
    assert first.read_bytes() == (second / "hisat2" / "index.1.ht2").read_bytes()
