"""Study-held-out evaluation of embeddings by kNN annotation and retrieval.

Reference = train-split trainable cells; queries = query-split trainable cells whose type
occurs in the reference (the query studies were never seen in training). Every method — each
trained model, and the baselines ``pca`` (PCA of the reference's highly variable genes) and
``lognorm`` (the log-normalised genes themselves) — goes through the same exact kNN search
(faiss flat L2), and is scored with:

* ``accuracy``: kNN majority vote (ties: the tied type ranked nearest) equals the true type;
* ``macro_f1`` / ``median_f1``: mean / median of per-type F1 over the query types;
* ``map_at_k``: mean over queries of AP@k with relevance 1 for the same ``cl_id``;
* ``mafp_at_k`` (only with an ontology): the same average precision with scQuery's flexible
  relevance ``max(0, 1 - d(a, b) / d_max)`` for different types, ``d`` the ontology
  distance, ``d_max`` the largest distance between any two types of the evaluation
  (reference and query types together).

AP@k with graded relevance r_1..r_k: ``sum_i r_i * P_i / sum_i r_i`` with ``P_i = (r_1 +
... + r_i) / i``; 0 when no retrieved cell is relevant. For 0/1 relevance this is the usual
AP@k normalised by the relevant cells retrieved.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scatlas.errors import InputError
from scatlas.evaluate.celltypist import run_celltypist
from scatlas.evaluate.clustering import COLUMNS as CLUSTER_COLUMNS
from scatlas.evaluate.clustering import evaluate_clustering
from scatlas.evaluate.report import PLOT_METHODS, plot_png, report_html
from scatlas.fileio import atomic_write_text
from scatlas.models.data import obs_text, read_atlas, selections
from scatlas.models.inputs import normalise_input
from scatlas.models.normalize import align_to_genes, log1p_cp10k
from scatlas.release.index import build_index, search
from scatlas.settings import EvaluateSettings

log = logging.getLogger(__name__)

BASELINES = ("pca", "lognorm")
#: the annotation peer (CellTypist, trained on the same reference cells)
PEER = "celltypist"
#: largest dense matrix (cells x genes) the lognorm baseline builds before falling back to HVGs
LOGNORM_MAX_VALUES = 500_000_000
METRIC_COLUMNS = ["accuracy", "macro_f1", "median_f1", "map_at_k", "mafp_at_k"]


class OntologyDistance(Protocol):
    """What evaluation needs of ``scatlas.ontology.CellOntology``."""

    def distance(self, a: str, b: str) -> float | int | None: ...


# --------------------------------------------------------------------------- metrics


def knn_vote(neighbour_labels: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Majority vote per row of integer labels >= 0 (queries x k); ties go to the tied type
    ranked nearest."""
    labels = np.asarray(neighbour_labels, dtype=np.int64)
    n, k = labels.shape
    n_types = int(labels.max()) + 1 if labels.size else 0
    out = np.empty(n, dtype=np.int64)
    ranks = np.broadcast_to(np.arange(k), (min(chunk, n), k))
    for start in range(0, n, chunk):
        lab = labels[start : start + chunk]
        rows = np.broadcast_to(np.arange(len(lab))[:, None], lab.shape)
        counts = np.zeros((len(lab), n_types), dtype=np.int64)
        np.add.at(counts, (rows, lab), 1)
        first = np.full((len(lab), n_types), k, dtype=np.int64)
        np.minimum.at(first, (rows, lab), ranks[: len(lab)])
        out[start : start + chunk] = np.argmax(counts * (k + 1) + (k - first), axis=1)
    return out


def average_precision_at_k(relevance: np.ndarray) -> np.ndarray:
    """AP@k per query from a (queries x k) relevance matrix in rank order (values in [0, 1])."""
    rel = np.asarray(relevance, dtype=np.float64)
    ranks = np.arange(1, rel.shape[1] + 1, dtype=np.float64)
    precision = np.cumsum(rel, axis=1) / ranks
    total = rel.sum(axis=1)
    ap = np.zeros(rel.shape[0])
    nz = total > 0
    ap[nz] = (rel[nz] * precision[nz]).sum(axis=1) / total[nz]
    return ap


