"""Exact matching of free-text metadata against Cell Ontology names and synonyms.

Text is normalised (lowercase, punctuation and whitespace collapsed, each word made
singular) and looked up in an index of term names and synonyms. For one cell (its
``source_text``, fields joined with " | " or "; ") every field value is matched on its own;
as in scQuery, hits that are ancestors of other hits are dropped, and when two or more
unrelated specific terms remain the cell is left unmapped as ambiguous.

Within one field, a hit on a term name or EXACT synonym overrides looser hits (NARROW,
RELATED, BROAD synonyms) of other terms; looser hits all compete, because a ranking
among non-equivalent synonyms is no evidence for one term over another ("beta cell" is a
BROAD synonym of the pancreatic type B cell and a RELATED synonym of the pituitary
basophil: ambiguous). Scope weights only set the confidence.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from .graph import ROOT, CellOntology

#: confidence of a hit by the kind of text it matched
WEIGHTS: dict[str, float] = {
    "name": 1.0,
    "EXACT": 0.95,
    "NARROW": 0.8,
    "RELATED": 0.6,
    "BROAD": 0.5,
    "override": 1.0,
}
_STRONG = frozenset({"name", "EXACT", "override"})

_NON_WORD = re.compile(r"[^\w+]+|_")
_FIELD_SEP = re.compile(r"\s*\|\s*|;\s*")
_KEY_PREFIX = re.compile(r"^[^:|;]{1,60}?:\s+")


def _singular(token: str) -> str:
    """Crude singular form of one word; applied alike to terms and query text."""
    if len(token) <= 3 or not token.isalpha():
        return token
    if token.endswith("ies") and len(token) > 4:
        return token[:-3] + "y"
    if token.endswith(("sses", "xes", "zes")):
        return token[:-2]
    if token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


def normalise_text(text: str) -> str:
    """Lowercase, punctuation/whitespace collapsed to single spaces, words singular.

    "T-cells" -> "t cell"; "CD4+ T Lymphocytes" -> "cd4+ t lymphocyte".
    """
    text = unicodedata.normalize("NFKC", text or "").lower()
    return " ".join(_singular(tok) for tok in _NON_WORD.sub(" ", text).split())


def split_fields(source_text: str) -> list[str]:
    """Field values of a cell's source text: split on " | " and "; ", "key: " stripped."""
    values = []
    for field in _FIELD_SEP.split(source_text or ""):
        value = _KEY_PREFIX.sub("", field.strip(), count=1).strip()
        if value:
            values.append(value)
    return values


@dataclass(frozen=True)
class Match:
    """One text -> term assignment. ``evidence`` reads "<text> ~ <synonym> (<scope>)"."""

    cl_id: str
    cl_label: str
    evidence: str
    confidence: float


@dataclass(frozen=True)
class CellMapping:
    """The outcome for one cell: ``status`` is mapped, ambiguous or unmatched; for
    unmapped cells ``evidence`` says why (the competing hits when ambiguous)."""

    match: Match | None
    evidence: str
    status: str


@dataclass(frozen=True)
class _Hit:
    cl_id: str
    scope: str
    synonym: str
    text: str

    @property
    def weight(self) -> float:
        return WEIGHTS[self.scope]

    @property
    def evidence(self) -> str:
        return f"{self.text} ~ {self.synonym} ({self.scope})"


class TermMatcher:
    """Exact (normalised) matcher of text against CL term names and synonyms.

    Only current `CL:` terms are indexed, never the root CL:0000000 "cell".
    """

    def __init__(self, ontology: CellOntology):
        self.ontology = ontology
        index: dict[str, dict[str, tuple[str, str]]] = {}
        for cl_id in ontology.term_ids():
            if cl_id == ROOT:
                continue
            info = ontology.info(cl_id)
            entries = [(info.name, "name")] + [(text, scope) for text, scope in info.synonyms]
            for text, scope in entries:
                key = normalise_text(text)
                if not key or key == "cell":
                    continue
                per_term = index.setdefault(key, {})
                old = per_term.get(cl_id)
                if old is None or WEIGHTS[scope] > WEIGHTS[old[1]]:
                    per_term[cl_id] = (text, scope)
        self._index = index

    def __len__(self) -> int:
        return len(self._index)

    def _hits(self, text: str, overrides: Mapping[str, str] | None = None) -> list[_Hit]:
        key = normalise_text(text)
        if not key:
            return []
        if overrides and key in overrides:
            return [_Hit(overrides[key], "override", "override", text)]
        hits = [
            _Hit(cl_id, scope, synonym, text)
            for cl_id, (synonym, scope) in self._index.get(key, {}).items()
        ]
        return sorted(hits, key=lambda h: (-h.weight, h.cl_id))

    def match(self, text: str) -> list[Match]:
        """Every term whose name or synonym equals ``text`` (one field value) after
        normalisation, best scope first."""
        return [self._as_match(h) for h in self._hits(text)]

    def _as_match(self, hit: _Hit) -> Match:
        return Match(hit.cl_id, self.ontology.label(hit.cl_id), hit.evidence, hit.weight)

    def explain(self, source_text: str, overrides: Mapping[str, str] | None = None) -> CellMapping:
        """Map one cell's source text, saying why when it is not mapped.

        ``overrides`` maps normalised text to a CL id; it is consulted first for the whole
        text, then for each field value, and beats the ontology index.
        """
        text = (source_text or "").strip()
        whole = normalise_text(text)
        if overrides and whole in overrides:
            return CellMapping(
                self._as_match(_Hit(overrides[whole], "override", "override", text)), "", "mapped"
            )
        best: dict[str, _Hit] = {}
        for value in split_fields(text):
            hits = self._hits(value, overrides)
            if any(h.scope in _STRONG for h in hits):
                hits = [h for h in hits if h.scope in _STRONG]
            for h in hits:
                if h.cl_id not in best or h.weight > best[h.cl_id].weight:
                    best[h.cl_id] = h
        if not best:
            return CellMapping(None, "", "unmatched")
        specific = sorted(self.ontology.most_specific(best))
        if len(specific) == 1:
            return CellMapping(self._as_match(best[specific[0]]), "", "mapped")
        detail = "; ".join(f"{best[c].evidence} -> {c}" for c in specific)
        return CellMapping(None, f"ambiguous: {detail}", "ambiguous")

    def map_cell(self, source_text: str) -> Match | None:
        """The most specific single term for a cell, or None (nothing matched, or
        ambiguous: two or more unrelated specific terms)."""
        return self.explain(source_text).match
