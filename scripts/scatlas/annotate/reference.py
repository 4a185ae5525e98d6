"""Annotate new cells against a published reference (``scatlas query``).

``Reference.load`` checks the release before trusting it: ``manifest.json`` format version
(an older or newer format is refused, saying what to do), then the size and sha256 of every
listed file (a tampered or partial release is refused, naming the file). Nothing is
unpickled: weights via ``torch.load(weights_only=True)``, tables via parquet/TSV, the index
via faiss.

``Reference.annotate`` takes raw counts or log-normalised values (detected and stated), maps
genes by stable id or symbol — through the mouse ↔ human ortholog table when that overlaps
more — zero-fills missing genes (with a warning; below the minimum overlap it refuses),
normalises as the model was trained (``model.json`` ``normalisation``), embeds, finds the k
nearest reference cells and scores types as scQuery does: ``s = 1/(1 + d)`` per neighbour,
summed per type over labelled neighbours, normalised over types; the winner and its share
are reported. A cell whose nearest reference cell is farther than its type's threshold
(calibrated on the reference, :mod:`scatlas.release.novelty`) is flagged novel.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import anndata as ad
import faiss
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scatlas.annotate.inputs import (
    NORMALISATIONS,
    GeneMapping,
    check_matrix,
    detect_normalisation,
    map_genes,
    to_model_input,
)
from scatlas.errors import InputError
from scatlas.fileio import atomic_path, atomic_write_text
from scatlas.models.base import EmbeddingModel
from scatlas.models.io import embed, load_model
from scatlas.models.normalize import align_to_genes
from scatlas.release.format import Manifest, ReleaseError, check_metric, read_manifest, verify_files
from scatlas.release.index import load_index, search, unit_rows
from scatlas.release.novelty import NOVELTY_COLUMNS, flag_novel
from scatlas.release.signing import check_pin, verify_signature

log = logging.getLogger(__name__)

OBS_COLUMNS = [
    "scatlas_cell_type",
    "scatlas_cell_type_id",
    "scatlas_score",
    "scatlas_novel",
    "scatlas_min_dist",
    "scatlas_reason",
]
# why a cell gets no call (obs["scatlas_reason"]); called cells have ""
UNEMBEDDABLE = {
    "empty": "no expression in the reference's genes",
    "overflow": "expression values too large to normalise",
    "embedding": "embedding is not finite (expression values too large?)",
    "no_neighbour": "no labelled reference neighbour",
}


def check_arguments(
    *, k: int, batch_size: int, min_overlap: float = 0.5, min_genes: int | None = None
) -> None:
    """InputError naming the argument for a value annotation cannot use."""
    checks = [
        ("k", k, isinstance(k, int | np.integer) and k >= 1, "a whole number >= 1"),
        (
            "batch_size",
            batch_size,
            isinstance(batch_size, int | np.integer) and batch_size >= 1,
            "a whole number >= 1",
        ),
        ("min_overlap", min_overlap, 0 < float(min_overlap) <= 1, "in (0, 1]"),
        (
            "min_genes",
            min_genes,
            min_genes is None or (isinstance(min_genes, int | np.integer) and min_genes >= 1),
            "a whole number >= 1",
        ),
    ]
    for name, value, ok, want in checks:
        if not ok:
            raise InputError(f"{name} must be {want}, not {value!r}", field=name)


def _check_existing(adata: ad.AnnData, overwrite: bool, source: str | None) -> None:
    present = [c for c in OBS_COLUMNS if c in adata.obs.columns]
    if "X_scatlas" in adata.obsm:
        present.append("obsm['X_scatlas']")
    if present and not overwrite:
        raise InputError(
            f"the input already holds a scatlas annotation ({', '.join(present)}); "
            "annotate a copy without them, or replace them with --overwrite",
            path=source,
            field=present[0],
        )
    if present:
        log.warning("replacing the input's earlier scatlas annotation: %s", ", ".join(present))


class Reference:
    """A verified, loaded release (or one assembled in memory, e.g. by the benchmark)."""

    def __init__(
        self,
        root: Path | None,
        manifest: Manifest,
        model: EmbeddingModel,
        model_info: dict[str, Any],
        cells: pd.DataFrame,
        index: faiss.Index,
        genes: pd.DataFrame,
        thresholds: pd.DataFrame | None = None,
    ):
        self.root, self.manifest, self.model, self.model_info = root, manifest, model, model_info
        self.cells, self.index, self.genes = cells, index, genes
        self.metric = check_metric(model_info)
        self.normalisation = str(model_info.get("normalisation", "log1p_cp10k"))
        if self.normalisation not in NORMALISATIONS:
            raise ReleaseError(
                f"the reference's model expects {self.normalisation!r} input, which this "
                f"scatlas cannot produce (known: {', '.join(NORMALISATIONS)}); upgrade scatlas",
                field="normalisation",
            )
        self.thresholds = (
            thresholds if thresholds is not None else pd.DataFrame({c: [] for c in NOVELTY_COLUMNS})
        )
        cl = cells["cl_id"].astype(str).fillna("")
        self._types = np.array(sorted(set(cl) - {""}), dtype=object)
        self._codes = pd.Categorical(cl.where(cl != ""), categories=self._types).codes.astype(
            np.int64
        )
        self._labels = (
            cells.loc[cl != "", ["cl_id", "cl_label"]]
            .astype(str)
            .drop_duplicates("cl_id")
            .set_index("cl_id")["cl_label"]
            .reindex(self._types)
            .fillna("")
            .to_numpy(dtype=object)
        )
        self._study_codes, self._studies = pd.factorize(cells["study"].astype(str))

    @property
    def version(self) -> str:
        return self.manifest.version or "unpublished"

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        device: str = "auto",
        expect_sha256: str | None = None,
        public_key: str | os.PathLike | None = None,
    ) -> Reference:
        """Load a release folder (or the ``current`` link), verifying every file first: the
        pinned manifest sha256 and the signature when given (see
        :mod:`scatlas.release.signing`), then the manifest's version against the folder's
        name, every listed file's size and sha256, and no unlisted file."""
        from scatlas.models.device import select_device

        root = Path(path).resolve()
        if not root.is_dir():
            raise ReleaseError("reference folder does not exist", path=str(path))
        if expect_sha256:
            check_pin(root, expect_sha256)
        if public_key is not None:
            verify_signature(root, Path(public_key))
        manifest = read_manifest(root)
        if manifest.version != root.name:
            raise ReleaseError(
                f"the manifest says version {manifest.version!r} but the release folder is "
                f"{root.name!r} (an edited manifest, or a renamed folder: give it its version's "
                "name)",
                path=str(root / "manifest.json"),
                field="version",
            )
        verify_files(root, manifest)
        net, info = load_model(root, device=select_device(device))
        check_metric(info)
        cells = pd.read_parquet(root / "cells.parquet")
        genes = pd.read_csv(root / "genes.tsv", sep="\t", dtype=str, keep_default_na=False)
        thresholds = pd.read_csv(
            root / "novelty.tsv", sep="\t", dtype={"cl_id": str}, keep_default_na=False
        )
        index = load_index(root / "index.faiss", use_gpu=True)  # flat: on a GPU if faiss has one
        if index.ntotal != len(cells):
            raise ReleaseError(
                f"index holds {index.ntotal} cells, the cell table {len(cells)}",
                path=str(root / "index.faiss"),
            )
        if genes["gene_id"].tolist() != info["genes"]:
            raise ReleaseError(
                "genes.tsv differs from the model's gene list",
                path=str(root / "genes.tsv"),
                field="gene_id",
            )
        if index.d != info["embedding_dim"]:
            raise ReleaseError(
                "index dimension differs from the model's embedding", path=str(root / "index.faiss")
            )
        log.info(
            "loaded reference %s (%d cells, %d genes, model %s, %s index)",
            manifest.version,
            len(cells),
            len(genes),
            info["model"],
            manifest.index_kind or "?",
        )
        return cls(root, manifest, net, info, cells, index, genes, thresholds)

    def embed_expression(
        self, X, mapping: GeneMapping, detected: str, batch_size: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Input rows (as ``detected``, input genes) → normalised as the model was trained,
        over all input genes, then put in the reference gene order → embeddings (unit rows
        for a cosine model), and for each row why it cannot be embedded ("" when it can):
        such rows get NaN embeddings and no call."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            normalised = to_model_input(X, detected, self.normalisation)
            aligned, _ = align_to_genes(normalised, mapping.names, self.model_info["genes"])
        aligned = sp.csr_matrix(aligned)
        reasons = np.full(aligned.shape[0], "", dtype=object)
        finite = np.ones(aligned.shape[0], dtype=bool)
        bad = ~np.isfinite(aligned.data)
        if bad.any():
            rows = np.repeat(np.arange(aligned.shape[0]), np.diff(aligned.indptr))
            finite[np.unique(rows[bad])] = False
            reasons[~finite] = UNEMBEDDABLE["overflow"]
            aligned.data[bad] = 0
        empty = np.diff(aligned.indptr) == 0
        empty |= np.asarray(abs(aligned).sum(axis=1)).ravel() == 0
        reasons[finite & empty] = UNEMBEDDABLE["empty"]
        emb = np.full((aligned.shape[0], self.model.embedding_dim), np.nan, dtype=np.float32)
        ok = reasons == ""
        if ok.any():
            e = embed(self.model, aligned[np.flatnonzero(ok)], batch_size)
            emb[ok] = unit_rows(e) if self.metric == "cosine" else e
        nonfinite = ok & ~np.isfinite(emb).all(axis=1)
        reasons[nonfinite] = UNEMBEDDABLE["embedding"]
        emb[nonfinite] = np.nan
        return emb, reasons

    def annotate(
        self,
        adata: ad.AnnData,
        *,
        k: int = 10,
        batch_size: int = 4096,
        min_overlap: float = 0.5,
        min_genes: int | None = None,
        orthologs: bool = True,
        source: str | None = None,
        overwrite: bool = False,
    ) -> ad.AnnData:
        """Annotate ``adata`` in place (and return it).

        Writes ``obsm["X_scatlas"]``, ``obs`` columns ``scatlas_cell_type`` (label),
        ``scatlas_cell_type_id``, ``scatlas_score`` (winner's share of the similarity),
        ``scatlas_novel``, ``scatlas_min_dist``, ``scatlas_reason`` (why a cell has no call:
        no expression in the reference's genes, values too large to normalise, no labelled
        neighbour; "" for called cells) and ``uns["scatlas"]`` (release version, input
        normalisation, gene overlap, the most similar studies). At least ``min_genes``
        (default: ``min_overlap`` x the reference genes) must be found in the input.
        ``source`` names the input in error messages; existing scatlas columns are replaced
        only with ``overwrite``.
        """
        check_arguments(k=k, batch_size=batch_size, min_overlap=min_overlap, min_genes=min_genes)
        _check_existing(adata, overwrite, source)
        X = adata.layers.get("counts", adata.X)
        check_matrix(X, adata.var_names, source=source)
        detected = detect_normalisation(X)
        log.info(
            "input expression detected as %s (%s); the model expects %s",
            detected,
            "from layers['counts']" if "counts" in adata.layers else "from X",
            self.normalisation,
        )
        mapping = self._map_genes(adata, min_overlap, min_genes, orthologs, source)
        X = X if sp.issparse(X) else sp.csr_matrix(np.asarray(X))
        emb, dist, idx, reasons = self._search(X.tocsr(), mapping, detected, k, batch_size)
        type_id, type_label, score = self.vote(dist, idx)
        called = reasons == ""
        reasons[called & (type_id == "")] = UNEMBEDDABLE["no_neighbour"]
        novel, _ = flag_novel(dist[:, 0], type_id, self.thresholds)
        novel &= called
        adata.obsm["X_scatlas"] = emb
        adata.obs["scatlas_cell_type"] = type_label
        adata.obs["scatlas_cell_type_id"] = type_id
        adata.obs["scatlas_score"] = np.where(called, score, np.nan).astype(np.float32)
        adata.obs["scatlas_novel"] = novel
        adata.obs["scatlas_min_dist"] = np.where(called, dist[:, 0], np.nan).astype(np.float32)
        adata.obs["scatlas_reason"] = reasons.astype(str)
        self._summarise(adata, detected, mapping, idx[called], novel, reasons)
        return adata

    def _map_genes(
        self,
        adata: ad.AnnData,
        min_overlap: float,
        min_genes: int | None,
        orthologs: bool,
        source: str | None,
    ) -> GeneMapping:
        """The input's genes matched to the model's; InputError below the minimum overlap."""
        model_genes = self.model_info["genes"]
        mapping = map_genes(
            adata.var, model_genes, self.genes["gene_symbol"].tolist(), orthologs=orthologs
        )
        needed = (
            int(min_genes)
            if min_genes is not None
            else int(np.ceil(min_overlap * len(model_genes)))
        )
        if mapping.n_matched < max(needed, 1):
            raise InputError(
                f"only {mapping.n_matched} of the reference's {len(model_genes)} genes were found "
                f"in the input (at least {needed} needed). Give stable gene ids (var_names or a "
                "'gene_ids' column) or symbols (a 'gene_symbol' column) as in the reference's "
                "genes.tsv (mouse and human symbols are translated), or lower the minimum "
                "overlap (--min-overlap)",
                path=source,
                field="var_names",
            )
        if mapping.translation:
            log.info("genes translated %s (%d matched)", mapping.translation, mapping.n_matched)
        if mapping.n_matched < len(model_genes):
            log.warning(
                "%d of %d reference genes are missing from the input and set to 0 "
                "(matched %s by %s%s)",
                len(model_genes) - mapping.n_matched,
                len(model_genes),
                mapping.key,
                mapping.source,
                f", {mapping.translation}" if mapping.translation else "",
            )
        return mapping

    def _search(
        self, X: sp.csr_matrix, mapping: GeneMapping, detected: str, k: int, batch_size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Embeddings, neighbour distances and rows (+inf / -1 for cells without an
        embedding) and the reasons of cells that cannot be embedded, batch by batch."""
        n = X.shape[0]
        k_eff = min(int(k), int(self.index.ntotal))
        emb = np.full((n, self.model.embedding_dim), np.nan, dtype=np.float32)
        dist = np.full((n, k_eff), np.inf, dtype=np.float32)
        idx = np.full((n, k_eff), -1, dtype=np.int64)
        reasons = np.full(n, "", dtype=object)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            e, why = self.embed_expression(X[start:stop], mapping, detected, batch_size)
            emb[start:stop], reasons[start:stop] = e, why
            rows = start + np.flatnonzero(why == "")
            if len(rows):
                dist[rows], idx[rows] = search(self.index, emb[rows], k_eff, self.metric)
            log.info("annotated %d/%d cells", stop, n)
        if (reasons != "").any():
            log.warning(
                "%d cells could not be embedded and get no call (see obs['scatlas_reason'])",
                int((reasons != "").sum()),
            )
        return emb, dist, idx, reasons

    def _summarise(
        self,
        adata: ad.AnnData,
        detected: str,
        mapping: GeneMapping,
        called_idx: np.ndarray,
        novel: np.ndarray,
        reasons: np.ndarray,
    ) -> None:
        adata.uns["scatlas"] = {
            "reference_version": self.version,
            "reference_path": str(self.root) if self.root else "",
            "model": str(self.model_info["model"]),
            "metric": self.metric,
            "k": int(called_idx.shape[1]) if called_idx.ndim == 2 else 0,
            "input_normalisation": detected,
            "model_normalisation": self.normalisation,
            "gene_overlap": mapping.describe(),
            "n_novel": int(novel.sum()),
            "n_no_call": int((reasons != "").sum()),
            "similar_studies": self.similar_studies(called_idx),
        }
        studies = adata.uns["scatlas"]["similar_studies"]
        log.info(
            "%d cells annotated; %d flagged novel; %d without a call; most similar study %s",
            adata.n_obs,
            int(novel.sum()),
            int((reasons != "").sum()),
            studies["study"].iloc[0] if len(studies) else "-",
        )

    def vote(
        self, dist: np.ndarray, idx: np.ndarray, chunk: int = 8192
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """scQuery's vote: per cell, the type with the largest Σ 1/(1+d) over its labelled
        neighbours, its label, and its share of that sum over all types (0 when none)."""
        n = len(idx)
        out_id = np.full(n, "", dtype=object)
        out_label = np.full(n, "", dtype=object)
        out_score = np.zeros(n, dtype=np.float32)
        n_types = len(self._types)
        if n == 0 or n_types == 0:
            return out_id, out_label, out_score
        for start in range(0, n, chunk):
            i = idx[start : start + chunk]
            nb = np.where(i >= 0, self._codes[np.where(i >= 0, i, 0)], -1)
            w = 1.0 / (1.0 + dist[start : start + chunk].astype(np.float64))
            keep = nb >= 0
            rows = np.broadcast_to(np.arange(len(nb))[:, None], nb.shape)
            S = np.bincount(
                rows[keep] * n_types + nb[keep], weights=w[keep], minlength=len(nb) * n_types
            ).reshape(len(nb), n_types)
            total = S.sum(axis=1)
            win = S.argmax(axis=1)
            has = total > 0
            sl = slice(start, start + len(nb))
            out_id[sl] = np.where(has, self._types[win], "")
            out_label[sl] = np.where(has, self._labels[win], "")
            out_score[sl] = np.where(has, S[np.arange(len(nb)), win] / np.where(has, total, 1), 0)
        if (out_id == "").any():
            log.warning("%d cells had no labelled reference neighbour", int((out_id == "").sum()))
        return out_id, out_label, out_score

    def similar_studies(self, idx: np.ndarray, top: int = 20) -> pd.DataFrame:
        """The reference studies holding most of the query's neighbours, with their share."""
        valid = idx[idx >= 0]
        if valid.size == 0:
            return pd.DataFrame(
                {
                    "study": pd.Series(dtype=str),
                    "n_neighbours": pd.Series(dtype=np.int64),
                    "share": pd.Series(dtype=float),
                }
            )
        counts = np.bincount(self._study_codes[valid], minlength=len(self._studies))
        frame = pd.DataFrame(
            {
                "study": np.asarray(self._studies, dtype=str),
                "n_neighbours": counts.astype(np.int64),
                "share": counts / valid.size,
            }
        )
        frame = frame[frame["n_neighbours"] > 0]
        frame = frame.sort_values(["share", "study"], ascending=[False, True]).head(top)
        return frame.reset_index(drop=True)


def read_query(path: Path) -> ad.AnnData:
    """Read a query h5ad, refusing missing, empty and unreadable files with a clear error."""
    path = Path(path)
    if path.is_dir():
        raise InputError(
            "the query is a folder, not an h5ad file (a 10x folder? read it with "
            "scanpy.read_10x_mtx and write_h5ad first)",
            path=str(path),
        )
    if not path.is_file():
        raise InputError("the query file does not exist", path=str(path))
    if path.stat().st_size == 0:
        raise InputError(
            "the query file is empty (0 bytes); write the AnnData again", path=str(path)
        )
    try:
        return ad.read_h5ad(path)
    except Exception as exc:  # h5py/anndata raise many kinds for a file that is not h5ad
        raise InputError(
            f"cannot read the query as h5ad ({type(exc).__name__}: {exc}); give an AnnData "
            "file written with adata.write_h5ad",
            path=str(path),
        ) from exc


def write_csv(adata: ad.AnnData, path: Path) -> None:
    """The per-cell annotation (``OBS_COLUMNS``) as CSV, indexed by cell id, atomically."""
    table = adata.obs[OBS_COLUMNS].copy()
    table.index.name = "cell_id"
    atomic_write_text(path, table.to_csv())


def query_file(
    reference: Path | Reference,
    input_h5ad: Path,
    output: Path,
    *,
    k: int = 10,
    batch_size: int = 4096,
    csv: Path | None = None,
    min_overlap: float = 0.5,
    min_genes: int | None = None,
    orthologs: bool = True,
    overwrite: bool = False,
) -> ad.AnnData:
    """Annotate ``input_h5ad`` against ``reference`` (a release folder, or a Reference
    loaded with pin or signature checks); write the h5ad (and a CSV) atomically. Arguments
    are checked before the reference is loaded."""
    check_arguments(k=k, batch_size=batch_size, min_overlap=min_overlap, min_genes=min_genes)
    input_h5ad = Path(input_h5ad)
    ref = reference if isinstance(reference, Reference) else Reference.load(reference)
    adata = read_query(input_h5ad)
    ref.annotate(
        adata,
        k=k,
        batch_size=batch_size,
        min_overlap=min_overlap,
        min_genes=min_genes,
        orthologs=orthologs,
        source=str(input_h5ad),
        overwrite=overwrite,
    )
    with atomic_path(output, ".h5ad") as tmp:
        adata.write_h5ad(tmp)
    if csv is not None:
        write_csv(adata, Path(csv))
    log.info("wrote %s (%d cells)", output, adata.n_obs)
    return adata
