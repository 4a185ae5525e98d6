"""Ingestion: per-study sample sheets, verified downloads and the catalog of every study, sample and run."""