def annotation_metrics(true: Sequence[str], pred: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro/median F1 over the true types, and per-type F1 and support."""
    from sklearn.metrics import f1_score

    true, pred = np.asarray(true, dtype=object), np.asarray(pred, dtype=object)
    types = sorted(set(true))
    f1 = f1_score(true, pred, labels=types, average=None, zero_division=0)
    return {
        "accuracy": float(np.mean(true == pred)),
        "macro_f1": float(np.mean(f1)),
        "median_f1": float(np.median(f1)),
        "per_type_f1": {t: float(v) for t, v in zip(types, f1, strict=True)},
        "per_type_support": {t: int(np.sum(true == t)) for t in types},
    }


def _ontology_distance(ontology: OntologyDistance, a: str, b: str) -> float:
    """d(a, b), NaN when the ontology cannot relate the two (unknown term, no path)."""
    if a == b:
        return 0.0
    try:
        d = ontology.distance(a, b)
    except (KeyError, ValueError, LookupError):
        return math.nan
    return float(d) if d is not None and math.isfinite(float(d)) else math.nan


def flexible_relevance(
    query_types: Sequence[str], ref_types: Sequence[str], ontology: OntologyDistance
) -> np.ndarray:
    """Relevance matrix (query types x reference types): 1 for equal types, else
    ``max(0, 1 - d/d_max)``, with ``d_max`` the largest distance between any two types of
    the evaluation (query and reference together); pairs the ontology cannot relate get 0."""
    types = sorted(set(query_types) | set(ref_types))
    pos = {t: i for i, t in enumerate(types)}
    dist = np.zeros((len(types), len(types)))
    for i, a in enumerate(types):
        for j in range(i + 1, len(types)):
            dist[i, j] = dist[j, i] = _ontology_distance(ontology, a, types[j])
    finite = dist[np.isfinite(dist)]
    d_max = float(finite.max()) if finite.size else 0.0
    sub = dist[np.ix_([pos[t] for t in query_types], [pos[t] for t in ref_types])]
    rel = np.zeros_like(sub) if d_max <= 0 else np.clip(1.0 - sub / d_max, 0.0, 1.0)
    rel[~np.isfinite(sub)] = 0.0
    rel[sub == 0] = 1.0  # the same type (or a synonym id the ontology resolves to it)
    return rel


def evaluate_embeddings(
    ref: np.ndarray,
    ref_labels: Sequence[str],
    query: np.ndarray,
    query_labels: Sequence[str],
    *,
    k: int = EvaluateSettings.k,
    ontology: OntologyDistance | None = None,
    novel: np.ndarray | None = None,
) -> dict[str, Any]:
    """Exact kNN of every query in the reference; annotation and retrieval metrics.

    With ``novel`` (embeddings of query cells whose type is absent from the reference), the
    novelty score of a cell is its mean distance to its k nearest reference cells, and
    ``novelty_auroc`` the AUROC of that score, novel against known query cells."""
    ref_labels = np.asarray(ref_labels, dtype=object)
    query_labels = np.asarray(query_labels, dtype=object)
    ref_types = sorted(set(ref_labels))
    code = {t: i for i, t in enumerate(ref_types)}
    ref_codes = np.array([code[t] for t in ref_labels], dtype=np.int64)
    index = build_index(ref, flat_max=max(len(ref), 1))
    dist, idx = search(index, query, k)
    neigh = ref_codes[idx]
    pred = np.asarray(ref_types, dtype=object)[knn_vote(neigh)]
    result = annotation_metrics(query_labels, pred)
    same = neigh == np.array([code.get(t, -1) for t in query_labels])[:, None]
    result["map_at_k"] = float(np.mean(average_precision_at_k(same)))
    if ontology is not None:
        q_types = sorted(set(query_labels))
        rel_types = flexible_relevance(q_types, ref_types, ontology)
        q_codes = np.array([q_types.index(t) for t in query_labels])
        rel = rel_types[q_codes[:, None], neigh]
        result["mafp_at_k"] = float(np.mean(average_precision_at_k(rel)))
    else:
        result["mafp_at_k"] = None
    result["novelty_auroc"] = None
    result["n_novel"] = 0
    if novel is not None and len(novel):
        novel_dist, _ = search(index, novel, k)
        result["novelty_auroc"] = novelty_auroc(dist.mean(axis=1), novel_dist.mean(axis=1))
        result["n_novel"] = len(novel)
    result["k"] = int(idx.shape[1])
    result["n_reference"] = len(ref_labels)
    result["n_query"] = len(query_labels)
    result["embedding_dim"] = int(ref.shape[1])
    result["predictions"] = pred
    return result


# --------------------------------------------------------------------------- baselines


def highly_variable_genes(X_log: sp.csr_matrix, n_top: int = 2000) -> np.ndarray:
    """Column indices of the ``n_top`` most variable genes (scanpy's ``seurat`` flavour on
    log-normalised data); all genes when there are no more than ``n_top``."""
    n_genes = X_log.shape[1]
    if n_genes <= n_top:
        return np.arange(n_genes)
    import scanpy as sc

    tmp = ad.AnnData(X=X_log.copy())
    tmp.var_names = [str(i) for i in range(n_genes)]
    table = sc.pp.highly_variable_genes(tmp, n_top_genes=n_top, flavor="seurat", inplace=False)
    return np.sort(np.flatnonzero(table["highly_variable"].to_numpy()))


def pca_baseline(
    ref_log: sp.csr_matrix,
    query_log: sp.csr_matrix,
    *,
    n_top_genes: int = 2000,
    n_components: int = 100,
    novel_log: sp.csr_matrix | None = None,
) -> tuple[np.ndarray, ...]:
    """PCA fitted on the reference's HVGs; queries (and novel cells) projected with it."""
    from sklearn.decomposition import PCA

    genes = highly_variable_genes(ref_log, n_top_genes)
    ref_h, query_h = ref_log[:, genes], query_log[:, genes]
    nc = max(1, min(n_components, len(genes), ref_h.shape[0]))
    pca = PCA(n_components=nc, svd_solver="covariance_eigh", random_state=0)
    ref_emb = pca.fit_transform(ref_h).astype(np.float32)
    out = [ref_emb, pca.transform(query_h).astype(np.float32)]
    if novel_log is not None:
        out.append(pca.transform(novel_log[:, genes]).astype(np.float32))
    return tuple(out)


# --------------------------------------------------------------------------- comparison


def model_input(X, input_kind: str, normalisation: str) -> sp.csr_matrix:
    """Rows as a model trained on ``normalisation`` expects them, from raw counts
    (``input_kind="raw_counts"``) or author log-normalised values (``"log_normalised"``,
    used as they are by log models and max-scaled for ``max_scaled`` ones)."""
    if input_kind == "raw_counts":
        return normalise_input(X, normalisation)
    if input_kind == "log_normalised":
        if normalisation == "max_scaled":
            return normalise_input(X, "max_scaled")
        return normalise_input(X, "log_normalised")
    raise InputError(f"unknown input kind {input_kind!r}", field="input_kind")


def novelty_auroc(known_scores: np.ndarray, novel_scores: np.ndarray) -> float | None:
    """AUROC of a novelty score (higher = more novel): novel cells against known ones."""
    if len(known_scores) == 0 or len(novel_scores) == 0:
        return None
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(known_scores)), np.ones(len(novel_scores))]
    return float(roc_auc_score(y, np.r_[known_scores, novel_scores]))


