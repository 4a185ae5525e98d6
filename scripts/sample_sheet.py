"""Rule sample_sheet: one study's samples, runs and FASTQ URLs (failures are recorded, not raised)."""

from pathlib import Path

from scatlas.ingest.sheets import build_sample_sheet
from scatlas.logs import setup_logging

setup_logging(snakemake.log[0])
build_sample_sheet(
    snakemake.config,
    snakemake.wildcards.study,
    Path(snakemake.output.samples).parent,
    studies_tsv=snakemake.input.studies,
)
