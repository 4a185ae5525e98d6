"""Score the demo's query against the demo world's truth."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from scatlas.annotate.reference import query_file
from scatlas.fileio import atomic_write_text

log = logging.getLogger(__name__)


#: the demo fails when fewer of its unseen-type cells than this are flagged novel ...
MIN_NOVEL_FLAGGED = 0.8
#: ... or when more of its known-type cells than this are
MAX_KNOWN_FLAGGED = 0.05


class DemoCheckError(RuntimeError):
    """The demo's query was not annotated as its truth says it must be."""


def novelty_figures(truth: np.ndarray, in_ref: np.ndarray, novel: np.ndarray) -> dict:
    """How many cells of unseen and of known types were flagged novel."""
    unseen, known = ~in_ref, in_ref
    return {
        "n_unseen": int(unseen.sum()),
        "n_unseen_flagged": int((novel & unseen).sum()),
        "unseen_flagged_share": float(novel[unseen].mean()) if unseen.any() else None,
        "n_known_flagged": int((novel & known).sum()),
        "known_flagged_share": float(novel[known].mean()) if known.any() else None,
    }


def check_novelty(figures: dict) -> None:
    """DemoCheckError when the unseen-type cells are not flagged, or too many known ones are."""
    problems = []
    if figures["n_unseen"] and figures["unseen_flagged_share"] < MIN_NOVEL_FLAGGED:
        problems.append(
            f"only {figures['n_unseen_flagged']} of the {figures['n_unseen']} cells of types "
            f"the reference has never seen were flagged novel (at least "
            f"{MIN_NOVEL_FLAGGED:.0%} must be)"
        )
    if figures["known_flagged_share"] and figures["known_flagged_share"] > MAX_KNOWN_FLAGGED:
        problems.append(
            f"{figures['n_known_flagged']} cells of known types were flagged novel (more than "
            f"{MAX_KNOWN_FLAGGED:.0%})"
        )
    if problems:
        raise DemoCheckError("the demo query's novelty check failed: " + "; ".join(problems))


def annotate_and_score(
    *,
    release_record: Path,
    query_h5ad: Path,
    out_h5ad: Path,
    out_csv: Path,
    out_accuracy: Path,
    truth_column: str = "truth_cl_id",
    k: int = 10,
) -> dict:
    """Annotate ``query_h5ad`` with the release named in ``release_record``; score it.

    Accuracy is computed over cells whose true type is in the reference; cells of types the
    reference has never seen cannot be annotated right, and must be flagged novel instead:
    the check fails (after writing its figures) when fewer than ``MIN_NOVEL_FLAGGED`` of
    them are, or more than ``MAX_KNOWN_FLAGGED`` of the known ones.
    """
    release = json.loads(Path(release_record).read_text())
    adata = query_file(Path(release["path"]), query_h5ad, out_h5ad, k=k, csv=out_csv)
    if truth_column not in adata.obs:
        raise KeyError(f"{query_h5ad} has no obs column {truth_column!r} with the true types")
    truth = adata.obs[truth_column].astype(str).to_numpy()
    predicted = adata.obs["scatlas_cell_type_id"].astype(str).to_numpy()
    cells = pd.read_parquet(Path(release["path"]) / "cells.parquet", columns=["cl_id"])
    known = set(cells["cl_id"].astype(str)) - {""}
    in_ref = np.array([t in known for t in truth])
    per_type = {
        t: {
            "n": int((truth == t).sum()),
            "accuracy": float((predicted[truth == t] == t).mean()),
        }
        for t in sorted(set(truth))
    }
    result = {
        "reference_version": release["version"],
        "reference": release["path"],
        "annotated": str(out_h5ad),
        "n_cells": int(len(truth)),
        "n_scored": int(in_ref.sum()),
        "accuracy": float((predicted[in_ref] == truth[in_ref]).mean()) if in_ref.any() else None,
        "per_type": per_type,
        "types_not_in_reference": sorted(set(truth[~in_ref])),
        "novelty": novelty_figures(truth, in_ref, adata.obs["scatlas_novel"].to_numpy(dtype=bool)),
    }
    atomic_write_text(out_accuracy, json.dumps(result, indent=2) + "\n")
    nov = result["novelty"]
    log.info(
        "demo query accuracy %.3f over %d cells of known types; flagged novel: %d of %d cells "
        "of unseen types, %d of %d of known types",
        result["accuracy"] or 0.0,
        result["n_scored"],
        nov["n_unseen_flagged"],
        nov["n_unseen"],
        nov["n_known_flagged"],
        result["n_scored"],
    )
    check_novelty(nov)
    return result
