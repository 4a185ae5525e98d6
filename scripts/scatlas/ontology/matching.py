"""Map free text describing a cell to the most specific Cell Ontology term, with evidence.
Per field value (see `fields`), after `normalise` has made the words comparable:

1. Curated overrides (exact normalised text) and literal CL ids ("CL:0000084") win at once.
2. Phrases: every window of words is looked up among term names and synonyms (each scope
   with its own weight), the curated abbreviations, and the tissue-specific words of the
   sample's tissue; a window may also match a name with its words in another order
   ("alveolar epithelial type 2 cell" ~ "type II alveolar epithelial cell"; a hyphen
   between two words that a name holds side by side, "gamma-delta", is no break). Single-word
   abbreviations are also expanded in place, so "CD14+ Mono" reads "cd14 positive
   monocyte"; words glued together are split when the parts form a name ("memoryT" ->
   "memory T cell"), and a one-letter state prefix comes off a curated abbreviation
   ("qNSCs" ~ NSC); a list shares its head noun ("B and T lymphocytes") and a modifier
   before it ("hematopoietic stem and progenitor cells"). The longest
   windows win; a phrase inside longer text is kept with a lower confidence. Terse CL
   synonyms (3 letters or fewer: "PE", "LC") count only beside cell or marker words.
3. Context: a phrase preceded by "non"/"not"/"without", or followed by "depleted",
   "-like", "receptor", "factor", "line", "carcinoma", ... does not name the cell (the
   name after a negated first word does: "non-ciliated epithelial cell"); in
   "X with Y" / "X from Y" only X does; "unknown", "unassigned", "doublet" in a value
   make it name nothing. Of types side by side in one noun phrase, the one ending the
   value is the head ("stem cell memory T cell").
4. Hits that are ancestors of other hits are dropped (most specific terms, as scQuery).
   Several unrelated terms left: the sample's tissue decides where it can (a term whose
   name places it in another tissue is dropped); a list ("monocytes/macrophages",
   "dendritic cells and macrophages", "DN3-DN4") is a mixture and maps to the terms' lowest common
   ancestor under is_a, at any distance, when that is an informative term (a list member
   "unknown X" counts as X; a member naming no type leaves the list none); otherwise it is
   ambiguous.
5. Anatomy: "<anatomy> <cell type>" ("bladder epithelial cell", "fibroblasts of the lung")
   becomes CL's term for that type in that anatomy when CL has a clear one (`_compose`);
   a NARROW/BROAD/RELATED reading whose term CL places in another anatomy than the one
   the value names is dropped ("columnar cells of the lung": not the large intestine's
   enterocyte, whose BROAD synonym that is; `_place_filter`).
   Otherwise words beside the phrase that name a kind of its term select that kind, when
   one most general kind's name holds them and nothing unsaid ("central memory CD8 T
   cells", "CD4 TCM"; `_narrowed`).
6. A value that names no cell type but holds a qualifier that alone implies one in the
   sample's tissue (`implied_terms.tsv`: "pericentral" in the liver) maps to that term
   with a lower confidence.
7. Readings of the whole value: a slash inside a name CL holds in that order is read as
   that name, not as a list ("Granulocyte/monocyte progenitors"); a parenthesis naming a
   kind of the label's term refines it ("T cells (Treg)"); a label without its noun reads
   as "<label> cell" ("Plasma", "Descending Vasa Recta Endothelial", "Alveolar
   Epithelial Type 1") or, after a lineage marker, with the lineage's noun ("CD4+ Central
   Memory" ~ central memory CD4-positive T cell), in a cell-type field only; a cluster
   number ("CD4 TCM_2"), a trailing "type N" CL names no kind for, and a B-lineage
   light chain ("B naive kappa") are left aside; list members read with their noun
   ("Natural Killer / Natural Killer T"); a structure's name is its own epithelial cell
   ("Connecting Tubule"), found among names in its words' other forms (`word_forms.tsv`:
   "medullary" / "medulla"); a parenthesis naming a cell on the label's line of
   development refines it ("B cells (proB.CLP)", a dotted code read by its parts); a
   whole value that is a name maps outright across parentheses, slashes and dots.
8. Per field (not a curated ontology-class one), the label read with the tissue's word
   before it or "of" it when that is a name CL files apart ("satellite cells" in muscle:
   skeletal muscle satellite cell).

Across fields, the more trusted field wins (author cell-type column > other
characteristics > source name > title > tissue); a less trusted field may only refine the
answer with a descendant of it. Name or EXACT hits beat NARROW/RELATED/BROAD ones. Text
that names no cell type maps to nothing; "cell" (CL:0000000) and other upper-level terms
are never answers.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace

from scatlas.ontology.evidence import (
    _CL_ID,
    _COORD,
    _IMPLIED,
    _KIND,
    _LEVELS,
    _LINEAGE,
    _MAX_WINDOW,
    _MIXTURE,
    _NEG_BEFORE,
    _NONE_VALUES,
    _NONE_WORDS,
    _PAREN,
    _PARTIAL,
    _REORDERED,
    _STOP,
    _STRONG,
    _TISSUE_DECIDED,
    _UNKNOWN_WORDS,
    MAX_TEXT_CHARS,
    READ_WITH_NOUN,
    SCOPE_ORDER,
    TOP_K,
    WEIGHTS,
    CellMapping,
    Match,
    _Entry,
    _Hit,
    _remember,
    _Span,
    _ValueResult,
)
from scatlas.ontology.fields import FieldText, parse_source_text
from scatlas.ontology.graph import CellOntology
from scatlas.ontology.mixtures import Mixtures
from scatlas.ontology.name_words import NameWords
from scatlas.ontology.phrases import _MIN_NOUN, PhraseWindows
from scatlas.ontology.readings import ValueReadings
from scatlas.ontology.tables import (
    TableEntry,
    Tissue,
    read_abbreviations,
    read_anatomy_abbreviations,
    read_implied_terms,
    read_population_codes,
    read_tissue_terms,
    read_tissues,
    read_word_forms,
)
from scatlas.ontology.text import (
    HARD,
    HYPHEN,
    SEPARATORS,
    is_marker,
    normalise_text,
    plain_words,
    tokenise,
)
from scatlas.ontology.tissue_context import TissueContext, tissue_lines

log = logging.getLogger(__name__)
_WORDS_ONLY = re.compile(r"[A-Za-z][A-Za-z' -]*\Z")  # a label of words, no number or id
_MAX_LABEL_WORDS = 6  # a value of more words is a description, not a label to place
_LIGHT_CHAINS = ("kappa", "lambda", "Kappa", "Lambda", "IGK", "IGL", "Igk", "Igl")
_LIST_HINT = re.compile(r"[/,;&]| and | or ")  # a cheap test for a list
_DIGIT = re.compile(r"\d")
# "-cytic"/"-blastic": the adjective of a cell's name ("monocytic", "osteoblastic")
_ADJECTIVE_OF_CELL = re.compile(r"([a-z]+?)(cyt|blast)ic\b", re.IGNORECASE)
# "Main:Subtype", no space around the colon (a "key: value" pair has one after it)
_COLON_LABEL = re.compile(r"^\s*([^:\s][^:]*?):(?!\s)(?:[^:]*:)*([^:]+?)\s*$")
_FRACTION_NAME = re.compile(r"^fraction ([A-F](?:/[A-F])*) ", re.IGNORECASE)
# a negation before members joined by slashes ("non-T/NK cells", "non-Th1/Th17")
_NEGATED_SLASH = re.compile(r"\b(non|not)[-\s]+([\w+]+(?:/[\w+]+)+)", re.IGNORECASE)

# a term with this many subtypes is general: a qualifier it does not explain leaves it
_GENERAL_DESCENDANTS = 20
# words of a name that already spans a type's early cells: "early" adds nothing to them
_LINE_WORDS = frozenset({"lineage", "progenitor", "precursor", "stem", "early"})
_DEVELOPS = ("develops_from",)
# words a hyphen never joins to their neighbour
_NOT_JOINED = _LINEAGE | _NEG_BEFORE | _LEVELS | {"like"}
# words used for one another in cell-type names
_VARIANTS = {"progenitor": "precursor", "precursor": "progenitor"}
# words a name can go without and name the same cells ("erythroid lineage cell")
_OPTIONAL_WORDS = frozenset({"lineage", "mature"})


def _label_only(hit: _Hit) -> str:
    """Why a hit counts only in a cell-type field, or "". "Periportal" in a title or
    source name may be a dissected region holding every cell type; "Plasma" or "tumour"
    read with the noun "cell" is a cell only as an author's cell label."""
    if hit.scope == "implied":
        return f'"{hit.synonym}" implies a cell type only in a cell-type field'
    if any(n.startswith(READ_WITH_NOUN) for n in hit.notes):
        return f'"{hit.text}" is read with a noun only in a cell-type field'
    return ""


