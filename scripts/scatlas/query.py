"""Annotate new cells against a published reference (``scatlas query``).

``Reference.load`` checks the release before trusting it: ``manifest.json`` format, then the
size and sha256 of every listed file (a tampered or partial release is refused, naming the
file). Nothing is unpickled: weights via ``torch.load(weights_only=True)``, the cell table
via parquet, the index via faiss.

``Reference.annotate`` takes raw counts or log-normalised values (detected: integers vs
not), maps genes by stable id or by symbol (whichever overlaps more), zero-fills missing
genes, embeds, finds the k nearest reference cells and scores types as scQuery does:
``s = 1/(1 + d)`` per neighbour, summed per type over labelled neighbours, normalised over
types; the winner and its share are reported.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import anndata as ad
import faiss
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import InputError
from .fileio import atomic_path, atomic_write_text, sha256_file
from .index import load_index, search
from .models.base import EmbeddingModel
from .models.io import embed, load_model
from .normalize import align_to_genes, log1p_cp10k, looks_like_counts
from .publish import FORMAT_VERSION

log = logging.getLogger(__name__)

REQUIRED_FILES = ("index.faiss", "cells.parquet", "encoder.pt", "model.json", "genes.tsv")
GENE_COLUMNS = ("gene_ids", "gene_id", "gene_symbol", "gene_symbols", "symbol")
#: log-normalised values stay below this (log1p(1e4) ~ 9.2); non-integers above it are linear
LOG_MAX = 20.0
_VERSION_SUFFIX = re.compile(r"\.\d+$")
OBS_COLUMNS = ["scatlas_cell_type", "scatlas_cell_type_id", "scatlas_score", "scatlas_min_dist"]


class ReleaseError(InputError):
    """A published release is missing, partial, tampered with or of an unknown format."""


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / "manifest.json"
    if not path.is_file():
        raise ReleaseError("not a published reference: manifest.json is missing", path=str(path))
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ReleaseError(f"manifest is not valid JSON: {exc}", path=str(path)) from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ReleaseError(
            f"unsupported reference format {manifest.get('format_version')!r} "
            f"(this scatlas reads format {FORMAT_VERSION})",
            path=str(path),
            field="format_version",
        )
    if not isinstance(manifest.get("files"), dict):
        raise ReleaseError("manifest has no file list", path=str(path), field="files")
    return manifest


def verify_release(root: Path, manifest: dict[str, Any]) -> None:
    """Check size and sha256 of every file the manifest lists; ReleaseError on the first bad one."""
    files = manifest["files"]
    for name in REQUIRED_FILES:
        if name not in files:
            raise ReleaseError(
                "manifest does not list a required file",
                path=str(root / "manifest.json"),
                field=name,
            )
    for rel, entry in sorted(files.items()):
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts:
            raise ReleaseError(
                "manifest lists a path outside the release",
                path=str(root / "manifest.json"),
                field=rel,
            )
        path = root / pure
        if not path.is_file():
            raise ReleaseError("release file is missing (partial release?)", path=str(path))
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise ReleaseError(
                f"release file has {size} bytes, manifest says {entry.get('bytes')}", path=str(path)
            )
        if sha256_file(path) != entry.get("sha256"):
            raise ReleaseError(
                "release file checksum differs from the manifest (tampered?)", path=str(path)
            )


def detect_normalisation(X) -> str:
    """``raw_counts`` (non-negative integers), ``log_normalised`` (non-integers up to
    ``LOG_MAX``) or ``linear`` (larger non-integers, e.g. TPM/RPKM). Negative values, i.e.
    scaled/centred data, are refused."""
    values = X.data if sp.issparse(X) else np.asarray(X)
    if values.size and float(values.min()) < 0:
        raise InputError(
            "expression has negative values (scaled or centred data?); "
            "give raw counts or log-normalised values",
            field="X",
        )
    if looks_like_counts(X):
        return "raw_counts"
    return "log_normalised" if values.size == 0 or float(values.max()) <= LOG_MAX else "linear"


def _strip_version(name: str) -> str:
    return _VERSION_SUFFIX.sub("", name) if name.upper().startswith("ENS") else name


@dataclass
class GeneMapping:
    """Which input annotation matched which reference key, and the translated names."""

    source: str  # "var_names" or the var column used
    key: str  # "gene_id" or "gene_symbol"
    n_matched: int
    n_reference_genes: int
    names: list[str]  # per input column: the reference gene id, or "" when unmatched

    @property
    def fraction(self) -> float:
        return self.n_matched / self.n_reference_genes if self.n_reference_genes else 0.0


def map_genes(var: pd.DataFrame, gene_ids: list[str], gene_symbols: list[str]) -> GeneMapping:
    """Translate input genes to reference gene ids by id or symbol, whichever overlaps more."""
    by_id: dict[str, str] = {}
    for g in gene_ids:
        by_id.setdefault(g, g)
        by_id.setdefault(_strip_version(g), g)
    by_symbol: dict[str, str] = {}
    for g, s in zip(gene_ids, gene_symbols, strict=True):
        if s and s != "nan":
            by_symbol.setdefault(s, g)
    candidates = [("var_names", [str(v) for v in var.index])]
    candidates += [(c, var[c].astype(str).tolist()) for c in GENE_COLUMNS if c in var.columns]
    best: GeneMapping | None = None
    for source, values in candidates:
        for key, table, norm in (
            ("gene_id", by_id, _strip_version),
            ("gene_symbol", by_symbol, str),
        ):
            names = [table.get(v, table.get(norm(v), "")) for v in values]
            n = len({n for n in names if n})
            if best is None or n > best.n_matched:
                best = GeneMapping(source, key, n, len(gene_ids), names)
    assert best is not None
    return best


class Reference:
    """A verified, loaded release."""

    def __init__(
        self,
        root: Path,
        manifest: dict[str, Any],
        model: EmbeddingModel,
        model_info: dict[str, Any],
        cells: pd.DataFrame,
        index: faiss.Index,
        genes: pd.DataFrame,
    ):
        self.root, self.manifest, self.model, self.model_info = root, manifest, model, model_info
        self.cells, self.index, self.genes = cells, index, genes

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "auto") -> Reference:
        """Load a release folder (or the ``current`` link), verifying every file first."""
        from .models.trainer import select_device

        root = Path(path).resolve()
        if not root.is_dir():
            raise ReleaseError("reference folder does not exist", path=str(path))
        manifest = _read_manifest(root)
        verify_release(root, manifest)
        net, info = load_model(root, device=select_device(device))
        cells = pd.read_parquet(root / "cells.parquet")
        genes = pd.read_csv(root / "genes.tsv", sep="\t", dtype=str, keep_default_na=False)
        index = load_index(root / "index.faiss")
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
            "loaded reference %s (%d cells, %d genes, model %s)",
            manifest["version"],
            len(cells),
            len(genes),
            info["model"],
        )
        return cls(root, manifest, net, info, cells, index, genes)

    def annotate(
        self,
        adata: ad.AnnData,
        *,
        k: int = 10,
        batch_size: int = 4096,
        min_overlap: float = 0.5,
        min_genes: int | None = None,
        source: str | None = None,
    ) -> ad.AnnData:
        """Annotate ``adata`` in place (and return it).

        Writes ``obsm["X_scatlas"]``, ``obs`` columns ``scatlas_cell_type`` (label),
        ``scatlas_cell_type_id``, ``scatlas_score`` (winner's share of the similarity),
        ``scatlas_min_dist`` and ``uns["scatlas"]``. At least ``min_genes`` (default:
        ``min_overlap`` x the reference genes) must be found in the input. ``source`` names
        the input in error messages.
        """
        model_genes = self.model_info["genes"]
        X = adata.layers.get("counts", adata.X)
        if X is None:
            raise InputError("the input has no expression matrix", path=source, field="X")
        normalisation = detect_normalisation(X)
        log.info(
            "input expression detected as %s%s",
            normalisation,
            " (normalised with log1p_cp10k)"
            if normalisation != "log_normalised"
            else " (used as is; expected log1p of counts per 10,000)",
        )
        mapping = map_genes(adata.var, model_genes, self.genes["gene_symbol"].tolist())
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
                "genes.tsv, or lower the minimum overlap",
                path=source,
                field="var_names",
            )
        if mapping.n_matched < len(model_genes):
            log.warning(
                "%d of %d reference genes are missing from the input and set to 0 "
                "(matched %s by %s)",
                len(model_genes) - mapping.n_matched,
                len(model_genes),
                mapping.key,
                mapping.source,
            )
        n = adata.n_obs
        k_eff = min(int(k), int(self.index.ntotal))
        emb = np.zeros((n, self.model.embedding_dim), dtype=np.float32)
        dist = np.zeros((n, k_eff), dtype=np.float32)
        idx = np.zeros((n, k_eff), dtype=np.int64)
        X = sp.csr_matrix(X)
        for start in range(0, n, batch_size):
            chunk = X[start : start + batch_size]
            if normalisation != "log_normalised":
                chunk = log1p_cp10k(chunk)
            aligned, _ = align_to_genes(chunk, mapping.names, model_genes)
            emb[start : start + aligned.shape[0]] = embed(self.model, aligned, batch_size)
            d, i = search(self.index, emb[start : start + aligned.shape[0]], k_eff)
            dist[start : start + len(d)], idx[start : start + len(i)] = d, i
            log.info("annotated %d/%d cells", min(start + batch_size, n), n)

        type_id, type_label, score = self._vote(dist, idx)
        adata.obsm["X_scatlas"] = emb
        adata.obs["scatlas_cell_type"] = type_label
        adata.obs["scatlas_cell_type_id"] = type_id
        adata.obs["scatlas_score"] = score
        adata.obs["scatlas_min_dist"] = dist[:, 0] if n else np.zeros(0, np.float32)
        adata.uns["scatlas"] = {
            "reference_version": self.version,
            "reference_path": str(self.root),
            "model": str(self.model_info["model"]),
            "k": k_eff,
            "input_normalisation": normalisation,
            "gene_overlap": {
                "n_matched": mapping.n_matched,
                "n_reference_genes": len(model_genes),
                "fraction": mapping.fraction,
                "matched_by": mapping.source,
                "key": mapping.key,
            },
            "similar_studies": self._similar_studies(idx),
        }
        return adata

    def _vote(self, dist: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cl = self.cells["cl_id"].astype(str).to_numpy()
        labelled = cl[cl != ""]
        types = np.array(sorted(set(labelled)), dtype=object)
        code_of = {t: i for i, t in enumerate(types)}
        codes = np.array([code_of.get(c, -1) for c in cl], dtype=np.int64)
        label_of = (
            self.cells[self.cells["cl_id"] != ""]
            .drop_duplicates("cl_id")
            .set_index("cl_id")["cl_label"]
            .astype(str)
            .to_dict()
        )
        n = len(idx)
        out_id = np.full(n, "", dtype=object)
        out_label = np.full(n, "", dtype=object)
        out_score = np.zeros(n, dtype=np.float32)
        if n == 0 or len(types) == 0:
            return out_id, out_label, out_score
        neigh = codes[idx]
        weight = 1.0 / (1.0 + dist.astype(np.float64))
        for start in range(0, n, 4096):
            nb, w = neigh[start : start + 4096], weight[start : start + 4096]
            rows = np.broadcast_to(np.arange(len(nb))[:, None], nb.shape)
            keep = nb >= 0
            S = np.zeros((len(nb), len(types)))
            np.add.at(S, (rows[keep], nb[keep]), w[keep])
            total = S.sum(axis=1)
            win = S.argmax(axis=1)
            has = total > 0
            sl = slice(start, start + len(nb))
            out_id[sl] = np.where(has, types[win], "")
            out_score[sl] = np.where(has, S[np.arange(len(nb)), win] / np.where(has, total, 1), 0)
        out_label[:] = [label_of.get(t, "") for t in out_id]
        if (out_id == "").any():
            log.warning("%d cells had no labelled reference neighbour", int((out_id == "").sum()))
        return out_id, out_label, out_score

    def _similar_studies(self, idx: np.ndarray, top: int = 20) -> pd.DataFrame:
        studies = self.cells["study"].astype(str).to_numpy()[idx.ravel()]
        if studies.size == 0:
            return pd.DataFrame({"study": pd.Series(dtype=str), "share": pd.Series(dtype=float)})
        counts = pd.Series(studies).value_counts()
        frame = pd.DataFrame(
            {
                "study": counts.index.astype(str),
                "share": (counts.to_numpy() / studies.size).astype(float),
            }
        )
        frame = frame.sort_values(["share", "study"], ascending=[False, True]).head(top)
        return frame.reset_index(drop=True)


def query_file(
    reference: Path,
    input_h5ad: Path,
    output: Path,
    *,
    k: int = 10,
    batch_size: int = 4096,
    csv: Path | None = None,
    min_overlap: float = 0.5,
    min_genes: int | None = None,
) -> ad.AnnData:
    """Annotate ``input_h5ad`` against ``reference``; write the h5ad (and a CSV) atomically."""
    input_h5ad = Path(input_h5ad)
    ref = Reference.load(reference)
    try:
        adata = ad.read_h5ad(input_h5ad)
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"cannot read the input: {exc}", path=str(input_h5ad)) from exc
    ref.annotate(
        adata,
        k=k,
        batch_size=batch_size,
        min_overlap=min_overlap,
        min_genes=min_genes,
        source=str(input_h5ad),
    )
    with atomic_path(output, ".h5ad") as tmp:
        adata.write_h5ad(tmp)
    if csv is not None:
        table = adata.obs[OBS_COLUMNS].copy()
        table.index.name = "cell_id"
        atomic_write_text(csv, table.to_csv())
    log.info("wrote %s (%d cells)", output, adata.n_obs)
    return adata
