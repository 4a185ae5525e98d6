"""Rule release_model: the model to publish, trained on every type (see the module)."""

from pathlib import Path

from scatlas.logs import setup_logging
from scatlas.models.release_model import release_model
from scatlas.ontology import load_ontology
from scatlas.settings import Settings

setup_logging(snakemake.log[0])
settings = Settings.from_config(snakemake.config, validate=False)  # validated by the workflow
release_model(
    atlas_h5ad=Path(snakemake.input.atlas),
    model_dirs={
        m: Path(p).parent
        for m, p in zip(snakemake.params.models, snakemake.input.models, strict=True)
    },
    metrics_tsv=Path(snakemake.input.metrics),
    out_dir=Path(snakemake.output.meta).parent,
    publish=settings.publish,
    train=settings.train,
    ontology=load_ontology(Path(snakemake.input.obo)),
    threads=snakemake.threads,
)