def _lineage_pair(words: list[str]) -> bool:
    """Whether two lineage letters stand side by side ("nk t"): in a label they are as
    often a list ("NK/T cells") as one type."""
    return any(a in _LINEAGE and b in _LINEAGE for a, b in itertools.pairwise(words))


def _names_progenitor(hit: _Hit) -> bool:
    """Whether the name a hit matched holds a progenitor word."""
    return not _VARIANTS.keys().isdisjoint(normalise_text(hit.synonym).split())


def _ends_in_progenitor(text: str) -> bool:
    """ "Megakaryocyte precursor", "oligodendrocyte progenitors" """
    words = text.split()
    return bool(words) and words[-1].lower().rstrip("s") in _VARIANTS


def _words_and_breaks(
    text: str,
    joined: frozenset[tuple[str, str]] = frozenset(),
    glued: Collection[str] = frozenset(),
    adjacent: Collection[tuple[str, str]] = frozenset(),
) -> tuple[list[str], list[bool], list[bool]]:
    """The words of a value, whether a hard separator precedes each, and whether a
    coordinating separator or word does. A hyphen between two words that some name holds
    side by side, in that order ("gamma-delta"), joins them rather than coordinates; two
    words a hyphen splits that a name writes as one word (``glued``: "folliculo-stellate",
    "pre-adipocytes") are that word, unless a name holds them side by side (``adjacent``:
    "CD8-alpha", not "CD8alpha")."""
    words: list[str] = []
    hard: list[bool] = []
    coord_before: list[bool] = []
    pending_hard = pending_coord = pending_hyphen = False
    for t in tokenise(text).items:
        if t in SEPARATORS:
            pending_coord = True
            pending_hard = pending_hard or t == HARD
            pending_hyphen = t == HYPHEN and not pending_hard
            continue
        if pending_hyphen and words and (words[-1], t) not in adjacent:
            whole = words[-1] + t
            if whole in glued:
                words[-1] = whole
                pending_hard = pending_coord = pending_hyphen = False
                continue
        if pending_hyphen and words and (words[-1], t) in joined:
            pending_coord = False
        words.append(t)
        hard.append(pending_hard)
        coord_before.append(pending_coord or t in _COORD)
        pending_hard = pending_coord = pending_hyphen = False
    return words, hard, coord_before


class _Phrase:
    """A value's words and the spans found in it; builds the hit of one term."""

    def __init__(
        self,
        words: list[str],
        hard: list[bool],
        coord: list[bool],
        shown: str,
        note: str,
        spans: list[_Span],
    ):
        self.words, self.hard, self.coord = words, hard, coord
        self.shown, self.note, self.spans = shown, note, spans
        self.content = [w for w in words if w not in _STOP]
        # a separator or coordinating word before word k
        self.breaks = [h or c for h, c in zip(hard, coord, strict=True)]
        # the best entry of each term (weight, then span length) and its span
        self.by_term: dict[str, tuple[_Entry, _Span]] = {}
        for s in spans:
            for e in s.entries:
                old = self.by_term.get(e.cl_id)
                if old is None or (e.weight, s.length) > (old[0].weight, old[1].length):
                    self.by_term[e.cl_id] = (e, s)

    def hit(self, cl_id: str, extra: tuple[str, ...] = ()) -> _Hit:
        e, s = self.by_term[cl_id]
        conf = e.weight * (_REORDERED if s.reordered else 1.0)
        notes = list(extra)
        phrase = self.words[s.start : s.end]
        if sum(w not in _STOP for w in phrase) < len(self.content):
            conf *= _PARTIAL
            notes.append(f'phrase "{" ".join(phrase)}"')
        if s.reordered:
            notes.append("words reordered")
        notes.extend(s.expanded)
        if e.implied:
            notes.append(f'"{e.implied}" implied')
        if e.variant:
            notes.append(e.variant)
        if s.shared_head:
            notes.append(f'head "{s.shared_head}" shared')
        if e.source:
            notes.append(e.source)
        if self.note:
            notes.append(self.note)
        return _Hit(cl_id, e.scope, e.text, "", self.shown, round(conf, 4), tuple(notes))


