"""Rule reference_files: the genome FASTA and GTF of one organism (local path or verified URL)."""

from scatlas.logs import setup_logging
from scatlas.reads.genome import fetch_reference_files

setup_logging(snakemake.log[0])
fetch_reference_files(
    snakemake.config,
    snakemake.params.fasta,
    snakemake.params.gtf,
    snakemake.output.fasta,
    snakemake.output.gtf,
)
