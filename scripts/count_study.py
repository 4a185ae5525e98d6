"""Rule count: featureCounts over all BAMs of a study in one call; molecules of barcoded runs."""

import dataclasses
from pathlib import Path

from scatlas.logs import setup_logging
from scatlas.reads.quant import count_study
from scatlas.settings import Settings

setup_logging(snakemake.log[0])
settings = Settings.from_config(snakemake.config, validate=False)  # validated by the workflow
count_study(
    Path(snakemake.input.table),
    Path(snakemake.input.gtf),
    Path(snakemake.output.counts),
    samples_tsv=Path(snakemake.input.samples),
    bam_dir=Path(snakemake.input.bams),
    quant=dataclasses.replace(settings.quant, threads=snakemake.threads),
    umi_h5ad=Path(snakemake.output.umi),
    barcoded=settings.barcoded,
)