class TermMatcher(PhraseWindows, TissueContext, Mixtures, NameWords, ValueReadings):
    """Matcher of free text against one Cell Ontology plus the curated tables.

    Only current, informative CL terms are indexed (never CL:0000000 "cell" nor CL's
    upper-level terms). ``specialise_by_tissue`` (on by default: the team's decision that
    the study's tissue chooses CL's tissue-specific variant) turns a generic answer, and
    each type of a list before their common ancestor is taken, into the one descendant
    named "<answer> of <tissue>" / "<tissue> <answer>" (e.g. "endothelial cell" in lung ->
    "lung endothelial cell", "basal cell" in skin -> "basal cell of epidermis").
    ``min_confidence`` withholds answers below that
    confidence (status "withheld", the answer kept in the evidence): fewer wrong answers
    for less coverage (benchmarks/bench_ontology.py prints the trade-off); 0 keeps all.

    This class holds the lexicon (names, synonyms, table rows by normalised key) and maps
    a value and a cell; its other jobs live in mixins: phrase windows
    (:mod:`~scatlas.ontology.phrases`), tissue context (:mod:`~scatlas.ontology.tissue_context`),
    mixtures and the combination of fields (:mod:`~scatlas.ontology.mixtures`); the records
    of a match and its weights are in :mod:`~scatlas.ontology.evidence`, text normalisation
    in :mod:`~scatlas.ontology.text`.
    """

    def __init__(
        self,
        ontology: CellOntology,
        *,
        abbreviations: Iterable[TableEntry] | None = None,
        tissue_terms: Iterable[TableEntry] | None = None,
        implied_terms: Iterable[TableEntry] | None = None,
        tissues: Mapping[str, Tissue] | None = None,
        anatomy_abbreviations: Mapping[str, tuple[str, str]] | None = None,
        word_forms: Mapping[str, tuple[str, ...]] | None = None,
        population_codes: Mapping[str, tuple[str, str]] | None = None,
        specialise_by_tissue: bool = True,
        min_confidence: float = 0.0,
    ):
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], not {min_confidence}")
        self.min_confidence = min_confidence
        self.ontology = ontology
        self.tissues = dict(read_tissues() if tissues is None else tissues)
        self._tissue_lines = tissue_lines(self.tissues)
        abbreviations = read_abbreviations(ontology) if abbreviations is None else abbreviations
        if tissue_terms is None:
            tissue_terms = read_tissue_terms(ontology, self.tissues)
        self.specialise_by_tissue = specialise_by_tissue
        self._anatomy_abbreviations = dict(
            read_anatomy_abbreviations() if anatomy_abbreviations is None else anatomy_abbreviations
        )
        self._word_forms = dict(read_word_forms() if word_forms is None else word_forms)
        self._population_codes = dict(
            read_population_codes() if population_codes is None else population_codes
        )
        self._fractions = _hardy_fractions(ontology)
        self._index: dict[str, dict[tuple[str, str], _Entry]] = {}
        self._index_lexicon(abbreviations, tissue_terms)
        if implied_terms is None:
            implied_terms = read_implied_terms(ontology, self.tissues)
        # qualifiers that imply a cell type only when a value names none: not in the index
        self._implied_terms: dict[tuple[str, str], TableEntry] = {
            (row.tissue, row.key): row
            for row in implied_terms
            if ontology.is_informative(row.cl_id)
        }
        self._implied_window = max((len(k.split()) for _, k in self._implied_terms), default=0)
        self._implied_words = frozenset(w for _, k in self._implied_terms for w in k.split())
        self._composed: dict[tuple[str, str, str], str | None] = {}
        self._index_words()
        # what phrase windows do not cross, and anatomical abbreviations that are also words
        # of names (read in full, they would hide "Chandelier PV", "MF.BM")
        clash = sorted(w for w in self._anatomy_abbreviations if w in self._vocab)
        alternatives = "|".join([r"[(/.]", *(rf"\b{re.escape(w)}\b" for w in clash)])
        self._whole_hint = re.compile(alternatives, re.IGNORECASE)
        # the first words, as written, of the names it may find (a cheap test)
        self._whole_firsts = frozenset(
            _first_word(text)
            for cl_id in ontology.term_ids()
            if ontology.is_informative(cl_id)
            for text, scope in [(ontology.info(cl_id).name, "name"), *ontology.info(cl_id).synonyms]
            if scope in ("name", "EXACT") and self._whole_hint.search(text)
        )
        self._noun_ends = _noun_ends(ontology)
        self._max_window = min(_MAX_WINDOW, max((len(k.split()) for k in self._index), default=1))
        self._tissue_phrases: dict[str, str] = {}
        for t in self.tissues.values():
            self._tissue_phrases.update({p: t.name for p in t.phrases})
        for t in self.tissues.values():
            self._tissue_phrases.update({p: "" for p in t.not_phrases})
        self._tissue_window = max((len(p.split()) for p in self._tissue_phrases), default=1)
        self._tissue_firsts = frozenset(p.split()[0] for p in self._tissue_phrases if p)
        self._text_tissues: dict[str, frozenset[str]] = {}
        self._term_tissues: dict[str, frozenset[str]] = {}
        # the tissue context's caches (`TissueContext`)
        self._special_cache: dict[tuple[str, str], str | None] = {}
        self._label_words_cache: dict[str, frozenset[str]] = {}
        self._named_cache: dict[str, dict[tuple[str, frozenset[str]], list[str]]] = {}
        self._cache: dict[tuple[str, str], _ValueResult] = {}
        self._tissue_names: dict[tuple[str, str], _Entry | None] = {}
        self._tissue_bases: dict[str, dict[str, _Entry | None]] = {}
        self._label_keys: dict[str, str] = {}
        self._idle_words: dict[str, bool] = {}
        self._splits: dict[tuple[str, bool], tuple[str, ...]] = {}
        # the name-word readings' lookups, built on first use, and memos (`NameWords`)
        self._name_word_indexes: dict[bool, dict[str, set[str]]] = {}
        self._name_keys: dict[str, list[str]] = {}
        self._kinds_memo: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
        self._below_memo: dict[str, frozenset[str]] = {}
        self._marker_kinds: dict[tuple[str, frozenset[tuple[str, str]]], str | None] = {}
        self._name_marker_memo: dict[str, frozenset[tuple[str, str]]] = {}
        self._n_truncated = 0

    def _index_lexicon(
        self, abbreviations: Iterable[TableEntry], tissue_terms: Iterable[TableEntry]
    ) -> None:
        """Names and synonyms of the informative terms, then the curated tables' rows."""
        ontology = self.ontology
        for cl_id in ontology.term_ids():
            if not ontology.is_informative(cl_id):
                continue
            info = ontology.info(cl_id)
            for text, scope in [(info.name, "name"), *info.synonyms]:
                self._add(_Entry(cl_id, scope, text))
        # curated abbreviations, also those a CL synonym outweighs in the index ("HSC")
        self._abbreviation_keys: set[str] = set()
        for row in abbreviations:
            if ontology.is_informative(row.cl_id):
                self._add(_Entry(row.cl_id, "abbreviation", row.text, "", row.source))
                self._abbreviation_keys.add(normalise_text(row.text))
        for row in tissue_terms:
            if ontology.is_informative(row.cl_id):
                self._add(_Entry(row.cl_id, "tissue term", row.text, row.tissue, row.source))
        self._add_implied()
        self._add_variants()

    def _add_variants(self) -> None:
        """Keys of names and EXACT synonyms with a conventional word variant
        ("oligodendrocyte progenitor cell" ~ "oligodendrocyte precursor cell") or without
        a word that does not change what they name ("erythroid lineage cell" ~ "erythroid
        cell"), unless the variant already names something."""
        derived: dict[str, dict[tuple[str, str], _Entry]] = {}
        for key, per_term in self._index.items():
            words = key.split()
            for i, w in enumerate(words):
                other = _VARIANTS.get(w, "" if w in _OPTIONAL_WORDS else None)
                if other is None or (not other and len(words) < 3):
                    continue  # not a variant word; or the word left out leaves one word
                vwords = [*words[:i], *([other] if other else []), *words[i + 1 :]]
                vkey = " ".join(vwords)
                if vkey in self._index or _lineage_pair(vwords):
                    continue  # names something; or "nk t cell", which lists read ("NK/T")
                how = f"{other} read as {w}" if other else f'"{w}" left out'
                for slot, e in per_term.items():
                    if e.scope in ("name", "EXACT") and not e.implied:
                        derived.setdefault(vkey, {})[slot] = replace(
                            e, scope="variant", variant=how
                        )
        self._index.update(derived)

    def _index_words(self) -> None:
        """Lookups derived from the index: the tree of keys, vocabulary, bags of content
        words and the one-word abbreviations and tissue terms that expand to a name."""
        self._bags: dict[str, list[_Entry]] = {}
        self._vocab: set[str] = set()
        self._expansions: dict[str, list[_Entry]] = {}
        # the keys as a tree of words (a node's None slot holds the key ending there), and
        # the pairs of content words some bag holds: `_windows` walks forward from each
        # word and stops where no key or bag can go on
        self._trie: dict = {}
        self._bag_pairs: set[tuple[str, str]] = set()
        for key, per_term in self._index.items():
            words = key.split()
            node = self._trie
            for w in words:
                node = node.setdefault(w, {})
            node[None] = key
            self._vocab.update(words)
            # "a" in a name is a letter ("pancreatic A cell", "type A synoviocyte"): a
            # bag keeps it, so "cell of pancreatic duct" is no reordered "pancreatic A cell"
            content = sorted(set(words) - _STOP | ({"a"} & set(words)))
            if len(content) >= 2:
                self._bags.setdefault(" ".join(content), []).extend(per_term.values())
                self._bag_pairs.update(itertools.combinations(content, 2))
            if len(words) == 1:
                for e in per_term.values():
                    if e.scope in ("abbreviation", "tissue term"):
                        self._expansions.setdefault(key, []).append(e)
        self._bag_words = frozenset(w for pair in self._bag_pairs for w in pair)
        # word pairs names hold side by side: a hyphen between them joins ("gamma-delta"),
        # unless one is a lineage letter ("NK-T", "T-NK": a list as often), a marker, a
        # level, a negation or "like" (their hyphens are read by the marker and context
        # rules)
        self._adjacent = frozenset(
            pair for key in self._index for pair in itertools.pairwise(key.split())
        )
        self._side_by_side = frozenset(
            (a, b)
            for a, b in self._adjacent
            if a.isalpha() and b.isalpha() and not {a, b} & _NOT_JOINED
        )
        self._number_keys = any(all(w.isdigit() for w in k.split()) for k in self._index)
        # one-word names ("chondrocyte", "myocyte"): a combining form glued to one is read
        # apart (`_combined_noun`)
        self._cell_nouns = frozenset(
            key
            for key, per_term in self._index.items()
            if key.isalpha()
            and len(key) >= _MIN_NOUN
            and any(e.scope in ("name", "EXACT") and not e.tissue for e in per_term.values())
        )
        self._type_words = {
            key.split()[0]
            for key, per_term in self._index.items()
            if len(key.split()) <= 2
            and key.split()[-1] in ("cell", key.split()[0])
            and any(e.scope in ("name", "EXACT") for e in per_term.values())
        }
        self._names = {
            e.cl_id: tuple(normalise_text(self.ontology.label(e.cl_id)).split())
            for group in self._expansions.values()
            for e in group
        }

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

    # --- one value -----------------------------------------------------------------------

    def _value(self, text: str, tissue: str | None) -> _ValueResult:
        key = (text, tissue or "")
        hit = self._cache.get(key)
        if hit is None:
            hit = _remember(self._cache, key, self._value_uncached(text, tissue), 500_000)
        return hit

    def _value_uncached(self, text: str, tissue: str | None) -> _ValueResult:
        """Match one field value (field name and priority filled in by the caller)."""
        named = self._named_outright(text) or self._named_with_cell(text, tissue)
        if named is not None:
            return named
        if self._names_nothing(text):  # "GSM1000123", "sample 12": no word of a name
            return self._of_no_name(text, tissue)
        main, inner = _main_and_inner(text)
        result = self._phrase_value(main, text, tissue)
        if "/" in main:
            result = self._slash_joined(main, text, tissue) or result
        if result.status == "mapped" and inner:
            result = self._refined(result, inner, text, tissue)
        if result.status == "unmatched":
            for part in inner:  # "(NK cells)" after a vague description
                alt = self._phrase_value(part, text, tissue)
                if alt.status != "unmatched":
                    return alt
            result = (
                self._with_cell_noun(main, text, tissue)
                or self._with_lineage_noun(main, text, tissue)
                or result
            )
        elif result.status == "ambiguous":  # "Alveolar Epithelial Type 1": "type 1" alone
            result = self._with_cell_noun(main, text, tissue) or result
        elif result.hit and _ends_in_progenitor(main) and not _names_progenitor(result.hit):
            # "oligodendrocyte progenitor" matched as "oligodendrocyte": the label names
            # the progenitor, which CL may name as "<label> cell"
            alt = self._with_cell_noun(main, text, tissue)
            if alt is not None and alt.hit is not None and _names_progenitor(alt.hit):
                result = alt
        return self._last_readings(result, main, text, tissue, bool(inner))

    def _of_no_name(self, text: str, tissue: str | None) -> _ValueResult:
        """A value none of whose words is a word of a name, read where one of its words is
        a name's word written otherwise: "colonocytes", "Monocytic", "Mono1" (a cluster's
        number glued on); else unmatched."""
        unmatched = _ValueResult("unmatched")
        found = self._written_otherwise(text, text, tissue)
        if found is None and _DIGIT.search(text):
            found = self._without_cluster_index(unmatched, text, text, tissue)
        return found or unmatched

    def _last_readings(
        self, result: _ValueResult, main: str, shown: str, tissue: str | None, paren: bool
    ) -> _ValueResult:
        """A light chain left aside, list members read with their noun (no parenthesis),
        then a cluster number left aside; a subtype after a colon that settles a tie."""
        if result.status == "unmatched" and main.rstrip().endswith(_LIGHT_CHAINS):
            result = self._without_light_chain(main, shown, tissue) or result
        if result.status == "ambiguous" and ":" in main:
            result = self._subtype_after_colon(main, shown, tissue) or result
        elif result.hit is not None and ":" in main:
            result = self._subtype_before_main(main, shown, tissue, result) or result
        if result.status == "unmatched":
            result = self._written_otherwise(main, shown, tissue) or result
        listed = not paren and _LIST_HINT.search(main) is not None
        if listed and (result.hit is None or result.hit.scope != "mixture"):
            result = self._list_with_nouns(main, shown, tissue, result) or result
        numbered = "_" in main or (result.status == "unmatched" and _DIGIT.search(main))
        return self._without_cluster_index(result, main, shown, tissue) if numbered else result

    def _written_otherwise(self, main: str, shown: str, tissue: str | None) -> _ValueResult | None:
        """A name's word written in another form: "-cyte" as "cell", "-cytic"/"-blastic" as
        its noun (cheap tests first)."""
        found = self._cyte_as_cell(main, shown, tissue) if "cyte" in main else None
        if found is None and _ADJECTIVE_OF_CELL.search(main):
            found = self._adjective_as_noun(main, shown, tissue)
        return found

    def _cyte_as_cell(self, main: str, shown: str, tissue: str | None) -> _ValueResult | None:
        """A "-cyte" word no name holds read as its stem's cell, when names hold the stem
        ("colonocytes": colon cells, the colon's epithelial cell)."""
        words = normalise_text(main).split()
        read = [
            f"{w[: -len('ocyte')]} cell"
            if w.endswith("ocyte") and w not in self._vocab and w[: -len("ocyte")] in self._vocab
            else w
            for w in words
        ]
        return self._reread(words, read, shown, tissue, '"-cyte" read as "cell"')

    def _adjective_as_noun(self, main: str, shown: str, tissue: str | None) -> _ValueResult | None:
        """A "-cytic" or "-blastic" word no name holds read as its noun, when names hold
        that ("Monocytic", "megakaryocytic cells", "osteoblastic cells")."""
        words = normalise_text(main).split()
        read = []
        for w in words:
            found = _ADJECTIVE_OF_CELL.fullmatch(w)
            noun = found.group(1) + ("cyte" if found.group(2) == "cyt" else "blast") if found else w
            read.append(noun if found and noun in self._vocab else w)
        return self._reread(words, read, shown, tissue, '"-ic" read as its noun')

    def _reread(
        self, words: list[str], read: list[str], shown: str, tissue: str | None, how: str
    ) -> _ValueResult | None:
        """The value's answer with some of its words rewritten (``read``), when that maps;
        the evidence says ``how`` and the words read."""
        if read == words:
            return None
        alt = self._value(" ".join(read), tissue)
        if alt.status != "mapped" or alt.hit is None:
            return None
        note = f'{how}: "{" ".join(read)}"'
        return replace(alt, hit=replace(alt.hit, text=shown, notes=(*alt.hit.notes, note)))

    def _subtype_after_colon(
        self, main: str, shown: str, tissue: str | None
    ) -> _ValueResult | None:
        """ "Main:Subtype" (the Human Primary Cell Atlas' labels, "Neurons:Schwann_cell"):
        when the two name different types, the subtype, if it names a whole cell type."""
        found = _COLON_LABEL.match(main)
        if found is None:
            return None
        last = found.group(2)
        if not normalise_text(last).endswith("cell"):
            return None  # "Neutrophil:inflam", "Fibroblasts:breast": a qualifier
        alt = self._phrase_value(last, shown, tissue)
        if alt.status != "mapped" or alt.hit is None or alt.hit.scope not in _STRONG:
            return None
        if any(n.startswith('phrase "') for n in alt.hit.notes):
            return None  # a name inside it ("adipose_stem_cells"): not the subtype whole
        notes = (*alt.hit.notes, f'"{last}" after ":" names the subtype')
        return replace(alt, hit=replace(alt.hit, notes=notes))

    def _subtype_before_main(
        self, main: str, shown: str, tissue: str | None, result: _ValueResult
    ) -> _ValueResult | None:
        """ "Main:Subtype" with a subtype of qualifiers read as one phrase, every part
        after the first before it ("Tissue_stem_cells:lipoma-derived_MSC": "lipoma-derived
        MSC tissue stem cells", the mesenchymal stem cell): that reading when it names a
        kind of the main type and of the answer, or the answer is the main type's own
        term (its subtype read as nothing)."""
        found = _COLON_LABEL.match(main)
        if found is None or result.hit is None:
            return None
        first, last = found.group(1), main.split(":", 1)[1].replace(":", " ")
        if normalise_text(last).endswith("cell"):
            return None  # the subtype names a type itself (`_subtype_after_colon`)
        alt = self._phrase_value(f"{last} {first}", shown, tissue)
        if alt.hit is None or alt.hit.cl_id == result.hit.cl_id:
            return None
        head = self._phrase_value(first, shown, tissue).hit
        if head is None or not self.ontology.is_ancestor(head.cl_id, alt.hit.cl_id):
            return None  # not a kind of the main type
        if result.hit.cl_id != head.cl_id and not self.ontology.is_ancestor(
            result.hit.cl_id, alt.hit.cl_id
        ):
            return None  # the subtype was read, as another kind ("DC:monocyte-derived:mature")
        notes = (*alt.hit.notes, f'"{last}" read before "{first}"')
        return replace(alt, hit=replace(alt.hit, notes=notes))

    def _tissue_named(self, text: str, tissue: str, result: _ValueResult) -> _ValueResult | None:
        """The term the label names with the tissue's word ("<tissue> <label>", "<label> of
        <tissue>"): "satellite cells" in skeletal muscle, skeletal muscle satellite cell;
        "mucous cells" in the stomach, mucous cell of stomach (CL files it apart from its
        mucus secreting cell); never the answer found or coarser, and not for a curated
        ontology-class field, whose term is kept as named (the caller's test)."""
        hit = result.hit
        if result.status == "none" or (
            hit is None and (len(text.split()) > _MAX_LABEL_WORDS or not _WORDS_ONLY.match(text))
        ):
            return None  # names nothing; or no label: a description, an id ("BON_1_10002")
        if hit is not None and any(n.startswith('phrase "') for n in hit.notes):
            return None  # the label says more than the name found
        label = text if hit is None else hit.synonym  # the name found: fewer distinct keys
        memo = (label, tissue)
        e = self._tissue_names.get(memo, False)
        if e is False:
            e = _remember(self._tissue_names, memo, self._tissue_entry(label, tissue))
        if e is None:
            return None
        if hit is not None and (
            e.cl_id in (hit.cl_id, self._specialise(hit.cl_id, tissue))
            or self.ontology.is_ancestor(e.cl_id, hit.cl_id)
        ):
            return None  # the answer found, its tissue variant (see `_combine`), or coarser
        note = f"the tissue's word read before it ({tissue})"
        conf = round(e.weight * _TISSUE_DECIDED, 4)
        return _ValueResult("mapped", _Hit(e.cl_id, e.scope, e.text, "", text, conf, (note,)))

    def _tissue_entry(self, text: str, tissue: str) -> _Entry | None:
        """The one name or EXACT synonym that "<tissue word> <text>" or "<text> of <tissue
        word>" is, if any: the tissue's, else that of a tissue it lies within."""
        key: str | None = None
        for t in self._tissue_line(tissue):
            bases = self._tissue_bases.get(t)
            if bases is None:
                bases = self._tissue_bases[t] = self._bases_in(t)
            if not bases:
                continue
            if key is None:
                key = self._label_keys.get(text)
                if key is None:
                    key = normalise_text(_PAREN.sub(" ", text))
                    _remember(self._label_keys, text, key)
            if key in bases:
                return bases[key]
        return None

    def _bases_in(self, tissue: str) -> dict[str, _Entry | None]:
        """Name -> the one name or EXACT synonym it makes with one of the tissue's words
        before it or "of" it ("satellite cell" -> skeletal muscle satellite cell); None for
        a name that makes several."""
        t = self.tissues.get(tissue)
        if t is None:
            return {}
        found: dict[str, dict[str, _Entry]] = {}
        firsts = {p.split(" ", 1)[0] for p in t.own}
        for key, per_term in self._index.items():
            if key.split(" ", 1)[0] not in firsts and " of " not in key:
                continue  # cheap test first
            for phrase in t.own:
                if key.startswith(phrase + " "):
                    base = key[len(phrase) + 1 :]
                elif key.endswith(" of " + phrase):
                    base = key[: -len(phrase) - 4]
                else:
                    continue
                for e in per_term.values():
                    if e.scope in ("name", "EXACT") and not e.tissue and not e.implied:
                        found.setdefault(base, {})[e.cl_id] = e
        return {b: next(iter(es.values())) if len(es) == 1 else None for b, es in found.items()}

    def _named_outright(self, text: str) -> _ValueResult | None:
        """A CL id the value names, or a name it is whole across what phrases do not cross
        ("T(H)-1 cell", "L2/3 ... neuron of the primary motor cortex") or an abbreviation
        they would read in full ("Chandelier PV")."""
        named = self._named_id(text) if "CL" in text else None
        # the first word is a cheap test; then what phrases do not cross
        whole = _first_word(text) in self._whole_firsts and self._whole_hint.search(text)
        if named is None and whole:
            named = self._whole_name(text)
        return named

    def _named_with_cell(self, text: str, tissue: str | None) -> _ValueResult | None:
        """The one term whose name or EXACT synonym is the whole label with "cell" ("type I
        NK T", "pancreatic epsilon", "gamete-nursing"), before a phrase inside it ("NK",
        "epsilon", "gamete") is read; not a tissue ("Liver") or a tissue-bound word."""
        words = text.split()
        if not words or words[-1].lower().rstrip("s") not in self._noun_ends:
            return None  # a cheap test first: the value ends as such a name before "cell"
        key = normalise_text(text)
        per_term = self._index.get(key + " cell")
        if not per_term or len(per_term) != 1 or key in self._tissue_phrases:
            return None
        if key in self._index:
            return None  # the value names a term as it is ("NK": the abbreviation)
        (e,) = per_term.values()
        if e.scope not in ("name", "EXACT") or e.tissue or e.implied or e.variant:
            return None
        alt = self._phrase_value(f"{text} cells", text, tissue)
        if alt.hit is None or not (  # the name, or its tissue's variant; not a list read
            alt.hit.cl_id == e.cl_id or self.ontology.is_ancestor(e.cl_id, alt.hit.cl_id)
        ):
            return None
        notes = (*alt.hit.notes, f'{READ_WITH_NOUN}"{key} cell"')
        return replace(alt, hit=replace(alt.hit, notes=notes))

    def _whole_name(self, text: str) -> _ValueResult | None:
        """The one term whose name or EXACT synonym the whole value is, when it holds what
        phrases cannot cross (a parenthesis, a slash, a dot: "T(H)-1 cell", "MF.LN")."""
        per_term = self._index.get(normalise_text(text))
        if not per_term or len(per_term) != 1:
            return None
        (e,) = per_term.values()
        if e.scope not in ("name", "EXACT") or e.tissue or e.implied or e.variant:
            return None
        return _ValueResult("mapped", _Hit(e.cl_id, e.scope, e.text, "", text, e.weight))

    def _named_id(self, text: str) -> _ValueResult | None:
        """The term of the one current CL id a value names ("CL:0000236"), if informative."""
        ids = [f"CL:{m}" for m in _CL_ID.findall(text)]
        current = {self.ontology.resolve(i) for i in ids if i in self.ontology} - {None}
        if len(current) != 1:
            return None
        cl_id = current.pop()
        if not self.ontology.is_informative(cl_id):
            return None
        return _ValueResult("mapped", _Hit(cl_id, "id", ids[0], "", text, 1.0))

    def _names_nothing(self, text: str) -> bool:
        """True for plain text (`plain_words`) none of whose words can take part in a match:
        what `_phrase_value` would find unmatched, told without reading it in full."""
        words = plain_words(text)
        if words is None or " ".join(words) in _NONE_VALUES:
            return False
        return all(self._idle_word(w) for w in words)

    def _idle_word(self, w: str) -> bool:
        """True for a word that alone starts no phrase, table row or rewriting (a number of
        no one-number key counts as idle: with only idle words beside it, no key can match)."""
        idle = self._idle_words.get(w)
        if idle is not None:
            return idle
        if w.isdigit():
            idle = not self._number_keys and w not in self._index and w not in self._implied_words
        else:
            idle = not (
                w in self._vocab
                or w in self._implied_words
                or w in self._anatomy_abbreviations
                or w in _NONE_WORDS
                or w in _UNKNOWN_WORDS
                or (len(w) <= 6 and w.endswith("s") and w[:-1] in self._index)
                or (4 <= len(w) <= 30 and self._split_word(w, "") != [w])
            )
        return _remember(self._idle_words, w, idle)

    def _expand_anatomy(
        self, words: list[str], hard: list[bool], coord: list[bool]
    ) -> tuple[list[str], list[bool], list[bool], str]:
        """Anatomical abbreviations read in full (`anatomy_abbreviations.tsv`: "ife" ->
        "interfollicular epidermis"), unless the word is itself a name or table key."""
        if self._anatomy_abbreviations.keys().isdisjoint(words):
            return words, hard, coord, ""
        out_w: list[str] = []
        out_h: list[bool] = []
        out_c: list[bool] = []
        read: list[str] = []
        for w, h, c in zip(words, hard, coord, strict=True):
            found = self._anatomy_abbreviations.get(w)
            parts = found[0].split() if found and w not in self._index else [w]
            if len(parts) > 1 or parts[0] != w:
                read.append(f'{w} read as "{found[0]}" ({found[1]})')
            out_w.extend(parts)
            out_h.extend([h] + [False] * (len(parts) - 1))
            out_c.extend([c] + [False] * (len(parts) - 1))
        return out_w, out_h, out_c, "; ".join(read)

    def _phrase_value(self, text: str, shown: str, tissue: str | None) -> _ValueResult:
        words, hard, coord_before = _words_and_breaks(
            text, self._side_by_side, self._vocab, self._adjacent
        )
        if not words:
            return _ValueResult("unmatched")
        if " ".join(words) in _NONE_VALUES or _NONE_WORDS & set(words):
            return _ValueResult("none", note=f'"{shown}" names no known cell type')
        if _UNKNOWN_WORDS & set(words):
            kept = _without_unknown(words, hard, coord_before)
            if kept is None:
                return _ValueResult("none", note=f'"{shown}" names no known cell type')
            words, hard, coord_before = kept
        words, hard, coord_before, read = self._expand_anatomy(words, hard, coord_before)
        words, hard, coord_before = self._split_glued(words, hard, coord_before)
        if self._vocab.isdisjoint(words) and self._implied_words.isdisjoint(words):
            return _ValueResult("unmatched")  # no word of any name: "GSM1000123", "donor 7"
        spans = self._distribute_heads(
            self._spans(words, hard, coord_before, tissue), words, coord_before, tissue
        )
        spans, note = self._context_filter(spans, words, hard)
        spans = self._place_filter(spans, words, hard, coord_before)
        note = "; ".join(n for n in (read, note) if n)
        if not spans:
            implied = self._implied_value(words, shown, tissue, note)
            named = implied or self._name_words_value(words, shown, note, tissue)
            named = named or self._name_words_head(words, shown, note, tissue)
            named = named or self._name_words_skipping(words, shown, note, tissue)
            return named or _ValueResult("unmatched", note=note)
        before = [(s, s.entries) for s in spans]
        if any(e.scope in _STRONG for s in spans for e in s.entries):
            # weak synonyms give way to names, except as members of a list ("mast cells
            # and unknown immune cells": "immune cell" is RELATED, yet a member)
            strong = [s for s in spans if any(e.scope in _STRONG for e in s.entries)]
            for s in spans:
                if s in strong or not _coordinated(s, strong, coord_before):
                    s.entries = [e for e in s.entries if e.scope in _STRONG]
            spans = [s for s in spans if s.entries]
        else:
            for s in spans:  # synonym scopes ranked: NARROW > BROAD > RELATED
                best = min(_scope_rank(e.scope) for e in s.entries)
                s.entries = [e for e in s.entries if _scope_rank(e.scope) == best]
        phrase = _Phrase(words, hard, coord_before, shown, note, spans)
        result = self._decide(phrase, tissue)
        if any(len(s.entries) != len(entries) for s, entries in before):
            # the terms of weaker scopes, filtered out above, stay candidates
            full = [replace(s, entries=entries) for s, entries in before]
            others = self._others(_Phrase(words, hard, coord_before, shown, note, full))
            result = replace(result, candidates=[*result.candidates, *others][: 2 * TOP_K])
        return self._other_sense(result, words, tissue) if tissue is None else result

    def _decide(self, phrase: _Phrase, tissue: str | None) -> _ValueResult:
        """One term (by specificity, or the tissue), a mixture's common ancestor, or
        ambiguous."""
        by_term = phrase.by_term

        def composed(h: _Hit) -> _Hit:
            return self._compose(
                h, by_term[h.cl_id][1], phrase.spans, phrase.words, phrase.hard, phrase.coord
            )

        specific = sorted(self.ontology.most_specific(by_term))
        # a list member that is an ancestor of another member widens the list's class
        # ("mast cells and other immune cells"): it stays, for the common ancestor. Only
        # for "and"/"or"/"," lists: "leukocyte; B cells" is a refinement, not a list
        if len(by_term) > len(specific):
            spans = [by_term[c][1] for c in specific]
            soft = [c and not h for c, h in zip(phrase.coord, phrase.hard, strict=True)]
            specific += sorted(
                t
                for t in by_term
                if t not in specific
                and not any(_overlap(by_term[t][1], s) for s in spans)
                and _coordinated(by_term[t][1], spans, soft)
            )
        if len(specific) > 1:
            settled, specific = self._settle(phrase, specific, tissue)
            if settled is not None:
                return _ValueResult("mapped", composed(settled))
        if len(specific) == 1:
            return self._decide_one(phrase, specific[0], composed(phrase.hit(specific[0])), tissue)
        head = _noun_phrase_head(phrase, specific)
        if head is not None:  # "stem cell memory CD4-positive T cell": a T cell
            return _ValueResult("mapped", composed(phrase.hit(head, ("the phrase's head",))))
        hits = [phrase.hit(c) for c in specific]
        members = [self._variant(c, tissue) for c in specific]
        mixture = self._mixture(members, [by_term[c][1] for c in specific], phrase.coord)
        if mixture is not None:
            conf = min(h.confidence for h in hits) * _MIXTURE
            labels = ", ".join(self.ontology.label(c) for c in specific)
            hit = _Hit(
                mixture, "mixture", f"common ancestor of {labels}", "", phrase.shown, round(conf, 4)
            )
            return _ValueResult("mapped", self._narrowed_list(hit, specific, phrase), hits)
        return _ValueResult("ambiguous", None, hits, phrase.note)

    def _decide_one(
        self, phrase: _Phrase, term: str, hit: _Hit, tissue: str | None
    ) -> _ValueResult:
        """The one most specific term's hit (composed with its anatomy), read with the
        words before it: a type word naming a kind CL files elsewhere, words naming a kind
        of it (`_narrowed`), "early"."""
        qualifier = self._unexplained_qualifier(hit, phrase)
        kind = self._kind_named_by(qualifier, hit) if qualifier else None
        if kind is not None:  # "Kupffer macrophages": CL's Kupffer cell
            return _ValueResult("mapped", kind, [hit, *self._others(phrase)])
        if qualifier:
            named = self._name_words_value(phrase.words, phrase.shown, phrase.note, tissue)
            if named is not None:  # "Papillary Tip Epithelial": CL's papillary tips cell
                return replace(named, candidates=[hit, *self._others(phrase)])
            note = (
                f'"{qualifier}" qualifies the general term {self.ontology.label(hit.cl_id)}'
                " in a way CL does not name"
            )
            return _ValueResult("unmatched", None, [hit, *self._others(phrase)], note)
        if hit.cl_id == term:  # not composed with an anatomy
            hit = self._narrowed(hit, phrase.by_term[term][1], phrase.words, phrase.breaks)
        early = self._early_stage(hit, phrase)
        if early is not hit:  # "Early MK": over the megakaryocyte and its progenitor
            return _ValueResult("mapped", early, [hit, *self._others(phrase)])
        return _ValueResult("mapped", hit, self._others(phrase))

    def _settle(
        self, phrase: _Phrase, terms: list[str], tissue: str | None
    ) -> tuple[_Hit | None, list[str]]:
        """Competing terms settled by the tissue, else by CL's naming (`_one_name`): the
        hit, or None and the terms the tissue leaves."""
        decided = self._decide_by_tissue(terms, tissue)
        if len(decided) == 1:
            h = phrase.hit(decided[0], (f"tissue {tissue} decides",))
            return replace(h, confidence=round(h.confidence * _TISSUE_DECIDED, 4)), decided
        named = self._one_name(phrase, decided)
        return (phrase.hit(named) if named is not None else None), decided

    def _one_name(self, phrase: _Phrase, terms: list[str]) -> str | None:
        """Of terms the same words matched, the one they are the name of (not an EXACT
        synonym of another: "subcapsular thymic epithelial cell"), or whose name is the
        value as written ("Bm2 B cells", not "Bm2' B cell"); None otherwise."""
        if len({(phrase.by_term[t][1].start, phrase.by_term[t][1].end) for t in terms}) != 1:
            return None
        names = [t for t in terms if phrase.by_term[t][0].scope == "name"]
        if len(names) > 1:
            shown = " ".join(phrase.shown.lower().split())
            names = [
                t
                for t in names
                if self.ontology.label(t).lower() in (shown, shown.removesuffix("s"))
            ]
        return names[0] if len(names) == 1 else None

    def _narrowed_list(self, hit: _Hit, members: list[str], phrase: _Phrase) -> _Hit:
        """A list's common ancestor narrowed by words before or after the whole list ("CD4+
        naive/memory T cells": CD4-positive, alpha-beta T cell), when the list holds no
        words of its own besides its members (in "CD8+ Th2 cells and Ly6C+ monocytes" each
        member has its markers, so has "CD4+ T cells and CD8+CD25+ T cells")."""
        spans = [phrase.by_term[c][1] for c in members]
        start, end = min(x.start for x in spans), max(x.end for x in spans)
        inside = {k for x in spans for k in range(x.start, x.end)}
        words = phrase.words
        if any(k not in inside and words[k] not in _COORD for k in range(start, end)):
            return hit
        if any(is_marker(words[k]) for k in inside):
            return hit
        return self._narrowed(hit, _Span(start, end, []), phrase.words, phrase.breaks)

    def _unexplained_qualifier(self, hit: _Hit, phrase: _Phrase) -> str:
        """The word before the matched phrase when it names another cell type
        ("trophoblast" progenitor cells) and the term matched is a general one
        (`_GENERAL_DESCENDANTS` or more subtypes): the label then names a kind CL files
        elsewhere, and the general term would be off its lineage. "" when there is none.
        (An anatomy word is not such a qualifier: "bladder epithelial cell" is an
        epithelial cell, of the bladder.)"""
        if hit.cl_id not in phrase.by_term:
            return ""  # composed with its anatomy
        _, span = phrase.by_term[hit.cl_id]
        if span.start == 0:
            return ""
        at = [k for k in range(span.start) if phrase.words[k] not in _STOP]
        if not at or any(
            phrase.coord[k] or phrase.hard[k] for k in range(at[-1] + 1, span.start + 1)
        ):
            return ""  # nothing before it, or a list ("A and progenitor cells")
        word = phrase.words[at[-1]]
        if at[-1] > 0 and phrase.words[at[-1] - 1] in _NEG_BEFORE:
            return ""  # negated: what the cell is not ("non-ciliated epithelial cell")
        if word.endswith(("ing", "ed")):
            return ""  # a participle says a state of the cell ("circulating monocytes")
        names_type = word in self._type_words and not is_marker(word)
        if not names_type or word in self._tissue_phrases:
            return ""
        return word if len(self.ontology.descendants(hit.cl_id)) >= _GENERAL_DESCENDANTS else ""

    def _early_stage(self, hit: _Hit, phrase: _Phrase) -> _Hit:
        """ "early X" where the phrase matched names X without "early": early cells of a
        type may not be that type yet ("Early MK" are megakaryocyte progenitors, which CL
        does not file under megakaryocyte). Where CL says what X develops from, the hit
        becomes the one lowest informative term over X and those ("Early MK": myeloid
        cell). X stays otherwise ("early spermatid" is a spermatid; CL says nothing of
        what a B cell develops from, so "Early B cells" stay B cells), and when its name
        spans its line already ("erythroid lineage cell") or names a stage."""
        span = phrase.by_term[hit.cl_id][1] if hit.cl_id in phrase.by_term else None
        if span is None or span.start == 0 or phrase.words[span.start - 1] != "early":
            return hit
        if phrase.hard[span.start] or phrase.coord[span.start]:
            return hit  # "early, B cells": the word is not said of the type
        onto = self.ontology
        if _LINE_WORDS.intersection(normalise_text(onto.label(hit.cl_id)).split()):
            return hit
        sources = onto.parents(hit.cl_id, _DEVELOPS) if _DEVELOPS[0] in onto.relations else ()
        over = onto.lowest_common_ancestors([hit.cl_id, *sources], _KIND) if sources else ()
        over = {t for t in over if onto.is_informative(t)}
        if len(over) != 1:
            return hit
        top = over.pop()
        note = f'"early" {onto.label(hit.cl_id)}: may precede it, so {onto.label(top)}'
        return replace(hit, cl_id=top, notes=(*hit.notes, note))

    def _kind_named_by(self, qualifier: str, hit: _Hit) -> _Hit | None:
        """The one kind of the hit's term named "<qualifier> cell" (a name or EXACT
        synonym), or None."""
        per_term = self._index.get(f"{qualifier} cell") or {}
        kinds = {
            e.cl_id
            for e in per_term.values()
            if e.scope in ("name", "EXACT")
            and not e.tissue
            and self.ontology.is_ancestor(hit.cl_id, e.cl_id, _KIND)
        }
        if len(kinds) != 1:
            return None
        cl_id = kinds.pop()
        note = f'"{qualifier} cell" names a kind of {self.ontology.label(hit.cl_id)}'
        return replace(hit, cl_id=cl_id, notes=(*hit.notes, note))

    def _variant(self, cl_id: str, tissue: str | None) -> str:
        """The tissue's variant of a type when `specialise_by_tissue` is on."""
        special = self._specialise(cl_id, tissue) if self.specialise_by_tissue else None
        return special or cl_id

    def _others(self, phrase: _Phrase) -> list[_Hit]:
        """Every term the value's phrases matched, best first: the runners-up of a
        mapping, kept as candidates."""
        if len(phrase.by_term) == 1:
            return []  # the answer itself: nothing else was considered
        best = sorted(
            phrase.by_term.items(), key=lambda kv: (-kv[1][0].weight, -kv[1][1].length, kv[0])
        )[:TOP_K]
        hits = [phrase.hit(c) for c, _ in best]
        return sorted(hits, key=lambda h: (-h.confidence, h.cl_id))

    def _other_sense(
        self, result: _ValueResult, words: list[str], tissue: str | None
    ) -> _ValueResult:
        """With no tissue known, a word that names different cell types in different
        tissues ("alpha cells": pancreatic A cells, or retinal ganglion cells A) is
        ambiguous: a term placed in one tissue is not the answer when a tissue-specific
        table row gives the word another tissue's sense."""
        hit = result.hit
        if result.status != "mapped" or hit is None:
            return result
        placed = self.term_tissues(hit.cl_id)
        if not placed or self._anatomy_spans(words):
            return result  # unplaced, or the text names its tissue ("hepatic stellate")
        senses = [
            e
            for key in {*words, *(" ".join(p) for p in zip(words, words[1:], strict=False))}
            for e in (self._index.get(key) or {}).values()
            if e.tissue and e.tissue not in placed and e.cl_id != hit.cl_id
        ]
        if not senses:
            return result
        others = [
            _Hit(e.cl_id, e.scope, e.text, "", hit.text, WEIGHTS[e.scope], (f"in {e.tissue}",))
            for e in senses
        ]
        note = f"no tissue given, and the words have a sense in {senses[0].tissue}"
        return _ValueResult("ambiguous", None, [hit, *others], note)

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
        considered: list[_Hit] = []
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
                if self.specialise_by_tissue and context and f.kind == "cell type":
                    res = self._tissue_named(text, context, res) or res
            if res.hit is not None and f.kind != "cell type" and _label_only(res.hit):
                res = _ValueResult("unmatched", note=_label_only(res.hit))
            if res.note and res.status != "mapped":
                notes.append(f"{f.field}: {res.note}")
            considered.extend(([res.hit] if res.hit else []) + res.candidates)
            h = res.hit
            if h is not None:  # the field's hit (built directly: `replace` is slow here)
                priority = max(f.priority, h.priority)
                chosen = f.kind == "ontology term"
                hits.append(
                    _Hit(
                        cl_id=h.cl_id,
                        scope=h.scope,
                        synonym=h.synonym,
                        field=f.field,
                        text=h.text,
                        confidence=h.confidence,
                        notes=h.notes,
                        priority=priority,
                        chosen=chosen,
                    )
                )
            elif res.status == "ambiguous":
                conflicts.extend(
                    replace(c, field=f.field, priority=f.priority) for c in res.candidates
                )
        mapping = self._combine(hits, conflicts, notes, context)
        top = self._top_candidates(mapping, considered)
        return CellMapping(
            match=mapping.match, evidence=mapping.evidence, status=mapping.status, candidates=top
        )

    def _top_candidates(self, mapping: CellMapping, considered: list[_Hit]) -> tuple[Match, ...]:
        """The answer first, then the best other terms considered (`TOP_K` in all)."""
        out: dict[str, Match] = {}
        if mapping.match is not None:
            out[mapping.match.cl_id] = mapping.match
        for h in sorted(considered, key=lambda h: (-h.confidence, h.cl_id)):
            if len(out) >= TOP_K:
                break
            if h.cl_id not in out:
                conf = round(h.confidence, 3)
                out[h.cl_id] = Match(h.cl_id, self.ontology.label(h.cl_id), h.evidence, conf)
        return tuple(out.values())

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
        known = ("cell type", "ontology term", "source name", "title")
        kind = field_name if field_name in known else "cell type"
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


