"""Cell Ontology: loading (pronto, with repairs of real-world OBO quirks), the term DAG,
and free-text -> CL term mapping with evidence."""

from scatlas.ontology.fetch import download_ontology
from scatlas.ontology.fields import FieldText, field_kind, parse_source_text
from scatlas.ontology.graph import DEFAULT_RELATIONS, ROOT, CellOntology, TermInfo, UnknownTermError
from scatlas.ontology.load import cached_ontology, load_ontology
from scatlas.ontology.matching import (
    MAX_TEXT_CHARS,
    WEIGHTS,
    CellMapping,
    Match,
    TermMatcher,
    split_fields,
)
from scatlas.ontology.sanitise import sanitise_obo
from scatlas.ontology.study import (
    CELL_TYPE_COLUMNS,
    as_text,
    cached_matcher,
    map_study,
    map_texts,
    read_cell_types,
    read_overrides,
)
from scatlas.ontology.tables import (
    read_abbreviations,
    read_implied_terms,
    read_tissue_terms,
    read_tissues,
)
from scatlas.ontology.text import normalise_text, plain_words, tokenise

__all__ = [
    "CELL_TYPE_COLUMNS",
    "DEFAULT_RELATIONS",
    "MAX_TEXT_CHARS",
    "ROOT",
    "WEIGHTS",
    "CellMapping",
    "CellOntology",
    "FieldText",
    "Match",
    "TermInfo",
    "TermMatcher",
    "UnknownTermError",
    "as_text",
    "cached_matcher",
    "cached_ontology",
    "download_ontology",
    "field_kind",
    "load_ontology",
    "map_study",
    "map_texts",
    "normalise_text",
    "parse_source_text",
    "plain_words",
    "read_abbreviations",
    "read_cell_types",
    "read_implied_terms",
    "read_overrides",
    "read_tissue_terms",
    "read_tissues",
    "sanitise_obo",
    "split_fields",
    "tokenise",
]
