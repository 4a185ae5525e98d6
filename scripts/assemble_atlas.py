"""Rule atlas: union of the studies, QC, study-disjoint split."""

from pathlib import Path

from scatlas.atlas.assemble import assemble_atlas
from scatlas.logs import setup_logging
from scatlas.ontology import cached_ontology
from scatlas.settings import Settings

setup_logging(snakemake.log[0])
settings = Settings.from_config(snakemake.config, validate=False)  # validated by the workflow
assemble_atlas(
    [Path(p) for p in snakemake.input.expression],
    [Path(p) for p in snakemake.input.cell_types],
    Path(snakemake.output.atlas),
    Path(snakemake.output.splits),
    ontology=cached_ontology(Path(snakemake.input.obo)),
    settings=settings.atlas,
)
