"""Rule expression: the study's AnnData (raw counts in X, RPKM layer, free-text metadata)."""

from pathlib import Path

from scatlas.logs import setup_logging
from scatlas.reads.expression import build_study_expression

setup_logging(snakemake.log[0])
build_study_expression(
    snakemake.wildcards.study,
    {name: Path(path) for name, path in snakemake.input.items()},
    Path(snakemake.output.h5ad),
)
