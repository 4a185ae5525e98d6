"""Accession patterns. Text from the outside world becomes a path or a command argument
only after it has been validated here."""

from __future__ import annotations

import re

PATTERNS: dict[str, re.Pattern[str]] = {
    "gse": re.compile(r"^GSE\d{1,9}$"),
    "gsm": re.compile(r"^GSM\d{1,9}$"),
    "gpl": re.compile(r"^GPL\d{1,9}$"),
    "arrayexpress": re.compile(r"^E-[A-Z]{4}-\d{1,9}$"),
    "run": re.compile(r"^[SED]RR\d{6,11}$"),
    "experiment": re.compile(r"^[SED]RX\d{6,11}$"),
    "sample": re.compile(r"^[SED]RS\d{6,11}$"),
    "sra_study": re.compile(r"^[SED]RP\d{6,11}$"),
    "biosample": re.compile(r"^SAM[NED][A-Z]?\d{1,12}$"),
    "bioproject": re.compile(r"^PRJ[NED][A-Z]\d{1,12}$"),
}

STUDY_KINDS = ("gse", "arrayexpress")


class AccessionError(ValueError):
    """An accession that does not match its pattern."""


def is_valid(value: str, kind: str) -> bool:
    return bool(PATTERNS[kind].match(value or ""))


def validate(value: str, kind: str, *, context: str = "") -> str:
    """Return ``value`` stripped if it matches ``kind``'s pattern, else raise AccessionError."""
    v = (value or "").strip()
    if not PATTERNS[kind].match(v):
        where = f" ({context})" if context else ""
        raise AccessionError(
            f"{kind} accession {value!r} does not match {PATTERNS[kind].pattern}{where}"
        )
    return v


def validate_study(value: str, *, context: str = "") -> str:
    """A study is a GEO series or an ArrayExpress experiment."""
    v = (value or "").strip()
    if any(PATTERNS[k].match(v) for k in STUDY_KINDS):
        return v
    where = f" ({context})" if context else ""
    raise AccessionError(
        f"study accession {value!r} is neither a GEO series nor an ArrayExpress accession{where}"
    )


def study_source(study: str) -> str:
    """'geo' or 'arrayexpress'."""
    return "geo" if PATTERNS["gse"].match(study) else "arrayexpress"
