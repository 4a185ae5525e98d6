"""Differential expression per Cell Ontology term: per-study tests and their meta-analysis."""

from .meta import agreement, bh, fisher_combine, meta_analyse, signed_z, stouffer_combine
from .per_study import METHODS, RESULT_COLUMNS, log1p_cp10k, test_study, wilcoxon
from .run import SUMMARY_COLUMNS, run_de, term_file_name

__all__ = [
    "METHODS",
    "RESULT_COLUMNS",
    "SUMMARY_COLUMNS",
    "agreement",
    "bh",
    "fisher_combine",
    "log1p_cp10k",
    "meta_analyse",
    "run_de",
    "signed_z",
    "stouffer_combine",
    "term_file_name",
    "test_study",
    "wilcoxon",
]
