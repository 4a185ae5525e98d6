"""Rule count: featureCounts over all BAMs of a study in one call."""

from pathlib import Path

from scatlas.logs import setup_logging
from scatlas.quant import count_study

setup_logging(snakemake.log[0])
count_study(
    Path(snakemake.input.table),
    Path(snakemake.input.gtf),
    Path(snakemake.output.counts),
    samples_tsv=Path(snakemake.input.samples),
    threads=snakemake.threads,
    strandedness=snakemake.params.strandedness,
)
