"""An atlas from a user's own labelled cells (``scatlas build-reference``).

Inputs are h5ad files, 10x HDF5 files or 10x Matrix Market folders (read as queries are:
:mod:`scatlas.annotate.query_io`), each with a label column in ``obs`` and optionally a
study (batch) column; without one, each file is a study. Genes are matched across files by
``var_names`` (stable ids or symbols; only the genes every file has are kept). Expression is
raw counts, or log-normalised values when stated (``normalised=True``; then every model
trains on them as they are).

Labels (``label_kind``):

* ``cl_id``: Cell Ontology ids (``CL:0000236``);
* ``cl_name``: Cell Ontology names or exact synonyms ("B cell"), case-insensitive;
* ``free_text``: author text mapped by the ontology mapper (:mod:`scatlas.ontology`);
  labels it cannot map leave their cells unlabelled (listed in the log);
* ``plain``: the labels as they are, for data without an ontology (no ancestor backoff, no
  ontology-aware evaluation);
* ``auto`` (default): the first of the above that maps every label (free text: at least
  ``FREE_TEXT_MIN_SHARE`` of the labels), else ``plain``. The choice is logged and recorded.

Split: with two or more studies, whole studies are held out as the query (the evaluation is
study-held-out, as the workflow's atlas); with one, a stated stratified cell split
(``CELL_SPLIT``). A share of the training studies' cells validates (early stopping).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scatlas.annotate.inputs import check_matrix, choose_matrix, detect_normalisation
from scatlas.annotate.query_io import read_query
from scatlas.atlas import LABEL_KINDS
from scatlas.atlas.assemble import choose_splits
from scatlas.atlas.genes import select_genes
from scatlas.errors import InputError
from scatlas.fileio import atomic_path
from scatlas.settings import AtlasSettings

log = logging.getLogger(__name__)

FREE_TEXT_MIN_SHARE = 0.8
CL_ID = re.compile(r"^CL:\d{7}$")
#: (validation, query) shares of a single study's cells
CELL_SPLIT = (0.15, 0.2)
SYMBOL_COLUMNS = ("gene_symbol", "gene_symbols", "feature_name", "symbol")


@dataclass(frozen=True)
class LabelledInput:
    """One file of labelled cells."""

    path: Path
    label_column: str
    study_column: str | None = None
    layer: str = "auto"


def _read_one(spec: LabelledInput) -> ad.AnnData:
    """The file's cells: expression (chosen as for a query), labels, studies, symbols."""
    adata = read_query(spec.path)
    source = str(spec.path)
    for column in (spec.label_column, spec.study_column):
        if column and column not in adata.obs:
            raise InputError(
                f"no obs column {column!r} (columns: {', '.join(map(str, adata.obs.columns))})",
                path=source,
                field=column,
            )
    matrix = choose_matrix(adata, spec.layer, source=source)
    check_matrix(matrix.X, matrix.var.index, source=source)
    symbols = next((matrix.var[c] for c in SYMBOL_COLUMNS if c in matrix.var), None)
    var = pd.DataFrame(
        {"gene_symbol": symbols.astype(str).to_numpy() if symbols is not None else ""},
        index=pd.Index(matrix.var.index.astype(str), name=None),
    )
    obs = pd.DataFrame(
        {
            "label": adata.obs[spec.label_column].astype(str).to_numpy(),
            "study": (
                adata.obs[spec.study_column].astype(str).to_numpy()
                if spec.study_column
                else np.full(adata.n_obs, spec.path.name.split(".")[0], dtype=object)
            ),
        },
        index=adata.obs_names.astype(str),
    )
    X = sp.csr_matrix(matrix.X, dtype=np.float32)
    log.info("%s: %d cells, %d genes, from %s", source, X.shape[0], X.shape[1], matrix.where)
    return ad.AnnData(X=X, obs=obs, var=var)


