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

    Accuracy is computed over cells whose true type is in the reference; cells of types
    the reference has never seen are reported separately (they cannot be annotated right).
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
    }
    atomic_write_text(out_accuracy, json.dumps(result, indent=2) + "\n")
    log.info(
        "demo query accuracy %.3f over %d cells", result["accuracy"] or 0.0, result["n_scored"]
    )
    return result
