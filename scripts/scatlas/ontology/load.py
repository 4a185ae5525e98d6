"""Load a Cell Ontology OBO file with pronto into a `CellOntology` (cached per process)."""

from __future__ import annotations

import logging
import os
import re
import threading
import warnings
from pathlib import Path

import pronto

from ..errors import InputError
from .graph import CellOntology, TermInfo

log = logging.getLogger(__name__)

_OBO_FIRST_LINE = re.compile(r"^(\[(Term|Typedef|Instance)\]|[A-Za-z][A-Za-z0-9_-]*:)")
_SCOPES = {"EXACT", "NARROW", "RELATED", "BROAD"}

_cache: dict[tuple[str, int, int], CellOntology] = {}
_lock = threading.Lock()


def _is_cl(term_id: str) -> bool:
    return term_id.startswith("CL:")


def _sniff_obo(path: Path) -> None:
    """Reject files that are not OBO text before pronto guesses another format."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = next(
                (line.strip() for line in fh if line.strip() and not line.startswith("!")), ""
            )
    except OSError as exc:
        raise InputError(f"cannot read ontology file: {exc.strerror}", path=str(path)) from exc
    if not _OBO_FIRST_LINE.match(first):
        raise InputError("not an OBO file (no OBO header or stanza at the top)", path=str(path))


def load_ontology(path: str | os.PathLike) -> CellOntology:
    """Parse an OBO file (Cell Ontology) with pronto; a file that is not a loadable OBO
    with CL terms raises `InputError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError("ontology file not found", path=str(path))
    _sniff_obo(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pronto warns about unsupported OBO clauses
            ont = pronto.Ontology(str(path))
    except Exception as exc:  # pronto raises SyntaxError/ValueError/... for bad OBO
        raise InputError(f"not a loadable OBO file: {exc}", path=str(path)) from exc

    terms: dict[str, TermInfo] = {}
    is_a: dict[str, set[str]] = {}
    other: dict[str, dict[str, set[str]]] = {}
    for term in ont.terms():
        if not _is_cl(term.id):
            continue
        synonyms = tuple(
            sorted(
                (s.description, s.scope)
                for s in term.synonyms
                if s.scope in _SCOPES and s.description
            )
        )
        terms[term.id] = TermInfo(
            id=term.id,
            name=term.name or "",
            synonyms=synonyms,
            obsolete=bool(term.obsolete),
            replaced_by=tuple(sorted(i for i in term.replaced_by.ids if _is_cl(i))),
            alternate_ids=tuple(sorted(term.alternate_ids)),
        )
        is_a[term.id] = {
            p.id for p in term.superclasses(distance=1, with_self=False) if _is_cl(p.id)
        }
        # `.ids` reads the target ids without resolving them (targets such as NCBITaxon
        # terms are not in the file and would raise KeyError)
        for rel, targets in term.relationships.items():
            ids = {i for i in targets.ids if _is_cl(i)}
            if ids:
                other.setdefault(rel.id, {})[term.id] = ids
    if not terms:
        raise InputError("no Cell Ontology (CL:) terms in the ontology", path=str(path))
    other.setdefault("part_of", {})
    version = ont.metadata.data_version or ""
    onto = CellOntology(terms, {"is_a": is_a, **other}, source=str(path), version=version)
    log.info("loaded %d CL terms from %s (%s)", len(terms), path, version or "no version")
    return onto


def cached_ontology(path: str | os.PathLike) -> CellOntology:
    """`load_ontology` once per process per file (keyed on path, size and mtime)."""
    p = Path(path).resolve()
    try:
        st = p.stat()
    except OSError as exc:
        raise InputError("ontology file not found", path=str(path)) from exc
    key = (str(p), st.st_size, st.st_mtime_ns)
    with _lock:
        hit = _cache.get(key)
        if hit is None:
            hit = load_ontology(p)
            _cache[key] = hit
        return hit
