"""Rule demo_query: annotate the demo's held-out study from the published reference."""

from pathlib import Path

from scatlas.demo.check import annotate_and_score
from scatlas.logs import setup_logging
from scatlas.settings import Settings

setup_logging(snakemake.log[0])
settings = Settings.from_config(snakemake.config, validate=False)  # validated by the workflow
annotate_and_score(
    release_record=Path(snakemake.input.release),
    query_h5ad=Path(snakemake.input.query),
    out_h5ad=Path(snakemake.output.h5ad),
    out_csv=Path(snakemake.output.csv),
    out_accuracy=Path(snakemake.output.accuracy),
    truth_column=settings.demo.truth_column,
    k=settings.evaluate.k,
)
