"""DE for every Cell Ontology term of the atlas: per study, then meta-analysis across studies.

For term t in a study, the *in* group is the cells labelled t or a descendant of t; the
*out* group is the study's other labelled cells, leaving out cells labelled with an
ancestor of t (a "T cell" may well be the "CD4-positive T cell" under test) and unlabelled
cells. A study is tested when both groups have at least ``min_cells`` cells. Terms are the
labels present in the atlas (all splits: DE describes the whole reference). Cells of
studies that published normalised values instead of counts (``obs["normalised"]``) are left
out: the tests compare counts.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm import tqdm

from ..errors import InputError
from ..fileio import atomic_path
from ..logs import progress_enabled
from ..ontology import cached_ontology
from .meta import meta_analyse
from .per_study import test_study

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = [
    "cl_id",
    "cl_label",
    "n_studies",
    "n_cells",
    "n_up",
    "n_down",
    "status",
    "reason",
]
_CL_ID = re.compile(r"^CL:\d{7}$")


def term_file_name(cl_id: str) -> str:
    """``CL:0000236`` -> ``CL_0000236.tsv`` (ids are validated before becoming paths)."""
    if not _CL_ID.match(cl_id):
        raise InputError(f"not a Cell Ontology id: {cl_id!r}", field="cl_id")
    return cl_id.replace(":", "_") + ".tsv"


def _write_tsv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path, suffix=".tsv") as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def run_de(
    atlas_h5ad: str | os.PathLike,
    obo: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    min_cells: int = 5,
    fdr: float = 0.05,
    min_studies: int = 2,
    method: str = "wilcoxon",
) -> pd.DataFrame:
    """Write ``out_dir/{CL_xxxxxxx}.tsv`` for every testable term and ``out_dir/summary.tsv``
    (every labelled term, tested or not, with the reason). Returns the summary."""
    out_dir = Path(out_dir)
    try:
        adata = anndata.read_h5ad(atlas_h5ad)
    except (OSError, KeyError) as exc:
        raise InputError(f"not a readable h5ad file: {exc}", path=str(atlas_h5ad)) from exc
    for col in ("study", "cl_id"):
        if col not in adata.obs:
            raise InputError("missing obs column", path=str(atlas_h5ad), field=col)
    onto = cached_ontology(obo)
    obs = adata.obs
    labels = obs["cl_id"].astype(str).replace("nan", "").to_numpy()
    if "normalised" in obs:  # counts-based tests: author-normalised cells take no part
        labels = np.where(obs["normalised"].astype(bool).to_numpy(), "", labels)
    studies = obs["study"].astype(str).to_numpy()
    X = sp.csr_matrix(adata.X)
    genes = adata.var_names.astype(str).to_numpy()
    symbols = (
        adata.var["gene_symbol"].astype(str).reindex(adata.var_names)
        if "gene_symbol" in adata.var
        else pd.Series("", index=adata.var_names)
    )
    terms = sorted({t for t in labels if t})
    unknown = [t for t in terms if t not in onto]
    if unknown:
        raise InputError(
            f"terms not in the ontology {obo}: {unknown[:5]}", path=str(atlas_h5ad), field="cl_id"
        )
    by_study = {s: np.flatnonzero(studies == s) for s in sorted(set(studies))}
    out_dir.mkdir(parents=True, exist_ok=True)

    summary = []
    for term in tqdm(terms, desc="DE terms", disable=not progress_enabled()):
        desc = onto.descendants(term, include_self=True)
        anc = onto.ancestors(term)
        results, n_tested, sizes, n_in_total = {}, {}, [], 0
        for study, rows in by_study.items():
            lab = labels[rows]
            in_mask = np.isin(lab, list(desc))
            out_mask = (lab != "") & ~in_mask & ~np.isin(lab, list(anc))
            n_in, n_out = int(in_mask.sum()), int(out_mask.sum())
            if n_in:
                sizes.append(f"{study}: {n_in} vs {n_out}")
            if n_in < min_cells or n_out < min_cells:
                continue
            keep = in_mask | out_mask
            results[study] = test_study(X[rows[keep]], in_mask[keep], method, genes=genes)
            n_tested[study] = n_in + n_out
            n_in_total += n_in
        label = onto.label(term)
        if not results:
            summary.append(
                (
                    term,
                    label,
                    0,
                    int(np.isin(labels, list(desc)).sum()),
                    0,
                    0,
                    "not tested",
                    f"no study with >= {min_cells} cells of the term and >= {min_cells} other "
                    f"labelled cells ({'; '.join(sizes)})",
                )
            )
            log.info("%s (%s): not tested", term, label)
            continue
        table = meta_analyse(results, n_tested, fdr=fdr, min_studies=min_studies)
        table.insert(1, "gene_symbol", symbols.reindex(table["gene"]).to_numpy())
        strength = -table["stouffer_z"].abs()
        table = (
            table.assign(_s=strength)
            .sort_values(["fdr", "_s", "gene"], kind="mergesort")
            .drop(columns="_s")
            .reset_index(drop=True)
        )
        _write_tsv(table, out_dir / term_file_name(term))
        sig = table["significant"].to_numpy(dtype=bool)
        n_up = int((sig & (table["direction"] == "up").to_numpy()).sum())
        n_down = int(sig.sum()) - n_up
        reason = ""
        if len(results) < min_studies:
            reason = (
                f"tested in {len(results)} study (< min_studies {min_studies}): statistics "
                "reported, no gene called significant"
            )
        elif len(results) == 1:
            reason = "tested in 1 study only: calls are not replicated across studies"
        summary.append((term, label, len(results), n_in_total, n_up, n_down, "tested", reason))
        log.info("%s (%s): %d studies, %d up, %d down", term, label, len(results), n_up, n_down)
    out = pd.DataFrame(summary, columns=SUMMARY_COLUMNS)
    _write_tsv(out, out_dir / "summary.tsv")
    return out
