"""Atlas assembly: per-study AnnData + cell types -> one QC'd atlas with a study-disjoint split.

* One gene space: the sorted union of the studies' stable gene ids (outer join); a gene a
  study did not measure is 0 in its cells. ``var`` keeps gene_symbol and length (first
  study, in study-id order, that has a value).
* QC drops cells with fewer than ``min_genes`` detected genes or ``min_counts`` counts.
  Studies that failed upstream or have no cells are skipped, with the reason in
  ``uns["scatlas"]["skipped"]``.
* Studies holding author-normalised values instead of counts (``uns["scatlas"]["normalised"]``)
  stay in the atlas, flagged: ``obs["normalised"]`` is True for their cells (X holds their
  values as published; QC applies ``min_genes`` only, counts being undefined), they are
  never ``trainable`` and they are listed in ``uns["scatlas"]["normalised_studies"]``.
  Counts-based analyses (DE, CP10k models) leave them out.
* Unlabelled cells (empty cl_id) stay in the atlas: they are searchable. Only labelled cells
  whose type has at least ``min_cells_per_type`` cells in the atlas are ``trainable``;
  models train and are evaluated on those.
* Whole studies go to train, validation or query. Explicit lists win; otherwise studies are
  drawn in a seeded random order, taking the first whose trainable types all remain present
  in the training studies. When no study qualifies the one leaving the fewest types
  uncovered is taken; types of held-out studies that never occur in train are recorded as
  ``uns["scatlas"]["novel_types"]`` (what novelty detection is evaluated on).
* ``obs`` index is ``"{study}:{cell id}"`` (barcodes repeat across studies); the original id
  is kept in ``obs["cell"]``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scatlas.atlas.genes import select_genes
from scatlas.errors import InputError, ScatlasError
from scatlas.fileio import atomic_path
from scatlas.ontology import CellOntology, read_cell_types
from scatlas.settings import AtlasSettings

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "query")
OBS_COLUMNS = [
    "cell",
    "study",
    "sample",
    "run",
    "source_text",
    "cl_id",
    "cl_label",
    "split",
    "n_counts",
    "n_genes",
    "trainable",
    "normalised",
]
SPLIT_COLUMNS = ["study", "split", "n_cells", "n_labelled"]


class AtlasError(ScatlasError):
    """The studies cannot make an atlas (too few usable studies, impossible split)."""


@dataclass
class _Study:
    study: str
    X: sp.csr_matrix
    var: pd.DataFrame
    obs: pd.DataFrame
    qc: dict[str, int] = field(default_factory=dict)


def _study_id(adata: anndata.AnnData, path: Path) -> str:
    meta = adata.uns.get("scatlas", {})
    if isinstance(meta, dict) and meta.get("study"):
        return str(meta["study"])
    if "study" in adata.obs and adata.n_obs:
        return str(adata.obs["study"].iloc[0])
    return path.parent.name


def _labels(
    obs_index: pd.Index, cell_types: pd.DataFrame, ontology: CellOntology, study: str, path: Path
) -> tuple[list[str], list[str]]:
    """cl_id/cl_label per cell, resolved against the ontology ("" when unmapped)."""
    missing = (~obs_index.isin(cell_types.index)).sum()
    if missing:
        log.warning("%s: %d cells are not in %s; left unlabelled", study, missing, path)
    raw = cell_types["cl_id"].reindex(obs_index).fillna("").astype(str)
    ids, labels, unknown = [], [], set()
    for cl in raw:
        cur = ontology.resolve(cl) if cl else None
        if cl and cur is None:
            unknown.add(cl)
        ids.append(cur or "")
        labels.append(ontology.label(cur) if cur else "")
    if unknown:
        log.warning(
            "%s: terms not in the ontology, cells left unlabelled: %s", study, sorted(unknown)
        )
    return ids, labels


def _load_study(
    expr_path: Path, ct_path: Path, ontology: CellOntology, min_genes: int, min_counts: int
) -> tuple[str, _Study | None, str]:
    """Read one study, label and QC it. Returns (study, data or None, reason when None)."""
    try:
        adata = anndata.read_h5ad(expr_path)
    except (OSError, KeyError) as exc:
        raise InputError(f"not a readable h5ad file: {exc}", path=str(expr_path)) from exc
    study = _study_id(adata, expr_path)
    meta = adata.uns.get("scatlas", {})
    meta = meta if isinstance(meta, dict) else {}
    status = str(meta.get("status", "ok") or "ok")
    if status not in ("ok", "new"):
        return study, None, f"study {status} upstream: {meta.get('reason', '')}".strip(": ")
    if adata.n_obs == 0:
        return study, None, "no cells"
    normalised = bool(meta.get("normalised", False))
    if not adata.var_names.is_unique:
        raise InputError("duplicate gene ids in var", path=str(expr_path), field="var")
    X = sp.csr_matrix(adata.X, dtype=np.float32)
    n_counts = np.asarray(X.sum(axis=1)).ravel()
    n_genes = np.asarray((X > 0).sum(axis=1)).ravel()
    # author-normalised values have no counts to threshold: detected genes only
    keep = (n_genes >= min_genes) & ((n_counts >= min_counts) | normalised)
    cell_types = read_cell_types(ct_path)
    cl_ids, cl_labels = _labels(adata.obs_names, cell_types, ontology, study, ct_path)
    obs_in = adata.obs

    def col(name: str) -> list[str]:
        if name not in obs_in:
            return [""] * adata.n_obs
        return obs_in[name].astype(object).where(obs_in[name].notna(), "").astype(str).tolist()

    obs = pd.DataFrame(
        {
            "cell": adata.obs_names.astype(str),
            "study": study,
            "sample": col("sample"),
            "run": col("run"),
            "source_text": col("source_text"),
            "cl_id": cl_ids,
            "cl_label": cl_labels,
            "n_counts": n_counts.astype(np.float32),
            "n_genes": n_genes.astype(np.int32),
            "normalised": normalised,
        }
    )
    qc = {
        "cells_in": int(adata.n_obs),
        "failed_qc": int((~keep).sum()),
        "cells": int(keep.sum()),
        "labelled": int((obs["cl_id"][keep] != "").sum()),
    }
    log.info(
        "%s: %d cells, %d failed QC (genes < %d or counts < %d), %d kept, %d labelled",
        study,
        qc["cells_in"],
        qc["failed_qc"],
        min_genes,
        min_counts,
        qc["cells"],
        qc["labelled"],
    )
    if not keep.any():
        return study, None, f"no cell passed QC ({qc['cells_in']} cells)"
    var = pd.DataFrame(index=adata.var_names.astype(str))
    var["gene_symbol"] = adata.var.get(
        "gene_symbol", pd.Series("", index=adata.var_names)
    ).to_numpy()
    var["length"] = adata.var.get("length", pd.Series(np.nan, index=adata.var_names)).to_numpy()
    return study, _Study(study, X[keep], var, obs.loc[keep].reset_index(drop=True), qc), ""


def _merge_genes(studies: Sequence[_Study]) -> tuple[pd.DataFrame, sp.csr_matrix]:
    """Outer join of the studies' genes (sorted ids); returns var and the stacked CSR."""
    genes = pd.Index(sorted(set().union(*(s.var.index for s in studies))), name="gene_id")
    stacked = pd.concat([s.var[["gene_symbol", "length"]] for s in studies])
    stacked["gene_symbol"] = stacked["gene_symbol"].replace("", np.nan)
    # groupby().first() takes the first non-missing value per column: the first study wins
    var = stacked.groupby(level=0, sort=False).first().reindex(genes)
    var.index.name = "gene_id"
    var["gene_symbol"] = var["gene_symbol"].fillna("").astype(str)
    var["length"] = pd.to_numeric(var["length"], errors="coerce")
    if var["length"].notna().all():
        var["length"] = var["length"].astype(np.int64)
    blocks = []
    for s in studies:
        cols = genes.get_indexer(s.var.index)
        m = sp.csr_matrix(
            (s.X.data, cols[s.X.indices], s.X.indptr), shape=(s.X.shape[0], len(genes))
        )
        m.sort_indices()
        blocks.append(m)
    X = sp.vstack(blocks, format="csr", dtype=np.float32)
    X.eliminate_zeros()
    return var, X


