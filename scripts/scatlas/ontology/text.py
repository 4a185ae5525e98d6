"""Normalise free text describing cells into comparable word sequences.

Term names, synonyms, curated table rows and the metadata text of samples all pass through
the same function, so "CD4+ T-cells", "CD4-positive T cell" and "cd4 pos T cells" meet at
"cd4 positive t cell". Steps, in order:

1. Unicode NFKC, lower case, dash variants to "-", Greek letters spelt out
   ("γδ T" -> "gamma delta t", "Mφ" -> "m phi"), "gammadelta"/"alphabeta" split.
2. Marker notation after a marker-like word (a gene/antigen name with a digit, e.g. CD4,
   Ly6C, CD45RA, Lgr5; or lin/kit): "+" -> positive, "++"/"hi"/"high"/"bright" -> high,
   "lo"/"low"/"dim" -> low, "int" -> intermediate, "pos"/"neg", and a trailing "-" ->
   negative ("CD4-CD8-" -> "cd4 negative cd8 negative"; "CD8-positive" keeps its hyphen),
   also after a marker told by its case before lower-casing ("MHC-II-", "IgD-", "GlyA-");
   a lineage marker written bare before a word names its positive cells ("CD4 CTL" ->
   "cd4 positive ctl"; not "CD4 CD8 DN");
   superscript carets dropped ("Ly6C^hi" = "Ly6Chi"), "±" and "+/-" -> low (dim).
3. Words glued to "cell(s)" split ("Tcells" -> "t cell"); roman numerals after
   type/class/stage/layer/grade become digits ("type II" -> "type 2").
4. Punctuation to spaces; ";", "/", "|", "&", "(" and ")" become a hard separator token,
   "," a soft one and a hyphen between words a hyphen token (see `Tokens`); each word
   singular ("monocytes" -> "monocyte") and a few British spellings American
   ("haematopoietic" -> "hematopoietic").
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

HARD = "|"  # separator token: phrases never span it (";", "/", "|", "&", parentheses)
SOFT = ","  # separator token phrases may span ("CD4-positive, alpha-beta T cell")
HYPHEN = "~"  # a hyphen between words: phrases span it ("T-cell"); it may join two types
SEPARATORS = frozenset({HARD, SOFT, HYPHEN})

_GREEK = {
    "α": "alpha",
    "β": "beta",
    "γ": "gamma",
    "δ": "delta",
    "ε": "epsilon",
    "ζ": "zeta",
    "η": "eta",
    "θ": "theta",
    "ι": "iota",
    "κ": "kappa",
    "λ": "lambda",
    "μ": "mu",
    "ν": "nu",
    "ξ": "xi",
    "π": "pi",
    "ρ": "rho",
    "σ": "sigma",
    "ς": "sigma",
    "τ": "tau",
    "υ": "upsilon",
    "φ": "phi",
    "ϕ": "phi",
    "χ": "chi",
    "ψ": "psi",
    "ω": "omega",
}
_GREEK_NAMES = frozenset(_GREEK.values())
_GREEK_RE = re.compile("[" + "".join(_GREEK) + "]")
_DASHES = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"})
_GREEK_PAIR = re.compile(r"\b(alpha|beta|gamma|delta)(alpha|beta|gamma|delta)\b")

# a marker-like word: letters then digits then at most three letters (CD4, CD11b, Ly6C,
# CD45RA, Foxp3, Lgr5, IL7R), or one of a few marker names without digits
_MARKER = r"(?:[a-z]{1,6}\d{1,4}[a-z]{0,3}|lin|kit|ckit)"
_MARKER_WORD = re.compile(rf"^{_MARKER}$")
# marker names CL writes in lower case without a digit ("langerin-negative")
_PLAIN_MARKERS = frozenset(
    {"lin", "kit", "ckit", "langerin", "calretinin", "vimentin", "metallothionein"}
)
_GLUED_LEVEL = re.compile(
    r"\b([a-z]{1,6}\d{1,4}[a-z]{0,2}?)(hi|high|bright|lo|low|dim|int|pos|neg)\b"
)
# cheap tests that a text may hold what `_GLUED_LEVEL` / the marker "-" patterns rewrite (a
# digit then a level word; a marker's end then "-"): most texts hold neither
_GLUED_HINT = re.compile(r"\d[a-z]{0,2}(?:hi|high|bright|lo|low|dim|int|pos|neg)\b")
_MINUS_HINT = re.compile(r"(?:\d[a-z]{0,3}|lin|kit)-")
_DOUBLE_PLUS = re.compile(r"(?<=[a-z0-9])\s?\+\+")
# flow-cytometry levels written as superscripts or signs: "Ly6C^hi", "CD11b^+", "CD34±"
_CARET = re.compile(r"(?<=[a-z0-9])\s?\^\s?(?=hi|high|lo|low|int|dim|bright|\+|-|pos|neg)")
_PLUS_MINUS = re.compile(r"(?<=[a-z0-9])\s?(?:±|\+/-|\+-(?![a-z0-9]))")
_PLUS = re.compile(r"(?<=[a-z0-9)])\s?\+")
# "cd4-cd8-", "cd4-cd8+" (the "+" already spelt out): the first "-" is a sign too
_CHAINED_MINUS = re.compile(
    rf"\b({_MARKER})-(?={_MARKER}(?:-|\s?positive\b|\s?negative\b|\s?high\b))"
)
_TRAILING_MINUS = re.compile(rf"\b({_MARKER})-(?=$|[\s,;/|)(])")
# before lower case: a word glued to a "-" that ends it ("MHC-II- monocyte", "IgD- CD38+",
# "GlyA-", "Erythroid_CD34-"), not a suspended hyphen ("T- and B-cells")
_CASED_MINUS = re.compile(
    r"(?<![\w.-])([A-Za-z][\w.]*(?:-[\w.]+)*)-(?=$|[,;/|)(]|\s(?!\s*(?:and|or|to|&)\b))"
)
# lineage markers written bare before a word: "cd4 ctl", "cd14 mono" (see `_bare_lineage`)
_BARE_LINEAGE = re.compile(
    r"(?<![\w-])(cd3|cd4|cd8|cd14|cd16|cd19|cd20)\s+"
    r"(?!(?:positive|negative|high|low|intermediate|hi|lo|int|dim|bright|pos|neg|and|or|"
    r"cd\d|[a-z]{1,6}\d)\b)([a-z])"
)
_CASED_HINT = re.compile(r"\w-(?:$|[\s,;/|)(])")  # a cheap test for `_CASED_MINUS`
_GLUED_CELL = re.compile(r"\b([a-z0-9]{1,3})(cells?)\b")
_ROMAN = {"i": "1", "ii": "2", "iii": "3", "iv": "4", "v": "5", "vi": "6", "vii": "7"}
_ROMAN_HINT = re.compile(r"type|class|stage|layer|grade|group|lamina")
_ROMAN_RE = re.compile(
    r"\b(type|class|stage|layer|grade|group|lamina)[\s-]+(i{1,3}|iv|vi{0,2}|v)([ab]?)\b"
)
_HARD_CHARS = frozenset(";/|&()[]{}")
# a separator character, or a word (a run of letters and digits)
_TOKEN = re.compile(r"[,~;/|&()\[\]{}]|[^\W_]+")
_WORD_HYPHEN = re.compile(r"(?<=\w)-+(?=\w)")
_WORD_SPLIT = re.compile(r"[\W_]+")

_LEVEL_WORDS = {
    "pos": "positive",
    "positive": "positive",
    "neg": "negative",
    "negative": "negative",
    "hi": "high",
    "high": "high",
    "bright": "high",
    "bri": "high",
    "lo": "low",
    "low": "low",
    "dim": "low",
    "int": "intermediate",
    "intermediate": "intermediate",
}
# "glia" is the cells' collective noun: "Bergmann glia" = "Bergmann glial cell"
_IRREGULAR = {"cells": "cell", "nuclei": "nucleus", "mice": "mouse", "glia": "glial"}
_SPELLING = (
    (re.compile(r"^haem"), "hem"),
    (re.compile(r"^oesoph"), "esoph"),
    (re.compile(r"^foet"), "fet"),
    (re.compile(r"^leuc"), "leuk"),
    (re.compile(r"^paed"), "ped"),
    (re.compile(r"(?<=[a-z]{3})our$"), "or"),
    (re.compile(r"aemia$"), "emia"),
)


def singular(token: str) -> str:
    """Crude singular form of one word; applied alike to terms and query text."""
    if token in _IRREGULAR:
        return _IRREGULAR[token]
    if len(token) <= 3 or not token.isalpha():
        return token
    if token.endswith("ies") and len(token) > 4:
        return token[:-3] + "y"
    if token.endswith(("sses", "xes", "zes")):
        return token[:-2]
    if token.endswith("s") and not token.endswith(("ss", "us", "is", "as", "ys", "os")):
        return token[:-1]
    return token


@functools.lru_cache(maxsize=200_000)
def _word(token: str) -> str:
    return _spelling(singular(token))


def _spelling(token: str) -> str:
    if len(token) <= 4:
        return token
    for pattern, repl in _SPELLING:
        token = pattern.sub(repl, token)
    return token


def _marker_minus(found: re.Match[str]) -> str:
    """A trailing "-" after a marker's name written as such is a sign: a digit, a capital
    past the first letter ("CD34", "IgD", "MHC-II", "Vdelta6.3") or a plain marker name
    ("langerin"); else kept."""
    word = found.group(1)
    parts = re.split(r"[_-]", word)
    name = parts[-1]
    if name.lower() in _GREEK_NAMES and len(parts) > 1:
        name = parts[-2] + name  # "CD8_alpha-", "CD8-alpha-": CD8 alpha chain
    marker = any(c.isdigit() for c in name) or any(c.isupper() for c in name[1:])
    marker = marker or name.lower() in _PLAIN_MARKERS
    return f"{word} negative" if marker else found.group(0)


def _bare_lineage(text: str) -> str:
    """A lineage marker without a sign before a word names its positive cells ("CD4
    cytotoxic T", "CD14 Mono"); not before a level, another marker or a conjunction."""
    return _BARE_LINEAGE.sub(_lineage_positive, text)


def _lineage_positive(found: re.Match[str]) -> str:
    before = found.string[: found.start()].split()
    if before and _MARKER_WORD.match(before[-1]):
        return found.group(0)  # "CD4 CD8 DN": markers listed, no sign said
    return f"{found.group(1)} positive {found.group(2)}"


def _marker_levels(text: str) -> str:
    """Marker levels spelt out in lower-case text (step 2 of the module docstring)."""
    if "^" in text:
        text = _CARET.sub("", text)
    if "±" in text or "+/-" in text or "+-" in text:
        text = _PLUS_MINUS.sub(" low ", text)  # partly positive: dim
    if _GLUED_HINT.search(text):
        text = _GLUED_LEVEL.sub(r"\1 \2", text)
    if "+" in text:
        text = _DOUBLE_PLUS.sub(" high ", text)
        text = _PLUS.sub(" positive ", text)
    if "-" in text and _MINUS_HINT.search(text):
        text = _CHAINED_MINUS.sub(r"\1 negative ", text)
        text = _TRAILING_MINUS.sub(r"\1 negative", text)
    if "cd" in text:
        text = _bare_lineage(text)
    return text


def _prepare(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(_DASHES)
    if "-" in text and _CASED_HINT.search(text):
        text = _CASED_MINUS.sub(_marker_minus, text)
    text = text.lower()
    if not text.isascii():
        text = _GREEK_RE.sub(lambda m: f" {_GREEK[m.group()]} ", text)
    if "alpha" in text or "beta" in text or "gamma" in text or "delta" in text:
        text = _GREEK_PAIR.sub(r"\1 \2", text)
    text = _marker_levels(text)
    if "cell" in text:
        text = _GLUED_CELL.sub(r"\1 \2", text)
    if _ROMAN_HINT.search(text):
        text = _ROMAN_RE.sub(lambda m: f"{m.group(1)} {_ROMAN[m.group(2)]}{m.group(3)}", text)
    if "-" in text or HYPHEN in text:
        text = _WORD_HYPHEN.sub(f" {HYPHEN} ", text.replace(HYPHEN, "-"))
    return text


@dataclass(frozen=True)
class Tokens:
    """Normalised words of a text with separator tokens kept (`HARD`, `SOFT`, `HYPHEN`)."""

    items: tuple[str, ...]

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(t for t in self.items if t not in SEPARATORS)

    def key(self) -> str:
        return " ".join(self.words)


def tokenise(text: str) -> Tokens:
    """`Tokens` of ``text`` (see the module docstring for the steps)."""
    items: list[str] = []
    for piece in _TOKEN.findall(_prepare(text or "")):
        if piece in (SOFT, HYPHEN):
            if items and items[-1] not in SEPARATORS:
                items.append(piece)
        elif piece in _HARD_CHARS:
            if items and items[-1] in SEPARATORS:
                items[-1] = HARD
            elif items:
                items.append(HARD)
        else:
            items.append(_word(piece))
    while items and items[-1] in SEPARATORS:
        items.pop()
    while items and items[0] in SEPARATORS:
        items.pop(0)
    return Tokens(tuple(_canonical_levels(items)))


def _canonical_levels(items: list[str]) -> list[str]:
    """ "cd8 pos" -> "cd8 positive", "cd56 bright" -> "cd56 high" (only after markers)."""
    out = list(items)
    for i in range(1, len(out)):
        prev = out[i - 2] if out[i - 1] == HYPHEN and i >= 2 else out[i - 1]
        if out[i] in _LEVEL_WORDS and _MARKER_WORD.match(prev):
            out[i] = _LEVEL_WORDS[out[i]]
    return out


# text whose tokens are its words one by one: ASCII letters, digits, spaces and "_.:#",
# with nothing `_prepare` rewrites (roman numerals, Greek letter names, "cell" glued to a
# word, levels written as words or glued to a marker)
_PLAIN = re.compile(r"^[a-z0-9_ .:#]+$")
_NOT_PLAIN = re.compile(
    rf"{_ROMAN_HINT.pattern}|alpha|beta|gamma|delta|cell|{_GLUED_LEVEL.pattern}"
    rf"|\b(?:{'|'.join(_LEVEL_WORDS)})\b"
)


def plain_words(text: str) -> list[str] | None:
    """The normalised words of ``text`` when reading them takes no rewriting (plain
    identifiers and titles: "GSM1000123", "sample 12", "BON_1_3"): the same words as
    `tokenise`, read cheaply; None for any other text."""
    low = text.lower()
    if not _PLAIN.match(low) or _NOT_PLAIN.search(low):
        return None
    return [_word(w) for w in _WORD_SPLIT.split(low) if w]


def normalise_text(text: str) -> str:
    """The normalised words of ``text`` joined by single spaces (separators dropped).

    "T-cells" -> "t cell"; "CD4+ T Lymphocytes" -> "cd4 positive t lymphocyte".
    """
    return tokenise(text).key()


def is_marker(word: str) -> bool:
    """True for a normalised word that looks like a marker (CD4, Ly6C, lin, ...)."""
    return bool(_MARKER_WORD.match(word))