@dataclass
class EvalSet:
    """Reference, query and novel cells of one evaluation (rows: raw counts or author
    log-normalised values, ``input_kind``; columns: ``genes``)."""

    ref_X: sp.csr_matrix
    ref_labels: np.ndarray
    query_X: sp.csr_matrix
    query_labels: np.ndarray
    genes: list[str]
    novel_X: sp.csr_matrix | None = None
    novel_labels: np.ndarray | None = None
    input_kind: str = "raw_counts"
    # each reference and query cell's study (the embedding plots colour by it too)
    ref_studies: np.ndarray | None = None
    query_studies: np.ndarray | None = None

    def log_normalised(self) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix | None]:
        """Reference, query and novel rows log-normalised (the baselines' and CellTypist's
        input)."""

        def f(X: sp.csr_matrix) -> sp.csr_matrix:
            return model_input(X, self.input_kind, "log1p_cp10k")

        novel = f(self.novel_X) if self.novel_X is not None else None
        return f(self.ref_X), f(self.query_X), novel


def _own_annotation(
    net: Any, info: dict[str, Any], query_in: sp.csr_matrix, query_labels: np.ndarray
) -> dict[str, Any]:
    """Accuracy and median F1 of the model's own annotation (classifier head, nearest
    Hadamard anchor) of the queries, when it has one."""
    from scatlas.models.io import annotate

    pred = annotate(net, query_in)
    if pred is None:
        return {}
    classes = np.asarray(info["classes"], dtype=object)
    own = annotation_metrics(query_labels, classes[pred])
    return {"own_accuracy": own["accuracy"], "own_median_f1": own["median_f1"]}


