"""Differential expression per Cell Ontology term: per-study tests and their meta-analysis."""

from scatlas.de.meta import agreement, bh, fisher_combine, meta_analyse, signed_z, stouffer_combine
from scatlas.de.per_study import (
    LOGFC_UNITS,
    METHODS,
    R_METHODS,
    RESULT_COLUMNS,
    StudyDE,
    detected_filter,
    log1p_cp10k,
    study_de,
    test_study,
    wilcoxon,
)
from scatlas.de.pseudobulk import Units, make_units
from scatlas.de.rcall import RError
from scatlas.de.run import (
    CONTRASTS,
    STUDY_COLUMNS,
    SUMMARY_COLUMNS,
    resolve_method,
    run_de,
    siblings_of,
    term_file_name,
)

__all__ = [
    "CONTRASTS",
    "LOGFC_UNITS",
    "METHODS",
    "RESULT_COLUMNS",
    "R_METHODS",
    "RError",
    "STUDY_COLUMNS",
    "SUMMARY_COLUMNS",
    "StudyDE",
    "Units",
    "agreement",
    "bh",
    "detected_filter",
    "fisher_combine",
    "log1p_cp10k",
    "make_units",
    "meta_analyse",
    "resolve_method",
    "run_de",
    "siblings_of",
    "signed_z",
    "stouffer_combine",
    "study_de",
    "term_file_name",
    "test_study",
    "wilcoxon",
]
