"""An answer at the level the neighbours support: back off to the common ancestor.

When a cell's winner is not clear (its margin over the runner-up is below ``min_margin``),
the competing types are those whose score is within ``min_margin`` of the winner's; the
answer is then their closest common ``is_a`` ancestor in the Cell Ontology (the deepest of
their lowest common ancestors; ties: the smaller id), e.g. "T cell" for a cell torn between
CD4- and CD8-positive T cells. Levels (``obs['scatlas_answer_level']``):

* ``type``: the winner is clear (or no other type competes);
* ``ancestor``: backed off to the competing types' common ancestor;
* ``unresolved``: not clear, and the types have no common ancestor in the ontology (or are
  not ontology terms, e.g. a reference built from plain labels): the winner stands;
* ``""``: no call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from scatlas.annotate.scores import TypeScores

log = logging.getLogger(__name__)

LEVELS = ("type", "ancestor", "unresolved", "")


def competing_sets(scores: TypeScores, min_margin: float) -> dict[int, tuple[int, ...]]:
    """For each cell whose winner is not clear: the codes of the types within
    ``min_margin`` of the winner's score (the winner first)."""
    unclear = np.flatnonzero((scores.winner >= 0) & (scores.margin < min_margin))
    out: dict[int, tuple[int, ...]] = {}
    m = scores.matrix
    for r in unclear:
        lo, hi = m.indptr[r], m.indptr[r + 1]
        cols, vals = m.indices[lo:hi], m.data[lo:hi]
        near = cols[vals >= scores.share[r] - min_margin]
        others = sorted(int(c) for c in near if c != scores.winner[r])
        out[int(r)] = (int(scores.winner[r]), *others)
    return out


def backoff_answers(
    scores: TypeScores,
    types: np.ndarray,
    labels: np.ndarray,
    min_margin: float,
    ontology_loader: Callable[[], object | None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(answer id, answer label, level) per cell. ``ontology_loader`` returns the release's
    ``CellOntology`` (or None); it is called only when some winner is not clear."""
    n = len(scores.winner)
    called = scores.winner >= 0
    win = np.where(called, scores.winner, 0)
    answer_id = np.where(called, types[win] if len(types) else "", "").astype(object)
    answer_label = np.where(called, labels[win] if len(labels) else "", "").astype(object)
    level = np.where(called, "type", "").astype(object)
    unclear = {r: s for r, s in competing_sets(scores, min_margin).items() if len(s) > 1}
    if not unclear:
        return answer_id, answer_label, level
    ontology = ontology_loader()
    cache: dict[tuple[int, ...], tuple[str, str] | None] = {}
    for r, codes in unclear.items():
        key = tuple(sorted(codes))
        if key not in cache:
            cache[key] = _common_ancestor(ontology, [str(types[c]) for c in key])
        hit = cache[key]
        if hit is None:
            level[r] = "unresolved"
        else:
            answer_id[r], answer_label[r], level[r] = hit[0], hit[1], "ancestor"
    log.info(
        "%d of %d cells without a clear winner: %d answered at a common ancestor",
        len(unclear),
        n,
        int((level == "ancestor").sum()),
    )
    return answer_id, answer_label, level


def _common_ancestor(ontology, terms: list[str]) -> tuple[str, str] | None:
    """(id, name) of the deepest lowest common ``is_a`` ancestor of ``terms``, or None."""
    if ontology is None or not all(t in ontology for t in terms):
        return None
    common = ontology.lowest_common_ancestors(terms, relations=("is_a",))
    if not common:
        return None
    best = min(common, key=lambda c: (-ontology.depth(c, relations=("is_a",)), c))
    return best, ontology.label(best)
