"""The real dm6 (GSE49587) pipeline, built once per test session and shared by the
alignment, quantification and expression tests: HISAT2 index of the 2 Mb genome excerpt,
the 4 paired-end samples aligned, featureCounts over them.

Helpers for comparing with R's edgeR live here too.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scatlas.reads.align import align_study
from scatlas.reads.quant import count_study
from scatlas.reads.reference import build_hisat2_index
from scatlas.settings import QuantSettings

# SRA runs of GSE49587 in the order of the lcdb test data (sample1..4).
RUNS = ["SRR948304", "SRR948305", "SRR948306", "SRR948307"]
# Sample accessions for the test sheets (labels only; the real GSM ids are not in the data).
SAMPLES = ["GSM0000001", "GSM0000002", "GSM0000003", "GSM0000004"]
TOOLS = (
    "hisat2",
    "hisat2-build",
    "samtools",
    "featureCounts",
)

_CACHE: dict[str, DM6] = {}


@dataclass
class DM6:
    data: Path
    work: Path
    index: Path
    manifest: Path
    alignment_tsv: Path
    alignment: pd.DataFrame
    bam_dir: Path
    log_dir: Path
    counts_tsv: Path

    @property
    def gtf(self) -> Path:
        return self.data / "dm6.small.gtf"


def require_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"tools not on PATH: {', '.join(missing)}")


def write_manifest(path: Path, rows: list[dict]) -> Path:
    cols = ["run", "sample", "files", "status", "reason", "bytes", "md5"]
    pd.DataFrame(rows, columns=cols).fillna("").to_csv(path, sep="\t", index=False)
    return path


def dm6_manifest_rows(data: Path) -> list[dict]:
    return [
        {
            "run": run,
            "sample": sample,
            "status": "ok",
            "reason": "",
            "bytes": "",
            "md5": "",
            "files": f"{data}/sample{i}.tiny_R1.fastq.gz;{data}/sample{i}.tiny_R2.fastq.gz",
        }
        for i, (run, sample) in enumerate(zip(RUNS, SAMPLES, strict=True), start=1)
    ]


def dm6_pipeline(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> DM6:
    """Index, align and count the dm6 data once per session."""
    require_tools()
    if "dm6" in _CACHE:
        return _CACHE["dm6"]
    data = shared_data / "reads" / "dm6-GSE49587"
    if not (data / "dm6.small.fa").is_file():
        pytest.skip(f"{data} is not present")
    work = tmp_path_factory.mktemp("dm6")
    index = build_hisat2_index(
        data / "dm6.small.fa", data / "dm6.small.gtf", work / "index", threads=2
    )
    manifest = write_manifest(work / "manifest.tsv", dm6_manifest_rows(data))
    alignment_tsv = work / "align" / "alignment.tsv"
    alignment = align_study(
        manifest, index, work / "bam", alignment_tsv, threads=2, log_dir=work / "logs"
    )
    counts_tsv = count_study(
        alignment_tsv,
        data / "dm6.small.gtf",
        work / "counts" / "counts.tsv",
        quant=QuantSettings(threads=2),
        layout="PAIRED",
    )
    _CACHE["dm6"] = DM6(
        data,
        work,
        index,
        manifest,
        alignment_tsv,
        alignment,
        work / "bam",
        work / "logs",
        counts_tsv,
    )
    return _CACHE["dm6"]


def edger_rpkm(counts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``edgeR::rpkm(counts, gene.length=lengths)`` (genes × samples) through rpy2; the test
    is skipped, with the reason, only when R, rpy2 or edgeR cannot be loaded."""
    from scatlas.de.rbridge import RUnavailable, r_package, robjects

    try:
        ro = robjects()
        edger = r_package("edgeR")
    except RUnavailable as exc:
        pytest.skip(f"edgeR through rpy2 is unavailable: {exc}")
    m = ro.r.matrix(
        ro.FloatVector(np.asarray(counts, float).ravel(order="F")), nrow=counts.shape[0]
    )
    out = edger.rpkm(m, **{"gene.length": ro.FloatVector(np.asarray(lengths, float))})
    return np.array(out).reshape(counts.shape, order="F")