def _main_and_inner(text: str) -> tuple[str, list[str]]:
    """The value without its parentheses, a negation before slashed members made each
    member's ("non-T/NK": neither T nor NK); and what the parentheses hold."""
    main, inner = text, []
    if "(" in text:
        main = _PAREN.sub(" ", text)
        inner = [p for p in _PAREN.findall(text) if p.strip()]
    if "/" in main and _NEGATED_SLASH.search(main):
        main = _NEGATED_SLASH.sub(_negate_each, main)
    return main, inner


def _negate_each(found: re.Match[str]) -> str:
    """ "non-T/NK" -> "non-T/non-NK": a negation before a slashed list is each member's."""
    neg = found.group(1)
    return "/".join(f"{neg}-{m}" for m in found.group(2).split("/"))


def _hardy_fractions(ontology: CellOntology) -> dict[str, str]:
    """Hardy's B-cell fractions as CL names them ("fraction B/C precursor B cell"):
    their letters ("bc") -> the term, for population codes ("proB.FrBC")."""
    out = {}
    for cl_id in ontology.term_ids():
        found = _FRACTION_NAME.match(ontology.label(cl_id))
        if found and ontology.is_informative(cl_id):
            out[found.group(1).replace("/", "").lower()] = cl_id
    return out


def _noun_ends(ontology: CellOntology) -> frozenset[str]:
    """The last words before " cell", as written, lower-cased, less a plural "s", of the
    informative names and EXACT synonyms ending so ("T-helper 1 cell": "1")."""
    ends = set()
    for cl_id in ontology.term_ids():
        if ontology.is_informative(cl_id):
            info = ontology.info(cl_id)
            for text, scope in [(info.name, "name"), *info.synonyms]:
                words = text.split()
                if scope in ("name", "EXACT") and len(words) > 1 and words[-1] == "cell":
                    ends.add(words[-2].lower().rstrip("s"))
    return frozenset(ends)