def _timed_embed(net: Any, X: sp.csr_matrix, batch_size: int) -> tuple[np.ndarray, float]:
    from scatlas.models.io import embed

    t0 = time.perf_counter()
    out = embed(net, X, batch_size)
    return out, time.perf_counter() - t0


def compare_methods(
    data: EvalSet,
    models: dict[str, tuple[Any, dict[str, Any]]],
    *,
    k: int = EvaluateSettings.k,
    ontology: OntologyDistance | None = None,
    batch_size: int = 4096,
    lognorm_max_values: int = LOGNORM_MAX_VALUES,
    celltypist: bool = True,
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]]:
    """Every model (loaded ``(net, model.json)``), the baselines and the CellTypist peer on
    one evaluation set. Returns ``{method: figures}`` and ``{method: (ref, query, novel)
    embeddings}`` (no embeddings for the peer)."""
    clash = sorted(set(models) & {*BASELINES, PEER})
    if clash:
        raise InputError(f"model names {clash} clash with the baselines", field="models")
    ref_log, q_log, novel_log = data.log_normalised()
    has_novel = data.novel_X is not None and data.novel_X.shape[0] > 0

    def model_spaces() -> Any:
        for name, (net, info) in models.items():
            parts = [data.ref_X, data.query_X] + ([data.novel_X] if has_novel else [])
            aligned = []
            for X in parts:
                X_in, n_found = align_to_genes(
                    model_input(X, data.input_kind, str(info.get("normalisation", "log1p_cp10k"))),
                    data.genes,
                    info["genes"],
                )
                aligned.append(X_in)
            if n_found < len(info["genes"]):
                log.warning(
                    "model %s: %d of its %d genes are missing here (zero-filled)",
                    name,
                    len(info["genes"]) - n_found,
                    len(info["genes"]),
                )
            embs, seconds = [], 0.0
            for X_in in aligned:
                e, s = _timed_embed(net, X_in, batch_size)
                embs.append(e)
                seconds += s
            n_cells = sum(x.shape[0] for x in aligned)
            extra = _own_annotation(net, info, aligned[1], data.query_labels)
            extra |= {
                "metric": info.get("metric", "euclidean"),
                "normalisation": info.get("normalisation", "log1p_cp10k"),
                "embed_cells_per_second": n_cells / seconds if seconds > 0 else None,
            }
            yield name, "model", embs, extra
        t0 = time.perf_counter()
        fitted = pca_baseline(ref_log, q_log, novel_log=novel_log if has_novel else None)
        yield "pca", "baseline", list(fitted), {"fit_seconds": time.perf_counter() - t0}
        n_values = (ref_log.shape[0] + q_log.shape[0]) * ref_log.shape[1]
        cols: Any = slice(None)
        if n_values > lognorm_max_values:  # the dense matrix would not fit: the HVGs
            cols = highly_variable_genes(ref_log, 2000)
            log.warning("lognorm baseline restricted to %d highly variable genes", len(cols))
        parts = [ref_log, q_log] + ([novel_log] if has_novel else [])
        yield "lognorm", "baseline", [p[:, cols].toarray() for p in parts], {}

    results: dict[str, dict[str, Any]] = {}
    spaces: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
    for name, kind, embs, extra in model_spaces():
        novel = embs[2] if has_novel else None
        res = evaluate_embeddings(
            embs[0],
            data.ref_labels,
            embs[1],
            data.query_labels,
            k=k,
            ontology=ontology,
            novel=novel,
        )
        # per-cell predictions: the confusion table (popped before the figures are written)
        res["predictions"] = list(res["predictions"])
        results[name] = {"method": name, "kind": kind, **extra, **res}
        spaces[name] = (embs[0], embs[1], novel)
    if celltypist:
        if data.input_kind == "log_normalised":
            # CellTypist insists on log1p of counts per 10,000: undo the author's log, rescale
            ref_log, q_log = (_as_log1p_cp10k(X) for X in (ref_log, q_log))
        results[PEER] = celltypist_figures(
            ref_log, data.ref_labels, q_log, data.query_labels, data.genes
        )
    return results, spaces


