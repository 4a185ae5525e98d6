"""Readings of a whole field value tried around the phrase match: a slash inside a name
CL holds ("Granulocyte/monocyte progenitors"), a parenthesis naming a kind of the label's
term ("T cells (Treg)"), and a label without its noun ("Plasma" -> plasma cell; "CD4+
Central Memory" -> central memory CD4-positive T cell)."""

from __future__ import annotations

import re
from dataclasses import replace

from scatlas.ontology.evidence import _LEVELS, _NEG_BEFORE, READ_WITH_NOUN, _Hit, _ValueResult
from scatlas.ontology.text import is_marker, normalise_text, tokenise

# markers that name a lymphocyte lineage: its noun and term
_T_CELL, _B_CELL = ("T cells", "CL:0000084"), ("B cells", "CL:0000236")
_LINEAGE_MARKERS = {
    "cd3": _T_CELL,
    "cd4": _T_CELL,
    "cd8": _T_CELL,
    "cd19": _B_CELL,
    "cd20": _B_CELL,
}
# a cheap test that a raw value may name one of those markers
_LINEAGE_HINT = re.compile("|".join(rf"{m}(?!\d)" for m in _LINEAGE_MARKERS), re.IGNORECASE)
# words that say a cell divides, not what it is ("CD4 Proliferating": a CD4 T cell)
_PROLIFERATING = frozenset({"proliferating", "cycling", "dividing", "mitotic", "replicating"})
_LIST_MARK = re.compile(r"[/,;&]|\b(?:and|or)\b")
_LIST_SPLIT = re.compile(r"(\s*[/,;&]\s*|\s+(?:and|or)\s+)", re.IGNORECASE)  # keeps the marks
# a dotted population code, ImmGen's notation (Heng et al. 2008, Nat Immunol 9:1091)
_CODE = re.compile(r"^\s*[\w+-]+(?:\.[\w+-]+)+\.?\s*$")
_CODE_TOKEN = re.compile(r"[A-Za-z]+|\d+")  # "8Nve" -> "8", "Nve"
# after a number, a state word ("4Nve", "8EFF") or nothing ("T.4"); not a level ("4int8+")
_STATE_AFTER = re.compile(r"^(?:(?!(?:int|hi|high|lo|low|neg|pos|dim)(?![a-z]))[A-Za-z]|$)")
_HARDY = re.compile(r"^Fr([A-F]{1,2})$")  # "FrBC": Hardy et al. 1991, J Exp Med 173:1213
_FRACTION_WEIGHT = 0.85  # a Hardy fraction read from a code: below a name or EXACT synonym
_DEVELOPMENT = ("is_a", "develops_from")
_LIGHT_CHAIN = re.compile(r"^(.*\S)\s+(kappa|lambda|igk|igl)\s*$", re.IGNORECASE)
_LAYER = re.compile(r"l\d")  # a cortical layer ("L5"), normalised
_B_LINEAGE = "CL:0000945"  # lymphocyte of B lineage
_MARKER_OR_NUMBER = re.compile(r"[\d+]")  # "CD4+", "cluster 3": not a label missing its noun
_NOT_A_LIST_OF_TYPES = _NEG_BEFORE | {"like", "other", "unknown", "mixed"}
_NOT_A_LIST_WORD = re.compile(
    r"\b(?:" + "|".join(sorted(_NOT_A_LIST_OF_TYPES)) + r")\b", re.IGNORECASE
)
_MAX_LIST_WORDS = 12  # a longer value with list marks is a description, not a list of labels
_TYPE_NUMBER = r"((?:type|segment)\s+(?:\d{1,2}|[a-z]|i{1,3}|iv))"  # "type 2", "segment iii"
_TYPE_SUFFIX = re.compile(rf"\s+{_TYPE_NUMBER}\s*$", re.IGNORECASE)
_TYPE_PREFIX = re.compile(rf"^\s*{_TYPE_NUMBER}\s+(?=\S)", re.IGNORECASE)  # written first
_TYPE_LETTERS = re.compile(r"[A-Z]{1,3}")  # "B", "T", "NK" leading a label: its type
# words after a type's letters that name a lineage, a stage or a likeness, not a state
_NOT_STATES = frozenset({"lymphoid", "myeloid", "lineage", "progenitor", "precursor", "like"})
_MAX_UNKNOWN = 2  # words of no name a label read with its noun may hold ("Proliferating")
_STAGE_WORDS = frozenset({"mid"})  # a short word of no name that names a stage ("Mid erythroid")
_MAX_SHORT = 4  # words of names a label read with the noun "cell" may hold, no other test
_MAX_NOUNLESS = 6  # words of a label read with the noun "cell" it leaves out
_CLUSTER_INDEX = re.compile(r"^(.*[^\W\d_])\s*_(\d{1,3})\s*$")  # "CD4 TCM_2": a cluster's number
# a subtype's number after a word that numbers nothing itself, last or before "cell(s)":
# "Endothelial 1", "diffuse bipolar 1 cell" (not "type 2", "layer 5", "CD4 1")
_SUBTYPE_NUMBER = re.compile(
    r"^(.*\b(?!(?:type|class|stage|layer|grade|group|lamina|fraction|segment|zone|"
    r"region|area|cluster)\b)[a-z]{3,})\s+(\d{1,2})((?:\s+cells?)?)\s*$",
    re.IGNORECASE,
)
# the same number glued to a word of two letters or more: "Mono1", "DC3", "Pvalb2 cells"
_GLUED_NUMBER = re.compile(r"^(.*[A-Za-z]{2})(\d{1,2})((?:\s+cells?)?)\s*$")
_SLASHED = re.compile(r"([^\W\d_]+)/([^\W\d_]+)")  # "granulocyte/monocyte": two words


