r"""Accession patterns. Text from the outside world becomes a path or a command argument
only after it has been validated here: the whole string (no trailing newline), ASCII only
(``\d`` would take Arabic-Indic and other Unicode digits)."""

from __future__ import annotations

import re

PATTERNS: dict[str, re.Pattern[str]] = {
    "gse": re.compile(r"GSE\d{1,9}", re.ASCII),
    "gsm": re.compile(r"GSM\d{1,9}", re.ASCII),
    "gpl": re.compile(r"GPL\d{1,9}", re.ASCII),
    "arrayexpress": re.compile(r"E-[A-Z]{4}-\d{1,9}", re.ASCII),
    "run": re.compile(r"[SED]RR\d{6,11}", re.ASCII),
    "experiment": re.compile(r"[SED]RX\d{6,11}", re.ASCII),
    "sample": re.compile(r"[SED]RS\d{6,11}", re.ASCII),
    "sra_study": re.compile(r"[SED]RP\d{6,11}", re.ASCII),
    "biosample": re.compile(r"SAM[NED][A-Z]?\d{1,12}", re.ASCII),
    "bioproject": re.compile(r"PRJ[NED][A-Z]\d{1,12}", re.ASCII),
}

STUDY_KINDS = ("gse", "arrayexpress")


class AccessionError(ValueError):
    """An accession that does not match its pattern."""


def is_valid(value: str, kind: str) -> bool:
    return isinstance(value, str) and PATTERNS[kind].fullmatch(value) is not None


def validate(value: str, kind: str, *, context: str = "") -> str:
    """Return ``value`` stripped if it matches ``kind``'s pattern, else raise AccessionError."""
    v = (value or "").strip()
    if PATTERNS[kind].fullmatch(v) is None:
        where = f" ({context})" if context else ""
        raise AccessionError(
            f"{kind} accession {value!r} does not match {PATTERNS[kind].pattern}{where}"
        )
    return v


def validate_study(value: str, *, context: str = "") -> str:
    """A study is a GEO series or an ArrayExpress experiment."""
    v = (value or "").strip()
    if any(PATTERNS[k].fullmatch(v) for k in STUDY_KINDS):
        return v
    where = f" ({context})" if context else ""
    raise AccessionError(
        f"study accession {value!r} is neither a GEO series nor an ArrayExpress accession{where}"
    )


def study_source(study: str) -> str:
    """'geo' or 'arrayexpress'."""
    return "geo" if PATTERNS["gse"].fullmatch(study) else "arrayexpress"