def _as_log1p_cp10k(X_log: sp.csr_matrix) -> sp.csr_matrix:
    """Author log-normalised values brought to log1p(counts per 10,000) (natural log assumed)."""
    linear = sp.csr_matrix(X_log, dtype=np.float64, copy=True)
    linear.data = np.expm1(linear.data)
    return log1p_cp10k(linear)


def celltypist_figures(
    ref_log: sp.csr_matrix,
    ref_labels: np.ndarray,
    q_log: sp.csr_matrix,
    q_labels: np.ndarray,
    genes: list[str],
) -> dict[str, Any]:
    """The CellTypist peer's annotation figures (or why it is unavailable)."""
    try:
        peer = run_celltypist(ref_log, ref_labels, q_log, genes)
    except (ValueError, RuntimeError) as exc:  # CellTypist refuses the input
        log.warning("CellTypist failed: %s", exc)
        peer = {"available": False, "reason": f"CellTypist failed: {exc}"}
    out: dict[str, Any] = {"method": PEER, "kind": "peer", "available": peer["available"]}
    if not peer["available"]:
        out["reason"] = peer["reason"]
        return out
    out.update(annotation_metrics(q_labels, peer["predictions"]))
    out["predictions"] = list(peer["predictions"])
    out.update(
        solver=peer["solver"],
        fit_seconds=peer["fit_seconds"],
        predict_seconds=peer["predict_seconds"],
        n_reference=len(ref_labels),
        n_query=len(q_labels),
    )
    return out


# --------------------------------------------------------------------------- driver


def evaluate(
    atlas_h5ad: Path,
    model_dirs: dict[str, Path],
    out_dir: Path,
    *,
    settings: EvaluateSettings | None = None,
    ontology: OntologyDistance | None = None,
    batch_size: int = 4096,
    device: str = "auto",
    lognorm_max_values: int = LOGNORM_MAX_VALUES,
) -> dict[str, dict[str, Any]]:
    """Evaluate each model of ``model_dirs``, the baselines and the CellTypist peer; write
    ``{method}.json``, ``metrics.tsv``, ``per_type_f1.tsv`` and ``report.html``.

    ``settings``: the ``evaluate:`` section (default: the schema's): ``k``, the CellTypist
    peer, the plot, and ``novelty_holdout``, which must be what the models were trained with
    (``choose_holdout``): those types leave the reference, and their query cells (with any
    other type unseen in training) score novelty. Returns ``{method: result}``.
    """
    cfg = settings or EvaluateSettings()
    atlas_h5ad, out_dir = Path(atlas_h5ad), Path(out_dir)
    clash = sorted(set(model_dirs) & {*BASELINES, PEER})
    if clash:
        raise InputError(f"model names {clash} clash with the baselines", field="model_dirs")
    if cfg.plot not in PLOT_METHODS:
        raise InputError(
            f"unknown plot method {cfg.plot!r}; use one of {PLOT_METHODS}", field="plot"
        )
    adata = read_atlas(atlas_h5ad)
    sel = selections(adata, str(atlas_h5ad), cfg.novelty_holdout)
    data = _eval_set(adata, sel, atlas_h5ad)
    novel_mask = sel.novel("query")
    models, notes = _load_models(model_dirs, device, set(sel.cl_id[novel_mask]))
    if sel.holdout:
        notes.append(f"held out of training for novelty: {', '.join(sel.holdout)}")
    log.info(
        "evaluating %d methods: %d reference cells, %d query cells, %d novel cells, k=%d",
        len(models) + len(BASELINES),
        len(data.ref_labels),
        len(data.query_labels),
        int(novel_mask.sum()),
        cfg.k,
    )
    results, spaces = compare_methods(
        data,
        models,
        k=cfg.k,
        ontology=ontology,
        batch_size=batch_size,
        lognorm_max_values=lognorm_max_values,
        celltypist=cfg.celltypist,
    )
    if PEER in results and not results[PEER]["available"]:
        notes.append(f"CellTypist peer unavailable: {results[PEER]['reason']}")
    label_of = dict(zip(sel.cl_id[::-1], obs_text(adata.obs, "cl_label")[::-1], strict=True))
    _, q_log, novel_log = data.log_normalised()
    clusters = evaluate_clustering(
        spaces, models, q_log, novel_log, data.query_labels, data.novel_labels
    )
    _write_evaluation(out_dir, results, spaces, data, label_of, cfg, notes, clusters)
    return results


