"""Phrase windows: every window of a value's words looked up among names, synonyms and
tables, with abbreviations expanded, glued words split, list heads shared, and the
context (negation, clauses) that stops a phrase from naming the cell."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from scatlas.ontology.evidence import (
    _BLOCK_AFTER,
    _CLAUSE,
    _LEVELS,
    _LINEAGE,
    _NEG_BEFORE,
    _STOP,
    _TERSE_COMPANIONS,
    WEIGHTS,
    _Entry,
    _remember,
    _Span,
)
from scatlas.ontology.text import is_marker, normalise_text

log = logging.getLogger(__name__)

# one-letter prefixes papers put on a cell-type abbreviation: quiescent / activated (qNSC,
# aNSC), immature / induced / inflammatory (iMac), human / mouse (hPBMC, mMSC), naive /
# natural (nTreg: CL names that one), effector / early (eTreg)
_STATE_PREFIXES = frozenset("qaihmne")
_MIN_NOUN = 6  # the shortest cell noun a combining form is split from ("myocyte")


class PhraseWindows:
    """Methods of :class:`scatlas.ontology.matching.TermMatcher` (its state: see there)."""

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
        marker's level word. Windows never end on a stop word but "a" (a letter:
        "retinal ganglion cell A")."""
        out: list[tuple[int, int, list[_Entry], bool]] = []
        bad_from, coord_after, hard_after = self._reach(words, hard, coord)
        for i, w in enumerate(words):
            if w not in self._vocab or w in _STOP:
                continue
            if origin is not None and i > 0 and origin[i - 1] == origin[i]:
                continue
            stop = min(hard_after[i], i + self._max_window)  # windows end at a hard break
            keys = self._key_windows(words, i, stop, tissue, origin) if w in self._trie else []
            out.extend(keys)
            bag_stop = min(stop, bad_from[i], coord_after[i])
            if bag_stop >= i + 2 and w in self._bag_words and w not in _LEVELS:
                found = {j for _, j, _, _ in keys}
                out.extend(self._bag_windows(words, i, bag_stop, found, tissue, origin))
        return out

    def _key_windows(
        self,
        words: Sequence[str],
        i: int,
        stop: int,
        tissue: str | None,
        origin: Sequence[int] | None,
    ) -> list[tuple[int, int, list[_Entry], bool]]:
        """The windows from word i, ending by ``stop``, that are keys (walking the tree
        of keys: no window is joined unless it is one)."""
        out = []
        node = self._trie.get(words[i])
        j = i + 1
        while node is not None:
            key = node.get(None)
            ends_well = words[j - 1] not in _STOP or words[j - 1] == "a"  # "cell A"
            if key is not None and ends_well and _whole(origin, j):
                entries = self._lookup(key, tissue)
                if entries:
                    out.append((i, j, entries, False))
            if j >= stop:
                break
            node = node.get(words[j])
            j += 1
        return out

    def _bag_windows(
        self,
        words: Sequence[str],
        i: int,
        stop: int,
        keys: set[int],
        tissue: str | None,
        origin: Sequence[int] | None,
    ) -> list[tuple[int, int, list[_Entry], bool]]:
        """The windows from word i (two words or more, ending by ``stop``, not already a
        key) whose words are a key's in another order ("cell T" for "T cell"). A window
        with two content words that no bag holds together ends the search: no longer
        window can be a bag either."""
        out = []
        pairs = self._bag_pairs
        content = [words[i]]
        for j in range(i + 2, stop + 1):
            w = words[j - 1]
            if w in _STOP and (w != "a" or not all(_pair(c, w) in pairs for c in content)):
                continue  # "a" counts where bags hold it as a letter ("type A")
            if w not in content:
                for c in content:  # (a loop, not any(): this runs for most words)
                    if ((c, w) if c < w else (w, c)) not in pairs:
                        return out
                content.append(w)
            if j in keys or not _whole(origin, j):
                continue
            if "of" in words[i:j] and j < stop and words[j] not in _STOP:
                continue  # "neuron of the primary motor | cortex": the place goes on
            if j < len(words) and words[j] in _LEVELS:
                continue  # "monocyte cd14 positive cd16 | negative": a marker without its level
            found = self._bags.get(" ".join(sorted(content)))
            if found:
                found = [e for e in found if not e.tissue or e.tissue == tissue]
                if found:
                    out.append((i, j, found, True))
        return out

    def _reach(
        self, words: Sequence[str], hard: Sequence[bool], coord: Sequence[bool]
    ) -> tuple[list[int], list[int], list[int]]:
        """Per word i: the first word at or after i that no key holds, and the first list
        separator and hard break after i (windows read as a bag reach none of them)."""
        n = len(words)
        bad_from, coord_after, hard_after = [n] * (n + 1), [n] * (n + 1), [n] * (n + 1)
        for k in range(n - 1, -1, -1):
            known = words[k] in self._vocab or words[k] in _STOP
            bad_from[k] = bad_from[k + 1] if known else k
            coord_after[k] = k + 1 if k + 1 < n and coord[k + 1] else coord_after[k + 1]
            hard_after[k] = k + 1 if k + 1 < n and hard[k + 1] else hard_after[k + 1]
        return bad_from, coord_after, hard_after

    def _expand(
        self, words: Sequence[str], hard: Sequence[bool], coord: Sequence[bool], tissue: str | None
    ) -> tuple[list[str], list[bool], list[bool], list[int], list[str]] | None:
        """``words`` with single-word abbreviations spelt out as their term's name, the
        position each new word came from, and the abbreviations used; None if none."""
        if self._expansions.keys().isdisjoint(words):
            return None
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
        misfit = {id(c) for c in cands if self._tissue_filter(c, tissue)} if tissue else set()
        fits = {(c.start, c.end) for c in cands if id(c) not in misfit} if misfit else set()
        headed = self._headed(cands, words)
        cands.sort(
            key=lambda c: (
                id(c) in misfit and (c.start, c.end) in fits,
                id(c) in headed,
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

    def _headed(self, cands: list[_Span], words: Sequence[str]) -> set[int]:
        """The spans "cell of <place>" whose "cell" ends another span ("myoepithelial cell
        of salivary gland", "Merkel cell of epidermis"): the head is the type before it,
        "of <place>" where it lies (ids of the spans): when the place is a tissue, or the
        span a name reordered ("salivary gland cell"), not a name as written ("cell of
        Claudius"); and not when every term of the head is placed in a tissue other than
        the one named ("intercalated cell of salivary gland" is no renal intercalated
        cell)."""
        heads = {c.end: c for c in cands if c.end - c.start >= 2 and words[c.end - 1] == "cell"}
        out: set[int] = set()
        anatomy: list[tuple[int, int, str]] | None = None  # read once, when needed
        for c in cands:
            head = heads.get(c.start + 1)
            if (
                head is None
                or words[c.start] != "cell"
                or words[c.start + 1 : c.start + 2] != ["of"]
            ):
                continue
            if anatomy is None:
                anatomy = self._anatomy_spans(words)
            places = [t for i, _, t in anatomy if i == c.start + 2]
            if not places and not c.reordered:
                continue  # a name itself: "cell of Claudius" (an eponym, not a place)
            if all(
                self.term_tissues(e.cl_id) and not (places and self._fits(e.cl_id, places[0]))
                for e in head.entries
            ):
                continue  # the head's terms belong to a tissue the text does not name
            out.add(id(c))
        return out

    def _split_glued(
        self, words: list[str], hard: list[bool], coord: list[bool]
    ) -> tuple[list[str], list[bool], list[bool]]:
        """Singular short plurals ("DCs"); split words missing from the vocabulary into two
        known words, as in labels glued together ("naivecytotoxic", "memoryT", "Thelper", "CD4T"); a lone lineage
        letter (T, B, NK) gets its "cell"."""
        if self._vocab.issuperset(words) and not any(len(w) <= 6 and w[-1] == "s" for w in words):
            return words, hard, coord  # every word known, none a short plural: as it is
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
        "t helper cell"; else ``[w]`` ("doublet" is not "double t"). Remembered per word."""
        key = (w, nxt == "cell")
        parts = self._splits.get(key)
        if parts is None:
            parts = _remember(self._splits, key, self._split_uncached(w, nxt == "cell"))
        if parts[0].endswith("-") and nxt in self._vocab and nxt != "cell":
            return [w]  # a combined noun only as the head: not in "fibrochondrocyte progenitor"
        return list(parts)

    def _split_uncached(self, w: str, cell_next: bool) -> tuple[str, ...]:
        prefixed = self._state_prefixed(w)
        if prefixed:
            return prefixed
        for cut in range(len(w) - 1, 0, -1):
            a, b = w[:cut], w[cut:]
            if a not in self._vocab or b not in self._vocab or a in _STOP or b in _STOP:
                continue
            if min(len(a), len(b)) < 3 and not (a in _LINEAGE or b in _LINEAGE):
                continue
            parts = (a, b, "cell") if (a in _LINEAGE or b in _LINEAGE) and not cell_next else (a, b)
            if " ".join(parts) in self._index or f"{a} {b} cell" in self._index:
                return parts
        return self._combined_noun(w)

    def _combined_noun(self, w: str) -> tuple[str, ...]:
        """A combining form glued to a cell noun that is a name by itself
        ("fibrochondrocyte": fibro + chondrocyte; "Fibromyocyte"; not a "-blast", a
        precursor another prefix makes another one: "neuroepidermoblast"): the form
        apart, as a word no name holds ("fibro-": not the "Fibro" abbreviation), and the
        noun; else ``(w,)``."""
        for cut in range(4, len(w) - _MIN_NOUN + 1):  # not "pro-", "pre-": stages
            a, b = w[:cut], w[cut:]
            if a[-1] == "o" and b in self._cell_nouns and not b.endswith("blast"):
                return (f"{a}-", b)
        return (w,)

    def _state_prefixed(self, w: str) -> tuple[str, ...]:
        """A curated abbreviation behind a one-letter state or species prefix ("qNSCs",
        "aNSC", "iMac", "hPBMC"): the prefix apart, as a word no name holds, and the
        abbreviation (singular) read as written; else ``()``."""
        if w[0] not in _STATE_PREFIXES or is_marker(w):
            return ()  # "edn1" is a gene, not an early DN1 thymocyte
        rest = w[1:]
        if rest not in self._abbreviation_keys and rest.endswith("s"):
            rest = rest[:-1]
        return (w[0], rest) if len(rest) >= 3 and rest in self._abbreviation_keys else ()

    def _terse_ok(self, span: _Span, words: list[str]) -> bool:
        """A terse CL synonym ("PE", "LC", "ARC": 3 letters or fewer) counts only when
        the rest of the value is cell/marker words: elsewhere it is likely a gene, a dye
        or an assay. Curated abbreviations are exempt. "type <n>" counts only alone
        ("lactocyte type 1" is no "type I" retinal cell)."""
        key = words[span.start]
        if span.length == 2 and key == "type" and words[span.start + 1].isdigit():
            return span.end - span.start == len(words)  # "type I" alone: a synonym
        if span.length != 1 or len(key) > 3 or span.shared_head:
            return True
        if key in self._abbreviation_keys or any(e.scope == "tissue term" for e in span.entries):
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
                item = _Span(x, end, entries, shared_head=" ".join(head))
                out.append(item)
                shared = self._shared_modifier(item, s, words, coord, out, tissue)
                if shared is not None:
                    out = [o for o in out if o is not item and o is not s] + list(shared)
        return sorted(out, key=lambda c: c.start)

    def _shared_modifier(
        self,
        first: _Span,
        last: _Span,
        words: list[str],
        coord: list[bool],
        spans: list[_Span],
        tissue: str | None,
    ) -> tuple[_Span, _Span] | None:
        """A word before a list that shares its head also modifies every item
        ("hematopoietic stem and progenitor cells": hematopoietic stem cell, hematopoietic
        progenitor cell), when with it each item is still a name; None otherwise."""
        m = first.start - 1
        if (
            m < 0
            or coord[first.start]
            or words[m] in _STOP
            or any(o.end > m for o in spans if o.start <= m)
        ):
            return None
        modifier = words[m]
        with_first = self._lookup(
            " ".join([modifier, *words[first.start : first.end], first.shared_head]), tissue
        )
        with_last = self._lookup(" ".join([modifier, *words[last.start : last.end]]), tissue)
        if not with_first or not with_last:
            return None
        note = (f'"{modifier}" shared by the list',)
        return (
            replace(first, start=m, entries=with_first, expanded=(*first.expanded, *note)),
            replace(last, entries=with_last, expanded=(*last.expanded, *note)),
        )

    def _negated_modifier(self, span: _Span, words: list[str]) -> _Span | None:
        """The name after the negated first word of a phrase as written ("non-ciliated
        epithelial cell": epithelial cell; "non-B lymphocytes": lymphocyte); None when the
        rest names nothing ("non-T cells": "cell" alone), or the negated word is a place
        ("non-placental epithelial cell")."""
        if span.reordered or span.expanded or span.length < 2:
            return None
        if any(i == span.start for i, _, _ in self._anatomy_spans(words)):
            return None  # "non-placental epithelial cell": its place would be read in
        negated = words[span.start]
        entries = [  # not a term whose name says the negated word ("mature NKT cell")
            e
            for e in self._lookup(" ".join(words[span.start + 1 : span.end]), None)
            if negated not in normalise_text(self.ontology.label(e.cl_id)).split()
        ]
        if not entries:
            return None
        return _Span(span.start + 1, span.end, entries)

    def _context_filter(
        self, spans: list[_Span], words: list[str], hard: list[bool]
    ) -> tuple[list[_Span], str]:
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
                rest = self._negated_modifier(s, words)
                if rest is not None:  # "non-ciliated epithelial cell": an epithelial cell
                    kept.append(rest)
            elif after in _BLOCK_AFTER or (after == "derived" and after2 != "from"):
                notes.append(f'"{phrase} {after}" does not name a cell')
            elif "like" in words[s.end + 1 : s.end + 4] and _likened(words, hard, s):
                notes.append(f'"{phrase} {after}-like" does not name a cell')
            else:
                kept.append(s)
        if words[-2:] == ["like", "cell"] and all(words[s.end - 1] != "cell" for s in kept):
            # "megakaryocyte/erythrocyte progenitor-like cells": of a list too; not when
            # a type is named whole ("T cells and NK-like cells")
            notes.append('"-like cells": a likeness, not a type')
            kept = []
        clause = next((k for k, w in enumerate(words) if w in _CLAUSE), None)
        if clause is not None and any(s.end <= clause for s in kept):
            late = [s for s in kept if s.start > clause]
            if late:
                notes.append(f'ignored after "{words[clause]}"')
                kept = [s for s in kept if s.start <= clause]
        return kept, "; ".join(notes)


def _likened(words: list[str], hard: list[bool], span: _Span) -> bool:
    """Whether "-like" closes a noun phrase the span begins ("megakaryocyte progenitor-
    like cells"): up to three words between them, no noun ending the span or standing
    between, no hard separator or word that starts a clause."""
    if words[span.end - 1] == "cell":
        return False
    for j in range(span.end, min(span.end + 4, len(words))):
        w = words[j]
        if hard[j] or w == "cell" or w in _STOP or w in _CLAUSE:
            return False
        if w == "like":
            return True
    return False


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def _whole(origin: Sequence[int] | None, j: int) -> bool:
    """True when a window ending before word j cuts through no expanded abbreviation."""
    return origin is None or j >= len(origin) or origin[j - 1] != origin[j]
