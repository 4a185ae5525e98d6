"""Annotate new cells against a published reference (``scatlas query``).

``Reference.load`` checks the release before trusting it: ``manifest.json`` format version
(an older or newer format is refused, saying what to do), then the size and sha256 of every
listed file (a tampered or partial release is refused, naming the file). Nothing is
unpickled: weights via ``torch.load(weights_only=True)``, tables via parquet/TSV, the index
via faiss.

``Reference.annotate`` reads the query's expression from ``layers['counts']``, ``.raw`` or
``.X`` (the first that is not scaled, or the one asked for; stated in the log and in
``uns``), takes raw counts or log-normalised values (detected and stated), maps genes by
stable id or symbol — through the mouse ↔ human ortholog table when that overlaps more —
zero-fills missing genes (a warning below ``WARN_OVERLAP`` of the reference's genes, and a
lower confidence; below ``min_overlap`` it refuses), normalises as the model was trained
(``model.json`` ``normalisation``), embeds, finds the k nearest reference cells and scores
types as scQuery does (:mod:`scatlas.annotate.scores`). Beside the winner it writes the
per-type scores, the neighbours, the margin over the runner-up, an answer that backs off to
the common ancestor when the winner is not clear (:mod:`scatlas.annotate.backoff`), a
confidence, optional majority voting over over-clustered cells
(:mod:`scatlas.annotate.voting`), and the novelty flag: a cell whose nearest reference cell
is farther than the release's threshold (:mod:`scatlas.release.novelty`).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anndata as ad
import faiss
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scatlas.annotate.backoff import backoff_answers
from scatlas.annotate.inputs import (
    NORMALISATIONS,
    GeneMapping,
    QueryMatrix,
    check_matrix,
    choose_matrix,
    detect_normalisation,
    map_genes,
    to_model_input,
)
from scatlas.annotate.query_io import read_query, write_csv
from scatlas.annotate.scores import TypeScores, type_scores
from scatlas.annotate.voting import majority_vote, over_cluster
from scatlas.errors import InputError
from scatlas.fileio import atomic_path
from scatlas.models.base import EmbeddingModel
from scatlas.models.io import embed, load_model
from scatlas.models.normalize import align_to_genes, gene_positions
from scatlas.release.format import Manifest, ReleaseError, check_metric, read_manifest, verify_files
from scatlas.release.index import index_kind, load_index, search, stored_breadth, unit_rows
from scatlas.release.novelty import NOVELTY_COLUMNS, flag_novel
from scatlas.release.signing import check_pin, verify_signature

log = logging.getLogger(__name__)

OBS_COLUMNS = [
    "scatlas_cell_type",
    "scatlas_cell_type_id",
    "scatlas_score",
    "scatlas_margin",
    "scatlas_confidence",
    "scatlas_answer",
    "scatlas_answer_id",
    "scatlas_answer_level",
    "scatlas_novel",
    "scatlas_min_dist",
    "scatlas_reason",
]
#: with majority voting
VOTING_COLUMNS = [
    "scatlas_over_cluster",
    "scatlas_majority_voting",
    "scatlas_majority_voting_id",
    "scatlas_majority_share",
]
OBSM_KEYS = ["X_scatlas", "scatlas_scores", "scatlas_neighbours", "scatlas_distances"]
#: below this share of the reference's genes a query is warned about (and its confidence
#: falls with the share); below ``min_overlap`` (default ``MIN_OVERLAP``) it is refused
WARN_OVERLAP = 0.5
MIN_OVERLAP = 0.1
#: a winner whose score leads the runner-up's by less than this is not clear (backoff)
MIN_MARGIN = 0.2
LAYERS_HELP = "auto (layers['counts'], else .raw, else .X: the first not scaled), X, raw or a layer"
# why a cell gets no call (obs["scatlas_reason"]); called cells have ""
UNEMBEDDABLE = {
    "empty": "no expression in the reference's genes",
    "overflow": "expression values too large to normalise",
    "embedding": "embedding is not finite (expression values too large?)",
    "no_neighbour": "no labelled reference neighbour",
}


def check_arguments(
    *,
    k: int,
    batch_size: int,
    min_overlap: float = MIN_OVERLAP,
    min_genes: int | None = None,
    min_margin: float = MIN_MARGIN,
    search_breadth: int | None = None,
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
        ("min_margin", min_margin, 0 <= float(min_margin) <= 1, "in [0, 1]"),
        (
            "search_breadth",
            search_breadth,
            search_breadth is None
            or (isinstance(search_breadth, int | np.integer) and search_breadth >= 1),
            "a whole number >= 1",
        ),
    ]
    for name, value, ok, want in checks:
        if not ok:
            raise InputError(f"{name} must be {want}, not {value!r}", field=name)


@dataclass(frozen=True)
class QueryOptions:
    """How ``scatlas query`` annotates (checked on creation: ``check_arguments``)."""

    k: int = 10
    batch_size: int = 4096
    layer: str = "auto"  # LAYERS_HELP
    min_overlap: float = MIN_OVERLAP
    min_genes: int | None = None
    min_margin: float = MIN_MARGIN
    majority_voting: bool = False
    orthologs: bool = True
    #: IVF nprobe / HNSW efSearch for this query (None: the release's, tuned at publish)
    search_breadth: int | None = None

    def __post_init__(self) -> None:
        check_arguments(
            k=self.k,
            batch_size=self.batch_size,
            min_overlap=self.min_overlap,
            min_genes=self.min_genes,
            min_margin=self.min_margin,
            search_breadth=self.search_breadth,
        )


def _check_existing(adata: ad.AnnData, overwrite: bool, source: str | None) -> None:
    present = [c for c in OBS_COLUMNS + VOTING_COLUMNS if c in adata.obs.columns]
    present += [f"obsm[{key!r}]" for key in OBSM_KEYS if key in adata.obsm]
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
        ontology: Any | None = None,
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
        self._ontology = ontology  # the release's ontology.obo is loaded when first needed

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
        mmap: bool = False,
    ) -> Reference:
        """Load a release folder (or the ``current`` link), verifying every file first: the
        pinned manifest sha256 and the signature when given (see
        :mod:`scatlas.release.signing`), then the manifest's version against the folder's
        name, every listed file's size and sha256, and no unlisted file. ``mmap`` maps the
        index's vectors from the file instead of reading them (``load_index``)."""
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
        # flat: on a GPU if faiss has one (unless memory-mapped)
        index = load_index(root / "index.faiss", use_gpu=not mmap, mmap=mmap)
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
        self,
        X,
        mapping: GeneMapping,
        detected: str,
        batch_size: int,
        positions: tuple[np.ndarray, int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Input rows (as ``detected``, input genes) → normalised as the model was trained,
        over all input genes, then put in the reference gene order → embeddings (unit rows
        for a cosine model), and for each row why it cannot be embedded ("" when it can):
        such rows get NaN embeddings and no call."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            normalised = to_model_input(X, detected, self.normalisation)
            aligned, _ = align_to_genes(
                normalised, mapping.names, self.model_info["genes"], positions=positions
            )
        aligned = sp.csr_matrix(aligned)
        reasons = np.full(aligned.shape[0], "", dtype=object)
        finite = np.ones(aligned.shape[0], dtype=bool)
        bad = ~np.isfinite(aligned.data)
        if bad.any():
            rows = np.repeat(np.arange(aligned.shape[0]), np.diff(aligned.indptr))
            finite[np.unique(rows[bad])] = False
            reasons[~finite] = UNEMBEDDABLE["overflow"]
            aligned.data[bad] = 0
        row_of = np.repeat(np.arange(aligned.shape[0]), np.diff(aligned.indptr))
        empty = np.bincount(row_of[aligned.data != 0], minlength=aligned.shape[0]) == 0
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
        options: QueryOptions | None = None,
        *,
        source: str | None = None,
        overwrite: bool = False,
        **changes: Any,
    ) -> ad.AnnData:
        """Annotate ``adata`` in place (and return it), as ``options`` (a
        :class:`QueryOptions`; ``changes`` override its fields, e.g. ``k=20``) say.

        ``obs``: ``scatlas_cell_type`` (label) and ``_id`` of the winner, ``scatlas_score``
        (its share of the neighbours' similarity), ``scatlas_margin`` (over the runner-up),
        ``scatlas_confidence`` (score x the share of the reference's expression the input's
        genes cover), ``scatlas_answer``/``_id``/``_level`` (the winner, or the common
        ancestor of the competing types when the margin is below ``min_margin``),
        ``scatlas_novel``, ``scatlas_min_dist``, ``scatlas_reason`` (why a cell has no call;
        "" for called cells); with ``majority_voting`` also ``VOTING_COLUMNS``. ``obsm``:
        ``X_scatlas`` (embedding), ``scatlas_scores`` (cells x types, sparse; columns in
        ``uns['scatlas']['score_types']``), ``scatlas_neighbours`` (rows of the release's
        ``cells.parquet``, -1: none) and ``scatlas_distances``. ``uns['scatlas']``: release,
        input matrix and normalisation, gene overlap, the most similar studies.

        ``layer`` chooses the input matrix (``LAYERS_HELP``). At least ``min_genes``
        (default: ``min_overlap`` x the reference genes) must be found in the input.
        ``source`` names the input in error messages; existing scatlas columns are replaced
        only with ``overwrite``.
        """
        opts = replace(options or QueryOptions(), **changes)
        _check_existing(adata, overwrite, source)
        query = choose_matrix(adata, opts.layer, source=source)
        check_matrix(query.X, query.var.index, source=source)
        detected = detect_normalisation(query.X)
        log.info(
            "input expression (%s) detected as %s; the model expects %s",
            query.where,
            detected,
            self.normalisation,
        )
        mapping = self._map_genes(query.var, opts, source)
        X = query.X if sp.issparse(query.X) else sp.csr_matrix(np.asarray(query.X))
        emb, dist, idx, reasons = self._search(X.tocsr(), mapping, detected, opts)
        scores = type_scores(dist, idx, self._codes, len(self._types))
        called = reasons == ""
        reasons[called & (scores.winner < 0)] = UNEMBEDDABLE["no_neighbour"]
        called &= scores.winner >= 0
        coverage = self.coverage(mapping)
        self._write_calls(adata, scores, called, opts.min_margin, coverage)
        novel, _ = flag_novel(dist[:, 0], adata.obs["scatlas_cell_type_id"], self.thresholds)
        novel &= called
        adata.obsm["X_scatlas"] = emb
        adata.obsm["scatlas_scores"] = scores.matrix
        adata.obsm["scatlas_neighbours"] = idx
        adata.obsm["scatlas_distances"] = dist
        adata.obs["scatlas_novel"] = novel
        adata.obs["scatlas_min_dist"] = np.where(called, dist[:, 0], np.nan).astype(np.float32)
        adata.obs["scatlas_reason"] = reasons.astype(str)
        if opts.majority_voting:
            self._majority_voting(adata, emb, np.where(called, scores.winner, -1))
        self._summarise(adata, query, detected, mapping, coverage, idx[called], novel, reasons)
        breadth = stored_breadth(self.index)
        adata.uns["scatlas"]["index"] = {
            "kind": index_kind(self.index),
            # IVF nprobe / HNSW efSearch searched with; 0: exact search
            "search_breadth": 0 if breadth is None else opts.search_breadth or breadth,
        }
        return adata

    def coverage(self, mapping: GeneMapping) -> float:
        """The share of the reference's expression in the genes the input has (by the mean
        expression in ``genes.tsv``; by gene count for releases without it)."""
        names = set(map(str, mapping.names))
        found = np.array([str(g) in names for g in self.model_info["genes"]], dtype=bool)
        if "mean_expression" in self.genes:
            weight = pd.to_numeric(self.genes["mean_expression"], errors="coerce").fillna(0)
            weight = weight.to_numpy(dtype=np.float64)
            if weight.sum() > 0:
                return float(weight[found].sum() / weight.sum())
        return float(found.mean()) if len(found) else 0.0

    def _write_calls(
        self,
        adata: ad.AnnData,
        scores: TypeScores,
        called: np.ndarray,
        min_margin: float,
        coverage: float,
    ) -> None:
        win = np.where(called, scores.winner, 0)
        none = np.array("", dtype=object)
        adata.obs["scatlas_cell_type"] = np.where(called, self._labels[win], none)
        adata.obs["scatlas_cell_type_id"] = np.where(called, self._types[win], none)
        adata.obs["scatlas_score"] = np.where(called, scores.share, np.nan).astype(np.float32)
        adata.obs["scatlas_margin"] = np.where(called, scores.margin, np.nan).astype(np.float32)
        confidence = np.where(called, scores.share * coverage, np.nan).astype(np.float32)
        adata.obs["scatlas_confidence"] = confidence
        answer_id, answer, level = backoff_answers(
            scores, self._types, self._labels, min_margin, self.ontology
        )
        adata.obs["scatlas_answer"] = np.where(called, answer, none)
        adata.obs["scatlas_answer_id"] = np.where(called, answer_id, none)
        adata.obs["scatlas_answer_level"] = np.where(called, level, none)

    def ontology(self):
        """The release's Cell Ontology (loaded on first use), or None without one."""
        if self._ontology is None and self.root is not None:
            obo = self.root / "ontology.obo"
            if obo.is_file():
                from scatlas.ontology import load_ontology

                self._ontology = load_ontology(obo)
        return self._ontology

    def _majority_voting(self, adata: ad.AnnData, emb: np.ndarray, winner: np.ndarray) -> None:
        clusters = over_cluster(emb)
        code, share = majority_vote(clusters, winner)
        has = code >= 0
        safe = np.where(has, code, 0)
        none = np.array("", dtype=object)
        adata.obs["scatlas_over_cluster"] = pd.Categorical(
            np.where(clusters >= 0, clusters.astype(str), none)
        )
        adata.obs["scatlas_majority_voting"] = np.where(has, self._labels[safe], none)
        adata.obs["scatlas_majority_voting_id"] = np.where(has, self._types[safe], none)
        adata.obs["scatlas_majority_share"] = share

    def _map_genes(self, var: pd.DataFrame, opts: QueryOptions, source: str | None) -> GeneMapping:
        """The input's genes matched to the model's; InputError below the minimum overlap,
        a warning below ``WARN_OVERLAP``."""
        model_genes = self.model_info["genes"]
        mapping = map_genes(
            var, model_genes, self.genes["gene_symbol"].tolist(), orthologs=opts.orthologs
        )
        needed = (
            int(opts.min_genes)
            if opts.min_genes is not None
            else int(np.ceil(opts.min_overlap * len(model_genes)))
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
                "(matched %s by %s%s)%s",
                len(model_genes) - mapping.n_matched,
                len(model_genes),
                mapping.key,
                mapping.source,
                f", {mapping.translation}" if mapping.translation else "",
                "; fewer than half: calls are less reliable, and the confidence says so"
                if mapping.fraction < WARN_OVERLAP
                else "",
            )
        return mapping

    def _search(
        self, X: sp.csr_matrix, mapping: GeneMapping, detected: str, opts: QueryOptions
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Embeddings, neighbour distances and rows (+inf / -1 for cells without an
        embedding) and the reasons of cells that cannot be embedded, batch by batch: a
        batch's index search runs in a second thread while the next batch is normalised and
        embedded (faiss and torch release the GIL)."""
        n, batch_size = X.shape[0], opts.batch_size
        k_eff = min(int(opts.k), int(self.index.ntotal))
        emb = np.full((n, self.model.embedding_dim), np.nan, dtype=np.float32)
        dist = np.full((n, k_eff), np.inf, dtype=np.float32)
        idx = np.full((n, k_eff), -1, dtype=np.int64)
        reasons = np.full(n, "", dtype=object)
        positions = gene_positions(mapping.names, self.model_info["genes"])

        def find(rows: np.ndarray) -> None:
            dist[rows], idx[rows] = search(
                self.index, emb[rows], k_eff, self.metric, opts.search_breadth
            )

        with ThreadPoolExecutor(max_workers=1) as searcher:
            pending = None
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                e, why = self.embed_expression(
                    X[start:stop], mapping, detected, batch_size, positions
                )
                emb[start:stop], reasons[start:stop] = e, why
                if pending is not None:
                    pending.result()  # one search at a time; re-raises its error
                rows = start + np.flatnonzero(why == "")
                pending = searcher.submit(find, rows) if len(rows) else None
                log.info("annotated %d/%d cells", stop, n)
            if pending is not None:
                pending.result()
        if (reasons != "").any():
            log.warning(
                "%d cells could not be embedded and get no call (see obs['scatlas_reason'])",
                int((reasons != "").sum()),
            )
        return emb, dist, idx, reasons

    def _summarise(
        self,
        adata: ad.AnnData,
        query: QueryMatrix,
        detected: str,
        mapping: GeneMapping,
        coverage: float,
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
            "input_matrix": query.where,
            "input_normalisation": detected,
            "model_normalisation": self.normalisation,
            "gene_overlap": mapping.describe(),
            "coverage": coverage,
            "score_types": self._types.astype(str).tolist(),
            "score_labels": self._labels.astype(str).tolist(),
            "neighbours": "rows of the release's cells.parquet (-1: none)",
            "n_novel": int(novel.sum()),
            "n_no_call": int((reasons != "").sum()),
            "similar_studies": self.similar_studies(called_idx),
        }
        studies = adata.uns["scatlas"]["similar_studies"]
        log.info(
            "%d cells annotated (from %s); %d flagged novel; %d without a call; most similar "
            "study %s",
            adata.n_obs,
            query.where,
            int(novel.sum()),
            int((reasons != "").sum()),
            studies["study"].iloc[0] if len(studies) else "-",
        )

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


def query_file(
    reference: Path | Reference,
    input_path: Path,
    output: Path,
    options: QueryOptions | None = None,
    *,
    csv: Path | None = None,
    overwrite: bool = False,
    clustering: Any | None = None,
    cluster_model: Path | None = None,
    **changes: Any,
) -> ad.AnnData:
    """Annotate ``input_path`` (h5ad, 10x h5 or 10x mtx folder) against ``reference`` (a
    release folder, or a Reference loaded with pin or signature checks) as ``options`` (and
    ``changes`` to them) say; with ``clustering`` (``cluster_cells.ClusterOptions``) also
    cluster the cells, by ``cluster_model``'s representation or the reference's; write the
    h5ad (and a CSV) atomically. Arguments are checked before the reference is loaded."""
    opts = replace(options or QueryOptions(), **changes)
    input_path = Path(input_path)
    ref = reference if isinstance(reference, Reference) else Reference.load(reference)
    adata = read_query(input_path)
    if cluster_model is not None and clustering is None:
        raise InputError(
            "a cluster model was given without clustering (--cluster)", field="cluster"
        )
    ref.annotate(adata, opts, source=str(input_path), overwrite=overwrite)
    if clustering is not None:
        _cluster(adata, ref, clustering, cluster_model, str(input_path))
    with atomic_path(output, ".h5ad") as tmp:
        adata.write_h5ad(tmp)
    if csv is not None:
        columns = OBS_COLUMNS + VOTING_COLUMNS + ["scatlas_cluster"]
        write_csv(adata, Path(csv), columns)
    log.info("wrote %s (%d cells)", output, adata.n_obs)
    return adata


def _cluster(
    adata: ad.AnnData, ref: Reference, options: Any, model_dir: Path | None, source: str
) -> None:
    """Cluster the annotated cells: with a separate model, or the reference's embedding
    (``obsm['X_scatlas']``) and, for a ScLSTM reference, its pair head."""
    from scatlas.annotate.cluster_cells import cluster_adata, load_cluster_model
    from scatlas.models.sclstm import pair_head

    if model_dir is not None:
        model, symbols = load_cluster_model(model_dir)
        cluster_adata(adata, options, model=model, gene_symbols=symbols, source=source)
    else:
        cluster_adata(adata, options, same_type=pair_head(ref.model), source=source)