def choose_splits(
    study_types: dict[str, set[str]],
    *,
    n_query_studies: int = AtlasSettings.n_query_studies,
    n_validation_studies: int = AtlasSettings.n_validation_studies,
    query_studies: Iterable[str] = (),
    validation_studies: Iterable[str] = (),
    seed: int = AtlasSettings.seed,
) -> dict[str, str]:
    """Assign whole studies to train/validation/query.

    ``study_types`` maps each usable study to its trainable types. Explicit lists are used
    as given; otherwise ``n_*`` studies are drawn (query first) in a seeded random order,
    each the first whose types stay covered by the remaining training studies (else the
    one leaving the fewest types uncovered). At least one study always stays in train.
    """
    studies = sorted(study_types)
    query, validation = list(dict.fromkeys(query_studies)), list(dict.fromkeys(validation_studies))
    both = set(query) & set(validation)
    if both:
        raise AtlasError(f"studies both in query and validation lists: {sorted(both)}")
    assigned = {s: "query" for s in query} | {s: "validation" for s in validation}
    if len(assigned) >= len(studies):
        raise AtlasError("the explicit query/validation lists leave no study for training")
    rng = np.random.default_rng(seed)
    order = {s: i for i, s in enumerate(rng.permutation(studies))}

    def train_types(excluding: set[str]) -> set[str]:
        return set().union(
            *(study_types[s] for s in studies if s not in assigned and s not in excluding)
        )

    for split, explicit, n in (
        ("query", query, n_query_studies),
        ("validation", validation, n_validation_studies),
    ):
        if explicit:
            continue
        for _ in range(n):
            free = [s for s in studies if s not in assigned]
            if len(free) <= 1:
                log.warning("too few studies for %d %s studies; %s gets fewer", n, split, split)
                break
            # prefer studies with trainable cells (something to evaluate), then the seeded order
            candidates = sorted(free, key=lambda s: (not study_types[s], order[s]))
            uncovered = {s: len(study_types[s] - train_types({s})) for s in candidates}
            pick = next((s for s in candidates if uncovered[s] == 0 and train_types({s})), None)
            if pick is None:
                pick = min(candidates, key=lambda s: (uncovered[s], not study_types[s], order[s]))
                log.warning(
                    "no %s study has all its types in train; %s leaves %d types novel",
                    split,
                    pick,
                    uncovered[pick],
                )
            assigned[pick] = split
    return {s: assigned.get(s, "train") for s in studies}


