"""Map free text describing a cell to the most specific Cell Ontology term, with evidence.

Per field value (see `fields`), after `normalise` has made the words comparable:

1. Curated overrides (exact normalised text) and literal CL ids ("CL:0000084") win at once.
2. Phrases: every window of words is looked up among term names and synonyms (each scope
   with its own weight), the curated abbreviations, and the tissue-specific words of the
   sample's tissue; a window may also match a name with its words in another order
   ("alveolar epithelial type 2 cell" ~ "type II alveolar epithelial cell"). Single-word
   abbreviations are also expanded in place, so "CD14+ Mono" reads "cd14 positive
   monocyte"; words glued together are split when the parts form a name ("memoryT" ->
   "memory T cell"); a list shares its head noun ("B and T lymphocytes"). The longest
   windows win; a phrase inside longer text is kept with a lower confidence. Terse CL
   synonyms (3 letters or fewer: "PE", "LC") count only beside cell or marker words.
3. Context: a phrase preceded by "non"/"not"/"without", or followed by "depleted",
   "-like", "receptor", "factor", "line", "carcinoma", ... does not name the cell; in
   "X with Y" / "X from Y" only X does; "unknown", "unassigned", "doublet" in a value
   make it name nothing.
4. Hits that are ancestors of other hits are dropped (most specific terms, as scQuery).
   Several unrelated terms left: the sample's tissue decides where it can (a term whose
   name places it in another tissue is dropped); a list ("monocytes/macrophages",
   "dendritic cells and macrophages", "DN3-DN4") is a mixture and maps to the terms' lowest common
   ancestor under is_a when that is a close, informative term; otherwise the value is
   ambiguous.
5. Anatomy: "<anatomy> <cell type>" ("bladder epithelial cell", "fibroblasts of the lung")
   becomes CL's term for that type in that anatomy when CL has a clear one (`_compose`).
6. A value that names no cell type but holds a qualifier that alone implies one in the
   sample's tissue (`implied_terms.tsv`: "pericentral" in the liver) maps to that term
   with a lower confidence.

Across fields, the more trusted field wins (author cell-type column > other
characteristics > source name > title > tissue); a less trusted field may only refine the
answer with a descendant of it. Name or EXACT hits beat NARROW/RELATED/BROAD ones. Text
that names no cell type maps to nothing; "cell" (CL:0000000) and other upper-level terms
are never answers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from scatlas.ontology.fields import FieldText, parse_source_text
from scatlas.ontology.graph import CellOntology
from scatlas.ontology.tables import (
    TableEntry,
    Tissue,
    read_abbreviations,
    read_implied_terms,
    read_tissue_terms,
    read_tissues,
)
from scatlas.ontology.text import HARD, SEPARATORS, is_marker, normalise_text, tokenise

log = logging.getLogger(__name__)

#: confidence of a hit by the kind of text it matched
WEIGHTS: dict[str, float] = {
    "override": 1.0,
    "id": 1.0,
    "name": 1.0,
    "EXACT": 0.95,
    "abbreviation": 0.9,
    "tissue term": 0.9,
    "implied": 0.8,
    "NARROW": 0.7,
    "RELATED": 0.6,
    "BROAD": 0.5,
}
_STRONG = frozenset({"override", "id", "name", "EXACT", "abbreviation", "tissue term"})
_PARTIAL = 0.9  # the phrase is part of a longer value
_REORDERED = 0.95  # the words match a name in another order
_MIXTURE = 0.8  # lowest common ancestor of a list of types
_TISSUE_DECIDED = 0.95
_SPECIALISED = 0.95
_COMPOSED = 0.95  # "<anatomy> <cell type>" read as CL's term for that type in that anatomy
_KIND = ("is_a",)  # the relation that says what a cell is (mixtures, composition)
_POSITION = frozenset({"of", "from", "in"})  # "<cell type> of/from/in <anatomy>"
MAX_MIXTURE_STEPS = 3  # a mixture's common ancestor at most this many steps above each type
MAX_TEXT_CHARS = 2000  # longer text is cut (and the cut logged)
_MAX_WINDOW = 12
# CL names conventional T cells "CD4-positive, alpha-beta ..." and "naive thymus-derived
# ...": authors leave these qualifiers out ("CD8+ cytotoxic T cells", "naive CD4 T cells")
_IMPLIED = (("alpha", "beta"), ("thymus", "derived"))
_IMPLIED_WEIGHT = 0.95

_STOP = frozenset({"of", "the", "a", "an", "in", "from", "and"})
_NEG_BEFORE = frozenset({"non", "not", "no", "without", "minus", "except", "excluding"})
_BLOCK_AFTER = frozenset(
    {
        "like", "receptor", "factor", "growth", "colony", "activating", "migration",
        "antigen", "marker", "medium", "media", "conditioned", "signature", "gene",
        "carcinoma", "cancer", "tumor", "lymphoma", "leukemia", "sarcoma", "melanoma",
        "line", "depleted", "depletion", "deficient", "deficiency", "free", "removed",
        "excluded", "knockout", "ko",
    }
)  # fmt: skip
_CLAUSE = frozenset({"with", "from", "plus", "by", "versus", "vs"})
_NONE_WORDS = frozenset(
    {
        "unknown", "unassigned", "unclassified", "undetermined", "unidentified",
        "unannotated", "doublet", "multiplet", "contaminant", "contamination",
        "ambiguous", "unresolved",
    }
)  # fmt: skip
_NONE_VALUES = frozenset({"na", "n a", "none", "nan", "null", "not applicable", "not available"})
_COORD = frozenset({"and", "or", "plus"})
_LINEAGE = frozenset({"t", "b", "nk"})  # may end a glued label: "memoryT", "CD4T", "NKcell"
# words that may surround a terse CL synonym (3 letters or fewer) for it to count
_LEVELS = frozenset({"positive", "negative", "high", "low", "intermediate"})
_TERSE_COMPANIONS = _LEVELS | {"cell"}
_CL_ID = re.compile(r"\bCL[:_](\d{7})\b")
_PAREN = re.compile(r"\(([^()]*)\)")


@dataclass(frozen=True)
class Match:
    """One text -> term assignment; ``evidence`` says which text of which field matched
    which name, synonym or table row."""

    cl_id: str
    cl_label: str
    evidence: str
    confidence: float


@dataclass(frozen=True)
class CellMapping:
    """The outcome for one cell: ``status`` is mapped, ambiguous, unmatched, withheld
    (below ``min_confidence``) or empty;
    for unmapped cells ``evidence`` says why (the competing hits when ambiguous)."""

    match: Match | None
    evidence: str
    status: str


@dataclass(frozen=True)
class _Entry:
    cl_id: str
    scope: str
    text: str  # the name, synonym or table text as written
    tissue: str = ""  # tissue-specific table rows only
    source: str = ""  # table file:line
    implied: str = ""  # words of the name left out of this key ("alpha beta")

    @property
    def weight(self) -> float:
        return WEIGHTS[self.scope] * (_IMPLIED_WEIGHT if self.implied else 1.0)


@dataclass(frozen=True)
class _Hit:
    """A term found in one field value."""

    cl_id: str
    scope: str
    synonym: str
    field: str
    text: str
    confidence: float
    notes: tuple[str, ...] = ()
    priority: int = 0

    @property
    def evidence(self) -> str:
        notes = "".join(f"; {n}" for n in self.notes)
        where = f"{self.field}: " if self.field else ""
        return f'{where}"{self.text}" ~ "{self.synonym}" ({self.scope}{notes})'


@dataclass
class _Span:
    start: int  # word positions in the original value
    end: int
    entries: list[_Entry]
    reordered: bool = False
    expanded: tuple[str, ...] = ()  # abbreviations read in full inside the span
    shared_head: str = ""  # the head noun borrowed from the next list item

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def weight(self) -> float:
        return max(e.weight for e in self.entries)


@dataclass
class _ValueResult:
    status: str  # mapped, ambiguous, unmatched, none
    hit: _Hit | None = None
    candidates: list[_Hit] = field(default_factory=list)
    note: str = ""


class TermMatcher:
    """Matcher of free text against one Cell Ontology plus the curated tables.

    Only current, informative CL terms are indexed (never CL:0000000 "cell" nor CL's
    upper-level terms). ``specialise_by_tissue`` turns a generic answer into the one
    tissue-specific descendant named "<answer> of <tissue>" / "<tissue> <answer>" (e.g.
    "endothelial cell" in lung -> "lung endothelial cell"); off by default, because it adds
    specificity the author did not state. ``min_confidence`` withholds answers below that
    confidence (status "withheld", the answer kept in the evidence): fewer wrong answers
    for less coverage (benchmarks/bench_ontology.py prints the trade-off); 0 keeps all.
    """

    def __init__(
        self,
        ontology: CellOntology,
        *,
        abbreviations: Iterable[TableEntry] | None = None,
        tissue_terms: Iterable[TableEntry] | None = None,
        implied_terms: Iterable[TableEntry] | None = None,
        tissues: Mapping[str, Tissue] | None = None,
        specialise_by_tissue: bool = False,
        min_confidence: float = 0.0,
    ):
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], not {min_confidence}")
        self.min_confidence = min_confidence
        self.ontology = ontology
        self.tissues = dict(read_tissues() if tissues is None else tissues)
        abbreviations = read_abbreviations(ontology) if abbreviations is None else abbreviations
        if tissue_terms is None:
            tissue_terms = read_tissue_terms(ontology, self.tissues)
        self.specialise_by_tissue = specialise_by_tissue
        self._index: dict[str, dict[tuple[str, str], _Entry]] = {}
        for cl_id in ontology.term_ids():
            if not ontology.is_informative(cl_id):
                continue
            info = ontology.info(cl_id)
            for text, scope in [(info.name, "name"), *info.synonyms]:
                self._add(_Entry(cl_id, scope, text))
        for row in abbreviations:
            if ontology.is_informative(row.cl_id):
                self._add(_Entry(row.cl_id, "abbreviation", row.text, "", row.source))
        for row in tissue_terms:
            if ontology.is_informative(row.cl_id):
                self._add(_Entry(row.cl_id, "tissue term", row.text, row.tissue, row.source))
        self._add_implied()
        if implied_terms is None:
            implied_terms = read_implied_terms(ontology, self.tissues)
        # qualifiers that imply a cell type only when a value names none: not in the index
        self._implied_terms: dict[tuple[str, str], TableEntry] = {
            (row.tissue, row.key): row
            for row in implied_terms
            if ontology.is_informative(row.cl_id)
        }
        self._implied_window = max((len(k.split()) for _, k in self._implied_terms), default=0)
        self._composed: dict[tuple[str, str, str], str | None] = {}
        self._bags: dict[str, list[_Entry]] = {}
        self._firsts: set[str] = set()
        self._vocab: set[str] = set()
        self._expansions: dict[str, list[_Entry]] = {}
        for key, per_term in self._index.items():
            words = key.split()
            self._firsts.add(words[0])
            self._vocab.update(words)
            content = sorted(set(words) - _STOP)
            if len(content) >= 2:
                self._bags.setdefault(" ".join(content), []).extend(per_term.values())
            if len(words) == 1:
                for e in per_term.values():
                    if e.scope in ("abbreviation", "tissue term"):
                        self._expansions.setdefault(key, []).append(e)
        self._names = {
            e.cl_id: tuple(normalise_text(ontology.label(e.cl_id)).split())
            for group in self._expansions.values()
            for e in group
        }
        self._max_window = min(_MAX_WINDOW, max((len(k.split()) for k in self._index), default=1))
        self._tissue_phrases: dict[str, str] = {}
        for t in self.tissues.values():
            self._tissue_phrases.update({p: t.name for p in t.phrases})
        for t in self.tissues.values():
            self._tissue_phrases.update({p: "" for p in t.not_phrases})
        self._tissue_window = max((len(p.split()) for p in self._tissue_phrases), default=1)
        self._text_tissues: dict[str, frozenset[str]] = {}
        self._term_tissues: dict[str, frozenset[str]] = {}
        self._cache: dict[tuple[str, str], _ValueResult] = {}
        self._n_truncated = 0

    # --- index ---------------------------------------------------------------------------

    def _add(self, entry: _Entry) -> None:
        key = normalise_text(entry.text)
        if not key or key == "cell":
            return
        per_term = self._index.setdefault(key, {})
        slot = (entry.cl_id, entry.tissue)
        old = per_term.get(slot)
        if old is None or entry.weight > old.weight:
            per_term[slot] = entry

    def _add_implied(self) -> None:
        """Keys of T-cell names and EXACT synonyms without the qualifiers that CL's naming
        implies (`_IMPLIED`), unless such a key already names something."""
        derived: dict[str, dict[tuple[str, str], _Entry]] = {}
        for key, per_term in self._index.items():
            words = key.split()
            if "t" not in words or "cell" not in words:
                continue
            for drop in _subsets(_IMPLIED):
                reduced, left_out = _without(words, drop)
                if not left_out or not reduced:
                    continue
                rkey = " ".join(reduced)
                if rkey in self._index:
                    continue
                for slot, e in per_term.items():
                    if e.scope in ("name", "EXACT") and not e.implied:
                        derived.setdefault(rkey, {})[slot] = replace(e, implied=left_out)
        self._index.update(derived)

    def __len__(self) -> int:
        return len(self._index)

    def _lookup(self, key: str, tissue: str | None) -> list[_Entry]:
        per_term = self._index.get(key)
        if not per_term:
            return []
        return [e for e in per_term.values() if not e.tissue or e.tissue == tissue]

    # --- tissues -------------------------------------------------------------------------

    def _tissues_in(self, words: Sequence[str]) -> set[str]:
        """Tissues named by phrases in ``words`` (longest phrases first; "!" phrases
        such as "blood vessel" name none)."""
        found: set[str] = set()
        k = 0
        n = len(words)
        while k < n:
            for size in range(min(self._tissue_window, n - k), 0, -1):
                phrase = " ".join(words[k : k + size])
                if phrase in self._tissue_phrases:
                    name = self._tissue_phrases[phrase]
                    if name:
                        found.add(name)
                    k += size
                    break
            else:
                k += 1
        return found

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
            found = self._tissues_in(normalise_text(info.name).split())
            by_uberon = {t.uberon: t.name for t in self.tissues.values() if t.uberon}
            found.update(by_uberon[u] for u in info.anatomy if u in by_uberon)
            hit = frozenset(found)
            self._term_tissues[cl_id] = hit
        return hit

    def _decide_by_tissue(self, terms: list[str], tissue: str | None) -> list[str]:
        """Of competing terms, those that fit ``tissue``: terms placed in that tissue if
        any, else the terms not placed in another tissue."""
        if not tissue or len(terms) < 2:
            return terms
        placed = [t for t in terms if tissue in self.term_tissues(t)]
        if placed:
            return placed
        return [t for t in terms if not self.term_tissues(t)] or terms

    def _specialise(self, cl_id: str, tissue: str | None) -> str | None:
        """The single descendant named "<term> of <tissue>" or "<tissue> <term>"."""
        if not tissue or tissue not in self.tissues:
            return None
        base = set(normalise_text(self.ontology.label(cl_id)).split())
        named = [
            (d, set(normalise_text(self.ontology.label(d)).split()) - {"of", "the"})
            for d in self.ontology.descendants(cl_id)
            if not self.ontology.info(d).obsolete
        ]
        for phrase in self.tissues[tissue].phrases:  # the tissue's own name first
            found = [d for d, words in named if words == base | set(phrase.split())]
            if len(found) == 1:
                return found[0]
            if found:
                return None
        return None

    # --- one value -----------------------------------------------------------------------

    def _windows(
        self,
        words: Sequence[str],
        hard: Sequence[bool],
        coord: Sequence[bool],
        tissue: str | None,
        origin: Sequence[int] | None = None,
    ) -> list[tuple[int, int, list[_Entry], bool]]:
        """Every window of ``words`` that is a key (or a reordered key): (start, end,
        entries, reordered). ``hard[k]``/``coord[k]``: a hard separator / a separator or
        "and"/"or" lies before word k; with ``origin`` (expanded words), windows never cut
        through an expansion. Reordered windows never span a list nor start with a
        marker's level word."""
        out = []
        n = len(words)
        for i in range(n):
            if words[i] not in self._vocab or words[i] in _STOP:
                continue
            if origin is not None and i > 0 and origin[i - 1] == origin[i]:
                continue
            stop = i + 1
            while stop < n and stop - i < self._max_window and not hard[stop]:
                stop += 1
            for j in range(stop, i, -1):
                if words[j - 1] in _STOP:
                    continue
                if origin is not None and j < n and origin[j - 1] == origin[j]:
                    continue
                window = words[i:j]
                entries = self._lookup(" ".join(window), tissue) if words[i] in self._firsts else []
                if entries:
                    out.append((i, j, entries, False))
                    continue
                if (
                    j - i >= 2
                    and window[0] not in _LEVELS
                    and not any(coord[k] for k in range(i + 1, j))
                    and all(w in self._vocab or w in _STOP for w in window)
                ):
                    bag = " ".join(sorted(set(window) - _STOP))
                    found = [
                        e for e in self._bags.get(bag, []) if not e.tissue or e.tissue == tissue
                    ]
                    if found:
                        out.append((i, j, found, True))
        return out

    def _expand(
        self, words: Sequence[str], hard: Sequence[bool], coord: Sequence[bool], tissue: str | None
    ) -> tuple[list[str], list[bool], list[bool], list[int], list[str]] | None:
        """``words`` with single-word abbreviations spelt out as their term's name, the
        position each new word came from, and the abbreviations used; None if none."""
        out: list[str] = []
        hard_out: list[bool] = []
        coord_out: list[bool] = []
        origin: list[int] = []
        used: list[str] = []
        for k, w in enumerate(words):
            entries = [e for e in self._expansions.get(w, []) if not e.tissue or e.tissue == tissue]
            if len(entries) == 1:
                name = list(self._names[entries[0].cl_id])
                nxt = words[k + 1] if k + 1 < len(words) else ""
                if name[-1] == nxt and len(name) > 1:  # "NK cell", "DN4 thymocyte"
                    name = name[:-1]
                used.append(f"{entries[0].text} = {self.ontology.label(entries[0].cl_id)}")
                out.extend(name)
                hard_out.extend([hard[k]] + [False] * (len(name) - 1))
                coord_out.extend([coord[k]] + [False] * (len(name) - 1))
                origin.extend([k] * len(name))
            else:
                out.append(w)
                hard_out.append(hard[k])
                coord_out.append(coord[k])
                origin.append(k)
        return (out, hard_out, coord_out, origin, used) if used else None

    def _spans(
        self, words: list[str], hard: list[bool], coord: list[bool], tissue: str | None
    ) -> list[_Span]:
        cands = [_Span(i, j, e, r) for i, j, e, r in self._windows(words, hard, coord, tissue)]
        expanded = self._expand(words, hard, coord, tissue)
        if expanded is not None:
            ex_words, ex_hard, ex_coord, origin, used = expanded
            windows = self._windows(ex_words, ex_hard, ex_coord, tissue, origin)
            for i, j, entries, reordered in windows:
                s, e = origin[i], origin[j - 1] + 1
                abbr = [
                    _Entry(
                        x.cl_id,
                        "abbreviation" if WEIGHTS[x.scope] > 0.9 else x.scope,
                        x.text,
                        x.tissue,
                        x.source,
                    )
                    for x in entries
                ]
                cands.append(_Span(s, e, abbr, reordered, tuple(used)))
        # a reading whose terms all belong to another tissue than the sample's loses to
        # another reading of the same words ("alpha cell" is a retinal ganglion cell type;
        # in the pancreas, "alpha" is the A cell); text that names a term in full stays
        misfit = {id(c) for c in cands if self._tissue_filter(c, tissue)}
        fits = {(c.start, c.end) for c in cands if id(c) not in misfit}
        cands.sort(
            key=lambda c: (
                id(c) in misfit and (c.start, c.end) in fits,
                -c.length,
                -c.weight,
                c.reordered,
                c.start,
            )
        )
        chosen: list[_Span] = []
        for c in cands:
            if all(c.end <= o.start or o.end <= c.start for o in chosen):
                chosen.append(c)
        return sorted(chosen, key=lambda c: c.start)

    def _tissue_filter(self, span: _Span, tissue: str | None) -> bool:
        """Drop the span's terms placed in another tissue than ``tissue`` when others
        remain; True when all of them are (the span then ranks last)."""
        if not tissue:
            return False
        fits = [
            e
            for e in span.entries
            if not self.term_tissues(e.cl_id) or tissue in self.term_tissues(e.cl_id)
        ]
        if not fits:
            return True
        span.entries = fits
        return False

    def _split_glued(
        self, words: list[str], hard: list[bool], coord: list[bool]
    ) -> tuple[list[str], list[bool], list[bool]]:
        """Singular short plurals ("DCs"); split words missing from the vocabulary into two
        known words, as in labels glued together ("naivecytotoxic", "memoryT", "Thelper", "CD4T"); a lone lineage
        letter (T, B, NK) gets its "cell"."""
        out_w: list[str] = []
        out_h: list[bool] = []
        out_c: list[bool] = []
        for k, w in enumerate(words):
            if len(w) <= 6 and w.endswith("s") and w not in self._index and w[:-1] in self._index:
                w = w[:-1]  # plurals of short abbreviations: "DCs", "ECs", "NKs"
            parts = [w]
            if w not in self._vocab and 4 <= len(w) <= 30 and not w.isdigit():
                parts = self._split_word(w, words[k + 1] if k + 1 < len(words) else "")
            out_w.extend(parts)
            out_h.extend([hard[k]] + [False] * (len(parts) - 1))
            out_c.extend([coord[k]] + [False] * (len(parts) - 1))
        return out_w, out_h, out_c

    def _split_word(self, w: str, nxt: str) -> list[str]:
        """Two known words glued together, when they (with "cell" after a lone lineage
        letter) form a name or synonym: "memoryt" -> "memory t cell", "thelper" ->
        "t helper cell"; else ``[w]`` ("doublet" is not "double t")."""
        for cut in range(len(w) - 1, 0, -1):
            a, b = w[:cut], w[cut:]
            if a not in self._vocab or b not in self._vocab or a in _STOP or b in _STOP:
                continue
            if min(len(a), len(b)) < 3 and not (a in _LINEAGE or b in _LINEAGE):
                continue
            parts = [a, b]
            if (a in _LINEAGE or b in _LINEAGE) and nxt != "cell":
                parts.append("cell")
            if " ".join(parts) in self._index or f"{a} {b} cell" in self._index:
                return parts
        return [w]

    def _terse_ok(self, span: _Span, words: list[str]) -> bool:
        """A terse CL synonym ("PE", "LC", "ARC": 3 letters or fewer) counts only when
        the rest of the value is cell/marker words: elsewhere it is likely a gene, a dye
        or an assay. Curated abbreviations are exempt."""
        key = words[span.start]
        if span.length != 1 or len(key) > 3 or span.shared_head:
            return True
        if any(e.scope in ("abbreviation", "tissue term") for e in span.entries):
            return True
        for k, w in enumerate(words):
            if span.start <= k < span.end or w in _TERSE_COMPANIONS or w in _STOP:
                continue
            # a marker counts only with its level: "CD14+ X", not "CD4-PE" (a conjugate)
            if not (is_marker(w) and k + 1 < len(words) and words[k + 1] in _TERSE_COMPANIONS):
                return False
        return True

    def _distribute_heads(
        self, spans: list[_Span], words: list[str], coord: list[bool], tissue: str | None
    ) -> list[_Span]:
        """Share a head noun across a list: in "B and T lymphocytes" or "CD4+/CD8+ T cells"
        the item before the list's last item also takes its head ("B lymphocyte",
        "CD4+ T cell"). An item is one word, or a marker with its level ("cd4 positive")."""

        def unit(start: int, end: int) -> int:  # length of the item at start (or ending at end)
            a, b = (start, start + 1) if end < 0 else (end - 2, end - 1)
            if a >= 0 and b < len(words) and is_marker(words[a]) and words[b] in _LEVELS:
                return 2
            return 1

        out = list(spans)
        for s in spans:
            first = unit(s.start, -1)
            if s.length <= first:
                continue
            if s.start >= 2 and words[s.start - 1] in ("and", "or"):
                end = s.start - 1
            elif s.start >= 1 and coord[s.start]:
                end = s.start
            else:
                continue
            x = end - unit(-1, end)
            if x < 0 or any(o.start < end and x < o.end for o in out):
                continue
            head = words[s.start + first : s.end]
            entries = self._lookup(" ".join([*words[x:end], *head]), tissue)
            if entries:
                out.append(_Span(x, end, entries, shared_head=" ".join(head)))
        return sorted(out, key=lambda c: c.start)

    def _context_filter(self, spans: list[_Span], words: list[str]) -> tuple[list[_Span], str]:
        kept: list[_Span] = []
        notes: list[str] = []
        for s in spans:
            before = words[s.start - 1] if s.start > 0 else ""
            after = words[s.end] if s.end < len(words) else ""
            after2 = words[s.end + 1] if s.end + 1 < len(words) else ""
            phrase = " ".join(words[s.start : s.end])
            if not self._terse_ok(s, words):
                notes.append(f'"{phrase}" is too terse to count here')
            elif before in _NEG_BEFORE:
                notes.append(f'"{before} {phrase}" negated')
            elif after in _BLOCK_AFTER or (after == "derived" and after2 != "from"):
                notes.append(f'"{phrase} {after}" does not name a cell')
            else:
                kept.append(s)
        clause = next((k for k, w in enumerate(words) if w in _CLAUSE), None)
        if clause is not None and any(s.end <= clause for s in kept):
            late = [s for s in kept if s.start > clause]
            if late:
                notes.append(f'ignored after "{words[clause]}"')
                kept = [s for s in kept if s.start <= clause]
        return kept, "; ".join(notes)

    def _value(self, text: str, tissue: str | None) -> _ValueResult:
        key = (text, tissue or "")
        hit = self._cache.get(key)
        if hit is None:
            hit = self._value_uncached(text, tissue)
            if len(self._cache) < 500_000:
                self._cache[key] = hit
        return hit

    def _value_uncached(self, text: str, tissue: str | None) -> _ValueResult:
        """Match one field value (field name and priority filled in by the caller)."""
        ids = [f"CL:{m}" for m in _CL_ID.findall(text)]
        current = {self.ontology.resolve(i) for i in ids if i in self.ontology} - {None}
        if len(current) == 1:
            cl_id = current.pop()
            if self.ontology.is_informative(cl_id):
                return _ValueResult("mapped", _Hit(cl_id, "id", ids[0], "", text, 1.0))
        main = _PAREN.sub(" ", text)
        inner = [p for p in _PAREN.findall(text) if p.strip()]
        result = self._phrase_value(main, text, tissue)
        if result.status == "unmatched":
            for part in inner:  # "(NK cells)" after a vague description
                alt = self._phrase_value(part, text, tissue)
                if alt.status != "unmatched":
                    return alt
        return result

    def _phrase_value(self, text: str, shown: str, tissue: str | None) -> _ValueResult:
        toks = tokenise(text)
        words: list[str] = []
        hard: list[bool] = []
        coord_before: list[bool] = []
        pending_hard = pending_coord = False
        for t in toks.items:
            if t in SEPARATORS:
                pending_coord = True
                pending_hard = pending_hard or t == HARD
                continue
            words.append(t)
            hard.append(pending_hard)
            coord_before.append(pending_coord or t in _COORD)
            pending_hard = pending_coord = False
        if not words:
            return _ValueResult("unmatched")
        if " ".join(words) in _NONE_VALUES or _NONE_WORDS & set(words):
            return _ValueResult("none", note=f'"{shown}" names no known cell type')
        words, hard, coord_before = self._split_glued(words, hard, coord_before)
        spans = self._distribute_heads(
            self._spans(words, hard, coord_before, tissue), words, coord_before, tissue
        )
        spans, note = self._context_filter(spans, words)
        if not spans:
            implied = self._implied_value(words, shown, tissue, note)
            return implied or _ValueResult("unmatched", note=note)
        if any(e.scope in _STRONG for s in spans for e in s.entries):
            for s in spans:
                s.entries = [e for e in s.entries if e.scope in _STRONG]
            spans = [s for s in spans if s.entries]
        content = [w for w in words if w not in _STOP]
        by_term: dict[str, tuple[_Entry, _Span]] = {}
        for s in spans:
            for e in s.entries:
                old = by_term.get(e.cl_id)
                if old is None or (e.weight, s.length) > (old[0].weight, old[1].length):
                    by_term[e.cl_id] = (e, s)

        def as_hit(cl_id: str, extra: tuple[str, ...] = ()) -> _Hit:
            e, s = by_term[cl_id]
            conf = e.weight * (_REORDERED if s.reordered else 1.0)
            notes = list(extra)
            if sum(w not in _STOP for w in words[s.start : s.end]) < len(content):
                conf *= _PARTIAL
                notes.append(f'phrase "{" ".join(words[s.start : s.end])}"')
            if s.reordered:
                notes.append("words reordered")
            notes.extend(s.expanded)
            if e.implied:
                notes.append(f'"{e.implied}" implied')
            if s.shared_head:
                notes.append(f'head "{s.shared_head}" shared')
            if e.source:
                notes.append(e.source)
            if note:
                notes.append(note)
            return _Hit(cl_id, e.scope, e.text, "", shown, round(conf, 4), tuple(notes))

        def composed(h: _Hit) -> _Hit:
            return self._compose(h, by_term[h.cl_id][1], spans, words, hard, coord_before)

        specific = sorted(self.ontology.most_specific(by_term))
        if len(specific) > 1:
            decided = self._decide_by_tissue(specific, tissue)
            if len(decided) == 1:
                h = as_hit(decided[0], (f"tissue {tissue} decides",))
                h = replace(h, confidence=round(h.confidence * _TISSUE_DECIDED, 4))
                return _ValueResult("mapped", composed(h))
            specific = decided
        if len(specific) == 1:
            return _ValueResult("mapped", composed(as_hit(specific[0])))
        hits = [as_hit(c) for c in specific]
        mixture = self._mixture(specific, [by_term[c][1] for c in specific], coord_before)
        if mixture is not None:
            conf = min(h.confidence for h in hits) * _MIXTURE
            labels = ", ".join(self.ontology.label(c) for c in specific)
            hit = _Hit(
                mixture, "mixture", f"common ancestor of {labels}", "", shown, round(conf, 4)
            )
            return _ValueResult("mapped", hit, hits)
        return _ValueResult("ambiguous", None, hits, note)

    def _implied_value(
        self, words: list[str], shown: str, tissue: str | None, note: str
    ) -> _ValueResult | None:
        """A value that names no cell type but holds a qualifier that, alone, implies one in
        the sample's tissue (`implied_terms.tsv`: "pericentral" in the liver); None when it
        holds none, or qualifiers implying different terms."""
        if not tissue or not self._implied_terms:
            return None
        found: dict[str, tuple[TableEntry, int]] = {}
        n = len(words)
        for i in range(n):
            for size in range(min(self._implied_window, n - i), 0, -1):
                row = self._implied_terms.get((tissue, " ".join(words[i : i + size])))
                if row is not None:
                    if i > 0 and words[i - 1] in _NEG_BEFORE:
                        break
                    found.setdefault(row.cl_id, (row, size))
                    break
        if len(found) != 1:
            return None
        row, size = next(iter(found.values()))
        conf = WEIGHTS["implied"]
        notes = [f"implied in {tissue}", row.source]
        if size < len([w for w in words if w not in _STOP]):
            conf *= _PARTIAL
            notes.append(f'phrase "{row.key}"')
        if note:
            notes.append(note)
        hit = _Hit(row.cl_id, "implied", row.text, "", shown, round(conf, 4), tuple(notes))
        return _ValueResult("mapped", hit)

    def _anatomy_spans(self, words: Sequence[str]) -> list[tuple[int, int, str]]:
        """(start, end, tissue) of the phrases in ``words`` that name a tissue (longest
        first; "!" phrases such as "blood vessel" name none and are skipped)."""
        out: list[tuple[int, int, str]] = []
        k, n = 0, len(words)
        while k < n:
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
        named: set[str] = set()
        phrase = ""
        for a, b, name in self._anatomy_spans(words):
            if any(o.start < b and a < o.end for o in spans):
                continue  # part of a matched phrase
            before = b <= span.start and not any(
                hard[k] or coord[k] for k in range(b, span.start + 1)
            )
            gap = words[span.end : a]
            after = a >= span.end and gap[:1] and gap[0] in _POSITION and gap[1:] in ([], ["the"])
            if before or after:
                named.add(name)
                phrase = " ".join(words[a:b])
        if len(named) != 1:
            return hit
        tissue = named.pop()
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
            if tissue in self.term_tissues(d)
            and onto.is_informative(d)
            and set(normalise_text(onto.label(d)).split()) <= known
        }
        minimal = [d for d in plain if not (onto.ancestors(d, _KIND) & plain)]
        best = minimal[0] if len(minimal) == 1 else None
        self._composed[key] = best
        return best

    def _mixture(
        self, terms: list[str], spans: list[_Span], coord_before: list[bool]
    ) -> str | None:
        """The common ancestor of a list of types ("A/B", "A, B and C"), or None when the
        terms are not a list, or have no informative common ancestor within
        `MAX_MIXTURE_STEPS` of each."""
        starts = sorted({(s.start, s.end) for s in spans})
        if len(starts) != len(terms):
            return None  # two terms from one phrase: an ambiguous synonym, not a list
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
        if not ranked or ranked[0][0] > MAX_MIXTURE_STEPS:
            return None
        return ranked[0][3]

    # --- cells ---------------------------------------------------------------------------

    def _cap(self, text: str) -> tuple[str, bool]:
        if len(text) <= MAX_TEXT_CHARS:
            return text, False
        self._n_truncated += 1
        log.warning("text of %d characters cut to %d: %r...", len(text), MAX_TEXT_CHARS, text[:80])
        return text[:MAX_TEXT_CHARS], True

    def annotate(
        self,
        fields: Sequence[FieldText],
        *,
        tissue: str | None = None,
        overrides: Mapping[str, str] | None = None,
    ) -> CellMapping:
        """Map one cell described by ``fields``. The tissue context is ``tissue`` (a name
        from tissues.tsv, or any text naming one such as "Limb_Muscle") when given, else
        the one tissue the tissue fields name, else the one the other fields name."""
        if not any(f.text.strip() for f in fields):
            return CellMapping(None, "no text", "empty")
        context = self._context_tissue(fields, tissue)
        hits: list[_Hit] = []
        conflicts: list[_Hit] = []
        notes: list[str] = []
        for f in sorted(fields, key=lambda f: -f.priority):
            if f.kind == "ignored" or not f.text.strip():
                continue
            text, cut = self._cap(f.text.strip())
            if cut:
                notes.append(f"{f.field} cut to {MAX_TEXT_CHARS} characters")
            key = normalise_text(text) if overrides else ""
            if overrides and key in overrides:
                hit = _Hit(
                    overrides[key],
                    "override",
                    "override",
                    f.field,
                    text,
                    1.0,
                    priority=f.priority + 10,
                )
                res = _ValueResult("mapped", hit)
            else:
                res = self._value(text, context)
            if res.hit is not None and res.hit.scope == "implied" and f.kind != "cell type":
                # "periportal" in a title or source name may be a dissected region holding
                # every cell type; only an author's cell label names the zone's cells
                note = f'"{res.hit.synonym}" implies a cell type only in a cell-type field'
                res = _ValueResult("unmatched", note=note)
            if res.note and res.status != "mapped":
                notes.append(f"{f.field}: {res.note}")
            if res.hit is not None:
                hits.append(
                    replace(res.hit, field=f.field, priority=max(f.priority, res.hit.priority))
                )
            elif res.status == "ambiguous":
                conflicts.extend(
                    replace(c, field=f.field, priority=f.priority) for c in res.candidates
                )
        return self._combine(hits, conflicts, notes, context)

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
            if len(self._text_tissues) < 200_000:
                self._text_tissues[text] = hit
        return hit

    def _combine(
        self, hits: list[_Hit], conflicts: list[_Hit], notes: list[str], tissue: str | None
    ) -> CellMapping:
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
        if best is not None and ambiguous:
            group = [best, *ambiguous]
            decided = self._decide_by_tissue(sorted({h.cl_id for h in group}), tissue)
            if len(decided) == 1:
                best = next(h for h in group if h.cl_id == decided[0])
                ambiguous = []
        if best is not None and conflicts:
            # a more trusted field was ambiguous: accept only an answer it allows
            top = max(c.priority for c in conflicts)
            if top > best.priority and not any(
                onto.is_related(c.cl_id, best.cl_id) for c in conflicts if c.priority == top
            ):
                ambiguous.extend(c for c in conflicts if c.priority == top)
        if best is None or ambiguous:
            group = ([best] if best is not None else []) + ambiguous + conflicts
            if not group:
                return CellMapping(None, "; ".join(notes), "unmatched")
            detail = "; ".join(f"{h.evidence} -> {h.cl_id}" for h in group)
            return CellMapping(None, f"ambiguous: {detail}", "ambiguous")
        if self.specialise_by_tissue:
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
        evidence = best.evidence
        conf = round(best.confidence, 3)
        if conf < self.min_confidence:
            return CellMapping(
                None,
                f"withheld: confidence {conf} < {self.min_confidence} for {best.cl_id} "
                f"{onto.label(best.cl_id)}: {evidence}",
                "withheld",
            )
        match = Match(best.cl_id, onto.label(best.cl_id), evidence, conf)
        return CellMapping(match, "", "mapped")

    def explain(
        self,
        source_text: str,
        overrides: Mapping[str, str] | None = None,
        tissue: str | None = None,
    ) -> CellMapping:
        """Map one cell's ``source_text`` ("title | source name | key: value; ..."),
        saying why when it is not mapped. ``overrides`` maps normalised text to a CL id and
        is consulted first for the whole text, then for each field value."""
        text, _ = self._cap((source_text or "").strip())
        if not text:
            return CellMapping(None, "no text", "empty")
        whole = normalise_text(text) if overrides else ""
        if overrides and whole in overrides:
            cl_id = overrides[whole]
            hit = _Hit(cl_id, "override", "override", "", text, 1.0)
            return CellMapping(
                Match(cl_id, self.ontology.label(cl_id), hit.evidence, 1.0), "", "mapped"
            )
        return self.annotate(parse_source_text(text), tissue=tissue, overrides=overrides)

    def map_text(
        self, text: str, field_name: str = "cell type", tissue: str | None = None
    ) -> Match | None:
        """The term for one piece of text from one field (e.g. an author's label)."""
        kind = field_name if field_name in ("cell type", "source name", "title") else "cell type"
        return self.annotate([FieldText(field_name, text, kind)], tissue=tissue).match

    def match(self, text: str) -> list[Match]:
        """Every term whose name, synonym or table text equals ``text`` after
        normalisation, best scope first (no phrase search, no tissue)."""
        entries = sorted(
            self._lookup(normalise_text(text), None), key=lambda e: (-e.weight, e.cl_id)
        )
        return [
            Match(
                e.cl_id,
                self.ontology.label(e.cl_id),
                f'"{text}" ~ "{e.text}" ({e.scope})',
                e.weight,
            )
            for e in entries
        ]

    def map_cell(self, source_text: str, tissue: str | None = None) -> Match | None:
        """The most specific single term for a cell, or None (nothing matched, or
        ambiguous: two or more unrelated specific terms)."""
        return self.explain(source_text, tissue=tissue).match

    @property
    def n_truncated(self) -> int:
        """How many texts were cut to `MAX_TEXT_CHARS` so far."""
        return self._n_truncated


def _subsets(groups: tuple[tuple[str, ...], ...]) -> list[tuple[tuple[str, ...], ...]]:
    """All non-empty combinations of ``groups``."""
    out: list[tuple[tuple[str, ...], ...]] = [()]
    for g in groups:
        out += [(*o, g) for o in out]
    return [o for o in out if o]


def _without(words: list[str], drops: tuple[tuple[str, ...], ...]) -> tuple[list[str], str]:
    """``words`` with each word sequence of ``drops`` removed once (all must occur), and
    the words removed ("" when one does not occur)."""
    out = list(words)
    for drop in drops:
        n = len(drop)
        at = next((i for i in range(len(out) - n + 1) if tuple(out[i : i + n]) == drop), None)
        if at is None:
            return words, ""
        del out[at : at + n]
    return out, " ".join(" ".join(d) for d in drops)


def split_fields(source_text: str) -> list[str]:
    """Field values of a cell's source text ("key: " stripped, ignored keys kept)."""
    return [f.text for f in parse_source_text(source_text)]
