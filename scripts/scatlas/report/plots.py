"""The report's figures, as base64 PNG (matplotlib, Agg): bars, a heatmap, volcanoes."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def stacked_bars(table: pd.DataFrame, title: str, xlabel: str) -> str:
    """Horizontal bars of ``table``'s rows, stacked by its columns (cells per study, by
    split; cells per type, by study)."""
    plt = _pyplot()
    height = max(2.0, 0.28 * len(table) + 1.0)
    fig, ax = plt.subplots(figsize=(8, height))
    left = np.zeros(len(table))
    cmap = plt.get_cmap("tab20" if table.shape[1] > 10 else "tab10")
    for k, col in enumerate(table.columns):
        values = table[col].to_numpy(dtype=float)
        ax.barh(table.index.astype(str), values, left=left, color=cmap(k % cmap.N), label=str(col))
        left += values
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right", ncol=1 + table.shape[1] // 12)
    return _png(fig)


def heatmap(table: pd.DataFrame, title: str, vmin: float = 0.0, vmax: float = 1.0) -> str:
    """Cells coloured by value with the value written in (per-type F1 by method)."""
    plt = _pyplot()
    values = table.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * table.shape[1], 0.9 + 0.3 * table.shape[0]))
    ax.imshow(np.nan_to_num(values, nan=vmin), cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns], rotation=45, ha="right")
    ax.set_yticks(range(table.shape[0]), [str(i) for i in table.index], fontsize=8)
    for (i, j), v in np.ndenumerate(values):
        if not np.isnan(v):
            ax.text(
                j,
                i,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if v < (vmin + vmax) / 2 else "black",
            )
    ax.set_title(title, fontsize=10)
    return _png(fig)


def volcano(table: pd.DataFrame, title: str, n_labels: int = 8) -> str:
    """Mean per-study log fold change against −log10 Stouffer FDR; significant genes in
    colour (up red, down blue), the strongest named."""
    plt = _pyplot()
    logfc = table[[c for c in table.columns if c.startswith("logfc__")]].mean(axis=1)
    # "fdr": tables written before the column said its test
    fdr = table["stouffer_fdr" if "stouffer_fdr" in table else "fdr"].clip(lower=1e-300)
    y = -np.log10(fdr)
    sig = table["significant"].astype(bool)
    up = sig & (table["direction"] == "up")
    fig, ax = plt.subplots(figsize=(4.2, 3.4))
    ax.scatter(logfc[~sig], y[~sig], s=4, color="#bbbbbb")
    ax.scatter(logfc[up], y[up], s=6, color="#c0392b", label=f"up ({int(up.sum())})")
    down = sig & ~up
    ax.scatter(logfc[down], y[down], s=6, color="#2471a3", label=f"down ({int(down.sum())})")
    names = table.get("gene_symbol", table["gene"]).astype(str)
    for i in table[sig].head(n_labels).index:
        ax.annotate(names[i], (logfc[i], y[i]), fontsize=6)
    ax.set_xlabel("mean log fold change over studies")
    ax.set_ylabel("−log10 Stouffer FDR")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _png(fig)
