"""Files shipped inside the scatlas package (``scatlas/data/``), found with
``importlib.resources`` so that a wheel installed anywhere has them: the config and sheet
schemas, the ontology tables and the pinned Cell Ontology snapshot, the ortholog tables."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def data_path(*parts: str) -> Path:
    """Path of ``scatlas/data/<parts>`` (the package is installed unpacked, never zipped)."""
    return Path(str(files("scatlas").joinpath("data", *parts)))


def schema_dir() -> Path:
    """Folder of the JSON schemas (YAML) of the config and of the sheets between stages."""
    return data_path("schemas")


def ontology_dir() -> Path:
    """Folder of the curated ontology tables and the pinned CL snapshot."""
    return data_path("ontology")


def snapshot_obo() -> Path:
    """The pinned Cell Ontology release (cl-basic, 2022-12-15) that works offline."""
    return ontology_dir() / "cl-basic.obo"


def orthologs_dir() -> Path:
    """Folder of the mouse ↔ human ortholog and human gene id → symbol tables."""
    return data_path("orthologs")


def web_static_dir() -> Path:
    """The web page's assets (HTML, JavaScript, CSS) served by ``scatlas serve``."""
    return Path(str(files("scatlas").joinpath("web", "static")))
