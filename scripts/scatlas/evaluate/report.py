"""The evaluation report: one self-contained HTML page (metrics table, per-type F1, plots)."""

from __future__ import annotations

import base64
import html
import io
import math

import numpy as np
import pandas as pd

PLOT_METHODS = ("umap", "pca")


def layout_2d(points: np.ndarray, method: str = "umap", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D layout of ``points``: UMAP (umap-learn) or PCA; falls back to PCA when UMAP is
    not installed or there are too few points. Returns the coordinates and the method used."""
    points = np.asarray(points, dtype=np.float32)
    n = len(points)
    if method == "umap" and n >= 10:
        try:
            import umap
        except ImportError:
            method = "pca"
        else:
            reducer = umap.UMAP(
                n_neighbors=min(15, n - 1), random_state=seed, n_jobs=1, init="random"
            )
            return reducer.fit_transform(points), "UMAP"
    if points.shape[1] >= 2 and n >= 2:
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, svd_solver="randomized", random_state=seed).fit_transform(points)
        return xy, "PCA"
    centred = points - points.mean(axis=0) if n else points
    return np.hstack([centred, np.zeros((n, 2))])[:, :2], "PCA"


def _panel(ax, xy, nr, nq, ref_groups, query_groups, title: str, cmap_name: str) -> None:
    """Reference (dots) and query (crosses) cells of ``xy`` coloured by group."""
    import matplotlib.pyplot as plt

    groups = sorted(set(ref_groups) | set(query_groups))
    cmap = plt.get_cmap(cmap_name if len(groups) > 10 else "tab10")
    for g_i, g in enumerate(groups):
        colour = cmap(g_i % cmap.N)
        m = ref_groups == g
        ax.scatter(xy[:nr][m, 0], xy[:nr][m, 1], s=4, color=colour, alpha=0.5, label=g)
        m = query_groups == g
        ax.scatter(xy[nr : nr + nq][m, 0], xy[nr : nr + nq][m, 1], s=14, color=colour, marker="x")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(groups) <= 20:
        ax.legend(fontsize=6, markerscale=2, loc="best")


def plot_png(
    ref: np.ndarray,
    ref_labels: np.ndarray,
    query: np.ndarray,
    query_labels: np.ndarray,
    title: str,
    *,
    method: str = "umap",
    max_points: int = 2000,
    novel: np.ndarray | None = None,
    ref_studies: np.ndarray | None = None,
    query_studies: np.ndarray | None = None,
) -> str:
    """Base64 PNG of reference (dots), query (crosses) and novel (black +) cells coloured
    by type and, beside it on the same layout when studies are given, by study (a model
    that keeps studies apart shows it there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    ri = np.sort(rng.choice(len(ref), min(len(ref), max_points), replace=False))
    qi = np.sort(rng.choice(len(query), min(len(query), max_points), replace=False))
    parts = [ref[ri], query[qi]]
    if novel is not None and len(novel):
        ni = np.sort(rng.choice(len(novel), min(len(novel), max_points // 2), replace=False))
        parts.append(novel[ni])
    xy, used = layout_2d(np.vstack(parts).astype(np.float32), method)
    by_study = ref_studies is not None and query_studies is not None
    fig, axes = plt.subplots(1, 2 if by_study else 1, figsize=(10 if by_study else 5, 4), dpi=80)
    axes = np.atleast_1d(axes)
    nr, nq = len(ri), len(qi)
    labels = (np.asarray(ref_labels, dtype=object)[ri], np.asarray(query_labels, dtype=object)[qi])
    _panel(axes[0], xy, nr, nq, *labels, f"{title}: {used}, by type (x: query)", "tab20")
    if len(parts) == 3:
        axes[0].scatter(
            xy[nr + nq :, 0], xy[nr + nq :, 1], s=14, color="black", marker="+", label="novel"
        )
        if axes[0].get_legend() is not None:
            axes[0].legend(fontsize=6, markerscale=2, loc="best")
    if by_study:
        studies = (
            np.asarray(ref_studies, dtype=object)[ri],
            np.asarray(query_studies, dtype=object)[qi],
        )
        _panel(axes[1], xy, nr, nq, *studies, f"{title}: by study", "tab20b")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _cell(v: object) -> str:
    """A table cell: integers as integers (k, cell counts), other numbers to 4 decimals."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer() and abs(v) >= 1:
        return html.escape(f"{int(v):,}")
    return html.escape(f"{v:.4f}" if isinstance(v, float) else str(v))


def html_table(frame: pd.DataFrame) -> str:
    head = "".join(
        f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or "", *frame.columns]
    )
    rows = []
    for idx, row in frame.iterrows():
        cells = "".join(f"<td>{_cell(v)}</td>" for v in row)
        rows.append(f"<tr><th>{html.escape(str(idx))}</th>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _clustering_section(table: pd.DataFrame | None) -> str:
    if table is None or table.empty:
        return ""
    shown = table.drop(columns=["space"]).set_index("method")
    return (
        "<h2>Clustering (cell-type detection)</h2><p>The query cells, novel ones included, "
        "clustered in each model's space with Ward's agglomerative method (with the true "
        "number of clusters, and estimated: by ScLSTM's pair head, else by silhouette) "
        "against agglomerative clustering and Leiden on the cells' own PCA (50 components "
        "of 2,000 HVGs). ACC: clusters matched one-to-one to types (Hungarian); balanced "
        f"accuracy: its mean over types.</p>{html_table(shown)}"
    )


def report_html(
    metrics: pd.DataFrame,
    per_type: pd.DataFrame,
    plots: dict[str, str],
    *,
    n_ref: int,
    n_query: int,
    n_novel: int,
    novel_types: list[str],
    k: int,
    notes: list[str],
    clustering: pd.DataFrame | None = None,
) -> str:
    imgs = "".join(
        f'<figure><img alt="{html.escape(m)}" src="data:image/png;base64,{png}">'
        f"<figcaption>{html.escape(m)}</figcaption></figure>"
        for m, png in plots.items()
    )
    novel = (
        f"{n_novel} query cells of types absent from training ({html.escape(', '.join(novel_types))})"
        " score novelty (AUROC of the mean distance to the k nearest reference cells, novel vs "
        "known query cells)."
        if n_novel
        else "No query cells of an unseen type: novelty AUROC not computed."
    )
    note_items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>scatlas evaluation</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}}figure{{display:inline-block}}
</style></head><body>
<h1>scatlas evaluation</h1>
<p>Study-held-out kNN evaluation: {n_query} query cells from held-out studies against
{n_ref} reference (training) cells, k = {k}, exact search in each method's space
(Euclidean; cosine models are L2-normalised and binary codes compare in Hamming distance,
which Euclidean search ranks alike). accuracy: kNN majority vote; macro/median F1 over query
types; MAP@k: same cell type relevant; MAFP@k: ontology flexible relevance (empty without an
ontology); own_accuracy / own_median_f1: the model's own annotation (dense: its classifier
head; deep hash: the nearest Hadamard anchor in Hamming space). {novel} CellTypist (logistic regression trained on the same reference cells) is
an annotation peer: no retrieval figures; its time is fit + predict.</p>
<ul>{note_items}</ul>
<h2>Metrics</h2>{html_table(metrics)}
<h2>Per-type F1</h2>{html_table(per_type)}
{_clustering_section(clustering)}
<h2>Embeddings</h2>{imgs}
</body></html>
"""
