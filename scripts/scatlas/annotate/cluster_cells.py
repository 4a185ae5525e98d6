"""``scatlas cluster`` (and ``scatlas query --cluster``): embed the query's cells with a
trained model (ScLSTM's representation by default), cluster them, report the clusters.

Writes ``obs['scatlas_cluster']`` (cluster number as text; empty for cells left out: not
novel under ``cells="novel"``, or without an embedding) and ``uns['scatlas_clusters']``:
the model, how the number of clusters was chosen, and a table of clusters (cells, novel
share, candidate new type, marker genes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scatlas.annotate.clusters import (
    MAX_CELLS,
    MAX_CLUSTERS,
    N_MARKERS,
    SameType,
    cluster_points,
    cluster_table,
    marker_genes,
)
from scatlas.annotate.inputs import (
    check_matrix,
    choose_matrix,
    detect_normalisation,
    map_genes,
    to_model_input,
)
from scatlas.annotate.query_io import read_query, write_csv
from scatlas.errors import InputError
from scatlas.fileio import atomic_path
from scatlas.models.sclstm import pair_head

log = logging.getLogger(__name__)

CELLS = ("all", "novel")
OBS_COLUMN = "scatlas_cluster"


@dataclass(frozen=True)
class ClusterOptions:
    """Which cells, how many clusters (None: estimated), and the limits."""

    cells: str = "all"
    n_clusters: int | None = None
    max_cells: int = MAX_CELLS
    max_clusters: int = MAX_CLUSTERS
    markers: int = N_MARKERS
    layer: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.cells not in CELLS:
            raise InputError(f"cells must be one of {CELLS}, not {self.cells!r}", field="cells")
        if self.n_clusters is not None and self.n_clusters < 1:
            raise InputError("the number of clusters must be >= 1", field="n_clusters")
        if self.max_cells < 3 or self.max_clusters < 2:
            raise InputError("max_cells must be >= 3 and max_clusters >= 2", field="max_cells")


def _symbols(var: pd.DataFrame) -> list[str]:
    for column in ("gene_symbol", "gene_symbols", "symbol", "feature_name"):
        if column in var.columns:
            return [str(s) if str(s) not in ("", "nan") else str(i) for i, s in var[column].items()]
    return [str(v) for v in var.index]


def embed_with_model(
    X: sp.csr_matrix,
    var: pd.DataFrame,
    detected: str,
    net: Any,
    info: dict[str, Any],
    *,
    gene_symbols: list[str] | None = None,
    source: str | None = None,
    batch_size: int = 4096,
) -> np.ndarray:
    """Rows of ``X`` (as ``detected``) embedded by a loaded model (``load_model``)."""
    from scatlas.models.io import embed
    from scatlas.models.normalize import align_to_genes

    genes = [str(g) for g in info["genes"]]
    mapping = map_genes(var, genes, gene_symbols or [""] * len(genes))
    if mapping.n_matched < max(1, len(genes) // 10):
        raise InputError(
            f"only {mapping.n_matched} of the model's {len(genes)} genes were found in the "
            "input (at least 10% needed)",
            path=source,
            field="var_names",
        )
    normalised = to_model_input(X, detected, str(info.get("normalisation", "log1p_cp10k")))
    aligned, _ = align_to_genes(normalised, mapping.names, genes)
    return embed(net, sp.csr_matrix(aligned), batch_size)


def _selected(adata: ad.AnnData, cells: str, source: str | None) -> np.ndarray:
    if cells == "all":
        return np.ones(adata.n_obs, dtype=bool)
    if "scatlas_novel" not in adata.obs:
        raise InputError(
            "clustering the novel cells needs obs['scatlas_novel']: annotate the cells with "
            "scatlas query first, or cluster all cells",
            path=source,
            field="scatlas_novel",
        )
    return adata.obs["scatlas_novel"].fillna(False).to_numpy(dtype=bool)


def cluster_adata(
    adata: ad.AnnData,
    options: ClusterOptions,
    *,
    model: tuple[Any, dict[str, Any]] | None = None,
    same_type: SameType | None = None,
    gene_symbols: list[str] | None = None,
    source: str | None = None,
) -> pd.DataFrame:
    """Cluster ``adata``'s cells in place as ``options`` say, with ``model`` (a loaded
    ``(net, model.json)``) or, without one, the ``obsm['X_scatlas']`` a query wrote (and
    ``same_type``: the reference model's pair head, when it is ScLSTM). Returns the cluster
    table."""
    chosen = _selected(adata, options.cells, source)
    query = choose_matrix(adata, options.layer, source=source)
    check_matrix(query.X, query.var.index, source=source)
    detected = detect_normalisation(query.X)
    X = sp.csr_matrix(query.X)
    if model is not None:
        emb = np.full((adata.n_obs, model[0].embedding_dim), np.nan, dtype=np.float32)
        rows = np.flatnonzero(chosen)
        emb[rows] = embed_with_model(
            X[rows], query.var, detected, *model, gene_symbols=gene_symbols, source=source
        )
        how = str(model[1].get("model", "?"))
    elif "X_scatlas" in adata.obsm:
        emb, how = np.asarray(adata.obsm["X_scatlas"], dtype=np.float32), "the reference's model"
    else:
        raise InputError("no model to embed the cells with", path=source, field="model")
    chosen &= np.isfinite(emb).all(axis=1)
    if chosen.sum() == 0:
        raise InputError(f"no cells to cluster ({options.cells} cells)", path=source, field="cells")
    result = cluster_points(
        emb[chosen],
        options.n_clusters,
        max_cells=options.max_cells,
        max_clusters=options.max_clusters,
        seed=options.seed,
        same_type=pair_head(model[0]) if model is not None else same_type,
    )
    X_log = to_model_input(X[np.flatnonzero(chosen)], detected, "log1p_cp10k")
    markers = marker_genes(X_log, result.labels, _symbols(query.var), options.markers)
    novel = (
        adata.obs["scatlas_novel"].to_numpy(dtype=bool)[chosen]
        if "scatlas_novel" in adata.obs
        else None
    )
    table = cluster_table(result, novel, markers)
    labels = np.full(adata.n_obs, "", dtype=object)
    labels[chosen] = result.labels.astype(str)
    adata.obs[OBS_COLUMN] = pd.Categorical(
        np.where(labels == "", None, labels), categories=[str(c) for c in range(result.n_clusters)]
    )
    adata.uns["scatlas_clusters"] = {
        "model": how,
        "cells": options.cells,
        "n_clusters": result.n_clusters,
        "estimated": result.estimated,
        "n_cells": int(chosen.sum()),
        "n_clustered": result.n_clustered,
        "silhouette": {str(k): v for k, v in result.silhouette.items()},
        "table": table,
    }
    for row in table[table["candidate_new_type"]].itertuples():
        log.info(
            "cluster %s: %d cells, %.0f%% novel: a candidate new type; markers %s",
            row.cluster,
            row.n_cells,
            100 * row.novel_share,
            row.markers or "-",
        )
    return table


def load_cluster_model(path: Path) -> tuple[tuple[Any, dict[str, Any]], list[str] | None]:
    """A model folder (``encoder.pt`` + ``model.json``: a trained model or a release) and
    the gene symbols of a release's ``genes.tsv`` when there is one."""
    from scatlas.models.device import select_device
    from scatlas.models.io import load_model

    path = Path(path)
    if not (path / "model.json").is_file():
        raise InputError(
            "not a model folder (no model.json): give results/models/<model> or a release",
            path=str(path),
        )
    net, info = load_model(path, device=select_device("auto"))
    symbols = None
    if (path / "genes.tsv").is_file():
        genes = pd.read_csv(path / "genes.tsv", sep="\t", dtype=str, keep_default_na=False)
        if "gene_symbol" in genes and genes["gene_id"].tolist() == list(info["genes"]):
            symbols = genes["gene_symbol"].tolist()
    if info.get("model") != "sclstm":
        log.warning("clustering with a %s model's embedding (ScLSTM's is meant)", info.get("model"))
    return (net, info), symbols


def cluster_file(
    model_dir: Path,
    input_path: Path,
    output: Path,
    options: ClusterOptions,
    *,
    csv: Path | None = None,
) -> tuple[ad.AnnData, pd.DataFrame]:
    """``scatlas cluster``: read, cluster, write the h5ad (and CSV) atomically."""
    model, symbols = load_cluster_model(model_dir)
    adata = read_query(Path(input_path))
    table = cluster_adata(adata, options, model=model, gene_symbols=symbols, source=str(input_path))
    with atomic_path(output, ".h5ad") as tmp:
        adata.write_h5ad(tmp)
    if csv is not None:
        write_csv(adata, Path(csv), [OBS_COLUMN])
    log.info("wrote %s (%d cells, %d clusters)", output, adata.n_obs, len(table))
    return adata, table


__all__ = ["CELLS", "ClusterOptions", "cluster_adata", "cluster_file"]
