"""The public labelled sets the models are evaluated on (``../shared/data/expression``).

Each loader returns a ``RealSet``: training cells (with a validation share), query cells of
types seen in training, and the cells of one type held out of training to score novelty.

* ``pbmc``: Zheng 2017 FACS-sorted PBMC (2,140 cells, 9 sorted populations, raw UMI counts).
  There is no donor or sort batch to split by, so cells are split **at random** (stratified
  by population): 70% train (15% of it validation), 30% query. One population is held out.
* ``pancreas``: Wang 2016 (train) -> Xin 2016 (query): two studies, author log-normalised
  values on the 219 genes they share (``input_kind="log_normalised"``; not re-normalised).
* ``celllines``: CEL-seq2 lung cancer cell lines (GSE118767): 5-line plates 1 and 2 train
  (15% validation), the 3-line plate is the query; genotype (demuxlet) singlets only. Cell
  lines have no Cell Ontology terms: labels stay line names and MAFP equals MAP.

Author labels become CL ids with the project's ``TermMatcher`` on the population's
description; ``LABEL_OVERRIDES`` fixes the sorted PBMC populations the matcher maps only to
a generic parent (it reads "CD8+/CD45RA+ naive cytotoxic T cells" as "cytotoxic T cell").
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

#: Zheng 2017's sorted populations, as the paper names them
PBMC_DESCRIPTIONS = {
    "bcells": "CD19+ B cells",
    "cytotoxict": "CD8+ cytotoxic T cells",
    "memoryt": "CD4+/CD45RO+ memory T cells",
    "monocytes": "CD14+ monocytes",
    "naivecytotoxic": "CD8+/CD45RA+ naive cytotoxic T cells",
    "naivet": "CD4+/CD45RA+/CD25- naive T cells",
    "nk": "CD56+ natural killer cells",
    "regulatoryt": "CD4+/CD25+ regulatory T cells",
    "thelper": "CD4+ T helper cells",
}
#: the CL term curated by hand for each population description (Zheng 2017's sort gates)
PBMC_CURATED_TERMS = {
    "CD19+ B cells": "CL:0001201",
    "CD8+ cytotoxic T cells": "CL:0000625",
    "CD4+/CD45RO+ memory T cells": "CL:0000897",
    "CD14+ monocytes": "CL:0001054",
    "CD8+/CD45RA+ naive cytotoxic T cells": "CL:0000900",
    "CD4+/CD45RA+/CD25- naive T cells": "CL:0000895",
    "CD56+ natural killer cells": "CL:0000623",
    "CD4+/CD25+ regulatory T cells": "CL:0000815",
    "CD4+ T helper cells": "CL:0000912",
}
#: where the matcher stops at a parent of what the sort selected (stated in the report)
LABEL_OVERRIDES = {
    "memoryt": "CL:0000897",  # CD4-positive, alpha-beta memory T cell (matcher: memory T cell)
    "naivecytotoxic": "CL:0000900",  # naive thymus-derived CD8+ (matcher: cytotoxic T cell)
    "naivet": "CL:0000895",  # naive thymus-derived CD4+ (matcher: naive T cell)
}
PANCREAS_DESCRIPTIONS = {
    t: f"{t} cell pancreas"
    for t in ("alpha", "beta", "delta", "gamma", "acinar", "ductal", "stellate")
}
SETS = ("pbmc", "pancreas", "celllines")


@dataclass
class RealSet:
    """One evaluation: rows are cells, columns ``genes``; labels are CL ids (or names)."""

    name: str
    genes: list[str]
    train_X: sp.csr_matrix
    train_labels: np.ndarray
    train_study: np.ndarray
    val_X: sp.csr_matrix
    val_labels: np.ndarray
    query_X: sp.csr_matrix
    query_labels: np.ndarray
    novel_X: sp.csr_matrix
    novel_labels: np.ndarray
    input_kind: str  # raw_counts | log_normalised
    holdout: str
    notes: list[str]
    label_names: dict[str, str]
    val_study: np.ndarray | None = None


def map_labels(
    descriptions: dict[str, str], ontology, overrides: dict[str, str] | None = None
) -> dict[str, str]:
    """Author label -> CL id: the override, else the matcher's answer for the description."""
    from scatlas.ontology.matching import TermMatcher

    matcher = TermMatcher(ontology)
    out = {}
    for label, text in descriptions.items():
        if overrides and label in overrides:
            out[label] = overrides[label]
            continue
        hit = matcher.map_cell(text)
        if hit is None:
            raise ValueError(f"the ontology matcher cannot map {text!r}")
        out[label] = hit.cl_id
    return out