def _first_word(text: str) -> str:
    """The first word of a text as written, lower-cased ("" for none)."""
    parts = text.split(None, 1)
    return parts[0].lower() if parts else ""


def _noun_phrase_head(phrase: _Phrase, terms: list[str]) -> str | None:
    """The term whose phrase ends the value when every other ends in "cell" and modifies
    it, words between and no list mark or separator ("stem cell memory T cell", "mast
    cell activating NK cell"); None otherwise ("T cell NK cell" side by side is no
    phrase with a head)."""
    spans = sorted(((phrase.by_term[c][1], c) for c in terms), key=lambda x: x[0].start)
    last, head = spans[-1]
    if last.end != len(phrase.words) or any(s is last for s, _ in spans[:-1]):
        return None
    for s, _ in spans[:-1]:
        if s.end >= last.start or phrase.words[s.end - 1] != "cell":
            return None
        if any(phrase.breaks[k] for k in range(s.end, last.start + 1)):
            return None
    return head


def _overlap(a: _Span, b: _Span) -> bool:
    return a.start < b.end and b.start < a.end


def _coordinated(span: _Span, others: list[_Span], coord: list[bool]) -> bool:
    """True when a coordinator ("and", ",", "/") stands between ``span`` and the nearest
    of ``others`` before or after it: the two are members of one list."""
    before = [o for o in others if o.end <= span.start]
    after = [o for o in others if o.start >= span.end]
    gaps = []
    if before:
        gaps.append((max(o.end for o in before), span.start))
    if after:
        gaps.append((span.end, min(o.start for o in after)))
    return any(any(coord[k] for k in range(lo, min(hi + 1, len(coord)))) for lo, hi in gaps)


def _scope_rank(scope: str) -> int:
    return SCOPE_ORDER.index(scope) if scope in SCOPE_ORDER else len(SCOPE_ORDER)


def _without_unknown(
    words: list[str], hard: list[bool], coord: list[bool]
) -> tuple[list[str], list[bool], list[bool]] | None:
    """The value without its "unknown"-like words, or None when a list item is nothing
    but them ("unknown cells": the item names no type, so neither does the list)."""
    items: list[list[int]] = []
    for i in range(len(words)):
        if i == 0 or coord[i] or hard[i]:
            items.append([])
        items[-1].append(i)
    out_w: list[str] = []
    out_h: list[bool] = []
    out_c: list[bool] = []
    for item in items:
        content = [words[i] for i in item if words[i] not in _STOP and words[i] != "cell"]
        if content and all(w in _UNKNOWN_WORDS for w in content):
            return None
        kept = [i for i in item if words[i] not in _UNKNOWN_WORDS]
        for k, i in enumerate(kept):  # the item's first word keeps the item's break
            out_w.append(words[i])
            out_h.append(hard[item[0]] if k == 0 else hard[i])
            out_c.append(coord[item[0]] if k == 0 else coord[i])
    return out_w, out_h, out_c


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
