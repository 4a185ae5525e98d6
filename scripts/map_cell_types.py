"""Rule cell_types: map each cell's free text to Cell Ontology terms."""

from pathlib import Path

from scatlas.logs import setup_logging
from scatlas.ontology import map_study
from scatlas.settings import Settings

setup_logging(snakemake.log[0])
settings = Settings.from_config(snakemake.config, validate=False)  # validated by the workflow
overrides = settings.ontology.overrides
map_study(
    Path(snakemake.input.h5ad),
    Path(snakemake.input.obo),
    Path(snakemake.output[0]),
    overrides=Path(overrides) if overrides else None,
    **settings.ontology.kwargs("specialise_by_tissue", "min_confidence"),
)
