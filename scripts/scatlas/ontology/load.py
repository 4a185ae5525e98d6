"""Load a Cell Ontology OBO file with pronto into a `CellOntology` (cached per process).

The file is read as bytes, checked to be OBO, repaired where real releases break pronto's
strict parser (`sanitise_obo`; each repair is logged), then parsed from memory. Only `CL:`
terms become nodes; relationships are keyed by a readable name ("part_of" for
``BFO:0000050``/"part of", "develops_from", ...), and the anatomy a term is ``part_of``
(UBERON ids, where the file has them) is kept on the term for tissue context.
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
import warnings
from pathlib import Path

import pronto

from scatlas.errors import InputError
from scatlas.ontology.graph import CellOntology, TermInfo
from scatlas.ontology.sanitise import sanitise_obo

log = logging.getLogger(__name__)

_OBO_FIRST_LINE = re.compile(r"^(\[(Term|Typedef|Instance)\]|[A-Za-z][A-Za-z0-9_-]*:)")
_SCOPES = {"EXACT", "NARROW", "RELATED", "BROAD"}
# relation ids of the OBO Relation Ontology / BFO that releases use instead of short names
_RELATION_IDS = {"BFO:0000050": "part_of", "BFO:0000051": "has_part", "RO:0002202": "develops_from"}
_ANATOMY_PREFIXES = ("UBERON:",)

_cache: dict[tuple[str, int, int], CellOntology] = {}
_lock = threading.Lock()


def _is_cl(term_id: str) -> bool:
    return term_id.startswith("CL:")


def _relation_name(rel: pronto.Relationship) -> str:
    if rel.id in _RELATION_IDS:
        return _RELATION_IDS[rel.id]
    if re.fullmatch(r"[A-Za-z_][\w-]*", rel.id):
        return rel.id
    return re.sub(r"\W+", "_", (rel.name or rel.id).strip().lower())


def _read_obo(path: Path) -> bytes:
    """The file's bytes, after checking the first meaningful line looks like OBO."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read ontology file: {exc.strerror}", path=str(path)) from exc
    head = data[:4096].decode("utf-8", errors="replace").lstrip("\ufeff")
    first = next(
        (ln.strip() for ln in head.splitlines() if ln.strip() and not ln.startswith("!")), ""
    )
    if not _OBO_FIRST_LINE.match(first):
        raise InputError("not an OBO file (no OBO header or stanza at the top)", path=str(path))
    return data


def _pronto(data: bytes) -> pronto.Ontology:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pronto warns about unsupported OBO clauses
        ont = pronto.Ontology(io.BytesIO(data))
        for term in ont.terms():  # pronto checks some clauses (synonym types) lazily
            _ = term.synonyms
        return ont


def _parse(data: bytes, path: Path) -> pronto.Ontology:
    """pronto's parse of the file as it is, else of its repaired text (repairs logged)."""
    try:
        return _pronto(data)
    except Exception as exc:  # pronto raises SyntaxError/ValueError/... for bad OBO
        first_error = exc
    fixed, report = sanitise_obo(data)
    if not report.changed:
        raise InputError(f"not a loadable OBO file: {first_error}", path=str(path))
    try:
        ont = _pronto(fixed)
    except Exception as exc:
        raise InputError(
            f"not a loadable OBO file: {first_error}; after repairing {report.summary()}: {exc}",
            path=str(path),
        ) from exc
    log.warning(
        "%s: pronto rejects the file as shipped (%s); loaded it after repairing %s",
        path,
        first_error,
        report.summary(),
    )
    for example in report.examples:
        log.info("%s: %s", path, example)
    return ont


def _anatomy(term: pronto.Term) -> tuple[str, ...]:
    """Ids outside CL (UBERON) that the term is ``part_of``, by relationship or by its
    logical definition (``intersection_of: part_of UBERON:...``)."""
    out: set[str] = set()
    for rel, targets in term.relationships.items():
        if _relation_name(rel) == "part_of":
            out.update(i for i in targets.ids if i.startswith(_ANATOMY_PREFIXES))
    for item in term.intersection_of:
        if (
            isinstance(item, tuple)
            and _relation_name(item[0]) == "part_of"
            and item[1].id.startswith(_ANATOMY_PREFIXES)
        ):
            out.add(item[1].id)
    return tuple(sorted(out))


def load_ontology(path: str | os.PathLike) -> CellOntology:
    """Parse an OBO file (Cell Ontology) with pronto; a file that is not a loadable OBO
    with CL terms raises `InputError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError("ontology file not found", path=str(path))
    ont = _parse(_read_obo(path), path)

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
            replaced_by=tuple(sorted(term.replaced_by.ids)),
            alternate_ids=tuple(sorted(term.alternate_ids)),
            consider=tuple(sorted(term.consider.ids)),
            subsets=tuple(sorted(term.subsets)),
            anatomy=_anatomy(term),
        )
        is_a[term.id] = {
            p.id for p in term.superclasses(distance=1, with_self=False) if _is_cl(p.id)
        }
        # `.ids` reads the target ids without resolving them (targets such as NCBITaxon
        # terms are not in the file and would raise KeyError)
        for rel, targets in term.relationships.items():
            ids = {i for i in targets.ids if _is_cl(i)}
            if ids:
                other.setdefault(_relation_name(rel), {}).setdefault(term.id, set()).update(ids)
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
