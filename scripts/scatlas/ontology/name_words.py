"""A label that is no name or synonym but whose words all lie inside names of one branch
("Distal tubule cells" inside "epithelial cell of distal tubule" and its subtypes; "Loop
of Henle cells"): the term of that branch whose name holds them, when one such term is an
ancestor of all the others. Tried only when nothing else matched."""

from __future__ import annotations

from scatlas.ontology.evidence import _KIND, _STOP, WEIGHTS, _Hit, _ValueResult
from scatlas.ontology.text import normalise_text

_MAX_WORDS = 4  # longer labels are descriptions, not names with words left out
_HEADS = frozenset({"cell"})


class NameWords:
    """Methods of :class:`scatlas.ontology.matching.TermMatcher` (its state: see there)."""

    def _name_word_index(self) -> dict[str, set[str]]:
        """word -> terms whose name or EXACT synonym (ending in "cell") holds it."""
        index = getattr(self, "_by_name_word", None)
        if index is None:
            index = {}
            for key, per_term in self._index.items():
                words = key.split()
                if words[-1] not in _HEADS:
                    continue
                for e in per_term.values():
                    if e.scope in ("name", "EXACT") and not e.tissue and not e.implied:
                        for w in set(words) - _STOP:
                            index.setdefault(w, set()).add(e.cl_id)
            self._by_name_word = index
        return index

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
        self, words: list[str], shown: str, note: str = ""
    ) -> _ValueResult | None:
        """The value's content words found together only in names of one branch: the
        branch's top term, named with those words; None otherwise."""
        if not words or words[-1] != "cell" or " ".join(words) in self._general_names():
            return None
        content = sorted(set(words) - _STOP - {"cell"})
        if not content or len(content) > _MAX_WORDS:
            return None
        index = self._name_word_index()
        if any(w not in index for w in content):
            return None
        terms = set.intersection(*(index[w] for w in content))
        onto = self.ontology
        tops = [t for t in terms if all(t == o or onto.is_ancestor(t, o, _KIND) for o in terms)]
        if len(tops) != 1 or not onto.is_informative(tops[0]):
            return None
        top = tops[0]
        why = f"the words {' '.join(content)!r} lie in the names of {len(terms)} terms under it"
        notes = (why, note) if note else (why,)
        hit = _Hit(top, "name words", onto.label(top), "", shown, WEIGHTS["name words"], notes)
        return _ValueResult("mapped", hit)
