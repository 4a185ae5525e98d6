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
import html
import io
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import InputError
from .fileio import atomic_write_text
from .index import build_index, search
from .models.data import obs_text, read_atlas, selections
from .normalize import align_to_genes, log1p_cp10k

log = logging.getLogger(__name__)

BASELINES = ("pca", "lognorm")
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
    k: int = 10,
    ontology: OntologyDistance | None = None,
) -> dict[str, Any]:
    """Exact kNN of every query in the reference; annotation and retrieval metrics."""
    ref_labels = np.asarray(ref_labels, dtype=object)
    query_labels = np.asarray(query_labels, dtype=object)
    ref_types = sorted(set(ref_labels))
    code = {t: i for i, t in enumerate(ref_types)}
    ref_codes = np.array([code[t] for t in ref_labels], dtype=np.int64)
    index = build_index(ref, flat_max=max(len(ref), 1))
    _, idx = search(index, query, k)
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
) -> tuple[np.ndarray, np.ndarray]:
    """PCA fitted on the reference's HVGs; queries projected with the same fit."""
    from sklearn.decomposition import PCA

    genes = highly_variable_genes(ref_log, n_top_genes)
    ref_h, query_h = ref_log[:, genes], query_log[:, genes]
    nc = max(1, min(n_components, len(genes), ref_h.shape[0]))
    pca = PCA(n_components=nc, svd_solver="covariance_eigh", random_state=0)
    ref_emb = pca.fit_transform(ref_h).astype(np.float32)
    return ref_emb, pca.transform(query_h).astype(np.float32)


# --------------------------------------------------------------------------- report


def _plot_png(
    ref: np.ndarray,
    ref_labels: np.ndarray,
    query: np.ndarray,
    query_labels: np.ndarray,
    title: str,
    max_points: int = 4000,
) -> str:
    """Base64 PNG: PCA-2 of reference (dots) and query (crosses) embeddings, by type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    ri = np.sort(rng.choice(len(ref), min(len(ref), max_points), replace=False))
    qi = np.sort(rng.choice(len(query), min(len(query), max_points), replace=False))
    both = np.vstack([ref[ri], query[qi]]).astype(np.float64)
    if both.shape[1] >= 2 and len(both) >= 2:
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, svd_solver="randomized", random_state=0).fit_transform(both)
    else:
        xy = np.hstack([both - both.mean(axis=0), np.zeros((len(both), 1))])[:, :2]
    types = sorted(set(ref_labels[ri]) | set(query_labels[qi]))
    cmap = plt.get_cmap("tab20" if len(types) > 10 else "tab10")
    fig, ax = plt.subplots(figsize=(5, 4), dpi=80)
    nr = len(ri)
    for t_i, t in enumerate(types):
        colour = cmap(t_i % cmap.N)
        m = ref_labels[ri] == t
        ax.scatter(xy[:nr][m, 0], xy[:nr][m, 1], s=4, color=colour, alpha=0.5, label=t)
        m = query_labels[qi] == t
        ax.scatter(xy[nr:][m, 0], xy[nr:][m, 1], s=14, color=colour, marker="x")
    ax.set_title(f"{title} (dots: reference, x: query)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(types) <= 20:
        ax.legend(fontsize=6, markerscale=2, loc="best")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(
        f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or "", *frame.columns]
    )
    rows = []
    for idx, row in frame.iterrows():
        cells = "".join(
            f"<td>{'' if v is None or (isinstance(v, float) and math.isnan(v)) else html.escape(f'{v:.4f}' if isinstance(v, float) else str(v))}</td>"
            for v in row
        )
        rows.append(f"<tr><th>{html.escape(str(idx))}</th>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _report_html(
    metrics: pd.DataFrame,
    per_type: pd.DataFrame,
    plots: dict[str, str],
    n_ref: int,
    n_query: int,
    k: int,
) -> str:
    imgs = "".join(
        f'<figure><img alt="{html.escape(m)}" src="data:image/png;base64,{png}">'
        f"<figcaption>{html.escape(m)}</figcaption></figure>"
        for m, png in plots.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>scatlas evaluation</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}}figure{{display:inline-block}}
</style></head><body>
<h1>scatlas evaluation</h1>
<p>Study-held-out kNN evaluation: {n_query} query cells from held-out studies against
{n_ref} reference (training) cells, k = {k}, exact Euclidean search. accuracy: kNN majority
vote; macro/median F1 over query types; MAP@k: same cell type relevant; MAFP@k: ontology
flexible relevance (empty without an ontology).</p>
<h2>Metrics</h2>{_html_table(metrics)}
<h2>Per-type F1</h2>{_html_table(per_type)}
<h2>Embeddings (PCA-2)</h2>{imgs}
</body></html>
"""


# --------------------------------------------------------------------------- driver


