"""Rule count: featureCounts over all BAMs of a study in one call; molecules of barcoded runs."""

from pathlib import Path

from scatlas.logs import setup_logging
from scatlas.reads.barcodes import chemistries
from scatlas.reads.quant import count_study

setup_logging(snakemake.log[0])
count_study(
    Path(snakemake.input.table),
    Path(snakemake.input.gtf),
    Path(snakemake.output.counts),
    samples_tsv=Path(snakemake.input.samples),
    bam_dir=Path(snakemake.input.bams),
    threads=snakemake.threads,
    strandedness=snakemake.params.strandedness,
    umi_h5ad=Path(snakemake.output.umi),
    chemistries=chemistries({"barcoded": {"chemistries": snakemake.params.chemistries}}),
    cell_calling=snakemake.params.cell_calling,
    min_reads_per_cell=snakemake.params.min_reads_per_cell,
)