def read_labelled(inputs: list[LabelledInput]) -> ad.AnnData:
    """Every input's cells over the genes all inputs share (cell ids made unique)."""
    if not inputs:
        raise InputError("no input files given", field="inputs")
    parts = [_read_one(spec) for spec in inputs]
    shared = parts[0].var_names
    for part in parts[1:]:
        shared = shared.intersection(part.var_names, sort=False)
    if len(shared) == 0:
        raise InputError(
            "the inputs share no gene (give the same kind of gene names in var_names: "
            "stable ids or symbols)",
            field="var_names",
        )
    for spec, part in zip(inputs, parts, strict=True):
        if part.n_vars > len(shared):
            log.warning(
                "%s: %d of its %d genes are not in every input and are left out",
                spec.path,
                part.n_vars - len(shared),
                part.n_vars,
            )
    merged = ad.concat([p[:, shared] for p in parts], join="inner", merge="first")
    merged.obs_names_make_unique()
    return merged


def _by_name(ontology) -> dict[str, str]:
    table: dict[str, str] = {}
    for cl_id in ontology.term_ids():
        info = ontology.info(cl_id)
        table.setdefault(info.name.lower(), cl_id)
        for text, scope in info.synonyms:
            if scope == "EXACT":
                table.setdefault(text.lower(), cl_id)
    return table


def _map_labels(labels: list[str], kind: str, ontology) -> dict[str, str]:
    """label -> CL id ("" unmapped) for one ``kind`` (not auto, not plain)."""
    if kind == "cl_id":
        return {t: ontology.resolve(t) or "" if t in ontology else "" for t in labels}
    if kind == "cl_name":
        names = _by_name(ontology)
        return {t: names.get(t.strip().lower(), "") for t in labels}
    from scatlas.ontology.matching import TermMatcher

    matcher = TermMatcher(ontology)
    out = {}
    for t in labels:
        hit = matcher.map_cell(t)
        out[t] = hit.cl_id if hit is not None else ""
    return out


def label_types(
    labels: np.ndarray, kind: str = "auto", ontology=None
) -> tuple[np.ndarray, np.ndarray, str]:
    """(cl_id, cl_label, the kind used) per cell; unmapped labels give "" (unlabelled)."""
    if kind not in LABEL_KINDS:
        raise InputError(f"unknown label kind {kind!r}; use one of {LABEL_KINDS}", field="labels")
    unique = sorted(set(labels) - {"", "nan", "None"})
    if kind != "plain" and ontology is None:
        if kind != "auto":
            raise InputError(f"labels of kind {kind!r} need an ontology", field="labels")
        kind = "plain"
    if kind == "auto":
        kind = _auto_kind(unique, ontology)
    if kind == "plain":
        mapping = {t: t for t in unique}
        names = mapping
    else:
        mapping = _map_labels(unique, kind, ontology)
        names = {t: ontology.label(c) if c else "" for t, c in mapping.items()}
        missing = sorted(t for t, c in mapping.items() if not c)
        if missing:
            log.warning(
                "%d of %d labels do not map to a Cell Ontology term (%s), their cells stay "
                "unlabelled: %s",
                len(missing),
                len(unique),
                kind,
                ", ".join(missing[:10]),
            )
    cl_id = np.array([mapping.get(t, "") for t in labels], dtype=object)
    cl_label = np.array([names.get(t, "") for t in labels], dtype=object)
    log.info("labels read as %s: %d labels -> %d types", kind, len(unique), len(set(cl_id) - {""}))
    return cl_id, cl_label, kind


def _auto_kind(unique: list[str], ontology) -> str:
    if unique and all(CL_ID.match(t) for t in unique):
        return "cl_id"
    names = _by_name(ontology)
    if unique and all(t.strip().lower() in names for t in unique):
        return "cl_name"
    mapped = _map_labels(unique, "free_text", ontology)
    share = np.mean([bool(c) for c in mapped.values()]) if mapped else 0.0
    if share >= FREE_TEXT_MIN_SHARE and len(set(mapped.values()) - {""}) >= 2:
        return "free_text"
    log.info(
        "labels are not ontology ids or names and %.0f%% map as free text: used as plain labels",
        100 * share,
    )
    return "plain"