def _eval_set(adata: ad.AnnData, sel: Any, atlas_h5ad: Path) -> EvalSet:
    """Reference (trainable train cells), query (held-out cells of training types) and
    novel cells (query cells of types unseen in training)."""
    ref_mask, q_mask, novel_mask = sel.train, sel.held_out("query"), sel.novel("query")
    if not ref_mask.any() or not q_mask.any():
        raise InputError(
            f"evaluation needs reference and query cells: {int(ref_mask.sum())} trainable train "
            f"cells, {int(q_mask.sum())} trainable query cells of training types",
            path=str(atlas_h5ad),
            field="split",
        )
    cl_id = sel.cl_id
    X = sp.csr_matrix(adata.X)
    studies = adata.obs["study"].astype(str).to_numpy() if "study" in adata.obs else None
    return EvalSet(
        ref_X=X[np.flatnonzero(ref_mask)],
        ref_labels=cl_id[ref_mask],
        query_X=X[np.flatnonzero(q_mask)],
        query_labels=cl_id[q_mask],
        genes=[str(g) for g in adata.var_names],
        novel_X=X[np.flatnonzero(novel_mask)] if novel_mask.any() else None,
        novel_labels=cl_id[novel_mask] if novel_mask.any() else None,
        # an atlas built from stated log-normalised values (scatlas build-reference) says so
        input_kind=str((adata.uns.get("scatlas") or {}).get("input_kind", "raw_counts")),
        ref_studies=studies[ref_mask] if studies is not None else None,
        query_studies=studies[q_mask] if studies is not None else None,
    )


def _load_models(
    model_dirs: dict[str, Path], device: str, novel_types: set[str]
) -> tuple[dict[str, tuple[Any, dict]], list[str]]:
    """The trained models, and notes on any trained with a type this evaluation calls novel."""
    from scatlas.models.device import select_device
    from scatlas.models.io import load_model

    notes = []
    models = {}
    for name, mdir in model_dirs.items():
        net, info = load_model(mdir, device=select_device(device))
        leaked = sorted(set(info.get("classes", [])) & novel_types)
        if leaked:
            notes.append(
                f"{name} was trained with {', '.join(leaked)}, which this evaluation treats as "
                "novel: its novelty AUROC is optimistic (retrain with the same holdout)"
            )
            log.warning(notes[-1])
        models[name] = (net, info)
    return models, notes


