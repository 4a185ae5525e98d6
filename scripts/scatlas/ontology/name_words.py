"""Names that hold a label's words. A label that is no name or synonym but whose words all
lie inside names of one branch ("Distal tubule cells" inside "epithelial cell of distal
tubule" and its subtypes; "Loop of Henle cells"): the term of that branch whose name holds
them, when one such term is an ancestor of all the others (tried only when nothing else
matched), if need be with one or two words left aside that lie in no name with the others
("OFF midget ganglion cell": OFF retinal ganglion cell). And words beside a matched phrase
that name a kind of its term ("central memory" CD8 T cells): that kind, when one is the
most general that names them."""

from __future__ import annotations

import itertools
from dataclasses import replace

from scatlas.ontology.evidence import (
    _IMPLIED,
    _KIND,
    _LEVELS,
    _NARROWED,
    _NEG_BEFORE,
    _STOP,
    WEIGHTS,
    _Hit,
    _remember,
    _Span,
    _ValueResult,
)
from scatlas.ontology.text import is_marker, normalise_text

_MAX_WORDS = 4  # longer labels are descriptions, not names with words left out
# words a kind's name may add to its markers and the term's name when markers choose it
# ("orthochromatic erythroblast" for erythroid cells): not a far subtype ("motile cell")
_MARKER_KIND_ADDS = 2
_MARKER_KINDS_BELOW = 60  # a term with more kinds is a class markers alone do not narrow
_NEURONS = frozenset({"neuron", "interneuron"})
_HEADS = frozenset({"cell", *_NEURONS})
_STAGES = frozenset({"progenitor", "precursor", "stem"})  # a name-words answer must say them
# words of a cell's stage, never left aside: "early" or "pre-" cells may not be the type yet
_STAGE_WORDS = _STAGES | {"pre", "early", "late", "immature", "mature", "terminal", "nascent"}
# words CL's names hold that authors leave unsaid: T-cell naming (`_IMPLIED`) and the
# level of a marker named bare ("CD4 T cells": CD4-positive)
_UNSAID = frozenset({w for group in _IMPLIED for w in group} | {"positive"})
# the class a structure's own cells belong to: "connecting tubule" cells are its epithelial
# cells, which CL names "kidney connecting tubule epithelial cell"
_GENERIC = frozenset({"epithelial"})
_MAX_SKIPPED = 2  # words of a label a reading by name words may leave aside
_MAX_ADDED = 0  # words a narrowed term's name may hold that the text does not
# words in a value that stop narrowing: what they say of a kind is not its name
_NOT_NARROWING = _NEG_BEFORE | {"like", "other", "unknown", "mixed"}