class ValueReadings:
    """Methods of :class:`scatlas.ontology.matching.TermMatcher` (its state: see there)."""

    def _slash_joined(self, main: str, shown: str, tissue: str | None) -> _ValueResult | None:
        """A slash inside a name CL holds with both words, in that order ("Granulocyte/
        monocyte progenitors": CL's granulocyte monocyte progenitor cell), read as that
        name rather than as a list; None where no such name is found ("T/NK cells")."""
        pairs = [(normalise_text(a), normalise_text(b)) for a, b in _SLASHED.findall(main)]
        if not pairs or not all(pair in self._adjacent for pair in pairs):
            return None  # no name holds the two words side by side
        alt = self._value(_SLASHED.sub(r"\1 \2", main), tissue)
        if alt.status != "mapped" or alt.hit is None or alt.hit.scope == "mixture":
            return None
        name = f" {normalise_text(alt.hit.synonym)} "
        if all(f" {a} {b} " in name for a, b in pairs):
            notes = (*alt.hit.notes, "the slash read inside the name")
            return replace(alt, hit=replace(alt.hit, text=shown, notes=notes))
        return None

    def _refined(
        self, result: _ValueResult, inner: list[str], shown: str, tissue: str | None
    ) -> _ValueResult:
        """The label's term, or the kind of it that a parenthesis names ("T cells (Treg)",
        "Macrophages (Kupffer cells)"), or the cell on its line of development ("B cells
        (proB.CLP)"); a dotted code is also read by its parts ("SC.MDP"); a parenthesis
        naming anything else is left aside."""
        assert result.hit is not None
        for part in inner:
            code = _CODE.match(part) is not None
            if not code and self._names_nothing(part):
                continue  # "(batch 4)", "(donor 2)"
            alt = self._phrase_value(part, shown, tissue)
            if code:
                alt = self._coded(part, result, alt, shown, tissue)
            if self._refining(result, alt):
                assert alt.hit is not None
                kind = self.ontology.is_ancestor(result.hit.cl_id, alt.hit.cl_id)
                what = "a kind of" if kind else "a cell on the line of development of"
                note = f'"({part.strip()})" names {what} {self.ontology.label(result.hit.cl_id)}'
                return replace(alt, hit=replace(alt.hit, notes=(*alt.hit.notes, note)))
        return result

    def _with_cell_noun(self, main: str, shown: str, tissue: str | None) -> _ValueResult | None:
        """A label without its noun ("Plasma", "Schwann", "Bergmann glia", "Descending Vasa
        Recta Endothelial", "Alveolar Epithelial Type 1") read as "<label> cell" (the noun
        before a trailing "type N"), or a neurotransmitter identity as "<label> neuron"
        ("Glutamatergic"); unless it is a tissue's name ("Liver" is where)."""
        raw = main.strip().lower()
        if len(raw.split()) > _MAX_NOUNLESS or raw.endswith(("cell", "cells")):
            return None  # cheap tests first: most values that reach here are titles
        head, suffix, before = _without_type_number(main)
        words = normalise_text(head).split()
        key = " ".join(words)
        if not words or words[-1] == "cell" or key in self._tissue_phrases:
            return None  # a description; or a tissue
        led = self._led_by_type(head)  # "B intermediate": the B cell's letters first
        if not self._reads_without_noun(words, raw, bool(suffix)) and led is None:
            return None
        if any(e.tissue for e in (self._index.get(key) or {}).values()):
            return None  # a word with a tissue-specific sense ("beta"): not without it
        noun = "neuron" if len(words) == 1 and words[0].endswith("ergic") else "cells"
        named = f"{head} {noun}"
        core = _without_markers(words)
        if core and words[-1] != core[-1]:  # markers after the type: the noun before them
            k = len(words) - words[::-1].index(core[-1])
            named = f"{' '.join(words[:k])} {noun} {' '.join(words[k:])}"
        alt = self._phrase_value(
            f"{suffix} {named}" if before else f"{named} {suffix}", shown, tissue
        )
        notes: tuple[str, ...] = ()
        if suffix and (alt.status == "unmatched" or alt.hit is None):
            # "Distal Convoluted Tubule Type 2": an author's subtype CL does not name
            alt = self._phrase_value(named, shown, tissue)
            notes = (f'"{suffix}" names no kind CL has',)
            suffix = ""
        lead = self._type_first(led, head, noun, alt, shown, tissue) if led else None
        if lead is not None:  # "B intermediate": a B cell, as "intermediate B cells" is
            alt, words, noun = lead
        if alt.status == "unmatched" or alt.hit is None:
            return None
        found = normalise_text(alt.hit.synonym).removesuffix(" cell")
        if self._tissue_phrases.get(found) and any(
            w not in self._anatomy_abbreviations and w not in found.split() for w in words
        ):
            return None  # "preNK.BM": only the place was read ("bone marrow cell")
        said = " ".join([*words, noun.rstrip("s")])
        said = (f"{suffix.lower()} {said}" if before else f"{said} {suffix.lower()}").strip()
        notes = (*alt.hit.notes, f'{READ_WITH_NOUN}"{said}"', *notes)
        return replace(alt, hit=replace(alt.hit, notes=notes))

    def _type_first(
        self, cl_id: str, head: str, noun: str, alt: _ValueResult, shown: str, tissue: str | None
    ) -> tuple[_ValueResult, list[str], str] | None:
        """A label led by the letters of type ``cl_id`` (`_led_by_type`) and qualifiers
        after them ("B intermediate", "B exhausted") read with the noun after the letters,
        where with the noun last (``alt``) it named no kind of that type: the reading, its
        words before the noun, and the noun with the words after it."""
        first, _, rest = head.strip().partition(" ")
        if alt.hit is not None and (
            alt.hit.cl_id == cl_id or self.ontology.is_ancestor(cl_id, alt.hit.cl_id)
        ):
            return None  # "B naive": the naive B cell
        lead = self._phrase_value(f"{first} {noun} {rest}", shown, tissue)
        if lead.status != "mapped" or lead.hit is None:
            return None
        return lead, [normalise_text(first)], f"{noun.rstrip('s')} {normalise_text(rest)}"

    def _led_by_type(self, head: str) -> str | None:
        """The term "<letters> cell" names, for a label of more words led by a type's
        capital letters ("B intermediate": the B cell); else None."""
        first, _, rest = head.strip().partition(" ")
        if not rest or not _TYPE_LETTERS.fullmatch(first) or _holds_list_mark(head.lower()):
            return None  # "B and T": a list
        if {w.rstrip("s") for w in normalise_text(rest).split()} & _NOT_STATES:
            return None  # "T lymphoid", "B progenitors": a lineage, not the type in a state
        entries = (self._index.get(f"{normalise_text(first)} cell") or {}).values()
        typed = {e.cl_id for e in entries if e.scope in ("name", "EXACT")}
        return typed.pop() if len(typed) == 1 else None

    def _refining(self, result: _ValueResult, alt: _ValueResult) -> bool:
        """Whether a parenthesis's answer refines the label's: another term, a kind of it
        or a cell on its line of development ("B cells (proB.CLP)": the common lymphoid
        progenitor B cells develop from; "Stem cells (SC.MDP)")."""
        if alt.status != "mapped" or alt.hit is None or result.hit is None:
            return False
        label, inner = result.hit.cl_id, alt.hit.cl_id
        onto = self.ontology
        return inner != label and (
            onto.is_ancestor(label, inner)
            or onto.is_ancestor(label, inner, _DEVELOPMENT)
            or (  # a precursor, not a coarser class ("Kupffer cells (macrophages)")
                onto.is_ancestor(inner, label, _DEVELOPMENT)
                and not onto.is_ancestor(inner, label, ("is_a",))
            )
        )

    def _code_value(self, code: str, shown: str, tissue: str | None) -> _ValueResult | None:
        """A dotted population code ("proB.CLP", "SC.MDP", "T.4MEM"): its last part that
        names a type, read from the end (the population, after its group)."""
        for part in reversed(code.strip().split(".")):
            if not part or self._names_nothing(part):
                continue
            alt = self._phrase_value(part, shown, tissue)
            if alt.status == "mapped":
                return alt
        return None

    def _coded(
        self, code: str, result: _ValueResult, alt: _ValueResult, shown: str, tissue: str | None
    ) -> _ValueResult:
        """A population code's best reading: in words (`_code_words`: "proB.FrBC", the
        fraction, not the pro-B cell its first part names) unless the part read as a
        phrase names a kind of that ("DC.PDC.8-": CD8-negative pDC); else a type one of
        its parts names (`_code_value`)."""
        coded = self._code_words(code, result, shown, tissue)
        if coded is not None and self._refining(result, coded):
            assert coded.hit is not None
            finer = (
                self._refining(result, alt)
                and alt.hit is not None
                and self.ontology.is_ancestor(coded.hit.cl_id, alt.hit.cl_id)
            )
            return alt if finer else coded
        if self._refining(result, alt):
            return alt
        return self._code_value(code, shown, tissue) or alt

    def _code_words(
        self, code: str, result: _ValueResult, shown: str, tissue: str | None
    ) -> _ValueResult | None:
        """A population code read in words with the label's noun (`population_codes.tsv`:
        "T cells (T.8Nve)": naive CD8 T cell; "T.4MEM49D+11A+": memory CD4 T cell); a
        part CL names with that noun ("B.T1": T1 B cell), or one of Hardy's B-cell
        fractions ("proB.FrBC": fraction B/C precursor B cell)."""
        assert result.hit is not None
        noun = normalise_text(result.hit.synonym)
        words: list[str] = []
        named = ""  # a type a part's capitals name ("SC.MPP34F": MPP)
        for part in code.split("."):
            fraction = _HARDY.match(part)
            if fraction and fraction.group(1).lower() in self._fractions:
                cl_id = self._fractions[fraction.group(1).lower()]
                hit = _Hit(cl_id, "name", self.ontology.label(cl_id), "", shown, _FRACTION_WEIGHT)
                return _ValueResult("mapped", replace(hit, notes=(f'"{part}": a Hardy fraction',)))
            if normalise_text(f"{part} {noun}") in self._index:
                words.append(part)  # "T1" + "B cell"
                continue
            for k, t in enumerate(_CODE_TOKEN.findall(part)):
                if t.isdigit() and (k > 0 or not _STATE_AFTER.match(part[len(t) :])):
                    continue  # "4Nve", "T.8": CD4, CD8; not "4+8int", "DN3-4": markers, ranges
                if t.lower() in self._population_codes:
                    words.append(self._population_codes[t.lower()][0])
                elif not named and len(t) >= 3 and t.isupper() and self._abbreviation(t):
                    named = t
        if {"cd4", "cd8"} <= set(words):
            return None  # both lineages: a double-positive population, not one
        if not words:
            return self._phrase_value(named, shown, tissue) if named else None
        said = " ".join([*dict.fromkeys(words), noun])
        alt = self._phrase_value(said, shown, tissue)
        if alt.hit is None:
            return None
        return replace(
            alt, hit=replace(alt.hit, notes=(*alt.hit.notes, f'"{code}" read as "{said}"'))
        )

    def _abbreviation(self, word: str) -> bool:
        """Whether a word is one type's abbreviation, name or EXACT synonym ("MPP")."""
        entries = self._index.get(normalise_text(word))
        strong = ("abbreviation", "name", "EXACT")
        return bool(entries) and len(entries) == 1 and next(iter(entries.values())).scope in strong

    def _list_with_nouns(
        self, main: str, shown: str, tissue: str | None, found: _ValueResult
    ) -> _ValueResult | None:
        """A list whose members leave out their noun ("Natural Killer / Natural Killer T",
        "Vascular Smooth Muscle / Pericyte"): each member that names a type only with
        "cell" is read with it, then the list as a whole; None when no member
        needs it, a member is markers alone ("CD8a/b") or the list names no type; and when
        the value's answer ``found`` already holds a word of such a member (a comma inside
        a name: "effector memory CD4-positive, alpha-beta T cell")."""
        parts = _LIST_SPLIT.split(main)
        members = [parts[k].strip() for k in range(0, len(parts), 2)]
        if not self._a_list_of_labels(main, members, found):
            return None
        named: set[str] | None = None
        changed = False
        for k, member in zip(range(0, len(parts), 2), members, strict=True):
            if _markers_only(member):
                return None  # "CD8a/b": marker variants, not a list of types
            if not _may_lack_noun(member):
                continue  # a noun of its own ("T cells"), or a marker
            words = normalise_text(member).split()
            if " ".join(words) in self._index:
                continue  # a name ("Pericyte")
            if not self._reads_without_noun(words, member.lower(), False):
                continue  # cheap test first: not a label the noun reading may take
            hit = self._value(member, tissue).hit
            if hit is not None and any(n.startswith(READ_WITH_NOUN) for n in hit.notes):
                if named is None:
                    named = set(normalise_text(found.hit.synonym).split()) if found.hit else set()
                if not named.isdisjoint(words):
                    return None  # the answer found reads this member already
                parts[k] = f"{member} cells"
                changed = True
        if not changed:
            return None
        alt = self._phrase_value("".join(parts), shown, tissue)
        if alt.status != "mapped" or alt.hit is None:
            return None
        note = f'{READ_WITH_NOUN}"{"".join(parts).lower()}"'
        return replace(alt, hit=replace(alt.hit, notes=(*alt.hit.notes, note)))

    def _a_list_of_labels(self, main: str, members: list[str], found: _ValueResult) -> bool:
        """Whether a value may be a list of labels some of which leave out their noun: short,
        not read whole by the answer found, a member without "cell", no "-like", "non-",
        "unknown", no slash inside a name ("columnar/cuboidal epithelial cell")."""
        if len(main.split()) > _MAX_LIST_WORDS:
            return False
        if found.hit is not None and not any(n.startswith('phrase "') for n in found.hit.notes):
            return False  # the answer found reads the whole value
        if not any(_may_lack_noun(m) for m in members):
            return False  # cheap test first: every member ends in a cell noun
        if _NOT_A_LIST_WORD.search(main):
            return False  # "-like", "non-", "unknown": not a list of types CL names
        slashed = _SLASHED.findall(main)
        return not any((normalise_text(a), normalise_text(b)) in self._adjacent for a, b in slashed)

    def _reads_without_noun(self, words: list[str], raw: str, typed: bool) -> bool:
        """Whether a label's words (less a trailing "type N") may be read with a noun: up to
        four words of names ("Inner Medullary Collecting Duct", "Meis2"), no number; or, when its last words name a type with "cell" and it is no
        list ("CD8a/b", "NK / NKT"), up to six with markers and two words of no name
        ("Proliferating Basal"), never a number ("sample 12")."""
        if self._named_with_noun(words):
            return True
        short = len(words) <= _MAX_SHORT and not any(
            (w.isdigit() and not _layer_range(words, k)) or w in _LEVELS
            for k, w in enumerate(words)
        )
        if short and all(w in self._vocab or w in self._anatomy_abbreviations for w in words):
            return True
        named = [w for w in words if not (is_marker(w) or w in _LEVELS)]
        if len(named) > _MAX_NOUNLESS or _holds_list_mark(raw):
            return False
        if not self._head_without_noun(words):
            return False
        unknown = [w for w in words if not (w in self._vocab or is_marker(w))]
        return (
            not any(w.isdigit() for w in words)
            and len(unknown) <= _MAX_UNKNOWN
            and all(w.isalpha() and (len(w) >= 4 or w in _STAGE_WORDS) for w in unknown)
        )

    def _named_with_noun(self, words: list[str]) -> bool:
        """Whether the label with "cell" is a name or EXACT synonym ("T-helper 1", "B-1 B",
        "group 1 innate lymphoid"): read so whatever its numbers."""
        entries = self._index.get(" ".join([*words, "cell"]))
        return bool(entries) and any(e.scope in ("name", "EXACT") for e in entries.values())

    def _head_without_noun(self, words: list[str]) -> bool:
        """Whether the label's last one to three words, with "cell", are a name or synonym
        ("endothelial cell", "natural killer cell"); markers with their levels aside
        ("Erythroid_CD34- GlyA-": "erythroid cell")."""
        words = _without_markers(words)
        return any(
            " ".join([*words[-k:], "cell"]) in self._index for k in range(1, min(3, len(words)) + 1)
        )

    def _with_lineage_noun(self, main: str, shown: str, tissue: str | None) -> _ValueResult | None:
        """A lymphocyte state written after its lineage marker, without the noun ("CD4+
        Central Memory", "CD19+ naive"), read with the lineage's noun; kept only when that
        names a kind of the lineage, not the lineage itself."""
        if not _LINEAGE_HINT.search(main):
            return None  # cheap test first: most values that reach here name no marker
        words = tokenise(main).items
        found = [_LINEAGE_MARKERS[w] for w in words if w in _LINEAGE_MARKERS]
        if not found or len(set(found)) > 1 or "cell" in words or len(words) > 8:
            return None
        state = {w for w in words if not is_marker(w) and w not in _LEVELS}
        if not state:
            return None  # markers alone ("CD4+"): no state to read
        noun, lineage = found[0]
        ending = "cells" if words[-1] in ("t", "b") else noun  # "CD4+ Memory/Effector T"
        said = state - _PROLIFERATING  # a cycling cell is of its type: "CD4 Proliferating"
        if said != state:
            main = " ".join(w for w in main.split() if w.lower() not in _PROLIFERATING)
        alt = self._phrase_value(f"{main} {ending}", shown, tissue)
        if alt.status != "mapped" or alt.hit is None or alt.hit.cl_id == lineage:
            return None
        if said and said.isdisjoint(normalise_text(alt.hit.synonym).split()):
            return None  # the name found holds none of the state's words ("CD8+ unknown")
        if not self.ontology.is_ancestor(lineage, alt.hit.cl_id):
            return None
        note = f"{READ_WITH_NOUN}a {noun[:-1]} (its marker)"
        return replace(alt, hit=replace(alt.hit, notes=(*alt.hit.notes, note)))

    def _value_less(
        self, pattern: re.Pattern[str], main: str, tissue: str | None, with_group: int = 0
    ) -> tuple[re.Match[str], _ValueResult] | None:
        """The match of a trailing part (``pattern``; group 1 is the rest, and group
        ``with_group``, when given, is kept after it) and the answer for the label without
        it, when that maps."""
        found = pattern.match(main)
        if found is None:
            return None
        rest = found.group(1) + (found.group(with_group) if with_group else "")
        alt = self._value(rest, tissue)
        if alt.status != "mapped" or alt.hit is None:
            return None
        return found, alt

    def _without_light_chain(
        self, main: str, shown: str, tissue: str | None
    ) -> _ValueResult | None:
        """A B-lineage label ending in the light chain its clones use ("B naive kappa",
        "Plasma lambda"), which CL names no kinds by, read without it."""
        less = self._value_less(_LIGHT_CHAIN, main, tissue)
        if less is None:
            return None
        found, alt = less
        assert alt.hit is not None
        if not self.ontology.is_ancestor(_B_LINEAGE, alt.hit.cl_id, _DEVELOPMENT):
            return None
        note = f'light chain "{found.group(2)}" left aside'
        return replace(alt, hit=replace(alt.hit, text=shown, notes=(*alt.hit.notes, note)))

    def _without_cluster_index(
        self, result: _ValueResult, main: str, shown: str, tissue: str | None
    ) -> _ValueResult:
        """A label numbered as one of several clusters of a type ("CD4 TCM_2", "CD56-dim
        Natural Killer_3") read without the number, when that names a type and the number
        named nothing more: the value was unmatched, or its term is the same or more
        general ("Alveolar type_2", where the number names the type, is kept)."""
        less = self._value_less(_CLUSTER_INDEX, main, tissue)
        if less is None and result.status == "unmatched":
            less = self._value_less(_SUBTYPE_NUMBER, main, tissue, with_group=3)
            less = less or self._value_less(_GLUED_NUMBER, main, tissue, with_group=3)
        if less is None:
            return result
        found, alt = less
        assert alt.hit is not None
        if result.status != "unmatched" and not (
            result.hit is not None
            and (
                alt.hit.cl_id == result.hit.cl_id
                or self.ontology.is_ancestor(result.hit.cl_id, alt.hit.cl_id)
            )
        ):
            return result
        note = f'cluster number "{found.group(2)}" left aside'
        return replace(alt, hit=replace(alt.hit, text=shown, notes=(*alt.hit.notes, note)))


