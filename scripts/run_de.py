"""Rule de: per-study differential expression per cell type and the meta-analysis."""

from pathlib import Path

from scatlas.de import run_de
from scatlas.logs import setup_logging

setup_logging(snakemake.log[0])
params = snakemake.params.de
run_de(
    Path(snakemake.input.atlas),
    Path(snakemake.input.obo),
    Path(snakemake.output[0]),
    min_cells=params["min_cells"],
    fdr=params["fdr"],
    min_studies=params["min_studies"],
)
