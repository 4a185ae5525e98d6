"""Rule query: search GEO and ArrayExpress for single-cell RNA-seq studies."""

from scatlas.ingest import query_studies
from scatlas.logs import setup_logging

setup_logging(snakemake.log[0])
query_studies(snakemake.config, snakemake.output.studies)
