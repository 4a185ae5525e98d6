"""What the web page shows of an annotated query, as JSON-ready dicts (scQuery's web server,
``../shared/METHODS.md``): everything derives from the cells x types score matrix.

* ``heatmap``: the matrix (cells sampled to ``MAX_HEATMAP_CELLS``), cells and types ordered
  by average-linkage hierarchical clustering, the cells' dendrogram, and its cut into
  clusters (every cell gets one: the sampled ones by the cut, the rest by the nearest
  cluster centroid);
* ``cluster_view``: for one cluster, a 2-D plot (PCA of the embedding) of its cells among
  reference cells of the retrieved types, the ontology DAG of those types with their paths to
  the root, the matched studies, and per type its DE genes (the release's meta-analysis),
  the cluster's expression of them beside the reference's fold changes, and GO terms;
* ``distribution``, ``release_summary``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scatlas.annotate.inputs import choose_matrix, detect_normalisation, map_genes, to_model_input

MAX_HEATMAP_CELLS = 1_500
MAX_CLUSTERS = 8
MAX_TYPES = 8
MIN_TYPE_SCORE = 0.05
MAX_PLOT_REFERENCE = 1_500
MAX_PLOT_QUERY = 1_000
N_DE_GENES = 10
MAX_EXPRESSION_CELLS = 60


def _round(values: np.ndarray, digits: int = 3) -> list:
    return np.round(np.nan_to_num(np.asarray(values, dtype=np.float64)), digits).tolist()


def _scores(adata: ad.AnnData) -> tuple[np.ndarray, list[str]]:
    matrix = adata.obsm["scatlas_scores"]
    dense = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
    return dense.astype(np.float64), [str(t) for t in adata.uns["scatlas"]["score_types"]]


def heatmap(adata: ad.AnnData, labels: dict[str, str], seed: int = 0) -> dict[str, Any]:
    """The clustered cells x types heatmap, its dendrogram and the cells' clusters."""
    from scipy.cluster.hierarchy import dendrogram, fcluster, leaves_list, linkage

    scores, types = _scores(adata)
    n = adata.n_obs
    shown = np.sort(np.random.default_rng(seed).permutation(n)[:MAX_HEATMAP_CELLS])
    kept_types = np.flatnonzero(scores[shown].max(0) > 0) if len(shown) else np.array([], int)
    sub = scores[np.ix_(shown, kept_types)]
    if len(shown) >= 2:
        tree = linkage(sub, "average")
        dendro = dendrogram(tree, no_plot=True)
        order = np.asarray(dendro["leaves"])
        k = min(MAX_CLUSTERS, len(shown))
        cut = fcluster(tree, t=k, criterion="maxclust") - 1
        segments = {"icoord": _round(dendro["icoord"], 2), "dcoord": _round(dendro["dcoord"], 4)}
    else:
        order, cut, segments = np.arange(len(shown)), np.zeros(len(shown), int), {}
    type_order = (
        leaves_list(linkage(sub.T, "average"))
        if len(kept_types) >= 2
        else np.arange(len(kept_types))
    )
    clusters = _assign(scores[:, kept_types], shown, cut)
    columns = [types[i] for i in kept_types[type_order]]
    return {
        "cells": adata.obs_names[shown[order]].astype(str).tolist(),
        "types": [{"id": t, "label": labels.get(t, t)} for t in columns],
        "values": _round(sub[np.ix_(order, type_order)]),
        "dendrogram": segments,
        "cell_cluster": cut[order].astype(int).tolist(),
        "clusters": [
            {"cluster": int(c), "n_cells": int((clusters == c).sum())} for c in np.unique(clusters)
        ],
        "n_cells": int(n),
        "n_shown": int(len(shown)),
        "_all_clusters": clusters,
    }


