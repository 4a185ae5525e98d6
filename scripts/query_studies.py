"""Rule query: search GEO and ArrayExpress for single-cell RNA-seq studies (merged with the
studies the catalog already knows)."""

import logging

from scatlas.ingest.sheets import query_studies
from scatlas.logs import setup_logging

setup_logging(snakemake.log[0])
try:
    query_studies(snakemake.config, snakemake.output.studies, catalog=snakemake.params.db)
except Exception:  # a source that cannot be searched fails the run: say why in the log
    logging.getLogger("scatlas").exception("the query failed; nothing was written")
    raise
