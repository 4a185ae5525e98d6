"""Rule download: verified FASTQ (or author matrix) files of one study and their manifest."""

from scatlas.ingest.download import download_study
from scatlas.logs import setup_logging

setup_logging(snakemake.log[0])
download_study(
    snakemake.config, snakemake.input.samples, snakemake.params.fastq_dir, snakemake.output.manifest
)
