"""Rule train: one embedding model on the atlas (GPU when present, else CPU)."""

from pathlib import Path

from scatlas.logs import setup_logging
from scatlas.models.trainer import train_model
from scatlas.ontology import load_ontology

setup_logging(snakemake.log[0])
train_model(
    Path(snakemake.input.atlas),
    snakemake.wildcards.model,
    Path(snakemake.output.encoder).parent,
    params=dict(snakemake.params.model_params),
    seed=snakemake.params.seed,
    device=snakemake.params.device,
    threads=snakemake.threads,
    ontology=load_ontology(Path(snakemake.input.obo)),
    holdout=snakemake.params.holdout,
)
