"""Rule de: per-study differential expression per cell type and the meta-analysis."""

from pathlib import Path

from scatlas.de import run_de
from scatlas.logs import setup_logging
from scatlas.settings import Settings

setup_logging(snakemake.log[0])
settings = Settings.from_config(snakemake.config, validate=False)  # validated by the workflow
run_de(
    Path(snakemake.input.atlas),
    Path(snakemake.input.obo),
    Path(snakemake.output[0]),
    settings=settings.de,
    organism=settings.atlas.organism,
)