def _assign(scores: np.ndarray, shown: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """The cluster of every cell: the cut for the shown cells, the nearest centroid else."""
    clusters = np.full(len(scores), -1, dtype=np.int64)
    clusters[shown] = cut
    rest = np.flatnonzero(clusters < 0)
    if len(rest) and len(shown):
        ids = np.unique(cut)
        centroids = np.stack([scores[shown][cut == c].mean(0) for c in ids])
        d = ((scores[rest, None, :] - centroids[None]) ** 2).sum(-1)
        clusters[rest] = ids[d.argmin(1)]
    return clusters


def distribution(adata: ad.AnnData) -> list[dict[str, Any]]:
    """Cells per predicted type (cells without a call counted as "no call")."""
    calls = adata.obs["scatlas_cell_type"].astype(str).replace({"": "no call", "nan": "no call"})
    counts = calls.value_counts()
    return [{"type": str(t), "n_cells": int(c)} for t, c in counts.items()]


def retrieved_types(scores: np.ndarray, types: list[str], members: np.ndarray) -> list[str]:
    """The types a cluster's cells score highest on (mean score above 0.05, at most 8)."""
    mean = scores[members].mean(0) if len(members) else np.zeros(len(types))
    order = np.argsort(-mean, kind="stable")
    return [types[i] for i in order[:MAX_TYPES] if mean[i] > MIN_TYPE_SCORE]


def ontology_dag(ontology: Any, terms: list[str]) -> dict[str, Any]:
    """The retrieved terms and their ``is_a`` paths to the root: nodes with depth and label
    (``highlight`` for the retrieved ones), edges child -> parent."""
    if ontology is None:
        return {"nodes": [], "edges": []}
    known = [t for t in terms if t in ontology]
    nodes = set(known)
    for t in known:
        nodes |= ontology.ancestors(t, relations="is_a")
    edges = [
        {"child": child, "parent": parent}
        for child in sorted(nodes)
        for parent in sorted(ontology.parents(child, relations="is_a"))
        if parent in nodes
    ]
    return {
        "nodes": [
            {
                "id": t,
                "label": ontology.label(t),
                "depth": int(ontology.depth(t, relations="is_a")),
                "highlight": t in known,
            }
            for t in sorted(nodes)
        ],
        "edges": edges,
    }


def study_url(accession: str) -> str:
    """The public page of a study accession (GEO or ArrayExpress/BioStudies)."""
    if accession.startswith("GSE"):
        return f"https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc={accession}"
    if accession.startswith("E-"):
        return f"https://www.ebi.ac.uk/biostudies/arrayexpress/studies/{accession}"
    return ""


def matched_studies(reference: Any, neighbours: np.ndarray, titles: dict[str, str]) -> list[dict]:
    frame = reference.similar_studies(neighbours, top=10)
    return [
        {
            "study": str(r.study),
            "similarity": round(float(r.share), 4),
            "n_neighbours": int(r.n_neighbours),
            "title": titles.get(str(r.study), ""),
            "url": study_url(str(r.study)),
        }
        for r in frame.itertuples()
    ]


def _de_table(reference: Any, term: str) -> pd.DataFrame | None:
    path = reference.root / "de" / f"{term.replace(':', '_')}.tsv" if reference.root else None
    if path is None or not path.is_file():
        return None
    return pd.read_csv(path, sep="\t")


def _go_terms(reference: Any, term: str) -> list[dict[str, Any]]:
    path = reference.root / "de" / f"{term.replace(':', '_')}.go.tsv" if reference.root else None
    if path is None or not path.is_file():
        return []
    table = pd.read_csv(path, sep="\t").head(10)
    return table.astype(object).where(table.notna(), None).to_dict(orient="records")


def gene_columns(adata: ad.AnnData, reference: Any) -> dict[str, int]:
    """The query matrix's column of each reference gene id it has (matched once per view)."""
    query = choose_matrix(adata, "auto")
    mapping = map_genes(
        query.var, reference.model_info["genes"], reference.genes["gene_symbol"].tolist()
    )
    return {name: i for i, name in enumerate(mapping.names) if name}


def _expression(
    adata: ad.AnnData, columns: dict[str, int], gene_ids: list[str], cells: np.ndarray
) -> np.ndarray:
    """Log1p-CP10k expression of ``gene_ids`` in the query ``cells`` (0 where the input
    lacks a gene); only those rows are normalised (the transform is per cell)."""
    X = sp.csr_matrix(choose_matrix(adata, "auto").X)[cells]
    X_log = to_model_input(X, detect_normalisation(X), "log1p_cp10k")
    out = np.zeros((len(cells), len(gene_ids)), dtype=np.float64)
    for j, g in enumerate(gene_ids):
        if g in columns:
            out[:, j] = X_log[:, columns[g]].toarray().ravel()
    return out


def de_view(
    adata: ad.AnnData,
    reference: Any,
    term: str,
    members: np.ndarray,
    columns: dict[str, int],
    seed: int = 0,
) -> dict[str, Any] | None:
    """A type's top replicated up genes, the cluster's expression of them (cells sampled)
    beside the reference's log fold change per study, and GO terms when present
    (``columns``: :func:`gene_columns`)."""
    table = _de_table(reference, term)
    if table is None or table.empty or "gene" not in table.columns:
        return None
    sort = [c for c in ("significant", "stouffer_z") if c in table.columns]
    up = table[table.get("direction", "up") == "up"] if "direction" in table else table
    top = up.sort_values(sort, ascending=False).head(N_DE_GENES) if sort else up.head(N_DE_GENES)
    genes = top["gene"].astype(str).tolist()
    symbols = top.get("gene_symbol", top["gene"]).astype(str).tolist()
    studies = [c.split("__", 1)[1] for c in top.columns if c.startswith("logfc__")]
    cells = np.sort(np.random.default_rng(seed).permutation(members)[:MAX_EXPRESSION_CELLS])
    expression = _expression(adata, columns, genes, cells)
    return {
        "term": term,
        "genes": symbols,
        "significant": [bool(v) for v in top.get("significant", pd.Series(True, index=top.index))],
        "query_expression": _round(expression.T),  # genes x sampled cells
        "reference_logfc": _round(top[[f"logfc__{s}" for s in studies]].to_numpy()),
        "reference_studies": studies,
        "go": _go_terms(reference, term),
    }


def _reference_vectors(index: Any, rows: np.ndarray) -> np.ndarray:
    """Stored vectors of the reference cells ``rows`` (an IVF index gets its direct map)."""
    import faiss

    with contextlib.suppress(RuntimeError):  # not IVF: flat and HNSW reconstruct as they are
        faiss.extract_index_ivf(index).make_direct_map()
    if len(rows) == 0:
        return np.zeros((0, index.d), dtype=np.float32)
    return np.stack([index.reconstruct(int(r)) for r in rows]).astype(np.float32)


def plot_points(
    adata: ad.AnnData, reference: Any, members: np.ndarray, terms: list[str], seed: int = 0
) -> list[dict[str, Any]]:
    """A 2-D PCA of the cluster's cells among reference cells of ``terms`` (both sampled):
    position, which set, type, study, novelty and ScLSTM cluster of each point."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    cells = reference.cells
    ref_rows = np.flatnonzero(cells["cl_id"].astype(str).isin(terms).to_numpy())
    ref_rows = np.sort(rng.permutation(ref_rows)[:MAX_PLOT_REFERENCE])
    emb = np.asarray(adata.obsm["X_scatlas"], dtype=np.float32)
    q_rows = members[np.isfinite(emb[members]).all(1)]
    q_rows = np.sort(rng.permutation(q_rows)[:MAX_PLOT_QUERY])
    stacked = np.vstack([_reference_vectors(reference.index, ref_rows), emb[q_rows]])
    if len(stacked) < 2:
        return []
    xy = PCA(n_components=min(2, stacked.shape[1]), random_state=0).fit_transform(stacked)
    xy = np.c_[xy, np.zeros(len(xy))][:, :2]
    obs = adata.obs
    cluster = obs["scatlas_cluster"].astype(str) if "scatlas_cluster" in obs else None
    points = [
        {
            "x": round(float(xy[i, 0]), 4),
            "y": round(float(xy[i, 1]), 4),
            "set": "reference",
            "type": str(cells["cl_label"].iat[r]),
            "study": str(cells["study"].iat[r]),
            "novelty": "reference",
            "cluster": "reference",
        }
        for i, r in enumerate(ref_rows)
    ]
    for j, r in enumerate(q_rows):
        i = len(ref_rows) + j
        points.append(
            {
                "x": round(float(xy[i, 0]), 4),
                "y": round(float(xy[i, 1]), 4),
                "set": "query",
                "type": str(obs["scatlas_cell_type"].iat[r]) or "no call",
                "study": "query",
                "novelty": "novel" if bool(obs["scatlas_novel"].iat[r]) else "known",
                "cluster": "query" if cluster is None else cluster.iat[r],
            }
        )
    return points


def cluster_view(
    adata: ad.AnnData, reference: Any, clusters: np.ndarray, cluster: int, titles: dict[str, str]
) -> dict[str, Any]:
    """Everything the page shows for one cluster of query cells."""
    members = np.flatnonzero(clusters == cluster)
    scores, types = _scores(adata)
    terms = retrieved_types(scores, types, members)
    neighbours = np.asarray(adata.obsm["scatlas_neighbours"])[members]
    columns = gene_columns(adata, reference)
    views = (de_view(adata, reference, t, members, columns) for t in terms)
    de = [view for view in views if view is not None]
    labels = dict(
        zip(
            reference.cells["cl_id"].astype(str),
            reference.cells["cl_label"].astype(str),
            strict=True,
        )
    )
    return {
        "cluster": int(cluster),
        "n_cells": int(len(members)),
        "n_novel": int(adata.obs["scatlas_novel"].to_numpy(dtype=bool)[members].sum()),
        "types": [{"id": t, "label": labels.get(t, t)} for t in terms],
        "points": plot_points(adata, reference, members, terms),
        "dag": ontology_dag(reference.ontology(), terms),
        "studies": matched_studies(reference, neighbours, titles),
        "de": de,
    }


def release_summary(reference: Any) -> dict[str, Any]:
    """The release's manifest (without the file list), metrics and quality-gate outcome."""
    import json

    manifest = json.loads((reference.root / "manifest.json").read_text(encoding="utf-8"))
    metrics_path = reference.root / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    files = manifest.pop("files", {})
    return {
        "manifest": manifest,
        "n_files": len(files),
        "metrics": metrics,
        "quality_gate": manifest.get("quality_gate", {}),
        "types": int(reference.cells["cl_id"].astype(str).replace("", np.nan).nunique()),
    }
