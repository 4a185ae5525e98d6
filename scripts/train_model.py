"""Rule train: one embedding model on the atlas (GPU when present, else CPU)."""

from pathlib import Path

from scatlas.logs import setup_logging
from scatlas.models.trainer import train_model
from scatlas.ontology import load_ontology
from scatlas.settings import Settings

setup_logging(snakemake.log[0])
settings = Settings.from_config(snakemake.config, validate=False)  # validated by the workflow
model = snakemake.wildcards.model
train_model(
    Path(snakemake.input.atlas),
    model,
    Path(snakemake.output.encoder).parent,
    params=dict(getattr(settings.train, model)),
    threads=snakemake.threads,
    ontology=load_ontology(Path(snakemake.input.obo)),
    holdout=settings.evaluate.novelty_holdout,
    **settings.train.kwargs("seed", "device"),
)
