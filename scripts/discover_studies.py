"""Rule discover: search GEO and ArrayExpress for single-cell RNA-seq studies (merged with the
studies the catalog already knows)."""

import logging

from scatlas.discover.studies import discover_studies
from scatlas.logs import setup_logging

setup_logging(snakemake.log[0])
try:
    discover_studies(snakemake.config, snakemake.output.studies, catalog=snakemake.params.db)
except Exception:  # a source that cannot be searched fails the run: say why in the log
    logging.getLogger("scatlas").exception("the discovery failed; nothing was written")
    raise
