"""Cell Ontology: loading (pronto), the term DAG, and free-text -> CL term matching."""

from .graph import DEFAULT_RELATIONS, ROOT, CellOntology, TermInfo, UnknownTermError
from .load import cached_ontology, load_ontology
from .matching import WEIGHTS, CellMapping, Match, TermMatcher, normalise_text, split_fields
from .study import CELL_TYPE_COLUMNS, cached_matcher, map_study, read_cell_types, read_overrides

__all__ = [
    "CELL_TYPE_COLUMNS",
    "DEFAULT_RELATIONS",
    "ROOT",
    "WEIGHTS",
    "CellMapping",
    "CellOntology",
    "Match",
    "TermInfo",
    "TermMatcher",
    "UnknownTermError",
    "cached_matcher",
    "cached_ontology",
    "load_ontology",
    "map_study",
    "normalise_text",
    "read_cell_types",
    "read_overrides",
    "split_fields",
]
