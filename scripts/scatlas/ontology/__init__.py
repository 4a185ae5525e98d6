"""Cell Ontology: loading (pronto, with repairs of real-world OBO quirks), the term DAG,
and free-text -> CL term mapping with evidence."""

from .fetch import download_ontology
from .fields import FieldText, field_kind, parse_source_text
from .graph import DEFAULT_RELATIONS, ROOT, CellOntology, TermInfo, UnknownTermError
from .load import cached_ontology, load_ontology
from .matching import (
    MAX_TEXT_CHARS,
    WEIGHTS,
    CellMapping,
    Match,
    TermMatcher,
    split_fields,
)
from .normalise import normalise_text, tokenise
from .sanitise import sanitise_obo
from .study import (
    CELL_TYPE_COLUMNS,
    as_text,
    cached_matcher,
    map_study,
    map_texts,
    read_cell_types,
    read_overrides,
)
from .tables import read_abbreviations, read_implied_terms, read_tissue_terms, read_tissues

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
