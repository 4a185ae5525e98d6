"""Molecule counts of a study's barcoded runs: one cells x genes AnnData (``umi.h5ad``).

Runs of one sample are one library sequenced several times: their reads are pooled per
sample before cells are called (:func:`scatlas.reads.barcodes.call_cells`) and molecules
counted (:func:`scatlas.reads.umi.count_molecules`). A cell's id is ``{sample}_{barcode}``.

The file: ``X`` molecules (CSR int32) over every gene of the featureCounts annotation;
``obs`` ``sample, run`` (';'-joined), ``barcode, technology, reads`` (reads of the
barcode, corrections included), ``assigned_reads`` (reads of the cell assigned to one
gene), ``umis``, ``genes`` (genes detected); ``var`` indexed by gene id; ``uns["samples"]``
per sample: technology, runs, cell calling method and threshold, barcodes seen, cells,
reads, reads in cells, molecules.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scatlas.errors import InputError
from scatlas.fileio import atomic_path
from scatlas.reads.align import read_barcode_counts
from scatlas.reads.barcodes import Chemistry, call_cells, read_whitelist
from scatlas.reads.umi import count_molecules, read_assignments

log = logging.getLogger(__name__)

OBS_COLUMNS = [
    "sample",
    "run",
    "barcode",
    "technology",
    "reads",
    "assigned_reads",
    "umis",
    "genes",
]


@dataclass(frozen=True)
class DropletRun:
    run: str
    sample: str
    read_report: Path  # featureCounts -R CORE output for the run's BAM
    barcode_counts: Path  # reads per raw barcode (scatlas.reads.align.write_barcode_counts)


def _sample_counts(
    runs: list[DropletRun],
    chem: Chemistry,
    genes: pd.Index,
    whitelist: np.ndarray | None,
    cell_calling: str,
    min_reads: int,
) -> tuple[sp.csr_matrix, pd.DataFrame, dict]:
    sample = runs[0].sample
    reads = None
    for r in runs:
        if not r.barcode_counts.is_file():
            raise InputError(f"barcode counts of run {r.run} not found", path=str(r.barcode_counts))
        counts = read_barcode_counts(r.barcode_counts)
        reads = counts if reads is None else reads.add(counts, fill_value=0)
    assert reads is not None
    reads = reads.astype(np.int64)
    call = call_cells(reads, chem, whitelist=whitelist, method=cell_calling, min_reads=min_reads)
    parts = []
    for r in runs:
        if not r.read_report.is_file():
            raise InputError(
                f"featureCounts read report of run {r.run} not found", path=str(r.read_report)
            )
        parts.append(read_assignments(r.read_report, chem.barcode_length, chem.umi_length))
    assigned = pd.concat(parts, ignore_index=True)
    if len(parts) > 1:
        assigned = assigned.groupby(["barcode", "umi", "gene"], sort=False)["reads"].sum()
        assigned = assigned.reset_index()
    cells = list(call.cells)
    cell_of = call.corrected[call.corrected.isin(set(cells))]
    table, stats = count_molecules(assigned, cell_of, chem.umi_length)
    row = pd.Index(cells).get_indexer(table["cell"])
    col = genes.get_indexer(table["gene"])
    if (col < 0).any():
        unknown = table["gene"][col < 0].iloc[0]
        raise InputError(
            f"gene {unknown!r} of the read report is not in the annotation",
            path=str(runs[0].read_report),
            field="gene",
        )
    x = sp.csr_matrix(
        (table["umis"].to_numpy(dtype=np.int64), (row, col)), shape=(len(cells), len(genes))
    )
    assigned_reads = np.bincount(row, weights=table["reads"].to_numpy(), minlength=len(cells))
    obs = pd.DataFrame(
        {
            "sample": sample,
            "run": ";".join(r.run for r in runs),
            "barcode": cells,
            "technology": chem.name,
            "reads": call.reads.reindex(cells).fillna(0).to_numpy(dtype=np.int64),
            "assigned_reads": assigned_reads.astype(np.int64),
            "umis": np.asarray(x.sum(axis=1)).ravel().astype(np.int64),
            "genes": np.diff(x.indptr).astype(np.int64),
        },
        index=pd.Index([f"{sample}_{c}" for c in cells]),
    )
    info = {
        "technology": chem.name,
        "runs": [r.run for r in runs],
        "cell_calling": call.method,
        "threshold_reads": int(call.threshold),
        "barcodes": int((reads > 0).sum()),
        "cells": len(cells),
        "reads": int(reads.sum()),
        "reads_in_cells": int(obs["reads"].sum()),
        **stats,
    }
    log.info(
        "sample %s: %d barcodes, %d cells (%s, >= %d reads), %d molecules",
        sample,
        info["barcodes"],
        len(cells),
        call.method,
        call.threshold,
        stats["molecules"],
    )
    return x, obs, info


def count_droplets(
    runs: Mapping[str, list[DropletRun]],
    chemistries: Mapping[str, Chemistry],
    genes: list[str],
    out_h5ad: Path,
    *,
    cell_calling: str = "auto",
    min_reads: int = 100,
) -> ad.AnnData:
    """Write ``out_h5ad`` (see the module docstring) for the barcoded runs of a study,
    given per chemistry (``runs``: technology -> its runs); return it."""
    gene_index = pd.Index(genes)
    blocks, obs_parts, samples = [], [], {}
    for tech, tech_runs in runs.items():
        chem = chemistries[tech]
        whitelist = read_whitelist(chem.whitelist, chem.barcode_length) if chem.whitelist else None
        by_sample: dict[str, list[DropletRun]] = {}
        for r in tech_runs:
            by_sample.setdefault(r.sample, []).append(r)
        for sample, sample_runs in by_sample.items():
            if sample in samples:
                raise InputError(
                    f"sample {sample} has runs of several chemistries", field="technology"
                )
            x, obs, info = _sample_counts(
                sample_runs, chem, gene_index, whitelist, cell_calling, min_reads
            )
            blocks.append(x)
            obs_parts.append(obs)
            samples[sample] = info
    if blocks:
        x = sp.vstack(blocks, format="csr")
        obs = pd.concat(obs_parts)
    else:
        x = sp.csr_matrix((0, len(gene_index)))
        obs = pd.DataFrame({c: pd.Series(dtype=str) for c in OBS_COLUMNS})
    if x.nnz and x.data.max() > np.iinfo(np.int32).max:
        raise InputError("a molecule count exceeds the int32 range", path=str(out_h5ad))
    obs.index = obs.index.astype(str)
    obs.index.name = "cell_id"
    for col in ("sample", "run", "barcode", "technology"):
        obs[col] = obs[col].astype(str)
    adata = ad.AnnData(
        X=sp.csr_matrix(x, dtype=np.int32),
        obs=obs[OBS_COLUMNS],
        var=pd.DataFrame(index=pd.Index(gene_index.astype(str), name="gene_id")),
    )
    adata.uns["samples"] = samples
    with atomic_path(out_h5ad, suffix=".h5ad") as tmp:
        adata.write_h5ad(tmp)
    return adata


def read_droplets(path: Path) -> ad.AnnData:
    """Read ``umi.h5ad`` written by :func:`count_droplets`."""
    try:
        adata = ad.read_h5ad(path)
    except (OSError, KeyError) as exc:
        raise InputError(f"not a readable h5ad file: {exc}", path=str(path)) from exc
    missing = [c for c in OBS_COLUMNS if c not in adata.obs]
    if missing:
        raise InputError(f"molecule counts lack obs column(s) {missing}", path=str(path))
    return adata
