"""Load a Cell Ontology OBO file with pronto into a `CellOntology` (cached per process).

The file is read as bytes, checked to be OBO, repaired where real releases break pronto's
strict parser (`sanitise_obo`; each repair is logged), then parsed from memory. Only `CL:`
terms become nodes; relationships are keyed by a readable name ("part_of" for
``BFO:0000050``/"part of", "develops_from", ...), and the anatomy a term is ``part_of``
(UBERON ids, where the file has them) is kept on the term for tissue context.
"""

from __future__ import annotations

import gzip
import io
import json
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
from scatlas.ontology.supplement import supplemented
from scatlas.package_data import snapshot_obo

log = logging.getLogger(__name__)

_OBO_FIRST_LINE = re.compile(r"^(\[(Term|Typedef|Instance)\]|[A-Za-z][A-Za-z0-9_-]*:)")
_SCOPES = {"EXACT", "NARROW", "RELATED", "BROAD"}
# relation ids of the OBO Relation Ontology / BFO that releases use instead of short names
_RELATION_IDS = {"BFO:0000050": "part_of", "BFO:0000051": "has_part", "RO:0002202": "develops_from"}
_ANATOMY_PREFIXES = ("UBERON:",)

_cache: dict[tuple[str, int, int], CellOntology] = {}
_lock = threading.RLock()  # a JSON release loads the snapshot it is completed from


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


_JSON_SUFFIXES = (".json", ".json.zst", ".json.gz")
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"


def _is_json_release(path: Path) -> bool:
    """Whether a file holds a cellxgene-ontology-guide JSON: by its name, or, named
    otherwise (a published release's ``ontology.obo`` copied from one), by its first bytes:
    zstd data, or a JSON object plain or gzipped."""
    if path.name.endswith(_JSON_SUFFIXES):
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(64)
        if head.startswith(_GZIP_MAGIC):
            with gzip.open(path, "rb") as fh:
                head = fh.read(64)
    except (OSError, EOFError):
        return False  # `_read_obo` names the file
    return head.startswith(_ZSTD_MAGIC) or head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def _json_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if data.startswith(_ZSTD_MAGIC):
        try:
            import zstandard
        except ImportError as exc:
            raise InputError(
                "reading a .json.zst ontology needs the zstandard package (it comes with "
                "pip install 'scatlas[ontology]')",
                path=str(path),
            ) from exc
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return gzip.decompress(data) if data.startswith(_GZIP_MAGIC) else data


def _as_ids(value: object) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value or ())
    return tuple(sorted(i for i in items if isinstance(i, str) and _is_cl(i)))


def load_cellxgene_json(path: str | os.PathLike, supplement: bool = True) -> CellOntology:
    """A CL release as cellxgene-ontology-guide ships it: a JSON object of term id ->
    label, synonyms, ancestors with their distance, deprecated, replaced_by, consider.

    Its direct parents are the ancestors at distance 1 (read as ``is_a``; the JSON does not
    name the relation). Its synonyms are the release's EXACT ones; it has no subsets, no
    ``develops_from`` links and no ``part_of`` anatomy, so tissue context comes from term
    names alone. ``supplement`` (the default) adds the pinned snapshot's other synonyms,
    subsets and ``develops_from`` links on the terms both hold (`supplemented`)."""
    path = Path(path)
    try:
        terms_json = json.loads(_json_bytes(path))
    except (OSError, ValueError) as exc:
        raise InputError(f"not a readable ontology JSON: {exc}", path=str(path)) from exc
    if not isinstance(terms_json, dict):
        raise InputError("not a cellxgene-ontology-guide JSON (no term object)", path=str(path))
    if "graphs" in terms_json:
        raise InputError(
            "an OBO Graphs JSON (such as CL's cl.json) is not read: give the release's OBO "
            "(cl.obo, cl-basic.obo) or a cellxgene-ontology-guide JSON",
            path=str(path),
        )
    terms: dict[str, TermInfo] = {}
    is_a: dict[str, set[str]] = {}
    for cl_id, meta in terms_json.items():
        if not _is_cl(cl_id) or not isinstance(meta, dict):
            continue
        terms[cl_id] = TermInfo(
            id=cl_id,
            name=str(meta.get("label") or ""),
            synonyms=tuple(sorted((s, "EXACT") for s in meta.get("synonyms") or () if s)),
            obsolete=bool(meta.get("deprecated")),
            replaced_by=_as_ids(meta.get("replaced_by")),
            consider=_as_ids(meta.get("consider")),
        )
        ancestors = meta.get("ancestors") or {}
        is_a[cl_id] = {a for a, d in ancestors.items() if d == 1 and _is_cl(a)}
    if not terms:
        raise InputError("no Cell Ontology (CL:) terms in the ontology", path=str(path))
    m = re.search(r"(v?\d{4}-\d{2}-\d{2})", path.name)
    version = m.group(1) if m else ""
    onto = CellOntology(terms, {"is_a": is_a, "part_of": {}}, source=str(path), version=version)
    log.info("loaded %d CL terms from %s (%s)", len(terms), path, version or "no version")
    if supplement:
        onto = supplemented(onto, cached_ontology(snapshot_obo()))
    return onto


def load_ontology(path: str | os.PathLike, supplement: bool = True) -> CellOntology:
    """Parse a Cell Ontology: an OBO file with pronto, or a cellxgene-ontology-guide JSON
    (`load_cellxgene_json`, ``supplement``: completed from the pinned snapshot); a file
    that is neither, or has no CL terms, raises `InputError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError("ontology file not found", path=str(path))
    if _is_json_release(path):
        return load_cellxgene_json(path, supplement)
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
