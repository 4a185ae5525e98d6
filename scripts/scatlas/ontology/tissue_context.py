"""Tissue context: which tissues a text names, the tissue-specific sense of a term, and
"<anatomy> <cell type>" composed into CL's term for that type in that anatomy."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from scatlas.ontology.evidence import (
    _COMPOSED,
    _KIND,
    _POSITION,
    _STOP,
    _STRONG,
    MAX_TEXT_CHARS,
    _Hit,
    _remember,
    _Span,
)
from scatlas.ontology.fields import FieldText
from scatlas.ontology.tables import Tissue
from scatlas.ontology.text import normalise_text, tokenise

log = logging.getLogger(__name__)

# words a tissue variant's name may add besides the tissue's: its epithelium
_PLACE_WORDS = (frozenset(), frozenset({"epithelium"}), frozenset({"epithelium", "proper"}))


def tissue_lines(tissues: Mapping[str, Tissue]) -> dict[str, tuple[str, ...]]:
    """Each tissue with those it lies within, innermost first (`Tissue.within`)."""
    lines = {}
    for name in tissues:
        line = [name]
        while (t := tissues.get(line[-1])) is not None and t.within and t.within not in line:
            line.append(t.within)
        lines[name] = tuple(line)
    return lines


class TissueContext:
    """Methods of :class:`scatlas.ontology.matching.TermMatcher` (its state: see there)."""

    def _tissues_in(self, words: Sequence[str]) -> set[str]:
        """Tissues named by phrases in ``words`` (see `_anatomy_spans`)."""
        return {name for _, _, name in self._anatomy_spans(words)}

    def tissue_of_text(self, text: str) -> str | None:
        """The one tissue named in ``text`` ("pancreatic islet" -> "pancreas"), else None."""
        found = self._tissues_in(tokenise(text).words)
        return next(iter(found)) if len(found) == 1 else None

    def term_tissues(self, cl_id: str) -> frozenset[str]:
        """Tissues a term belongs to: from its name, and from its ``part_of`` anatomy
        (UBERON ids) where the ontology file has such links."""
        hit = self._term_tissues.get(cl_id)
        if hit is None:
            info = self.ontology.info(cl_id)
            words = normalise_text(info.name).split()
            # a tissue before "derived" is an origin, not a place ("naive thymus-derived
            # CD4-positive, alpha-beta T cell" circulates)
            found = {t for _, b, t in self._anatomy_spans(words) if words[b : b + 1] != ["derived"]}
            by_uberon = {t.uberon: t.name for t in self.tissues.values() if t.uberon}
            found.update(by_uberon[u] for u in info.anatomy if u in by_uberon)
            hit = frozenset(found)
            self._term_tissues[cl_id] = hit
        return hit

    def _tissue_line(self, tissue: str) -> tuple[str, ...]:
        """The tissue and those it lies within, innermost first ("colon", "large
        intestine", "intestine"; built once, `tissue_lines`)."""
        return self._tissue_lines.get(tissue) or (tissue,)

    def _fits(self, cl_id: str, tissue: str) -> bool:
        """Whether a term is placed in ``tissue``, in a tissue it lies within or in a part
        of it (a colon term fits the intestine; a small intestine term not the colon)."""
        line = self._tissue_line(tissue)
        return any(t in line or tissue in self._tissue_line(t) for t in self.term_tissues(cl_id))

    def _decide_by_tissue(self, terms: list[str], tissue: str | None) -> list[str]:
        """Of competing terms, those that fit ``tissue``: terms placed in that tissue if
        any, else the terms not placed in another tissue."""
        if not tissue or len(terms) < 2:
            return terms
        placed = [t for t in terms if self._fits(t, tissue)]
        if placed:
            return placed
        return [t for t in terms if not self.term_tissues(t)] or terms

    def _specialise(self, cl_id: str, tissue: str | None) -> str | None:
        """The single descendant named "<term> of <tissue>" or "<tissue> <term>" (cached
        per term and tissue)."""
        if not tissue or tissue not in self.tissues:
            return None
        cache = self._special_cache
        key = (cl_id, tissue)
        if key not in cache:  # the tissue's own variant, else that of a tissue it lies in
            line = self._tissue_line(tissue)
            cache[key] = next(
                (d for t in line if (d := self._specialise_uncached(cl_id, t)) is not None), None
            )
        return cache[key]

    def _label_words(self, cl_id: str) -> frozenset[str]:
        cache = self._label_words_cache
        words = cache.get(cl_id)
        if words is None:
            words = frozenset(normalise_text(self.ontology.label(cl_id)).split())
            cache[cl_id] = words
        return words

    def _named_in_tissue(self, tissue: str) -> dict[tuple[str, frozenset[str]], list[str]]:
        """(tissue phrase, the other words of a term's name) -> the terms so named: "lung
        endothelial cell" under ("lung", {endothelial, cell}); built once per tissue."""
        per_tissue = self._named_cache
        index = per_tissue.get(tissue)
        if index is None:
            index = {}
            for d in self.ontology.term_ids():
                words = self._label_words(d) - {"of", "the"}
                for phrase in self.tissues[tissue].own:
                    pw = frozenset(phrase.split())
                    if pw <= words:
                        index.setdefault((phrase, words - pw), []).append(d)
            per_tissue[tissue] = index
        return index

    def _specialise_uncached(self, cl_id: str, tissue: str) -> str | None:
        base = self._label_words(cl_id)
        index = self._named_in_tissue(tissue)
        onto = self.ontology
        for phrase in self.tissues[tissue].own:  # the tissue's own name first, no parts
            pw = frozenset(phrase.split())
            found = [
                d
                for extra in _PLACE_WORDS  # "enterocyte of epithelium of large intestine"
                for d in index.get((phrase, (base | extra) - pw), [])
                if self._label_words(d) - {"of", "the"} == base | pw | extra
                and onto.is_ancestor(cl_id, d)
            ]
            # the most general: "... of epithelium proper of ..." is a kind of the former
            found = [d for d in found if not any(o != d and onto.is_ancestor(o, d) for o in found)]
            if len(found) == 1:
                return found[0]
            if found:
                return None
        return self._glued_variant(cl_id, tissue)

    def _glued_variant(self, cl_id: str, tissue: str) -> str | None:
        """The descendant named with the tissue's combining form glued to the term's name
        ("endocrine cell" in the intestine: enteroendocrine cell)."""
        prefixes = self.tissues[tissue].prefixes
        if not prefixes:
            return None  # cheap test first: few tissues have a combining form
        label = normalise_text(self.ontology.label(cl_id))
        found = {
            e.cl_id
            for prefix in prefixes
            for e in (self._index.get(prefix + label) or {}).values()
            if e.scope == "name" and self.ontology.is_ancestor(cl_id, e.cl_id)
        }
        return found.pop() if len(found) == 1 else None

    def _tissue_filter(self, span: _Span, tissue: str | None) -> bool:
        """Drop the span's terms placed in another tissue than ``tissue`` when others
        remain; True when all of them are (the span then ranks last)."""
        if not tissue:
            return False
        fits = [
            e for e in span.entries if not self.term_tissues(e.cl_id) or self._fits(e.cl_id, tissue)
        ]
        if not fits:
            return True
        span.entries = fits
        return False

    def _context_tissue(self, fields: Sequence[FieldText], tissue: str | None) -> str | None:
        if tissue:
            if tissue in self.tissues:
                return tissue
            named = self.tissue_of_text(tissue)
            if named:
                return named
        for kinds in (("tissue",), ("source name", "title", "characteristic")):
            found: set[str] = set()
            for f in fields:
                if f.kind in kinds:
                    found |= self._field_tissues(f.text)
            if len(found) == 1:
                return found.pop()
        return None

    def _field_tissues(self, text: str) -> frozenset[str]:
        hit = self._text_tissues.get(text)
        if hit is None:
            hit = frozenset(self._tissues_in(tokenise(text[:MAX_TEXT_CHARS]).words))
            hit = _remember(self._text_tissues, text, hit)
        return hit

    def _anatomy_spans(self, words: Sequence[str]) -> list[tuple[int, int, str]]:
        """(start, end, tissue) of the phrases in ``words`` that name a tissue (longest
        first; "!" phrases such as "blood vessel" name none and are skipped)."""
        out: list[tuple[int, int, str]] = []
        k, n = 0, len(words)
        firsts = self._tissue_firsts
        while k < n:
            if words[k] not in firsts:
                k += 1
                continue
            for size in range(min(self._tissue_window, n - k), 0, -1):
                name = self._tissue_phrases.get(" ".join(words[k : k + size]))
                if name is not None:
                    if name:
                        out.append((k, k + size, name))
                    k += size
                    break
            else:
                k += 1
        return out

    def _compose(
        self,
        hit: _Hit,
        span: _Span,
        spans: list[_Span],
        words: list[str],
        hard: list[bool],
        coord: list[bool],
    ) -> _Hit:
        """ "<anatomy> <cell type>" ("bladder epithelial cell", "fibroblasts of the lung"):
        the hit specialised to CL's term for that type in that anatomy (`_intersection`),
        when the value names one anatomy that modifies the phrase: before it within the
        same list item, or after it as "of/from/in [the] <anatomy>". A term that already
        belongs to a tissue is kept. The anatomy is the author's, not the sample's tissue
        (that is the opt-in ``specialise_by_tissue``)."""
        if self.term_tissues(hit.cl_id):
            return hit
        named = self._places_of(span, spans, words, hard, coord)
        if len(named) != 1:
            return hit
        tissue, phrase = named.popitem()
        special = self._intersection(hit.cl_id, tissue, phrase)
        if special is None:
            return hit
        return replace(
            hit,
            cl_id=special,
            scope=hit.scope,
            confidence=round(hit.confidence * _COMPOSED, 4),
            notes=(
                *hit.notes,
                f'with anatomy "{phrase}": {self.ontology.label(hit.cl_id)} of {tissue}',
            ),
        )

    def _places_of(
        self,
        span: _Span,
        spans: list[_Span],
        words: list[str],
        hard: list[bool],
        coord: list[bool],
    ) -> dict[str, str]:
        """Tissue -> phrase of the anatomy the value names for ``span``: before it within
        the same list item, or after it as "of/from/in [the] <anatomy>" (not inside a
        matched phrase)."""
        named: dict[str, str] = {}
        for a, b, name in self._anatomy_spans(words):
            if any(o.start < b and a < o.end for o in spans):
                continue  # part of a matched phrase
            before = b <= span.start and not any(
                hard[k] or coord[k] for k in range(b, span.start + 1)
            )
            gap = words[span.end : a]
            after = a >= span.end and gap[:1] and gap[0] in _POSITION and gap[1:] in ([], ["the"])
            if before or after:
                named[name] = " ".join(words[a:b])
        return named

    def _place_filter(
        self, spans: list[_Span], words: list[str], hard: list[bool], coord: list[bool]
    ) -> list[_Span]:
        """The text's own place wins over a weak synonym's: a span's NARROW, BROAD or
        RELATED readings whose terms CL places in another tissue than the one the value
        names for it are dropped ("columnar cells of the lung": "columnar cell" is a BROAD
        synonym of the large intestine's enterocyte); a span left with no reading is
        dropped. Names, EXACT synonyms and abbreviations stay: the author named that term
        ("Kupffer cells of the spleen")."""
        for span in spans:
            if all(e.scope in _STRONG for e in span.entries):
                continue
            named = self._places_of(span, spans, words, hard, coord)
            if len(named) != 1:
                continue
            place = next(iter(named))
            span.entries = [
                e
                for e in span.entries
                if e.scope in _STRONG
                or not self.term_tissues(e.cl_id)
                or self._fits(e.cl_id, place)
            ]
        return [s for s in spans if s.entries]

    def _intersection(self, cl_id: str, tissue: str, phrase: str) -> str | None:
        """CL's term for ``cl_id`` in ``tissue``: the one most general descendant placed in
        the tissue (`term_tissues`) whose name holds nothing but the type's name and the
        tissue's ("<tissue> <type>", "<type> of <tissue>": "renal" + "epithelial cell" ->
        "kidney epithelial cell", "pulmonary" + "epithelial cell" -> "epithelial cell of
        lung", not "bronchial epithelial cell"). None otherwise: naming a more qualified
        term ("bladder" + "epithelial cell" -> "bladder urothelial cell"; "splenic" + "B
        cell" -> "marginal zone B cell of spleen", the only B cell CL places in the
        spleen) would add specificity the author did not state."""
        key = (cl_id, tissue, phrase)
        if key in self._composed:
            return self._composed[key]
        onto = self.ontology
        known = (
            set(normalise_text(onto.label(cl_id)).split())
            | set(normalise_text(tissue).split())
            | set(phrase.split())
            | _STOP
        )
        plain = {
            d
            for d in onto.descendants(cl_id, _KIND)
            if self._fits(d, tissue)
            and onto.is_informative(d)
            and set(normalise_text(onto.label(d)).split()) <= known
        }
        minimal = [d for d in plain if not (onto.ancestors(d, _KIND) & plain)]
        best = minimal[0] if len(minimal) == 1 else None
        self._composed[key] = best
        return best
