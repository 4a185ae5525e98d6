"""The curated tables in the package data (scatlas/data/ontology/) that the matcher uses besides CL itself.

* ``abbreviations.tsv`` (text, cl_id, cl_label, comment): lab shorthand and abbreviations
  (NK, Treg, HSC, OPC, ...) -> CL term, valid in any tissue.
* ``tissue_terms.tsv`` (tissue, text, cl_id, cl_label, comment): words whose meaning depends
  on the tissue ("beta" in the pancreas, "HSC" in the liver, "KC" in skin or liver).
* ``implied_terms.tsv`` (tissue, text, cl_id, cl_label, comment): qualifiers that, used
  alone as a label in that tissue, imply the cell type they qualify (liver zonation:
  "pericentral" alone in the liver is a pericentral hepatocyte). They count only when the
  value names no cell type itself ("pericentral LSEC" stays an endothelial cell).
* ``anatomy_abbreviations.tsv`` (text, expansion, comment, source): anatomical and
  histological abbreviations as papers use them (IFE, ORS, TAL, DCT, SVZ, BM, ...), read
  in full inside a label ("Basal IFE" -> "basal interfollicular epidermis").
* ``word_forms.tsv`` (text, form, comment, source): an anatomical adjective and the noun
  CL's names may use instead ("medullary" / "medulla", "renal" / "kidney"), read as one
  word when a label's words are looked for in names.
* ``tissues.tsv`` (tissue, uberon, words, parts, comment): the words that name a tissue or
  organ ("lung; pulmonary"), ``!phrase`` for phrases that do not ("!blood vessel"), a
  combining form glued to a name as ``form-`` ("entero-": enteroendocrine cell), the
  words of its parts (optional: "cerebellum" is in the brain, yet a brain astrocyte is not
  a cerebellar one), with the UBERON id that CL's ``part_of`` links use.

Every row is general lab knowledge; ``abbreviations.tsv``, ``tissue_terms.tsv`` and
``anatomy_abbreviations.tsv`` and ``word_forms.tsv`` name a published source per row in ``source`` (required); a row naming a term that
the loaded ontology lacks is skipped with a warning (a CL subset need not hold them all),
a malformed row raises `InputError` naming file, line and field.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from scatlas.errors import InputError
from scatlas.ontology.graph import CellOntology
from scatlas.ontology.text import normalise_text
from scatlas.package_data import ontology_dir

log = logging.getLogger(__name__)

RESOURCES = ontology_dir()
ABBREVIATIONS = RESOURCES / "abbreviations.tsv"
TISSUE_TERMS = RESOURCES / "tissue_terms.tsv"
TISSUES = RESOURCES / "tissues.tsv"
IMPLIED_TERMS = RESOURCES / "implied_terms.tsv"
ANATOMY_ABBREVIATIONS = RESOURCES / "anatomy_abbreviations.tsv"
WORD_FORMS = RESOURCES / "word_forms.tsv"
POPULATION_CODES = RESOURCES / "population_codes.tsv"

_CL_ID = re.compile(r"^CL:\d{7}\Z", re.ASCII)


@dataclass(frozen=True)
class TableEntry:
    """One curated text -> term row (``tissue`` empty for abbreviations)."""

    text: str
    key: str  # normalised text
    cl_id: str
    tissue: str
    source: str  # "file:line"


@dataclass(frozen=True)
class Tissue:
    name: str
    uberon: str
    phrases: tuple[str, ...]  # normalised: the tissue's words, then its parts'
    not_phrases: tuple[str, ...]  # normalised phrases that do not name the tissue
    own: tuple[str, ...] = ()  # normalised words naming the whole tissue (not a part)
    prefixes: tuple[str, ...] = ()  # combining forms glued to a name ("entero")
    within: str = ""  # the tissue this one is part of ("colon" within "large intestine")


def _rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError("missing column", path=str(path), field=missing[0])
            return [
                (i, {k: (v or "").strip() for k, v in row.items() if k})
                for i, row in enumerate(reader, start=2)
            ]
    except OSError as exc:
        raise InputError(f"cannot read table: {exc.strerror}", path=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {exc}", path=str(path)) from exc


def _term_rows(
    path: Path,
    ontology: CellOntology,
    with_tissue: bool,
    tissues: dict[str, Tissue] | None,
    needs_source: bool = True,
) -> list[TableEntry]:
    cols = ("tissue", "text", "cl_id") if with_tissue else ("text", "cl_id")
    cols += ("source",) if needs_source else ()
    out: list[TableEntry] = []
    seen: dict[tuple[str, str], str] = {}
    skipped = 0
    for line, row in _rows(path, cols):
        text, cl_id = row["text"], row["cl_id"]
        tissue = row.get("tissue", "") if with_tissue else ""
        key = normalise_text(text)
        if not key:
            raise InputError(f"line {line}: empty text", path=str(path), field="text")
        if needs_source and not row.get("source"):
            raise InputError(f"line {line}: no source", path=str(path), field="source")
        if not _CL_ID.match(cl_id):
            raise InputError(
                f"line {line}: {cl_id!r} is not a CL id", path=str(path), field="cl_id"
            )
        if with_tissue and (tissues is None or tissue not in tissues):
            raise InputError(
                f"line {line}: unknown tissue {tissue!r} (not in {TISSUES.name})",
                path=str(path),
                field="tissue",
            )
        current = ontology.resolve(cl_id)
        if current is None:
            skipped += 1
            log.warning(
                "%s line %d: %s is not a current term of %s; row skipped",
                path.name,
                line,
                cl_id,
                ontology.source or "the ontology",
            )
            continue
        if seen.get((tissue, key), current) != current:
            raise InputError(
                f"line {line}: {text!r} already maps to {seen[(tissue, key)]}",
                path=str(path),
                field="text",
            )
        seen[(tissue, key)] = current
        out.append(TableEntry(text, key, current, tissue, f"{path.name}:{line}"))
    if skipped:
        log.warning(
            "%s: %d of %d rows skipped (terms not in the ontology)",
            path.name,
            skipped,
            skipped + len(out),
        )
    return out


def read_tissues(path: str | os.PathLike = TISSUES) -> dict[str, Tissue]:
    """Tissue name -> `Tissue`."""
    path = Path(path)
    out: dict[str, Tissue] = {}
    for line, row in _rows(path, ("tissue", "uberon", "words")):
        name = row["tissue"]
        if not name or name in out:
            raise InputError(
                f"line {line}: empty or repeated tissue", path=str(path), field="tissue"
            )
        words = [w.strip() for w in row["words"].split(";") if w.strip()]
        prefixes = tuple(w[:-1].lower() for w in words if w.endswith("-") and w[:-1].isalpha())
        words = [w for w in words if not w.endswith("-")]
        phrases = tuple(normalise_text(w) for w in words if not w.startswith("!"))
        nots = tuple(normalise_text(w[1:]) for w in words if w.startswith("!"))
        if not phrases:
            raise InputError(f"line {line}: no words", path=str(path), field="words")
        parts = [w.strip() for w in row.get("parts", "").split(";") if w.strip()]
        part_phrases = tuple(normalise_text(w) for w in parts)
        within = row.get("within", "")
        out[name] = Tissue(
            name, row["uberon"], phrases + part_phrases, nots, phrases, prefixes, within
        )
    for t in out.values():
        if t.within and t.within not in out:
            raise InputError(
                f"tissue {t.name!r} is within {t.within!r}, which the table lacks",
                path=str(path),
                field="within",
            )
    return out


def read_abbreviations(
    ontology: CellOntology, path: str | os.PathLike = ABBREVIATIONS
) -> list[TableEntry]:
    """Abbreviation rows whose term the ontology has (current ids)."""
    return _term_rows(Path(path), ontology, False, None)


def read_tissue_terms(
    ontology: CellOntology,
    tissues: dict[str, Tissue],
    path: str | os.PathLike = TISSUE_TERMS,
) -> list[TableEntry]:
    """Tissue-specific rows whose term the ontology has (current ids)."""
    return _term_rows(Path(path), ontology, True, tissues)


def read_implied_terms(
    ontology: CellOntology,
    tissues: dict[str, Tissue],
    path: str | os.PathLike = IMPLIED_TERMS,
) -> list[TableEntry]:
    """Tissue-specific qualifiers that imply a cell type when used alone (current ids)."""
    return _term_rows(Path(path), ontology, True, tissues, needs_source=False)


def read_texts(path: str | os.PathLike) -> list[str]:
    """The ``text`` column of a curated table, as written (no validation of the rest)."""
    return [row["text"] for _, row in _rows(Path(path), ("text",))]


def read_anatomy_abbreviations(
    path: str | os.PathLike = ANATOMY_ABBREVIATIONS,
) -> dict[str, tuple[str, str]]:
    """Normalised one-word abbreviation -> (normalised expansion, source) ("ife" ->
    "interfollicular epidermis")."""
    return _word_expansions(Path(path))


def read_population_codes(
    path: str | os.PathLike = POPULATION_CODES,
) -> dict[str, tuple[str, str]]:
    """Normalised word of a population code -> (normalised expansion, source) ("nve" ->
    "naive", "8" -> "cd8"): ImmGen's names ("T.8Nve")."""
    return _word_expansions(Path(path))