class NameWords:
    """Methods of :class:`scatlas.ontology.matching.TermMatcher` (its state: see there)."""

    def _name_word_index(self, cell_heads: bool = True) -> dict[str, set[str]]:
        """word -> terms whose name or EXACT synonym holds it (with ``cell_heads``, only
        names ending in a cell noun, `_HEADS`, and all names of a term whose name does: "L6
        CT" of the L6 corticothalamic-projecting glutamatergic cortical neuron)."""
        index = self._name_word_indexes.get(cell_heads)
        if index is None:
            index = {}
            for cl_id, keys in self._names_by_term().items():
                headed: bool | None = None  # whether the term's name is (told when needed)
                for key in keys:
                    words = key.split()
                    if cell_heads and not _headed(key) and headed is None:
                        headed = _headed(normalise_text(self.ontology.label(cl_id)))
                    if cell_heads and not headed and not _headed(key):
                        before = key.split(" of ")[0]  # "foveolar cell of stomach"
                        if before == key or not _headed(before):
                            continue
                        words = before.split()  # the cell's words, not its place's
                    for w in set(words) - _STOP:
                        index.setdefault(w, set()).add(cl_id)
            self._name_word_indexes[cell_heads] = index
        return index

    def _names_by_term(self) -> dict[str, list[str]]:
        """term -> the keys of its names and EXACT synonyms, as the index holds them."""
        if not self._name_keys:
            for key, per_term in self._index.items():
                for e in per_term.values():
                    if e.scope in ("name", "EXACT") and not e.tissue and not e.implied:
                        self._name_keys.setdefault(e.cl_id, []).append(key)
        return self._name_keys

    def _words_added(self, cl_id: str, beside: list[str], said: set[str]) -> int:
        """The fewest content words beyond ``said`` in a name of the term that holds the
        words ``beside``."""
        counts = [
            len(held - said - _STOP)
            for k in self._names_by_term()[cl_id]
            for held in [set(k.split())]
            if held.issuperset(beside)
        ]
        return min(counts, default=_MAX_ADDED + 1)  # no one name holds them all

    def _narrowed(self, hit: _Hit, span: _Span, words: list[str], breaks: list[bool]) -> _Hit:
        """The kind of the hit's term that the words beside its phrase name, within the
        same list item ("central memory" CD8 T cells: central memory CD8-positive,
        alpha-beta T cell; "CD4" TCM: CD4-positive, alpha-beta memory T cell): the one
        most general is_a descendant with a name or EXACT synonym that holds every such
        word and nothing else the value, the hit's term or CL's naming (`_UNSAID`) does
        not say; among several, the one whose name adds the fewest. The hit unchanged when
        a word is unknown to names, a negation or "like" is in the value, or no single
        kind is left. ``breaks[k]``: a separator or coordinating word before word k."""
        beside = _beside(span, words, breaks)
        if not beside or set(beside) <= _LEVELS or not _NOT_NARROWING.isdisjoint(words):
            return hit  # nothing beside but levels; or a negation, "like", "other" anywhere
        if len(_marker_pairs(beside)) * 2 == len(beside) and hit.scope != "mixture":
            by_markers = self._kind_by_markers(hit, _marker_pairs(words))
            if by_markers is not None:  # only markers with levels beside
                return by_markers
        index = self._name_word_index(cell_heads=False)
        if any(w not in index or len(w) < 2 or w.isdigit() for w in beside):
            return hit  # a word no name holds ("PD1+", "cluster 3"): not a kind CL names
        tops = self._kinds_named(hit.cl_id, tuple(beside))
        if not tops:
            return hit
        # siblings: the one whose name adds the fewest words to the text; a name that adds
        # any claims what the text does not say ("CD16+ NK cells" is not said to be CL's
        # "CD16-positive, CD56-dim natural killer cell, human")
        onto = self.ontology
        said = {*words, *_UNSAID, *normalise_text(onto.label(hit.cl_id)).split()}
        added = {t: self._words_added(t, beside, said) for t in tops}
        tops = [t for t in tops if added[t] == min(added.values()) <= _MAX_ADDED]
        if len(tops) != 1:
            return hit
        note = f'"{" ".join(beside)}" names a kind of {onto.label(hit.cl_id)}'
        return replace(
            hit,
            cl_id=tops[0],
            confidence=round(hit.confidence * _NARROWED, 4),
            notes=(*hit.notes, note),
        )

    def _kinds_named(self, cl_id: str, beside: tuple[str, ...]) -> tuple[str, ...]:
        """The most general is_a descendants of a term that have a name holding every word
        of ``beside`` (remembered per term and words)."""
        found = self._kinds_memo.get((cl_id, beside))
        if found is None:
            index = self._name_word_index(cell_heads=False)
            kinds = set.intersection(*(index[w] for w in beside)) & self._kinds_below(cl_id)
            lower = set().union(*(self._kinds_below(t) for t in kinds)) if len(kinds) > 1 else ()
            found = tuple(sorted(kinds.difference(lower)))
            _remember(self._kinds_memo, (cl_id, beside), found)
        return found

    def _kind_by_markers(self, hit: _Hit, said: frozenset[tuple[str, str]]) -> _Hit | None:
        """The kind of the hit's term whose name's markers the label says, each with its
        level ("Erythroid_CD34- CD71+ GlyA-": CD34-negative, GlyA-negative
        proerythroblast), the one naming the most of them; none that says another level,
        names no marker beyond the term's own or adds more than two other words."""
        memo = (hit.cl_id, said)
        found = self._marker_kinds.get(memo, False)
        if found is False and len(self._kinds_below(hit.cl_id)) > _MARKER_KINDS_BELOW:
            found = None  # a broad class ("T cell", "leukocyte"): markers alone do not choose
        if found is False:
            sizes = {
                d: self._markers_said(hit.cl_id, d, said) for d in self._kinds_below(hit.cl_id)
            }
            top = max(sizes.values(), default=0)
            best = [d for d, n in sizes.items() if n == top] if top else []
            found = _remember(self._marker_kinds, memo, best[0] if len(best) == 1 else None)
        if found is None:
            return None
        note = f"its markers name a kind of {self.ontology.label(hit.cl_id)}"
        conf = round(hit.confidence * _NARROWED, 4)
        return replace(hit, cl_id=found, confidence=conf, notes=(*hit.notes, note))

    def _markers_said(self, cl_id: str, kind: str, said: frozenset[tuple[str, str]]) -> int:
        """How many markers of a kind's name the label says (0 when it says none beyond
        the term's own, one it does not say, or the name adds other words)."""
        named = self._name_markers(kind)
        if not named - self._name_markers(cl_id) or not named <= said:
            return 0
        if not self.ontology.is_informative(kind):
            return 0
        known = {*self._label_words(cl_id), *_UNSAID, *_STOP, *(w for p in named for w in p)}
        added = self._label_words(kind) - known
        return len(named) if len(added) <= _MARKER_KIND_ADDS else 0

    def _name_markers(self, cl_id: str) -> frozenset[tuple[str, str]]:
        """(marker, level) pairs a term's name holds ("cd34 negative", "glya negative")."""
        found = self._name_marker_memo.get(cl_id)
        if found is None:
            words = normalise_text(self.ontology.label(cl_id)).split()
            found = _remember(self._name_marker_memo, cl_id, _marker_pairs(words))
        return found

    def _kinds_below(self, cl_id: str) -> frozenset[str]:
        """The term's is_a descendants (remembered)."""
        found = self._below_memo.get(cl_id)
        if found is None:
            below = frozenset(self.ontology.descendants(cl_id, _KIND))
            found = _remember(self._below_memo, cl_id, below)
        return found

    def _general_names(self) -> frozenset[str]:
        """Names and synonyms of the terms too general to be answers ("animal cell")."""
        names = getattr(self, "_general_keys", None)
        if names is None:
            onto = self.ontology
            names = frozenset(
                normalise_text(text)
                for t in onto.term_ids()
                if not onto.is_informative(t)
                for text in [onto.label(t), *(s for s, _ in onto.info(t).synonyms)]
            )
            self._general_keys = names
        return names

    def _name_words_value(
        self, words: list[str], shown: str, note: str = "", tissue: str | None = None
    ) -> _ValueResult | None:
        """The value's content words found together only in names of one branch: the
        branch's top term, named with those words; None otherwise. A word may be found in
        its other form (`word_forms.tsv`: "medullary" in "inner medulla"), "epithelial"
        may be left unsaid by the name ("Papillary Tip Epithelial": papillary tips cell),
        and of several tops the one whose name adds only the tissue and "epithelial" is
        the structure's own cell ("Connecting Tubule": its epithelial cell, not its
        principal cell)."""
        if not words or words[-1] != "cell" or " ".join(words) in self._general_names():
            return None
        if not _NOT_NARROWING.isdisjoint(words):
            return None  # "non-B lymphocyte", "neuron-like cells": the names are not said
        if len(words) > 1 and words[-2] == "derived":
            return None  # "Monocyte-derived cells": an origin, not the one type it names
        content = sorted(set(words) - _STOP - {"cell"})
        if not content or len(content) > _MAX_WORDS:
            return None
        terms = self._terms_holding(content)
        if not terms and _GENERIC.intersection(content) and len(content) > 1:
            content = [w for w in content if w not in _GENERIC]
            terms = self._terms_holding(content)
        if not terms:
            return None
        onto = self.ontology
        tops = [t for t in terms if all(t == o or onto.is_ancestor(t, o, _KIND) for o in terms)]
        if not tops:
            tops = self._plainest(terms, content, tissue)
        if len(tops) != 1 or not onto.is_informative(tops[0]):
            return None
        top = tops[0]
        if _STAGES.intersection(normalise_text(onto.label(top)).split()) - set(content):
            return None  # "pancreatic islet" is not its progenitor cell: a stage unsaid
        if _LEVELS.intersection(content) and all(is_marker(w) or w in _LEVELS for w in content):
            added = self._label_words(top) - set(content) - _UNSAID - _STOP - {"cell"}
            if len(added) > _MARKER_KIND_ADDS:
                return None  # "Cd24+ cells": not a memory B cell whose name holds CD24
        why = f"the words {' '.join(content)!r} lie in the names of {len(terms)} terms under it"
        notes = (why, note) if note else (why,)
        hit = _Hit(top, "name words", onto.label(top), "", shown, WEIGHTS["name words"], notes)
        return _ValueResult("mapped", hit)

    def _name_words_head(
        self, words: list[str], shown: str, note: str = "", tissue: str | None = None
    ) -> _ValueResult | None:
        """The label's head read by `_name_words_value` when the words before it lie in no
        one name with it ("secretory luminal cells" in the mammary gland: its luminal
        epithelial cell): up to two leading words left aside, with a lower confidence."""
        if len(words) < 3 or words[-1] != "cell" or not _NOT_NARROWING.isdisjoint(words):
            return None
        for k in (1, 2):
            if len(words) - k < 2:
                break
            if self._other_compound(words, k):
                break
            found = self._name_words_value(words[k:], shown, note, tissue)
            if found is not None and found.hit is not None:
                why = f'"{" ".join(words[:k])}" left aside: in no one name with the rest'
                conf = round(found.hit.confidence * _NARROWED, 4)
                return replace(
                    found, hit=replace(found.hit, confidence=conf, notes=(*found.hit.notes, why))
                )
        return None

    def _name_words_skipping(
        self, words: list[str], shown: str, note: str = "", tissue: str | None = None
    ) -> _ValueResult | None:
        """The label read by `_name_words_value` with one or two of its words left aside,
        each in no name with the others ("OFF midget ganglion cell": OFF retinal ganglion
        cell, "midget" left aside): the fewest words, with a lower confidence; None when
        leaving aside different words finds different terms. The word before "cell" and
        a word naming a type, a class, a stage or a marker are never left aside: they say
        what the cell is ("ureteric bud cell" is no taste bud cell); two words must stay."""
        if len(words) < 3 or words[-1] != "cell" or not _NOT_NARROWING.isdisjoint(words):
            return None
        content = [w for w in dict.fromkeys(words) if w not in _STOP and w != "cell"]
        if len(content) > _MAX_WORDS + _MAX_SKIPPED:
            return None
        head = words[-2]  # the word before "cell" says what kind of cell: never left aside
        spare = [w for w in content if w != head and self._may_leave_aside(w, content)]
        for k in range(1, _MAX_SKIPPED + 1):
            found: dict[str, tuple[_ValueResult, tuple[str, ...]]] = {}
            for skipped in itertools.combinations(spare, k):
                kept = [w for w in content if w not in skipped]
                if len(kept) < 2 or all(is_marker(w) or w in _LEVELS for w in kept):
                    continue  # too little left to name a type ("ureteric bud": a bud)
                rest = [w for w in words if w not in skipped]
                named = self._name_words_value(rest, shown, note, tissue)
                if named is not None and named.hit is not None:
                    found.setdefault(named.hit.cl_id, (named, skipped))
            if len(found) > 1:
                return None
            if found:
                named, skipped = next(iter(found.values()))
                why = f"{', '.join(map(repr, skipped))} left aside: in no name with the rest"
                hit = named.hit
                conf = round(hit.confidence * _NARROWED**k, 4)
                return replace(named, hit=replace(hit, confidence=conf, notes=(*hit.notes, why)))
        return None

    def _may_leave_aside(self, word: str, content: list[str]) -> bool:
        """Whether a label's word may be left aside: not a marker, a stage or a word that
        names a type, and in no name with the label's other words."""
        if is_marker(word) or word in _STAGE_WORDS or word in self._type_words or len(word) < 3:
            return False
        if f"{word} cell" in self._general_names():
            return False  # a class, however general: "native cell", "support cell"
        others = [w for w in content if w != word]
        return bool(others) and not self._terms_holding([*others, word])

    def _other_compound(self, words: list[str], k: int) -> bool:
        """Whether the names holding the one content word of the head ``words[k:]`` all
        join it to one same word the label does not: before it ("bud" only in "taste
        bud": "ureteric bud cell" names another bud), or after it as a place ("skeletal"
        only in "skeletal muscle": not "osteochondral skeletal cell"). Then the words left
        aside made another compound. "bipolar" beside "rod", "retinal" or nothing, or
        "fenestrated" before "endothelial", is no such compound."""
        content = [w for w in words[k:] if w not in _STOP and w != "cell"]
        if len(content) != 1:
            return False  # words spread over a name ("3a ... bipolar") make no compound
        word = content[0]
        at = words.index(word, k)
        quiet = set(words) | _STOP | _GENERIC | _UNSAID | _HEADS
        before: set[str] | None = None
        after: set[str] | None = None
        for t in self._terms_holding(content):
            for key in self._names_by_term()[t]:
                n = key.split()
                if word not in n:
                    continue
                i = n.index(word)
                b = {n[i - 1]} - quiet if i else set()
                a = {n[i + 1]} - quiet if i + 1 < len(n) else set()
                before = b if before is None else before & b
                after = a if after is None else after & a
        if before and at > 0:
            return True  # the label puts another word before it
        return any(f"{word} {x}" in self._tissue_phrases for x in after or ())

    def _terms_holding(self, content: list[str]) -> set[str]:
        """Terms with one name (of a cell noun) that holds every word; if none, every word
        in either of its forms ("ductal" names find "ductal" before "duct")."""
        index = self._name_word_index()
        found = set.intersection(*(index.get(w, set()) for w in content))
        if found:
            return self._in_one_name(found, [(w,) for w in content])
        if self._word_forms.keys().isdisjoint(content):
            return found
        for w in content:
            terms = index.get(w, set())
            for form in self._word_forms.get(w, ()):
                terms = terms | index.get(form, set())
            found = terms if w == content[0] else found & terms
            if not found:
                return found
        return self._in_one_name(found, [(w, *self._word_forms.get(w, ())) for w in content])

    def _in_one_name(self, terms: set[str], words: list[tuple[str, ...]]) -> set[str]:
        """The terms with one name holding a form of every word (not "t" from one name and
        "lymphoid" from another: plasmacytoid T cell, lymphoid dendritic cell)."""
        names = self._names_by_term()
        return {
            t
            for t in terms
            if any(
                all(not held.isdisjoint(forms) for forms in words)
                for held in map(set, map(str.split, names[t]))
            )
        }

    def _plainest(self, terms: set[str], content: list[str], tissue: str | None) -> list[str]:
        """Of terms on several branches, the most general ones with a name that adds to
        ``content`` nothing but "epithelial" and the tissue's words."""
        said = {*content, "of", "the", "cell", *_GENERIC}  # not "a": "pancreatic A cell"
        for w in content:
            said.update(self._word_forms.get(w, ()))
        if tissue in self.tissues:
            said.update(w for p in self.tissues[tissue].phrases for w in p.split())
        plain = {t for t in terms if any(set(k.split()) <= said for k in self._names_by_term()[t])}
        onto = self.ontology
        return [
            t for t in plain if not any(o != t and onto.is_ancestor(o, t, _KIND) for o in plain)
        ]


