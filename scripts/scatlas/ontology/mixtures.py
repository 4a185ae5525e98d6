"""Mixtures and fields: a list of types read as their closest common is_a ancestor, and
the answers of a cell's several fields combined (the more trusted field wins)."""

from __future__ import annotations

import logging
from dataclasses import replace

from scatlas.ontology.evidence import (
    _KIND,
    _SPECIALISED,
    CellMapping,
    Match,
    _Hit,
    _Span,
)

log = logging.getLogger(__name__)


class Mixtures:
    """Methods of :class:`scatlas.ontology.matching.TermMatcher` (its state: see there)."""

    def _mixture(
        self, terms: list[str], spans: list[_Span], coord_before: list[bool]
    ) -> str | None:
        """The closest common is_a ancestor of a list of types of any length ("A/B",
        "A, B and C"), or None when the terms are not a list, or their only common
        ancestors are too general to be answers ("cell", CL's upper-level terms)."""
        starts = sorted({(s.start, s.end) for s in spans})
        if len(starts) == 1:
            return self._siblings_parent(terms)  # one phrase: a synonym of several terms
        if len(starts) != len(terms):
            return None
        for (_, end), (start, _) in zip(starts, starts[1:], strict=False):
            if not any(coord_before[k] for k in range(end, start + 1)):
                return None
        onto = self.ontology
        # the common *kind* of the listed types: over is_a only (a part_of ancestor is
        # where a cell sits, not what it is). A DAG may give several minimal common
        # ancestors; each is true of every listed type, so taking the closest, then the
        # narrowest, loses no correctness and keeps the most information.
        rels = _KIND
        ranked = sorted(
            (
                max(steps),
                sum(steps),
                len(onto.descendants(c, rels)),
                c,
            )
            for c in onto.lowest_common_ancestors(terms, rels)
            if onto.is_informative(c)
            for steps in [[onto.distance(t, c, rels) for t in terms]]
        )
        return ranked[0][3] if ranked else None

    def _siblings_parent(self, terms: list[str]) -> str | None:
        """The parent of terms one synonym names when they are its children ("early
        enterocyte", RELATED to two kinds of enterocyte: the enterocyte); None when they
        lie further apart ("alpha cell": a pancreatic and a retinal cell)."""
        onto = self.ontology
        parents = [
            c
            for c in onto.lowest_common_ancestors(terms, _KIND)
            if onto.is_informative(c) and all(onto.distance(t, c, _KIND) == 1 for t in terms)
        ]
        return parents[0] if len(parents) == 1 else None

    def _combine(
        self, hits: list[_Hit], conflicts: list[_Hit], notes: list[str], tissue: str | None
    ) -> CellMapping:
        best, ignored, ambiguous = self._rank_fields(hits)
        if best is not None and ambiguous:
            group = [best, *ambiguous]
            decided = self._decide_by_tissue(sorted({h.cl_id for h in group}), tissue)
            if len(decided) == 1:
                best = next(h for h in group if h.cl_id == decided[0])
                ambiguous = []
        if best is not None and conflicts:
            ambiguous.extend(self._overruled_by(conflicts, best))
        if best is None or ambiguous:
            group = ([best] if best is not None else []) + ambiguous + conflicts
            if not group:
                return CellMapping(None, "; ".join(notes), "unmatched")
            detail = "; ".join(f"{h.evidence} -> {h.cl_id}" for h in group)
            return CellMapping(None, f"ambiguous: {detail}", "ambiguous")
        if self.specialise_by_tissue and not best.chosen and best.scope not in ("override", "id"):
            special = self._specialise(best.cl_id, tissue)
            if special is not None:
                best = replace(
                    best,
                    cl_id=special,
                    confidence=round(best.confidence * _SPECIALISED, 4),
                    notes=(*best.notes, f"specialised by tissue {tissue}"),
                )
        if ignored:
            best = replace(
                best,
                notes=(
                    *best.notes,
                    "ignored less trusted: "
                    + ", ".join(f"{h.field} -> {h.cl_id}" for h in ignored),
                ),
            )
        return self._accept(best)

    def _rank_fields(self, hits: list[_Hit]) -> tuple[_Hit | None, list[_Hit], list[_Hit]]:
        """The most trusted field's hit (refined by a descendant from another field), the
        less trusted ones that disagree (ignored) and the equally trusted ones that do
        (ambiguous)."""
        onto = self.ontology
        best: _Hit | None = None
        ignored: list[_Hit] = []
        ambiguous: list[_Hit] = []
        for h in sorted(hits, key=lambda h: -h.priority):
            if best is None:
                best = h
            elif onto.is_ancestor(best.cl_id, h.cl_id):
                best = replace(
                    h,
                    confidence=max(h.confidence, best.confidence),
                    notes=(*h.notes, f'refines {best.field}: "{best.text}"'),
                )
            elif onto.is_related(best.cl_id, h.cl_id):
                continue
            elif h.priority == best.priority:
                ambiguous.append(h)
            else:
                ignored.append(h)
        return best, ignored, ambiguous

    def _overruled_by(self, conflicts: list[_Hit], best: _Hit) -> list[_Hit]:
        """A more trusted field was ambiguous: its candidates, unless it allows ``best``."""
        top = max(c.priority for c in conflicts)
        leading = [c for c in conflicts if c.priority == top]
        if top > best.priority and not any(
            self.ontology.is_related(c.cl_id, best.cl_id) for c in leading
        ):
            return leading
        return []

    def _accept(self, best: _Hit) -> CellMapping:
        """The mapping, or withheld when its confidence is below the threshold."""
        onto = self.ontology
        conf = round(best.confidence, 3)
        if conf < self.min_confidence:
            return CellMapping(
                None,
                f"withheld: confidence {conf} < {self.min_confidence} for {best.cl_id} "
                f"{onto.label(best.cl_id)}: {best.evidence}",
                "withheld",
            )
        return CellMapping(
            Match(best.cl_id, onto.label(best.cl_id), best.evidence, conf), "", "mapped"
        )