def evaluate(
    atlas_h5ad: Path,
    model_dirs: dict[str, Path],
    out_dir: Path,
    *,
    k: int = 10,
    ontology: OntologyDistance | None = None,
    batch_size: int = 4096,
    device: str = "auto",
    lognorm_max_values: int = LOGNORM_MAX_VALUES,
) -> dict[str, dict[str, Any]]:
    """Evaluate each model of ``model_dirs`` and the baselines; write JSON, TSV and HTML.

    Returns ``{method: result}`` with the figures written to ``out_dir/{method}.json``.
    """
    from .models.io import embed, load_model
    from .models.trainer import select_device

    atlas_h5ad, out_dir = Path(atlas_h5ad), Path(out_dir)
    clash = sorted(set(model_dirs) & set(BASELINES))
    if clash:
        raise InputError(f"model names {clash} clash with the baselines", field="model_dirs")
    adata = read_atlas(atlas_h5ad)
    sel = selections(adata, str(atlas_h5ad))
    ref_mask, q_mask = sel.train, sel.held_out("query")
    if not ref_mask.any() or not q_mask.any():
        raise InputError(
            f"evaluation needs reference and query cells: {int(ref_mask.sum())} trainable train "
            f"cells, {int(q_mask.sum())} trainable query cells of training types",
            path=str(atlas_h5ad),
            field="split",
        )
    cl_id = sel.cl_id
    ref_labels, q_labels = cl_id[ref_mask], cl_id[q_mask]
    genes = [str(g) for g in adata.var_names]
    X = sp.csr_matrix(adata.X)
    ref_log = log1p_cp10k(X[np.flatnonzero(ref_mask)])
    q_log = log1p_cp10k(X[np.flatnonzero(q_mask)])
    label_of = dict(zip(cl_id[::-1], obs_text(adata.obs, "cl_label")[::-1], strict=True))
    log.info(
        "evaluating %d methods: %d reference cells, %d query cells, k=%d",
        len(model_dirs) + len(BASELINES),
        len(ref_labels),
        len(q_labels),
        k,
    )

    def embeddings() -> Any:
        for name, mdir in model_dirs.items():
            net, info = load_model(mdir, device=select_device(device))
            ref_in, n_found = align_to_genes(ref_log, genes, info["genes"])
            if n_found < len(info["genes"]):
                log.warning(
                    "model %s: %d of its %d genes are not in the atlas (zero-filled)",
                    name,
                    len(info["genes"]) - n_found,
                    len(info["genes"]),
                )
            q_in, _ = align_to_genes(q_log, genes, info["genes"])
            yield name, "model", embed(net, ref_in, batch_size), embed(net, q_in, batch_size)
        ref_p, q_p = pca_baseline(ref_log, q_log)
        yield "pca", "baseline", ref_p, q_p
        if (ref_log.shape[0] + q_log.shape[0]) * ref_log.shape[1] <= lognorm_max_values:
            yield "lognorm", "baseline", ref_log.toarray(), q_log.toarray()
        else:  # the dense matrix would not fit: the same HVGs as the PCA baseline
            hvg = highly_variable_genes(ref_log, 2000)
            log.warning(
                "lognorm baseline restricted to %d highly variable genes (memory)", len(hvg)
            )
            yield "lognorm", "baseline", ref_log[:, hvg].toarray(), q_log[:, hvg].toarray()

    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    plots: dict[str, str] = {}
    for name, kind, ref_emb, q_emb in embeddings():
        res = evaluate_embeddings(ref_emb, ref_labels, q_emb, q_labels, k=k, ontology=ontology)
        res.pop("predictions")
        res = {"method": name, "kind": kind, **res}
        results[name] = res
        atomic_write_text(out_dir / f"{name}.json", json.dumps(res, indent=1) + "\n")
        plots[name] = _plot_png(ref_emb, ref_labels, q_emb, q_labels, name)
        log.info(
            "%s: accuracy=%.4f macro_f1=%.4f median_f1=%.4f MAP@%d=%.4f%s",
            name,
            res["accuracy"],
            res["macro_f1"],
            res["median_f1"],
            res["k"],
            res["map_at_k"],
            "" if res["mafp_at_k"] is None else f" MAFP@{res['k']}={res['mafp_at_k']:.4f}",
        )

    table = pd.DataFrame(
        [
            {
                "method": n,
                "kind": r["kind"],
                "n_reference": r["n_reference"],
                "n_query": r["n_query"],
                "k": r["k"],
                "embedding_dim": r["embedding_dim"],
                **{c: r[c] for c in METRIC_COLUMNS},
            }
            for n, r in results.items()
        ]
    )
    atomic_write_text(
        out_dir / "metrics.tsv", table.to_csv(sep="\t", index=False, float_format="%.6g", na_rep="")
    )
    per_type = pd.DataFrame({n: r["per_type_f1"] for n, r in results.items()})
    per_type.insert(0, "cell type", [label_of.get(t) or t for t in per_type.index])
    per_type.insert(
        1, "n_query", [results[next(iter(results))]["per_type_support"][t] for t in per_type.index]
    )
    per_type.index.name = "cl_id"
    shown = table.set_index("method")
    html_text = _report_html(
        shown, per_type, plots, len(ref_labels), len(q_labels), results[next(iter(results))]["k"]
    )
    atomic_write_text(out_dir / "report.html", html_text)
    log.info("wrote %s", os.fspath(out_dir))
    return results
