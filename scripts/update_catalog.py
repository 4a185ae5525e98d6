"""Rules ingest and catalog: record every study, sample and run with its status in
results/catalog.sqlite (ingest: after the downloads; catalog: with the alignment outcomes)."""

import json

from scatlas.fileio import atomic_write_text
from scatlas.ingest.catalog import Catalog
from scatlas.ingest.catalog_update import update_catalog
from scatlas.logs import setup_logging

setup_logging(snakemake.log[0])
summary = update_catalog(
    snakemake.config,
    snakemake.params.db,
    snakemake.input.studies,
    [p.rsplit("/", 1)[0] for p in snakemake.input.metas],
    list(snakemake.input.manifests),
    list(snakemake.params.alignments),
)
# refreshes are `scatlas refresh`'s record (with times): keep this file a function of the data
summary.pop("last_refresh", None)
summary.pop("refreshes", None)
with Catalog(snakemake.params.db) as catalog:
    summary["failed_studies"] = [
        {k: r[k] for k in ("study", "reason", "error_file", "error_field")}
        for r in catalog.rows("studies", status="failed")
    ]
atomic_write_text(snakemake.output[0], json.dumps(summary, indent=2, default=str))
