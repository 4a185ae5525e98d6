"""What the matcher finds and says: confidence weights, the words that steer it, and the
records of a match (its evidence)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

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
    "BROAD": 0.6,
    "RELATED": 0.5,
    "variant": 0.85,  # a name with a conventional word variant ("progenitor" ~ "precursor")
    "name words": 0.7,  # the words of the text inside names: their common ancestor
}
#: synonym scopes in the order they are trusted (OBO: EXACT > NARROW > BROAD > RELATED)
SCOPE_ORDER = ("name", "EXACT", "NARROW", "BROAD", "RELATED")
_STRONG = frozenset({"override", "id", "name", "EXACT", "abbreviation", "tissue term"})
_PARTIAL = 0.9  # the phrase is part of a longer value
_REORDERED = 0.95  # the words match a name in another order
_MIXTURE = 0.8  # lowest common ancestor of a list of types
_TISSUE_DECIDED = 0.95
_SPECIALISED = 0.95
_NARROWED = 0.95  # words beside a phrase read as naming a kind of its term
READ_WITH_NOUN = "read as "  # the note of a label read with the noun it leaves out
_COMPOSED = 0.95  # "<anatomy> <cell type>" read as CL's term for that type in that anatomy
_KIND = ("is_a",)  # the relation that says what a cell is (mixtures, composition)
_POSITION = frozenset({"of", "from", "in"})  # "<cell type> of/from/in <anatomy>"
TOP_K = 3  # candidates kept in a mapping's evidence, best first
MAX_TEXT_CHARS = 2000  # longer text is cut (and the cut logged)
_MEMO_LIMIT = 200_000  # entries a matcher's memo keeps; past it, results are not kept
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
# words that say a value (or a list item) names no cell type
_NONE_WORDS = frozenset({"doublet", "multiplet", "contaminant", "contamination"})
# words that say the type is not known: "unknown cells" names none, but "unknown immune
# cells" names its class (immune cell), and a list with an unknown member names the class
# of all its members ("mast cells and unknown immune cells" -> leukocyte)
_UNKNOWN_WORDS = frozenset(
    {
        "unknown", "unassigned", "unclassified", "undetermined", "unidentified",
        "unannotated", "ambiguous", "unresolved", "other", "unspecified",
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
    for unmapped cells ``evidence`` says why (the competing hits when ambiguous).
    ``candidates``: the best `TOP_K` terms considered, with their confidence, best first
    (the answer, when there is one, among them), so a curator can pick another."""

    match: Match | None
    evidence: str
    status: str
    candidates: tuple[Match, ...] = ()

    def candidates_text(self) -> str:
        """ "CL:0000236 B cell (0.95); CL:0000785 mature B cell (0.86)" """
        return "; ".join(f"{m.cl_id} {m.cl_label} ({m.confidence:.2f})" for m in self.candidates)


@dataclass(frozen=True)
class _Entry:
    cl_id: str
    scope: str
    text: str  # the name, synonym or table text as written
    tissue: str = ""  # tissue-specific table rows only
    source: str = ""  # table file:line
    implied: str = ""  # words of the name left out of this key ("alpha beta")
    variant: str = ""  # the word variant of this key ("progenitor read as precursor")

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
    chosen: bool = False  # named in a curated ontology-class field: kept as named

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


def _remember(memo: dict, key: object, value: T, limit: int = _MEMO_LIMIT) -> T:
    """``value``, kept in ``memo`` under ``key`` while the memo holds fewer than ``limit``
    entries (a bound on the matcher's memory over millions of distinct texts)."""
    if len(memo) < limit:
        memo[key] = value
    return value
