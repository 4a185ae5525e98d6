"""Rule publish: the frozen, versioned reference release (results/publish/release.json records it)."""

from pathlib import Path

from scatlas.logs import setup_logging
from scatlas.release.record import publish_from_workflow

setup_logging(snakemake.log[0])
publish_from_workflow(
    atlas=Path(snakemake.input.atlas),
    model_dir=Path(snakemake.input.model).parent,
    evaluation_dir=Path(snakemake.input.evaluation).parent,
    de_dir=Path(snakemake.input.de),
    obo=Path(snakemake.input.obo),
    publish_dir=Path(snakemake.params.publish_dir),
    settings=snakemake.params.publish,
    record=Path(snakemake.output.release),
)
