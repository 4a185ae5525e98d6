"""Mouse ↔ human gene orthologs and human gene id → symbol (package data
``scatlas/data/orthologs/``; ``$SCATLAS_ORTHOLOGS`` names another folder).

The tables (Ensembl 105 human→mouse symbols; GENCODE v44 human id→name; MIT, from
CellTypist) are read once and cached. One-to-many orthologs resolve to the first listed
partner, so every input gene feeds at most one reference gene.
"""

from __future__ import annotations

import csv
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from scatlas.errors import InputError
from scatlas.package_data import orthologs_dir

ORTHOLOGS_FILE = "Ensembl105_Human2Mouse_Genes.csv"
GENCODE_FILE = "GENCODEv44_Gene_id2name.csv"
_VERSION_SUFFIX = re.compile(r"\.\d+$")


def resource_dir() -> Path:
    """``$SCATLAS_ORTHOLOGS`` (an override) or the tables shipped in the package."""
    env = os.environ.get("SCATLAS_ORTHOLOGS")
    return Path(env) if env else orthologs_dir()


def _rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise InputError(
            "ortholog table is missing (SCATLAS_ORTHOLOGS names a folder without it, or the "
            "scatlas installation lacks its package data)",
            path=str(path),
        )
    with path.open(newline="", encoding="utf-8") as fh:
        return [[c.strip() for c in row] for row in csv.reader(fh) if row]


@dataclass(frozen=True)
class Orthologs:
    human_to_mouse: dict[str, str]
    mouse_to_human: dict[str, str]


@functools.cache
def load_orthologs(path: str | None = None) -> Orthologs:
    """The human ↔ mouse symbol maps (first partner listed wins)."""
    h2m: dict[str, str] = {}
    m2h: dict[str, str] = {}
    for row in _rows(Path(path) if path else resource_dir() / ORTHOLOGS_FILE):
        if len(row) < 2 or not row[0] or not row[1]:
            continue
        h2m.setdefault(row[0], row[1])
        m2h.setdefault(row[1], row[0])
    return Orthologs(h2m, m2h)


@functools.cache
def load_gene_names(path: str | None = None) -> dict[str, str]:
    """Human Ensembl gene id (unversioned) → gene name."""
    out: dict[str, str] = {}
    for row in _rows(Path(path) if path else resource_dir() / GENCODE_FILE):
        if len(row) >= 2 and row[0] and row[1]:
            out.setdefault(_VERSION_SUFFIX.sub("", row[0]), row[1])
    return out


def translations(values: list[str]) -> list[tuple[str, list[str]]]:
    """Alternative names for ``values``: ``(how, names)`` per translation that applies.

    * ``mouse->human`` / ``human->mouse``: symbols through the ortholog table;
    * ``ensembl_id->symbol``: human ``ENSG`` ids to names (then also to mouse symbols).
    Unmapped entries are ``""``.
    """
    orth = load_orthologs()
    out = [
        ("mouse->human", [orth.mouse_to_human.get(v, "") for v in values]),
        ("human->mouse", [orth.human_to_mouse.get(v, "") for v in values]),
    ]
    if any(v.upper().startswith("ENSG") for v in values[:1000]):
        names = load_gene_names()
        symbols = [names.get(_VERSION_SUFFIX.sub("", v), "") for v in values]
        out.append(("ensembl_id->symbol", symbols))
        out.append(
            (
                "ensembl_id->symbol->mouse",
                [orth.human_to_mouse.get(s, "") if s else "" for s in symbols],
            )
        )
    return out
