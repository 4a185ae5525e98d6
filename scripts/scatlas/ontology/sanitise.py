"""Repair the quirks of real-world OBO files that pronto's strict parser (fastobo) rejects.

Every repair is line-local, counted and reported, never silent:

* a UTF-8 byte order mark, Windows line ends and NUL bytes are removed;
* bytes that are not UTF-8 are decoded as Windows-1252 (a common editor encoding) and the
  lines are reported;
* ``xref:`` values that are bare IRIs with OBO backslash escapes, as in
  ``xref: http://neurolex.org/wiki/Category\\:Embryonic_organism`` (CL 2026 subsets), are
  unescaped and characters illegal in an IRI (spaces, quotes, braces) percent-encoded:
  fastobo reads the value as an IRI, where a backslash is not allowed;
* ``xref:`` and ``is_a:`` lines that hold nothing after the tag are dropped;
* synonym types used by terms but not declared in the header (CL 2026 subsets use
  ``OMO:0003000`` and others without a ``synonymtypedef``) are declared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote

_IRI_XREF = re.compile(r"^(xref:\s*)([a-zA-Z][a-zA-Z0-9+.-]*://\S*)(.*)$")
_EMPTY_TAG = re.compile(r"^(xref|is_a|synonym|def|name):\s*$")
# synonym: "text" SCOPE [TYPE] [xrefs]
_SYNONYM_TYPE = re.compile(r'^synonym:\s*"(?:[^"\\]|\\.)*"\s+[A-Z]+\s+([^\s\[{]+)')
_DECLARED = re.compile(r"^(synonymtypedef|subsetdef):\s*(\S+)")
# characters allowed unescaped in an IRI (RFC 3987, ASCII part) besides letters and digits
_IRI_SAFE = "-._~:/?#[]@!$&'()*+,;=%"


@dataclass
class SanitiseReport:
    """What was repaired: the number of lines per kind of repair, and a few examples."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def add(self, kind: str, line_no: int, line: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if len(self.examples) < 5:
            self.examples.append(f"line {line_no}: {kind}: {line[:120]}")

    @property
    def changed(self) -> bool:
        return bool(self.counts)

    def summary(self) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items()))


def _decode(data: bytes, report: SanitiseReport) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
        report.add("byte order mark removed", 1, "")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    lines = data.split(b"\n")
    out = []
    for i, raw in enumerate(lines, start=1):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            text = raw.decode("cp1252", errors="replace")
            report.add("non-UTF-8 bytes decoded as cp1252", i, text)
            out.append(text)
    return "\n".join(out)


def _fix_iri(iri: str) -> str:
    unescaped = re.sub(r"\\(.)", r"\1", iri)
    return quote(unescaped, safe=_IRI_SAFE)


def _clean_text(data: bytes, report: SanitiseReport) -> str:
    """Decoded text with CR line ends and NUL characters removed."""
    text = _decode(data, report)
    if "\r" in text:
        report.add("carriage returns removed", 1, "")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        report.add("NUL characters removed", 1, "")
        text = text.replace("\x00", "")
    return text


def _repair_line(line: str, i: int, report: SanitiseReport) -> str | None:
    """The line with an escaped IRI repaired; None for an empty clause (dropped)."""
    if _EMPTY_TAG.match(line):
        report.add("empty clause dropped", i, line)
        return None
    m = _IRI_XREF.match(line)
    if m:
        fixed = _fix_iri(m.group(2))
        if fixed != m.group(2):
            report.add("escaped IRI in xref repaired", i, line)
            return f"{m.group(1)}{fixed}{m.group(3)}"
    return line


def sanitise_obo(data: bytes) -> tuple[bytes, SanitiseReport]:
    """The repaired OBO text (UTF-8) and what was repaired."""
    report = SanitiseReport()
    text = _clean_text(data, report)
    out: list[str] = []
    declared: set[tuple[str, str]] = set()
    used: dict[tuple[str, str], int] = {}
    header_end: int | None = None
    for i, line in enumerate(text.split("\n"), start=1):
        if header_end is None and line.startswith("["):
            header_end = len(out)
        if d := _DECLARED.match(line):
            declared.add((d.group(1), d.group(2)))
        elif m := _SYNONYM_TYPE.match(line):
            used.setdefault(("synonymtypedef", m.group(1)), i)
        repaired = _repair_line(line, i, report)
        if repaired is not None:
            out.append(repaired)
    missing = sorted(k for k in used if k not in declared)
    if missing:
        at = len(out) if header_end is None else header_end
        # the header ends with a blank line before the first stanza: declare above it
        while at > 0 and not out[at - 1].strip():
            at -= 1
        decls = [f'{kind}: {name} "{name}"' for kind, name in missing]
        for kind, name in missing:
            report.add(f"undeclared {kind} declared", used[(kind, name)], name)
        out[at:at] = decls
    return "\n".join(out).encode("utf-8"), report
