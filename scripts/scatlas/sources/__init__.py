"""Clients and parsers for the public repositories scatlas reads: GEO (NCBI E-utilities and the
GEO FTP tree), ENA and SRA (run metadata, FASTQ files: ``sources.sra``) and ArrayExpress (BioStudies).

Every client is an :class:`~scatlas.sources.http.HttpClient` pointed at a base URL from the
config, so tests and the offline demo point it at a loopback server.
"""

from scatlas.sources.http import HttpClient, RateLimiter, Services

__all__ = ["HttpClient", "RateLimiter", "Services"]