def study_titles(
    expression_paths: Sequence[str | os.PathLike], studies: set[str]
) -> dict[str, str]:
    """Each study's title from the ``study.json`` its ingest rule wrote beside
    ``expression.h5ad`` (local studies have none: no title)."""
    titles = {}
    for path in expression_paths:
        meta = Path(path).parent / "study.json"
        if meta.is_file():
            with contextlib.suppress(ValueError, OSError):
                record = json.loads(meta.read_text(encoding="utf-8"))
                if record.get("study") in studies and record.get("title"):
                    titles[str(record["study"])] = str(record["title"])
    return titles


def assemble_atlas(
    expression_paths: Sequence[str | os.PathLike],
    cell_type_paths: Sequence[str | os.PathLike],
    out_h5ad: str | os.PathLike,
    out_splits: str | os.PathLike,
    *,
    ontology: CellOntology,
    settings: AtlasSettings | None = None,
) -> anndata.AnnData:
    """Concatenate, QC, label and split the studies; write atlas.h5ad and splits.tsv.

    ``expression_paths[i]`` and ``cell_type_paths[i]`` belong to the same study.
    ``settings``: the ``atlas:`` section (QC thresholds, split sizes, named studies, seed;
    default: the schema's).
    """
    cfg = settings or AtlasSettings()
    min_genes, min_counts, seed = cfg.min_genes, cfg.min_counts, cfg.seed
    query_studies, validation_studies = cfg.query_studies, cfg.validation_studies
    if len(expression_paths) != len(cell_type_paths):
        raise InputError(
            f"{len(expression_paths)} expression files but {len(cell_type_paths)} cell-type files"
        )
    loaded, skipped = _load_studies(
        expression_paths, cell_type_paths, ontology, min_genes, min_counts
    )
    _check_named_studies(loaded, skipped, query_studies, validation_studies)
    studies = [loaded[s] for s in sorted(loaded)]
    var, X = _merge_genes(studies)
    obs = _merged_obs(studies)
    trainable_types = _mark_trainable(obs, cfg.min_cells_per_type)
    study_types = {
        s.study: set(obs.loc[(obs["study"] == s.study) & obs["trainable"], "cl_id"])
        for s in studies
    }
    split_of = choose_splits(
        study_types,
        n_query_studies=cfg.n_query_studies,
        n_validation_studies=cfg.n_validation_studies,
        query_studies=[s for s in query_studies if s in loaded],
        validation_studies=[s for s in validation_studies if s in loaded],
        seed=seed,
    )
    obs["split"] = obs["study"].map(split_of)
    novel = _novel_types(study_types, split_of)
    obs = obs[OBS_COLUMNS]
    hvg, gene_selection = select_genes(
        X,
        obs["study"].to_numpy(),
        (obs["split"] == "train").to_numpy(),
        obs["normalised"].to_numpy(dtype=bool),
        cfg.n_top_genes,
    )
    var = pd.concat([var, hvg.set_axis(var.index)], axis=1)
    adata = anndata.AnnData(X=X, obs=obs, var=var)
    adata.uns["scatlas"] = {
        "splits": split_of,
        "qc": {s: loaded[s].qc for s in loaded},
        "skipped": skipped,
        "n_genes": int(adata.n_vars),
        "n_cells": int(adata.n_obs),
        "trainable_types": sorted(trainable_types),
        "novel_types": novel,
        "normalised_studies": sorted(set(obs.loc[obs["normalised"], "study"])),
        "study_titles": study_titles(expression_paths, set(loaded)),
        "params": {
            "min_genes": min_genes,
            "min_counts": min_counts,
            "min_cells_per_type": cfg.min_cells_per_type,
            "n_top_genes": cfg.n_top_genes,
            "seed": seed,
        },
        "ontology_version": ontology.version,
        "gene_selection": gene_selection,
    }
    splits = _splits_table(obs, split_of)
    with atomic_path(out_h5ad, suffix=".h5ad") as tmp:
        adata.write_h5ad(tmp)
    with atomic_path(out_splits, suffix=".tsv") as tmp:
        splits.to_csv(tmp, sep="\t", index=False)
    log.info(
        "atlas: %d cells x %d genes from %d studies (%s); %d trainable cells of %d types",
        adata.n_obs,
        adata.n_vars,
        len(studies),
        ", ".join(f"{k}={v}" for k, v in splits.groupby("split")["study"].count().items()),
        int(obs["trainable"].sum()),
        len(trainable_types),
    )
    return adata


