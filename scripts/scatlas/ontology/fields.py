"""Split a cell's free text into fields and say what each field is.

``source_text`` (the expression stage's ``obs`` column) is "title | source name |
characteristics", empty parts left out, characteristics being "key: value; key: value".
Each value becomes a `FieldText` whose ``kind`` decides how much it is trusted when fields
disagree (an author's cell-type column beats a sample title) and whether it is matched at
all (a genotype or an age never names the cell type; a tissue field gives the context).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

#: trust of a field kind when fields disagree: higher wins
PRIORITY: dict[str, int] = {
    "override": 7,
    "ontology term": 6,  # a curated Cell Ontology class column: a term chosen, by name
    "cell type": 5,
    "characteristic": 4,
    "source name": 3,
    "title": 2,
    "tissue": 1,
}
KINDS = (*PRIORITY, "ignored")

_PART_SEP = re.compile(r"\s+\|\s+|\s*\|\s*(?=\S)")
_PAIR_SEP = re.compile(r";\s*")
_KEY_VALUE = re.compile(r"^([^:;|]{1,60}?)\s*:\s*(.*)$", re.S)
_ID_LIKE = re.compile(r"^[A-Z][A-Za-z]{0,9}$")  # "CL" in "CL:0000084" is a prefix, not a key

_CELL_TYPE_KEY = re.compile(
    r"^(cell[\s_.-]*(type|types|population|subtype|sub[\s_-]?type|class|identity|lineage|"
    r"state|annotation|label|ontology class)|celltype|cell|cells|cell name|"
    r"(free|author|cluster|manual|original)[\s_-]*(annotation|cell[\s_-]*type|label)s?|"
    r"(sorted|facs|sorting|selected)[\s_-]*(population|cells?|cell[\s_-]*type|gate)?|"
    r"population|cluster|annotation|phenotype|immunophenotype|marker|markers)$"
)
# a column of curated ontology classes ("cell_ontology_class", "cell type ontology term"):
# its value is a term chosen by name, never specialised by the tissue
_ONTOLOGY_KEY = re.compile(
    r"^(cell ontology( class| term| label| name)?|cell type ontology( term| label| class)?|"
    r"cl (term|class|label|name)|ontology (class|term|label))$"
)
_TISSUE_KEY = re.compile(
    r"^(tissue|tissues|organ|organism part|tissue type|tissue source|source tissue|"
    r"anatomical (site|entity|location)|body site|sampling site|biopsy site|site|"
    r"region|compartment|organ part|tissue of origin)$"
)
# keys whose values never name the cell type (they do mention cells: "cell line: HeLa",
# "disease: B cell lymphoma", "treatment: T cell depletion")
_IGNORED_KEY = re.compile(
    r"^(organism|species|taxon|strain|background|genetic background|sex|gender|age|"
    r"age group|developmental stage|dev stage|stage|time|time ?point|day|donor|"
    r"individual|patient|subject|mouse|animal|id|sample|sample id|replicate|batch|"
    r"run|lane|plate|well|barcode|library|protocol|platform|instrument|chemistry|"
    r"genotype|genotype/variation|variation|knockout|transgene|reporter|rnai|sirna|"
    r"shrna|sgrna|cell line|cell line name|cell lines|clone|passage|treatment|"
    r"treated with|stimulation|stimulus|agent|drug|compound|dose|concentration|"
    r"infection|virus|ebv strain|antibody|chip antibody|chip|ip|disease|disease state|"
    r"diagnosis|condition|status|health state|tumor|tumour|cancer type|ethnicity|race|"
    r"bmi|weight|height|smoking|molecule|extract|extract protocol|label protocol|"
    r"hybridization|scan|data processing|description|comment|group|pool|sequencing)$"
)


@dataclass(frozen=True)
class FieldText:
    """One piece of free text about a cell, with the field it came from and its kind
    (one of `KINDS`)."""

    field: str
    text: str
    kind: str

    @property
    def priority(self) -> int:
        return PRIORITY.get(self.kind, -1)


@functools.lru_cache(maxsize=10_000)
def field_kind(key: str) -> str:
    """The kind of a characteristics key ("cell type" -> "cell type", "age" -> "ignored")."""
    k = re.sub(r"\s+", " ", key.strip().lower().replace("_", " "))
    if _ONTOLOGY_KEY.match(k):
        return "ontology term"
    if _CELL_TYPE_KEY.match(k):
        return "cell type"
    if _TISSUE_KEY.match(k):
        return "tissue"
    if _IGNORED_KEY.match(k):
        return "ignored"
    return "characteristic"


def _pairs(part: str) -> list[tuple[str, str]] | None:
    """The "key: value" pairs of a characteristics part, or None when it is not one."""
    if ":" not in part:
        return None  # no key anywhere: a title or source name
    pairs = []
    for piece in _PAIR_SEP.split(part.strip()):
        piece = piece.strip()
        if not piece:
            continue
        m = _KEY_VALUE.match(piece)
        if m is not None and _ID_LIKE.match(m.group(1)) and m.group(2)[:1].isdigit():
            m = None
        if m is None:
            if not pairs:
                return None
            # a value with a ";" inside: glue it to the previous pair
            key, value = pairs[-1]
            pairs[-1] = (key, f"{value}; {piece}")
            continue
        pairs.append((m.group(1).strip(), m.group(2).strip()))
    return pairs or None


def parse_source_text(source_text: str) -> list[FieldText]:
    """The fields of "title | source name | characteristics" (parts optional).

    Parts made of "key: value" pairs are characteristics; of the plain parts the last one
    before the characteristics is the source name and earlier ones are titles.
    """
    parts = [p for p in map(str.strip, _PART_SEP.split(source_text or "")) if p]
    parsed = [(p, _pairs(p)) for p in parts]
    plain = [i for i, (_, pairs) in enumerate(parsed) if pairs is None]
    out: list[FieldText] = []
    for i, (part, pairs) in enumerate(parsed):
        if pairs is None:
            kind = "source name" if plain and i == plain[-1] else "title"
            out.append(FieldText(kind, part, kind))
            continue
        for key, value in pairs:
            if value:
                out.append(FieldText(key, value, field_kind(key)))
    return out
