"""Barcoded runs end to end on real reads: tagging, HISAT2, featureCounts, cell calling and
molecule counting, checked against a direct HISAT2 + featureCounts run.

Real dm6 cDNA reads (GSE49587 sample1, read 1) are given 10x v3 barcode reads: 4 cells
(2,000 reads each, UMIs pairwise >= 3 mismatches apart), PCR duplicates, UMI and barcode
sequencing errors, and 300 ambient barcodes with 1-3 reads. Every original read is one
molecule, so a cell's molecules in a gene must equal the number of its original reads
that featureCounts assigns to the gene when run directly on the original reads.
"""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dm6_pipeline import DM6, dm6_pipeline, write_manifest

from scatlas.reads.align import align_study
from scatlas.reads.barcodes import chemistries
from scatlas.reads.droplets import read_droplets
from scatlas.reads.quant import count_study, read_featurecounts
from scatlas.settings import BarcodedSettings

pytestmark = pytest.mark.tools

N_CELLS, PER_CELL, N_AMBIENT = 4, 2000, 300


# the chemistry override these tests use: 10x v3 reads counted unstranded
CHEMISTRIES = {"10x_v3": {"strandedness": 0}}


@pytest.fixture(scope="session")
def dm6(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> DM6:
    return dm6_pipeline(shared_data, tmp_path_factory)


def _mutate(seq: str, rng: np.random.Generator) -> str:
    i = int(rng.integers(len(seq)))
    return seq[:i] + "ACGT".replace(seq[i], "")[int(rng.integers(3))] + seq[i + 1 :]


def _far_umis(n: int, length: int, rng: np.random.Generator) -> list[str]:
    """Random UMIs pairwise at least 3 mismatches apart (so no error copy is near another)."""
    picked = np.zeros((n, length), dtype=np.int64)
    k = 0
    while k < n:
        cand = rng.integers(0, 4, size=length)
        if k == 0 or (picked[:k] != cand).sum(axis=1).min() >= 3:
            picked[k] = cand
            k += 1
    return ["".join("ACGT"[v] for v in p) for p in picked]


@pytest.fixture(scope="module")
def simulated(dm6: DM6, tmp_path_factory: pytest.TempPathFactory):
    rng = np.random.default_rng(11)
    work = tmp_path_factory.mktemp("droplets")
    with gzip.open(dm6.data / "sample1.tiny_R1.fastq.gz", "rt") as fh:
        lines = fh.read().splitlines()
    reads = [(lines[i][1:].split()[0], lines[i + 1], lines[i + 3]) for i in range(0, len(lines), 4)]
    cells = ["".join("ACGT"[v] for v in rng.integers(0, 4, 16)) for _ in range(N_CELLS)]
    r1, r2, origin = [], [], {}
    for c, cb in enumerate(cells):
        umis = _far_umis(PER_CELL, 12, rng)
        for k in range(PER_CELL):
            name, seq, qual = reads[c * PER_CELL + k]
            origin[name] = cb
            copies = [(cb, umis[k])] * (1 + int(rng.integers(0, 3)))  # PCR duplicates
            if rng.random() < 0.10:
                copies.append((cb, _mutate(umis[k], rng)))  # a UMI sequencing error
            if rng.random() < 0.05:
                copies.append((_mutate(cb, rng), umis[k]))  # a barcode sequencing error
            for j, (b, u) in enumerate(copies):
                r1.append((f"{name}_{j}", b + u, "I" * 28))
                r2.append((f"{name}_{j}", seq, qual))
    spare = reads[N_CELLS * PER_CELL :]
    for a in range(N_AMBIENT):
        cb = "".join("ACGT"[v] for v in rng.integers(0, 4, 16))
        for j in range(1 + int(rng.integers(0, 3))):
            name, seq, qual = spare[int(rng.integers(len(spare)))]
            umi = "".join("ACGT"[v] for v in rng.integers(0, 4, 12))
            r1.append((f"amb{a}_{j}", cb + umi, "I" * 28))
            r2.append((f"amb{a}_{j}", seq, qual))
    order = rng.permutation(len(r1))
    for path, recs in ((work / "R1.fastq.gz", r1), (work / "R2.fastq.gz", r2)):
        with gzip.open(path, "wt") as out:
            for i in order:
                n, s, q = recs[i]
                out.write(f"@{n}\n{s}\n+\n{q}\n")
    return {"work": work, "cells": cells, "origin": origin, "n_reads": len(r1)}


def _align_and_count(dm6: DM6, reads: Path, out: Path, technology: str):
    """The simulated run aligned and counted in ``out``, its sheet technology given."""
    chems = chemistries({"barcoded": {"chemistries": CHEMISTRIES}})
    manifest = write_manifest(
        out / "manifest.tsv",
        [
            {
                "run": "SRR0000101",
                "sample": "GSM0000101",
                "files": f"{reads / 'R1.fastq.gz'};{reads / 'R2.fastq.gz'}",
                "status": "ok",
            }
        ],
    )
    tech = {"SRR0000101": technology}
    table = align_study(
        manifest,
        dm6.index,
        out / "bam",
        out / "alignment.tsv",
        threads=2,
        technologies=tech,
        chemistries=chems,
        log_dir=out / "logs",
    )
    counts = count_study(
        out / "alignment.tsv",
        dm6.gtf,
        out / "counts.tsv",
        layout="PAIRED",
        technologies=tech,
        umi_h5ad=out / "umi.h5ad",
        barcoded=BarcodedSettings(chemistries=CHEMISTRIES, min_reads_per_cell=20),
    )
    return {"table": table, "counts": counts, "umi": read_droplets(out / "umi.h5ad")}


@pytest.fixture(scope="module")
def counted(dm6: DM6, simulated):
    return _align_and_count(dm6, simulated["work"], simulated["work"], "10x_v3")


def _direct_assignments(dm6: DM6, work: Path) -> pd.Series:
    """Gene of every original read assigned to one gene, by plain HISAT2 + featureCounts."""
    direct = work / "direct"
    direct.mkdir()
    fq = dm6.data / "sample1.tiny_R1.fastq.gz"
    hisat = subprocess.run(
        ["hisat2", "-p", "2", "-x", str(dm6.index), "-U", str(fq)],
        capture_output=True,
        check=True,
    )
    sam = direct / "reads.sam"
    sam.write_bytes(hisat.stdout)
    subprocess.run(
        [
            "featureCounts",
            "-a",
            str(dm6.gtf),
            "-o",
            str(direct / "c.tsv"),
            "-t",
            "exon",
            "-g",
            "gene_id",
            "-s",
            "0",
            "-R",
            "CORE",
            "--Rpath",
            str(direct),
            str(sam),
        ],
        capture_output=True,
        check=True,
    )
    core = pd.read_csv(direct / "reads.sam.featureCounts", sep="\t", header=None, dtype=str)
    core = core[core[1] == "Assigned"]
    return pd.Series(core[3].to_numpy(), index=core[0].to_numpy())


def test_alignment_of_barcoded_run(counted, simulated) -> None:
    row = counted["table"].iloc[0]
    assert row["status"] == "ok"
    assert int(row["total_reads"]) == simulated["n_reads"]
    assert 0.97 < float(row["alignment_rate"]) < 1.0
    log = (simulated["work"] / "logs" / "SRR0000101.log").read_text()
    assert "-U" in log and f"reads fed: {simulated['n_reads']}" in log


def test_cells_called_and_corrected(counted, simulated) -> None:
    umi = counted["umi"]
    assert sorted(umi.obs["barcode"]) == sorted(simulated["cells"])
    assert list(umi.obs_names) == [f"GSM0000101_{b}" for b in umi.obs["barcode"]]
    info = umi.uns["samples"]["GSM0000101"]
    assert info["cells"] == N_CELLS and info["cell_calling"] == "knee"
    assert info["barcodes"] > N_AMBIENT  # ambient and erroneous barcodes were seen
    # every read of a cell, those with a barcode error included, is counted for it
    with gzip.open(simulated["work"] / "R1.fastq.gz", "rt") as fh:
        r1 = fh.read().splitlines()[1::4]
    assert info["reads"] == len(r1)
    assert int(umi.obs["reads"].sum()) == sum(
        1 for s in r1 if s[:16] in set(simulated["cells"]) or _near(s[:16], simulated["cells"])
    )


def _near(cb: str, cells: list[str]) -> bool:
    return sum(sum(a != b for a, b in zip(cb, c, strict=True)) == 1 for c in cells) == 1


def test_molecules_equal_direct_counts(dm6: DM6, counted, simulated) -> None:
    umi = counted["umi"]
    gene_of = _direct_assignments(dm6, simulated["work"])
    origin = pd.Series(simulated["origin"])
    assigned = gene_of[gene_of.index.isin(origin.index)]
    expected = (
        pd.DataFrame({"cell": origin[assigned.index].to_numpy(), "gene": assigned.to_numpy()})
        .groupby(["cell", "gene"])
        .size()
        .unstack(fill_value=0)
    )
    got = pd.DataFrame(umi.X.toarray(), index=umi.obs["barcode"], columns=umi.var_names)
    got = got.loc[expected.index, :]
    np.testing.assert_array_equal(got[expected.columns].to_numpy(), expected.to_numpy())
    assert got.drop(columns=expected.columns).to_numpy().sum() == 0
    assert int(got.to_numpy().sum()) > 0.85 * N_CELLS * PER_CELL
    # molecules are far fewer than the cells' assigned reads (duplicates, errors collapsed)
    assert (umi.obs["assigned_reads"] > 1.5 * umi.obs["umis"]).all()


def test_counts_table_has_the_run(counted) -> None:
    counts, summary = read_featurecounts(counted["counts"])
    assert list(counts.columns) == ["SRR0000101"]
    assert counts["SRR0000101"].sum() == summary.loc["Assigned", "SRR0000101"]


def test_a_10x_run_of_unstated_version_is_counted_as_its_reads_show(
    dm6, counted, simulated, tmp_path
) -> None:
    """Sheet technology ``10x`` (the record names no kit version): alignment reads the v3
    layout off read 1 and records it; counting then gives the same cells and molecules."""
    work = simulated["work"]
    found = _align_and_count(dm6, work, tmp_path, "10x")
    assert found["table"].loc[0, "status"] == "ok"
    assert found["table"].loc[0, "chemistry"] == "10x_v3"
    umi = found["umi"]
    assert list(umi.obs_names) == list(counted["umi"].obs_names)
    assert (umi.X != counted["umi"].X).nnz == 0
    # a run whose reads fit no candidate fails alone, saying why
    bad = write_manifest(
        tmp_path / "bad.tsv",
        [
            {
                "run": "SRR0000102",
                "sample": "GSM0000102",
                "files": f"{work / 'R2.fastq.gz'};{work / 'R2.fastq.gz'}",
                "status": "ok",
            }
        ],
    )
    table = align_study(
        bad,
        dm6.index,
        tmp_path / "bam2",
        tmp_path / "alignment2.tsv",
        threads=2,
        technologies={"SRR0000102": "10x"},
        chemistries=chemistries({"barcoded": {"chemistries": CHEMISTRIES}}),
    )
    assert (
        table.loc[0, "status"] == "failed"
        and "no poly(dT) tells them apart" in table.loc[0, "reason"]
    )