def _write_evaluation(
    out_dir: Path,
    results: dict[str, dict[str, Any]],
    spaces: dict,
    data: EvalSet,
    label_of: dict[str, str],
    cfg: EvaluateSettings,
    notes: list[str],
    clusters: pd.DataFrame | None = None,
) -> None:
    """Per-method JSON, metrics.tsv, timings.tsv, per_type_f1.tsv, clustering.tsv,
    confusion.tsv, embedding_{method}.png and report.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    predictions = {n: r.pop("predictions") for n, r in results.items() if "predictions" in r}
    confusion = confusion_table(predictions, data.query_labels, label_of)
    atomic_write_text(out_dir / "confusion.tsv", confusion.to_csv(sep="\t", index=False))
    for name, res in results.items():
        atomic_write_text(out_dir / f"{name}.json", json.dumps(res, indent=1) + "\n")
        log.info("%s: %s", name, summary_line(res))
    table = metrics_table(results)
    atomic_write_text(
        out_dir / "metrics.tsv", table.to_csv(sep="\t", index=False, float_format="%.6g", na_rep="")
    )
    timings = metrics_table(results, TIMING_COLUMNS)
    atomic_write_text(
        out_dir / "timings.tsv",
        timings.to_csv(sep="\t", index=False, float_format="%.6g", na_rep=""),
    )
    clusters = clusters if clusters is not None else pd.DataFrame(columns=CLUSTER_COLUMNS)
    atomic_write_text(
        out_dir / "clustering.tsv",
        clusters.to_csv(sep="\t", index=False, float_format="%.6g", na_rep=""),
    )
    per_type = per_type_table(results, label_of)
    atomic_write_text(out_dir / "per_type_f1.tsv", per_type.to_csv(sep="\t", float_format="%.6g"))

    def named(ids: np.ndarray) -> np.ndarray:
        return np.array([label_of.get(str(i), str(i)) for i in ids], dtype=object)

    plots = {
        name: plot_png(
            ref,
            named(data.ref_labels),
            q,
            named(data.query_labels),
            name,
            method=cfg.plot,
            novel=novel,
            ref_studies=data.ref_studies,
            query_studies=data.query_studies,
        )
        for name, (ref, q, novel) in spaces.items()
    }
    for name, png in plots.items():  # also as files: the run report shows them
        (out_dir / f"embedding_{name}.png").write_bytes(base64.b64decode(png))
    n_novel = 0 if data.novel_labels is None else len(data.novel_labels)
    html_text = report_html(
        table.merge(timings, on="method").set_index("method"),
        per_type,
        plots,
        n_ref=len(data.ref_labels),
        n_query=len(data.query_labels),
        n_novel=n_novel,
        novel_types=sorted(set(data.novel_labels)) if n_novel else [],
        k=cfg.k,
        notes=notes,
        clustering=clusters,
    )
    atomic_write_text(out_dir / "report.html", html_text)
    log.info("wrote %s", os.fspath(out_dir))


TABLE_COLUMNS = [
    "method",
    "kind",
    "n_reference",
    "n_query",
    "k",
    "embedding_dim",
    *METRIC_COLUMNS,
    "novelty_auroc",
    "own_accuracy",
    "own_median_f1",
]
#: timings: kept out of metrics.tsv (whose figures are reproducible) in timings.tsv
TIMING_COLUMNS = ["method", "fit_seconds", "predict_seconds", "embed_cells_per_second"]


def confusion_table(
    predictions: dict[str, Sequence[str]], truth: Sequence[str], label_of: dict[str, str]
) -> pd.DataFrame:
    """Long form: per method, true type, predicted type (ids and names) and cells."""
    rows = []
    for method, pred in predictions.items():
        pairs = pd.DataFrame({"true_id": list(truth), "predicted_id": list(pred)})
        counts = pairs.value_counts().reset_index(name="cells")
        counts.insert(0, "method", method)
        rows.append(counts)
    if not rows:
        return pd.DataFrame(columns=CONFUSION_COLUMNS)
    table = pd.concat(rows, ignore_index=True)
    table["true_label"] = [label_of.get(str(i), str(i)) for i in table["true_id"]]
    table["predicted_label"] = [label_of.get(str(i), str(i)) for i in table["predicted_id"]]
    return table[CONFUSION_COLUMNS]


CONFUSION_COLUMNS = ["method", "true_id", "true_label", "predicted_id", "predicted_label", "cells"]


def metrics_table(
    results: dict[str, dict[str, Any]], columns: list[str] = TABLE_COLUMNS
) -> pd.DataFrame:
    """One row per method; figures a method does not have are empty."""
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in results.values()])


def per_type_table(results: dict[str, dict[str, Any]], label_of: dict[str, str]) -> pd.DataFrame:
    """Per-type F1 (rows: query types; columns: methods with per-type figures)."""
    with_f1 = {n: r for n, r in results.items() if "per_type_f1" in r}
    per_type = pd.DataFrame({n: r["per_type_f1"] for n, r in with_f1.items()})
    first = next(iter(with_f1.values()))
    per_type.insert(0, "cell type", [label_of.get(t) or t for t in per_type.index])
    per_type.insert(1, "n_query", [first["per_type_support"][t] for t in per_type.index])
    per_type.index.name = "cl_id"
    return per_type


def summary_line(res: dict[str, Any]) -> str:
    if res.get("available") is False:
        return f"unavailable ({res.get('reason')})"
    parts = [f"accuracy={res['accuracy']:.4f}", f"median_f1={res['median_f1']:.4f}"]
    for key in ("map_at_k", "mafp_at_k", "novelty_auroc", "fit_seconds"):
        if res.get(key) is not None:
            parts.append(f"{key}={res[key]:.4f}")
    return " ".join(parts)
