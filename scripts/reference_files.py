"""Rule reference_files: the genome FASTA and GTF of one organism (local path or verified URL)."""

from scatlas.genome import fetch_reference_files
from scatlas.logs import setup_logging

setup_logging(snakemake.log[0])
fetch_reference_files(
    snakemake.config,
    snakemake.params.fasta,
    snakemake.params.gtf,
    snakemake.output.fasta,
    snakemake.output.gtf,
)
