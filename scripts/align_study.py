"""Rule align: HISAT2 for every verified run of a study; runs under the rate threshold are skipped."""

from pathlib import Path

from scatlas.logs import setup_logging
from scatlas.reads.align import align_study, run_technologies
from scatlas.reads.barcodes import chemistries
from scatlas.settings import Settings

setup_logging(snakemake.log[0])
settings = Settings.from_config(snakemake.config, validate=False)  # validated by the workflow
align_study(
    Path(snakemake.input.manifest),
    Path(snakemake.input.index) / "index",
    Path(snakemake.output.bams),
    Path(snakemake.output.table),
    threads=snakemake.threads,
    min_alignment_rate=settings.align.min_alignment_rate,
    log_dir=Path(snakemake.params.run_logs),
    technologies=run_technologies(Path(snakemake.input.samples)),
    chemistries=chemistries({"barcoded": settings.barcoded.kwargs("chemistries")}),
)