def _headed(name: str) -> bool:
    """Whether a name ends in a cell noun ("vip GABAergic cortical interneuron")."""
    if name.rsplit(" ", 1)[-1] in _HEADS:
        return True
    # a neuron placed in its region: "L5 ... neuron of the primary motor cortex" ("X cell
    # of Y" is not taken: "endothelial cell of pericentral hepatic sinusoid" would answer
    # "pericentral" alone)
    return name.split(" of ")[0].rsplit(" ", 1)[-1] in _NEURONS


def _marker_pairs(words: list[str]) -> frozenset[tuple[str, str]]:
    """(word, level) for each word followed by a level word ("cd34 negative")."""
    return frozenset(
        (w, words[k + 1])
        for k, w in enumerate(words[:-1])
        if words[k + 1] in _LEVELS and w not in _LEVELS
    )


def _beside(span: _Span, words: list[str], breaks: list[bool]) -> list[str]:
    """The words next to a span, on either side, up to a separator or coordination, less
    stop words and the span's own words, in text order."""
    if span.start == 0 and span.end == len(words):
        return []  # the phrase is the whole value
    own = set(words[span.start : span.end])
    left = span.start
    while left > 0 and not breaks[left]:
        left -= 1
    right = span.end
    while right < len(words) and not breaks[right]:
        right += 1
    out = [*words[left : span.start], *words[span.end : right]]
    return [w for w in out if w not in _STOP and w not in own]