def _load_studies(
    expression_paths, cell_type_paths, ontology: CellOntology, min_genes: int, min_counts: int
) -> tuple[dict[str, _Study], dict[str, str]]:
    """Each study that passes QC, and why the others were skipped; fewer than 2: AtlasError."""
    loaded: dict[str, _Study] = {}
    skipped: dict[str, str] = {}
    for expr, ct in zip(expression_paths, cell_type_paths, strict=True):
        study, data, reason = _load_study(Path(expr), Path(ct), ontology, min_genes, min_counts)
        if study in loaded or study in skipped:
            raise InputError(f"study {study} given twice", path=str(expr), field="study")
        if data is None:
            log.warning("%s skipped: %s", study, reason)
            skipped[study] = reason
        else:
            loaded[study] = data
    if len(loaded) < 2:
        raise AtlasError(
            f"an atlas needs at least 2 usable studies, got {len(loaded)} "
            f"({', '.join(loaded) or 'none'}); skipped: "
            + ("; ".join(f"{s}: {r}" for s, r in sorted(skipped.items())) or "none")
        )
    return loaded, skipped


def _check_named_studies(loaded, skipped, query_studies, validation_studies) -> None:
    """Studies named for a split must exist; a skipped one is only warned about."""
    for name, given in (
        ("query_studies", query_studies),
        ("validation_studies", validation_studies),
    ):
        unknown = [s for s in given if s not in loaded and s not in skipped]
        if unknown:
            raise InputError(f"unknown studies {unknown}", field=name)
        for s in given:
            if s in skipped:
                log.warning("%s is in %s but was skipped (%s)", s, name, skipped[s])


def _merged_obs(studies: list[_Study]) -> pd.DataFrame:
    obs = pd.concat([s.obs for s in studies], ignore_index=True)
    obs.index = pd.Index(obs["study"] + ":" + obs["cell"], name="cell_id")
    if not obs.index.is_unique:
        dup = obs.index[obs.index.duplicated()][:3].tolist()
        raise InputError(f"duplicate cell ids within a study: {dup}", field="obs_names")
    return obs


def _mark_trainable(obs: pd.DataFrame, min_cells_per_type: int) -> set[str]:
    """Set ``obs["trainable"]``: counted cells of types with enough counted cells."""
    counted = (obs["cl_id"] != "") & ~obs["normalised"]
    type_counts = obs.loc[counted, "cl_id"].value_counts()
    trainable_types = set(type_counts.index[type_counts >= min_cells_per_type])
    obs["trainable"] = obs["cl_id"].isin(trainable_types) & ~obs["normalised"]
    return trainable_types


def _novel_types(study_types: dict[str, set[str]], split_of: dict[str, str]) -> list[str]:
    """Types of held-out studies that no training study has."""
    in_train = set().union(*(t for s, t in study_types.items() if split_of[s] == "train"))
    held_out = set().union(*(t for s, t in study_types.items() if split_of[s] != "train"))
    novel = sorted(held_out - in_train)
    if novel:
        log.warning("types in held-out studies but not in train (novel): %s", novel)
    return novel


def _splits_table(obs: pd.DataFrame, split_of: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            (
                s,
                split_of[s],
                int((obs["study"] == s).sum()),
                int(((obs["study"] == s) & (obs["cl_id"] != "")).sum()),
            )
            for s in sorted(split_of)
        ],
        columns=SPLIT_COLUMNS,
    )
