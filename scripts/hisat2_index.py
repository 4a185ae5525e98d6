"""Rule hisat2_index: HISAT2 index (splice-aware unless configured otherwise) and the gene
table (union-of-exons lengths)."""

import shutil
from pathlib import Path

from scatlas.fileio import atomic_path
from scatlas.logs import setup_logging
from scatlas.reads.reference import build_hisat2_index

setup_logging(snakemake.log[0])
prefix = build_hisat2_index(
    Path(snakemake.input.fasta),
    Path(snakemake.input.gtf),
    Path(snakemake.output.index),
    threads=snakemake.threads,
    splice_sites=bool(snakemake.params.splice_aware),
)
with atomic_path(snakemake.output.genes) as tmp:
    shutil.copyfile(prefix.parent / "genes.tsv", tmp)
