"""Rule ontology_download: fetch the configured Cell Ontology release, verified."""

from pathlib import Path

from scatlas.logs import setup_logging
from scatlas.ontology import download_ontology

setup_logging(snakemake.log[0])
download_ontology(
    snakemake.params.url,
    Path(snakemake.output[0]),
    sha256=snakemake.params.sha256 or None,
)
