"""Rule cell_types: map each cell's free text to Cell Ontology terms."""

from pathlib import Path

from scatlas.logs import setup_logging
from scatlas.ontology import map_study

setup_logging(snakemake.log[0])
overrides = snakemake.params.overrides
map_study(
    Path(snakemake.input.h5ad),
    Path(snakemake.input.obo),
    Path(snakemake.output[0]),
    overrides=Path(overrides) if overrides else None,
    specialise_by_tissue=bool(snakemake.params.specialise_by_tissue),
    min_confidence=float(snakemake.params.min_confidence),
)
