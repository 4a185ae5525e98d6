"""Rule hisat2_index: splice-aware HISAT2 index and the gene table (union-of-exons lengths)."""

from pathlib import Path

from scatlas.logs import setup_logging
from scatlas.reference import build_hisat2_index

setup_logging(snakemake.log[0])
build_hisat2_index(
    Path(snakemake.input.fasta),
    Path(snakemake.input.gtf),
    Path(snakemake.output.index),
    genes_tsv=Path(snakemake.output.genes),
    threads=snakemake.threads,
)
