"""Rule evaluate: study-held-out kNN annotation, retrieval and novelty; models against the
baselines and the CellTypist peer."""

from pathlib import Path

from scatlas.evaluate.metrics import evaluate
from scatlas.logs import setup_logging
from scatlas.ontology import load_ontology
from scatlas.settings import Settings

setup_logging(snakemake.log[0])
settings = Settings.from_config(snakemake.config, validate=False)  # validated by the workflow
evaluate(
    Path(snakemake.input.atlas),
    {m: Path(p).parent for m, p in zip(settings.models, snakemake.input.models, strict=True)},
    Path(snakemake.output.report).parent,
    settings=settings.evaluate,
    ontology=load_ontology(Path(snakemake.input.obo)),
)
