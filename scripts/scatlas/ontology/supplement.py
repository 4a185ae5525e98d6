"""A Cell Ontology release that cellxgene-ontology-guide ships, completed from an OBO release.

That package's JSON keeps each term's label, its EXACT synonyms and its ``is_a`` ancestors.
It drops the rest of the release: RELATED, BROAD and NARROW synonyms ("beta cell" of the
type B pancreatic cell, "immune cell" of the leukocyte), ``develops_from`` links (read in
population codes: "proB.CLP") and subsets (the upper-level terms). The matcher reads all
three. `supplemented` adds them from an OBO release (the pinned snapshot by default), for
the terms both releases hold and neither has made obsolete:

- a synonym only where the newer release uses its text for no term: a name or EXACT
  synonym the newer release has moved to another term stays with that term;
- ``develops_from`` links between such terms;
- the UBERON anatomy a term is ``part_of``, where the base has it (the pinned snapshot,
  cl-basic, has none).

The newer release's names, EXACT synonyms and ``is_a`` graph are kept as they are.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from scatlas.ontology.graph import CellOntology, TermInfo
from scatlas.ontology.text import normalise_text

log = logging.getLogger(__name__)

ADDED_RELATIONS = ("develops_from",)


def _texts_in_use(onto: CellOntology) -> dict[str, set[str]]:
    """Each normalised name and synonym text of the current terms -> the terms using it."""
    used: dict[str, set[str]] = {}
    for cl_id in onto.term_ids():
        info = onto.info(cl_id)
        for text in (info.name, *(s for s, _ in info.synonyms)):
            used.setdefault(normalise_text(text), set()).add(cl_id)
    return used


def _shared(newer: CellOntology, base: CellOntology, cl_id: str) -> bool:
    """A term both releases hold, current in both."""
    return (
        cl_id in newer
        and cl_id in base
        and not newer.info(cl_id).obsolete
        and not base.info(cl_id).obsolete
    )


def supplemented(newer: CellOntology, base: CellOntology) -> CellOntology:
    """``newer`` with ``base``'s non-EXACT synonyms, subsets, anatomy and ``develops_from``
    links on the terms both hold (see the module's text). ``newer`` is left unchanged; the result
    names its base in ``supplemented_from``."""
    used = _texts_in_use(newer)
    terms: dict[str, TermInfo] = {}
    added = 0
    for cl_id in newer.term_ids(include_obsolete=True):
        info = newer.info(cl_id)
        if not _shared(newer, base, cl_id):
            terms[cl_id] = info
            continue
        old = base.info(cl_id)
        extra = tuple(
            (text, scope)
            for text, scope in old.synonyms
            if scope != "EXACT" and not used.get(normalise_text(text))
        )
        added += len(extra)
        terms[cl_id] = replace(  # every other field stays the newer release's
            info,
            synonyms=tuple(sorted({*info.synonyms, *extra})),
            subsets=tuple(sorted({*info.subsets, *old.subsets})),
            anatomy=info.anatomy or old.anatomy,
        )
    edges: dict[str, dict[str, set[str]]] = {
        rel: {c: set(newer.parents(c, (rel,))) for c in newer.term_ids()} for rel in newer.relations
    }
    links = 0
    for rel in ADDED_RELATIONS:
        have = edges.setdefault(rel, {})
        for child in base.term_ids():
            if not _shared(newer, base, child):
                continue
            new = {p for p in base.parents(child, (rel,)) if _shared(newer, base, p)}
            links += len(new - have.get(child, set()))
            have.setdefault(child, set()).update(new)
    out = CellOntology(terms, edges, source=newer.source, version=newer.version)
    out.supplemented_from = (
        f"{base.version or base.source}: {added} synonyms, {links} develops_from links"
    )
    log.info("CL %s supplemented from %s", newer.version, out.supplemented_from)
    return out
