"""Rule local_study: one labelled file of one's own as a study of the atlas."""

from pathlib import Path

from scatlas.atlas.local_study import local_study
from scatlas.logs import setup_logging
from scatlas.ontology import load_ontology

setup_logging(snakemake.log[0])
local_study(
    dict(snakemake.params.entry),
    Path(snakemake.output.expression),
    Path(snakemake.output.cell_types),
    ontology=load_ontology(Path(snakemake.input.obo)),
    genes_tsv=Path(snakemake.input.genes) if snakemake.input.genes else None,
)