def _without_markers(words: list[str]) -> list[str]:
    """The words less markers and levels, a word before a level being a marker ("glya
    negative")."""
    return [
        w
        for k, w in enumerate(words)
        if not (is_marker(w) or w in _LEVELS or (k + 1 < len(words) and words[k + 1] in _LEVELS))
    ]


def _holds_list_mark(raw: str) -> bool:
    """Whether a value holds a list mark, not counting a comma after markers alone
    ("Kit-low, CD34-positive eosinophil progenitor" is one type)."""
    if not _LIST_MARK.search(raw):
        return False
    parts = _LIST_SPLIT.split(raw)
    for k in range(1, len(parts), 2):
        before = normalise_text(parts[k - 1]).split()
        if parts[k].strip() != "," or not before:
            return True
        if not all(is_marker(w) or w in _LEVELS for w in before):
            return True
    return False


def _without_type_number(main: str) -> tuple[str, str, bool]:
    """A label less its "type N" (its head, the "type N", whether it came first):
    "Alveolar Epithelial Type 1", "type 1 myenteric plexus glia"."""
    found = _TYPE_SUFFIX.search(main)
    if found:
        return main[: found.start()], found.group(1), False
    found = _TYPE_PREFIX.match(main)
    if found:
        return main[found.end() :], found.group(1), True
    return main, "", False


def _layer_range(words: list[str], k: int) -> bool:
    """Whether word k is the second layer of a cortical layer range ("L2/3": "l2 3")."""
    return k > 0 and words[k].isdigit() and _LAYER.fullmatch(words[k - 1]) is not None


def _markers_only(member: str) -> bool:
    """Whether a list member is markers alone ("CD8a" of "CD8a/b")."""
    if _MARKER_OR_NUMBER.search(member) is None:
        return False  # cheap test first: no marker without a digit or "+"
    words = normalise_text(member).split()
    return not words or all(is_marker(w) or w in _LEVELS for w in words)


def _may_lack_noun(member: str) -> bool:
    """Whether a list member may leave out its noun: a label of a few words, no marker or
    number, that does not end in "cell(s)" ("Natural Killer", not "T cells", "CD4+")."""
    words = member.split()
    return (
        0 < len(words) <= _MAX_NOUNLESS
        and not words[-1].lower().startswith("cell")
        and _MARKER_OR_NUMBER.search(member) is None
    )
