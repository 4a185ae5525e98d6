"""Rule report: the run's report page and the MultiQC export of its alignment logs."""

from pathlib import Path

from scatlas.logs import setup_logging
from scatlas.report.build import build_report

setup_logging(snakemake.log[0])
build_report(
    Path(snakemake.input.release).parents[1],  # results/
    Path(snakemake.log[0]).parents[1],  # logs/
    Path(snakemake.output.report),
    Path(snakemake.output.multiqc),
    Path(snakemake.params.publish_dir),
)
