"""Rule atlas: union of the studies, QC, study-disjoint split."""

from pathlib import Path

from scatlas.atlas import assemble_atlas_from_config
from scatlas.logs import setup_logging

setup_logging(snakemake.log[0])
assemble_atlas_from_config(
    [Path(p) for p in snakemake.input.expression],
    [Path(p) for p in snakemake.input.cell_types],
    Path(snakemake.input.obo),
    Path(snakemake.output.atlas),
    Path(snakemake.output.splits),
    snakemake.params.atlas,
)