def _stratified(labels: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A mask of about ``share`` of the cells of each label (at least one of a label with
    three or more cells)."""
    pick = np.zeros(len(labels), dtype=bool)
    for t in sorted(set(labels)):
        rows = np.flatnonzero(labels == t)
        n = int(round(share * len(rows)))
        n = max(n, 1) if len(rows) >= 3 else n
        pick[rng.choice(rows, n, replace=False)] = True
    return pick


def assign_splits(obs: pd.DataFrame, seed: int = 0) -> tuple[np.ndarray, str]:
    """The split of each cell and how it was made: whole studies held out as the query when
    there are two or more; else a stratified cell split. Validation: a share of the
    training cells."""
    rng = np.random.default_rng(seed)
    labels = obs["cl_id"].to_numpy(dtype=object)
    studies = obs["study"].to_numpy(dtype=object)
    split = np.full(len(obs), "train", dtype=object)
    if len(set(studies)) >= 2:
        study_types = {s: set(labels[(studies == s) & (labels != "")]) for s in set(studies)}
        split_of = choose_splits(study_types, n_query_studies=1, n_validation_studies=0, seed=seed)
        split = np.array([split_of[s] for s in studies], dtype=object)
        how = "study-held-out: query " + ", ".join(
            sorted(s for s, v in split_of.items() if v == "query")
        )
    else:
        split[_stratified(labels, CELL_SPLIT[1], rng)] = "query"
        how = f"one study: a stratified cell split ({CELL_SPLIT[1]:.0%} of each type's cells query)"
    train = split == "train"
    val = _stratified(labels[train], CELL_SPLIT[0], rng)
    split[np.flatnonzero(train)[val]] = "validation"
    return split, how


def check_stated_normalisation(
    X, normalised: bool, *, path: str | None = None, field: str = "normalised"
) -> None:
    """InputError when the values are not what the user stated (raw counts, or with
    ``normalised`` log-normalised values)."""
    detected = detect_normalisation(X)
    if normalised != (detected != "raw_counts"):
        raise InputError(
            f"the expression looks like {detected.replace('_', ' ')} but was stated as "
            f"{'log-normalised' if normalised else 'raw counts'} (normalised: "
            f"{str(normalised).lower()}); give raw counts (layers['counts']), or state "
            "log-normalised values",
            path=path,
            field=field,
        )


def labelled_atlas(
    inputs: list[LabelledInput],
    out_h5ad: Path,
    *,
    label_kind: str = "auto",
    ontology=None,
    normalised: bool = False,
    min_cells_per_type: int = 10,
    n_top_genes: int = AtlasSettings.n_top_genes,
    seed: int = 0,
) -> ad.AnnData:
    """Read, label and split the inputs; write the atlas (the workflow's atlas columns)."""
    adata = read_labelled(inputs)
    check_stated_normalisation(adata.X, normalised, field="X")
    cl_id, cl_label, kind = label_types(
        adata.obs["label"].to_numpy(dtype=object), label_kind, ontology
    )
    obs = adata.obs
    obs["cl_id"], obs["cl_label"] = cl_id, cl_label
    obs["sample"] = obs["study"]
    split, how = assign_splits(obs, seed)
    obs["split"] = split
    counts = pd.Series(cl_id[(split == "train") & (cl_id != "")]).value_counts()
    keep = set(counts[counts >= min_cells_per_type].index)
    obs["trainable"] = np.isin(cl_id, sorted(keep))
    obs["normalised"] = False
    X = sp.csr_matrix(adata.X)
    obs["n_counts"] = np.asarray(X.sum(axis=1)).ravel()
    obs["n_genes"] = np.diff(X.indptr)
    small = sorted(set(counts.index) - keep)
    if small:
        log.warning(
            "types with fewer than %d training cells are not trained on: %s",
            min_cells_per_type,
            ", ".join(small),
        )
    adata.uns["scatlas"] = {
        "label_kind": kind,
        "split": how,
        "input_kind": "log_normalised" if normalised else "raw_counts",
        "trainable_types": sorted(keep),
        "sources": [str(s.path) for s in inputs],
    }
    hvg, adata.uns["scatlas"]["gene_selection"] = select_genes(
        X, obs["study"].to_numpy(), split == "train", np.full(len(obs), normalised), n_top_genes
    )
    for column in hvg:
        adata.var[column] = hvg[column].to_numpy()
    log.info(
        "atlas of %d cells, %d genes, %d trainable types; split %s",
        adata.n_obs,
        adata.n_vars,
        len(keep),
        how,
    )
    with atomic_path(out_h5ad, ".h5ad") as tmp:
        adata.write_h5ad(tmp)
    return adata
