"""Rule de: per-study differential expression per cell type and the meta-analysis."""

from pathlib import Path

from scatlas.de import run_de
from scatlas.logs import setup_logging

setup_logging(snakemake.log[0])
run_de(
    Path(snakemake.input.atlas),
    Path(snakemake.input.obo),
    Path(snakemake.output[0]),
    organism=snakemake.params.organism,
    **snakemake.params.de,
)