def _word_expansions(path: Path) -> dict[str, tuple[str, str]]:
    """One word -> (its expansion, the row it comes from), every row with a source."""
    out: dict[str, tuple[str, str]] = {}
    for line, row in _rows(path, ("text", "expansion", "source")):
        key, expansion = normalise_text(row["text"]), normalise_text(row["expansion"])
        if not key or len(key.split()) != 1:
            raise InputError(f"line {line}: not one word", path=str(path), field="text")
        if not expansion:
            raise InputError(f"line {line}: empty expansion", path=str(path), field="expansion")
        if not row["source"]:
            raise InputError(f"line {line}: no source", path=str(path), field="source")
        if key in out:
            raise InputError(f"line {line}: {row['text']!r} repeated", path=str(path), field="text")
        out[key] = (expansion, f"{path.name}:{line}")
    return out


def read_word_forms(path: str | os.PathLike = WORD_FORMS) -> dict[str, tuple[str, ...]]:
    """Normalised word -> its other forms, both ways ("medullary" <-> "medulla")."""
    path = Path(path)
    out: dict[str, tuple[str, ...]] = {}
    for line, row in _rows(path, ("text", "form", "source")):
        word, form = normalise_text(row["text"]), normalise_text(row["form"])
        for value, field in ((word, "text"), (form, "form")):
            if not value or len(value.split()) != 1:
                raise InputError(f"line {line}: not one word", path=str(path), field=field)
        if word == form:
            raise InputError(f"line {line}: the form is the word", path=str(path), field="form")
        if not row["source"]:
            raise InputError(f"line {line}: no source", path=str(path), field="source")
        for a, b in ((word, form), (form, word)):
            if b not in out.get(a, ()):
                out[a] = (*out.get(a, ()), b)
    return out
