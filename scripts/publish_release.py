"""Rule publish: a versioned release in publish_dir (current swapped atomically) behind the
quality gate, and results/publish/release.json saying what was decided."""

from pathlib import Path

from scatlas.logs import setup_logging
from scatlas.release.record import publish_from_workflow
from scatlas.settings import Settings

setup_logging(snakemake.log[0])
settings = Settings.from_config(snakemake.config, validate=False)  # validated by the workflow
publish_from_workflow(
    atlas=Path(snakemake.input.atlas),
    model_dir=Path(snakemake.input.model).parent,
    evaluation_dir=Path(snakemake.input.evaluation).parent,
    de_dir=Path(snakemake.input.de),
    obo=Path(snakemake.input.obo),
    publish_dir=Path(settings.publish_dir),
    settings=settings.publish,
    record=Path(snakemake.output.release),
)