def _read_mtx(path: Path) -> sp.csr_matrix:
    with gzip.open(path, "rb") as fh:
        return sp.csr_matrix(scipy.io.mmread(fh)).T.tocsr().astype(np.float32)  # cells x genes


def _lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return [line.strip() for line in fh if line.strip()]


def _split(
    n: int,
    labels: np.ndarray,
    seed: int,
    fractions: tuple[float, ...],
) -> list[np.ndarray]:
    """Stratified random split of ``range(n)`` into parts of the given fractions."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for t in sorted(set(labels)):
        idx = rng.permutation(np.flatnonzero(labels == t))
        cuts = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        for i, chunk in enumerate(np.split(idx, cuts)):
            parts[i].extend(chunk.tolist())
    return [np.sort(np.array(p, dtype=np.int64)) for p in parts]


def _assemble(
    name: str,
    X: sp.csr_matrix,
    labels: np.ndarray,
    study: np.ndarray,
    split: tuple[np.ndarray, np.ndarray, np.ndarray],
    genes: list[str],
    holdout: str,
    input_kind: str,
    notes: list[str],
    label_names: dict[str, str],
) -> RealSet:
    train_idx, val_idx, query_idx = split
    held = labels == holdout
    train_idx = train_idx[~held[train_idx]]
    val_idx = val_idx[~held[val_idx]]
    train_types = set(labels[train_idx])
    novel_idx = query_idx[held[query_idx]]
    query_idx = query_idx[np.isin(labels[query_idx], sorted(train_types))]
    return RealSet(
        name=name,
        genes=genes,
        train_X=X[train_idx],
        train_labels=labels[train_idx],
        train_study=study[train_idx],
        val_X=X[val_idx],
        val_labels=labels[val_idx],
        query_X=X[query_idx],
        query_labels=labels[query_idx],
        novel_X=X[novel_idx],
        novel_labels=labels[novel_idx],
        input_kind=input_kind,
        holdout=holdout,
        notes=notes,
        label_names=label_names,
        val_study=study[val_idx],
    )


def load_pbmc(data: Path, ontology, holdout: str = "bcells", seed: int = 0) -> RealSet:
    folder = Path(data) / "expression" / "pbmc-zheng-sorted"
    stem = folder / "zheng_sorted_reference.genes_x_cells"
    X = _read_mtx(Path(f"{stem}.mtx.gz"))
    genes = _lines(Path(f"{stem}.genes.txt.gz"))
    cells = _lines(Path(f"{stem}.cells.txt.gz"))
    table = pd.read_csv(folder / "zheng_sorted_reference.labels.csv").set_index("cell")
    author = table.loc[cells, "label"].astype(str).to_numpy()
    to_cl = map_labels(PBMC_DESCRIPTIONS, ontology, LABEL_OVERRIDES)
    labels = np.array([to_cl[a] for a in author], dtype=object)
    train, val, query = _split(len(labels), author, seed, (0.595, 0.105, 0.3))
    return _assemble(
        "pbmc",
        X,
        labels,
        np.full(len(labels), "zheng2017", dtype=object),
        (train, val, query),
        genes,
        to_cl[holdout],
        "raw_counts",
        [
            "cells split at random (stratified by sorted population): no donor or sort batch "
            "is available to split by, so train and query are not independent studies",
            f"held out for novelty: {holdout} ({to_cl[holdout]})",
            "labels: TermMatcher on the population names, with overrides "
            + ", ".join(f"{k}->{v}" for k, v in LABEL_OVERRIDES.items()),
        ],
        {to_cl[a]: a for a in PBMC_DESCRIPTIONS},
    )


def load_pancreas(data: Path, ontology, holdout: str = "delta", seed: int = 0) -> RealSet:
    folder = Path(data) / "expression" / "pancreas-wang-xin"
    parts = {}
    for study in ("wang", "xin"):
        X = _read_mtx(folder / f"{study}.lognorm.genes_x_cells.mtx.gz")
        genes = _lines(folder / f"{study}.genes.txt")
        obs = pd.read_csv(folder / f"{study}.obs.csv")
        parts[study] = (X, genes, obs["cell_type"].astype(str).to_numpy())
    shared = [g for g in parts["wang"][1] if g in set(parts["xin"][1])]
    to_cl = map_labels(PANCREAS_DESCRIPTIONS, ontology)
    mats, labs, studies = [], [], []
    for study, (X, genes, author) in parts.items():
        col = {g: i for i, g in enumerate(genes)}
        mats.append(X[:, [col[g] for g in shared]])
        labs.append(np.array([to_cl[a] for a in author], dtype=object))
        studies.append(np.full(len(author), study, dtype=object))
    X = sp.vstack(mats).tocsr()
    labels, study = np.concatenate(labs), np.concatenate(studies)
    wang = np.flatnonzero(study == "wang")
    tr, va = _split(len(wang), labels[wang], seed, (0.85, 0.15))
    return _assemble(
        "pancreas",
        X,
        labels,
        study,
        (wang[tr], wang[va], np.flatnonzero(study == "xin")),
        shared,
        to_cl[holdout],
        "log_normalised",
        [
            f"train Wang 2016 (15% validation), query Xin 2016; {len(shared)} shared genes, "
            "author log-normalised values used as they are",
            f"held out for novelty: {holdout} ({to_cl[holdout]})",
            "labels: TermMatcher on '<type> cell pancreas'",
        ],
        {to_cl[a]: a for a in PANCREAS_DESCRIPTIONS},
    )


def load_celllines(
    data: Path, ontology=None, holdout: str = "HCC827", seed: int = 0, validation: str = "cells"
) -> RealSet:
    """CEL-seq2 cell lines: train on the 5-line plates 1+2 (``validation="cells"``: 15% of
    their cells validate) or on plate 1 with the whole of plate 2 validating
    (``validation="plate"``: the workflow's study-held-out split); query the 3-line plate."""
    folder = Path(data) / "expression" / "celllines-celseq2"
    plates = {"sc_celseq2_5cl_p1": "p1", "sc_celseq2_5cl_p2": "p2", "sc_celseq2": "p3"}
    frames, labs, studies = [], [], []
    for name, plate in plates.items():
        counts = pd.read_csv(folder / f"{name}.count.csv.gz", index_col=0)
        meta = pd.read_csv(folder / f"{name}.metadata.csv.gz", index_col=0).loc[counts.columns]
        keep = (meta["demuxlet_cls"] == "SNG").to_numpy()  # singlets with a genotype call
        frames.append(counts.loc[:, keep])
        labs.append(meta["cell_line_demuxlet"].to_numpy()[keep].astype(object))
        studies.append(np.full(int(keep.sum()), plate, dtype=object))
    genes = sorted(set.intersection(*(set(f.index.astype(str)) for f in frames)))
    X = sp.vstack([sp.csr_matrix(f.loc[genes].T.to_numpy(dtype=np.float32)) for f in frames])
    X = X.tocsr()
    labels, study = np.concatenate(labs), np.concatenate(studies)
    train_plates = np.flatnonzero(study != "p3")
    tr, va = _split(len(train_plates), labels[train_plates], seed, (0.85, 0.15))
    parts = (train_plates[tr], train_plates[va])
    if validation == "plate":
        parts = (np.flatnonzero(study == "p1"), np.flatnonzero(study == "p2"))
    return _assemble(
        "celllines",
        X,
        labels,
        study,
        (*parts, np.flatnonzero(study == "p3")),
        genes,
        holdout,
        "raw_counts",
        [
            "train 5-line plates 1+2 (15% validation), query the 3-line plate; singlets only"
            if validation == "cells"
            else "train 5-line plate 1, validate plate 2, query the 3-line plate; singlets only",
            f"held out for novelty: {holdout}",
            "cell lines have no Cell Ontology terms: MAFP equals MAP (exact relevance)",
        ],
        {},
    )


def load_set(name: str, data: Path, ontology) -> RealSet:
    if name == "pbmc":
        return load_pbmc(data, ontology)
    if name == "pancreas":
        return load_pancreas(data, ontology)
    if name == "celllines":
        return load_celllines(data)
    if name == "celllines-plate":  # plate 2 held out whole for validation, as the workflow
        return load_celllines(data, validation="plate")
    raise ValueError(f"unknown set {name!r}; known: {', '.join(SETS)}, celllines-plate")


def training_data(rs: RealSet, normalisation: str, ontology=None):
    """The set's training and validation cells as a model trained on ``normalisation`` sees
    them (``scatlas.models.trainer.TrainingData``)."""
    from scatlas.evaluate.metrics import model_input
    from scatlas.models.trainer import SplitData, TrainingData, related_matrix

    classes = sorted(set(rs.train_labels))
    index = {c: i for i, c in enumerate(classes)}
    studies = {s: i for i, s in enumerate(sorted(set(rs.train_study)))}

    def split(X: sp.csr_matrix, labels: np.ndarray, study: np.ndarray) -> SplitData:
        return SplitData(
            model_input(X, rs.input_kind, normalisation),
            np.array([index[t] for t in labels], dtype=np.int64),
            np.array([studies.get(s, 0) for s in study], dtype=np.int64),
        )

    val_keep = np.isin(rs.val_labels, classes)
    return TrainingData(
        train=split(rs.train_X, rs.train_labels, rs.train_study),
        val=split(
            rs.val_X[np.flatnonzero(val_keep)],
            rs.val_labels[val_keep],
            np.full(int(val_keep.sum()), "", dtype=object),
        )
        if val_keep.any()
        else None,
        classes=classes,
        class_labels=[rs.label_names.get(c, c) for c in classes],
        genes=rs.genes,
        normalisation="log_normalised"
        if rs.input_kind == "log_normalised" and normalisation == "log1p_cp10k"
        else normalisation,
        related=related_matrix(classes, ontology) if ontology is not None else None,
        holdout=[rs.holdout],
        source=rs.name,
    )


def eval_set(rs: RealSet, k: int = 10):
    """The ``scatlas.evaluate.metrics.EvalSet`` of the set (reference = its training cells)."""
    from scatlas.evaluate.metrics import EvalSet

    return EvalSet(
        ref_X=rs.train_X,
        ref_labels=rs.train_labels,
        query_X=rs.query_X,
        query_labels=rs.query_labels,
        genes=rs.genes,
        novel_X=rs.novel_X,
        novel_labels=rs.novel_labels,
        input_kind=rs.input_kind,
    )


def release_novelty(
    rs: RealSet, model_dir: Path, quantile: float = 0.99, k: int = 10, ontology=None
) -> dict:
    """Novelty as a release flags it: the set's training and validation cells are the
    reference (indexed), the validation cells (not trained on) calibrate the threshold as
    ``publish`` does, and ``Reference.annotate`` flags the query's known and novel cells.
    Returns the AUROC of the nearest distance (novel against known) and the flagged shares."""
    import anndata as ad

    from scatlas.annotate.reference import Reference
    from scatlas.evaluate.metrics import model_input, novelty_auroc
    from scatlas.models.io import embed, load_model
    from scatlas.models.normalize import align_to_genes
    from scatlas.release.format import Manifest
    from scatlas.release.index import build_index, unit_rows
    from scatlas.release.novelty import calibrate_novelty

    net, info = load_model(model_dir)
    ref_X = sp.vstack([rs.train_X, rs.val_X]).tocsr()
    X, _ = align_to_genes(
        model_input(ref_X, rs.input_kind, info["normalisation"]), rs.genes, info["genes"]
    )
    emb = embed(net, X, 4096)
    emb = unit_rows(emb) if info.get("metric") == "cosine" else emb
    index = build_index(emb, kind="flat", use_gpu=False)
    n_train = rs.train_X.shape[0]
    labels = np.r_[rs.train_labels, rs.val_labels].astype(str)
    studies = np.r_[rs.train_study, rs.val_study].astype(str)
    held = np.arange(len(labels)) >= n_train
    thresholds, calibration = calibrate_novelty(
        index,
        emb,
        labels,
        studies,
        held_out=held,
        quantile=quantile,
        metric=info.get("metric", "euclidean"),
    )
    cells = pd.DataFrame(
        {"cl_id": labels, "cl_label": [rs.label_names.get(t, t) for t in labels], "study": studies}
    )
    genes = pd.DataFrame({"gene_id": info["genes"], "gene_symbol": info["genes"]})
    ref = Reference(
        None, Manifest(version="realdata"), net, info, cells, index, genes, thresholds, ontology
    )
    query = ad.AnnData(
        sp.vstack([rs.query_X, rs.novel_X]).tocsr(),
        var=pd.DataFrame(index=pd.Index(rs.genes, dtype=str)),
    )
    out = ref.annotate(query, k=k, orthologs=False)
    n_known = rs.query_X.shape[0]
    dist = out.obs["scatlas_min_dist"].to_numpy(dtype=np.float64)
    novel = out.obs["scatlas_novel"].to_numpy(dtype=bool)
    return {
        "novelty_auroc": novelty_auroc(dist[:n_known], dist[n_known:]),
        "known_flagged": float(novel[:n_known].mean()),
        "novel_flagged": float(novel[n_known:].mean()),
        "threshold": calibration.threshold,
        "calibration": calibration.to_dict(),
        "accuracy": float(
            (out.obs["scatlas_cell_type_id"].to_numpy()[:n_known] == rs.query_labels).mean()
        ),
        "annotated": out,
    }


def write_zheng_h5ad(data: Path, path: Path) -> Path:
    """The Zheng sorted PBMC cells as a user would hold them: raw counts, gene symbols as
    var_names, the sorted population's description in ``obs['cell_type']``."""
    import anndata as ad

    stem = Path(data) / "expression" / "pbmc-zheng-sorted" / "zheng_sorted_reference.genes_x_cells"
    X = _read_mtx(Path(f"{stem}.mtx.gz"))
    genes = _lines(Path(f"{stem}.genes.txt.gz"))
    cells = _lines(Path(f"{stem}.cells.txt.gz"))
    table = pd.read_csv(
        Path(data) / "expression" / "pbmc-zheng-sorted" / "zheng_sorted_reference.labels.csv"
    )
    label = table.set_index("cell").loc[cells, "label"].astype(str)
    obs = pd.DataFrame({"cell_type": [PBMC_DESCRIPTIONS[x] for x in label]}, index=cells)
    ad.AnnData(X, obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(path)
    return Path(path)


def write_donor_a_h5ad(data: Path, path: Path) -> Path:
    """The unlabelled frozen PBMC of donor A (raw counts, symbols)."""
    import anndata as ad

    stem = Path(data) / "expression" / "pbmc-zheng-sorted" / "frozen_pbmc_donor_a.genes_x_cells"
    X = _read_mtx(Path(f"{stem}.mtx.gz"))
    genes = _lines(Path(f"{stem}.genes.txt.gz"))
    cells = _lines(Path(f"{stem}.cells.txt.gz"))
    ad.AnnData(X, obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=genes)).write_h5ad(path)
    return Path(path)


def write_pancreas_h5ads(data: Path, folder: Path) -> list[Path]:
    """Wang 2016 and Xin 2016 as two files: author log-normalised values, symbols, the
    authors' type in ``obs['cell_type']``."""
    import anndata as ad

    src = Path(data) / "expression" / "pancreas-wang-xin"
    out = []
    for study in ("wang", "xin"):
        X = _read_mtx(src / f"{study}.lognorm.genes_x_cells.mtx.gz")
        obs = pd.read_csv(src / f"{study}.obs.csv").set_index("cell")
        obs["cell_type"] = obs["cell_type"].astype(str)
        var = pd.DataFrame(index=_lines(src / f"{study}.genes.txt"))
        path = Path(folder) / f"{study}.h5ad"
        ad.AnnData(X, obs=obs, var=var).write_h5ad(path)
        out.append(path)
    return out
