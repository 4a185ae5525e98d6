"""Rule catalog: record every study, sample and run with its status in results/catalog.sqlite."""

import json

from scatlas.catalog import Catalog
from scatlas.fileio import atomic_write_text
from scatlas.ingest import update_catalog
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
with Catalog(snakemake.params.db) as catalog:
    summary["failed_studies"] = [
        {"study": r["study"], "reason": r["reason"]} for r in catalog.rows("studies", status="failed")
    ]
atomic_write_text(snakemake.output[0], json.dumps(summary, indent=2, default=str))
