"""Query input: checks, normalisation detection, gene mapping (ids, symbols, orthologs).

Bad input is refused with an :class:`InputError` that names the file and field and says what
to do: no cells or genes, negative / NaN / infinite values, duplicated gene names, too few
of the reference's genes.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from scatlas.annotate.orthologs import translations
from scatlas.errors import InputError
from scatlas.models.normalize import log1p_cp10k, looks_like_counts

log = logging.getLogger(__name__)

GENE_COLUMNS = ("gene_ids", "gene_id", "gene_symbol", "gene_symbols", "symbol", "feature_name")
#: log-normalised values stay below this (log1p(1e4) ~ 9.2); non-integers above it are linear
LOG_MAX = 20.0
NORMALISATIONS = ("log1p_cp10k", "max_scaled", "log1p", "log_normalised")
_VERSION_SUFFIX = re.compile(r"\.\d+$")


def _values(X) -> np.ndarray:
    return X.data if sp.issparse(X) else np.asarray(X)


def check_matrix(X, var_names: pd.Index, *, source: str | None = None) -> None:
    """Refuse empty inputs, non-finite or negative values and duplicated gene names."""
    if X is None:
        raise InputError("the input has no expression matrix (X is empty)", path=source, field="X")
    if X.shape[0] == 0:
        raise InputError("the input has no cells (0 rows in X)", path=source, field="X")
    if X.shape[1] == 0:
        raise InputError("the input has no genes (0 columns in X)", path=source, field="var_names")
    values = _values(X)
    if values.size and not np.issubdtype(values.dtype, np.number):
        raise InputError(
            f"expression values are not numbers ({values.dtype})", path=source, field="X"
        )
    if values.size and not np.isfinite(values).all():
        n_bad = int((~np.isfinite(values)).sum())
        raise InputError(
            f"expression has {n_bad} NaN or infinite value(s); replace them (e.g. with 0) or "
            "give the raw counts",
            path=source,
            field="X",
        )
    if values.size and float(values.min()) < 0:
        raise InputError(
            "expression has negative values (scaled or centred data?); give raw counts or "
            "log-normalised values (e.g. adata.raw or layers['counts'])",
            path=source,
            field="X",
        )
    dup = pd.Index(var_names.astype(str))
    dup = dup[dup.duplicated()]
    if len(dup):
        example = ", ".join(sorted(set(dup))[:5])
        raise InputError(
            f"{len(set(dup))} gene name(s) occur more than once in var_names (e.g. {example}); "
            "make them unique (adata.var_names_make_unique()) or sum the duplicated genes, "
            "or index var by stable gene ids",
            path=source,
            field="var_names",
        )


def detect_normalisation(X) -> str:
    """``raw_counts`` (non-negative integers), ``log_normalised`` (non-integers up to
    ``LOG_MAX``) or ``linear`` (larger non-integers, e.g. TPM/RPKM). Negative values, i.e.
    scaled/centred data, are refused."""
    values = _values(X)
    if values.size and float(values.min()) < 0:
        raise InputError(
            "expression has negative values (scaled or centred data?); "
            "give raw counts or log-normalised values",
            field="X",
        )
    if looks_like_counts(X):
        return "raw_counts"
    return "log_normalised" if values.size == 0 or float(values.max()) <= LOG_MAX else "linear"


def max_scaled(X) -> sp.csr_matrix:
    """Each cell divided by its largest value (MapCell's scaling; values in [0, 1])."""
    csr = sp.csr_matrix(X, dtype=np.float32, copy=True)
    peak = csr.max(axis=1).toarray().ravel()
    scale = np.where(peak > 0, 1.0 / np.where(peak > 0, peak, 1), 0.0).astype(np.float32)
    csr.data *= np.repeat(scale, np.diff(csr.indptr))
    return csr


def to_model_input(chunk, detected: str, normalisation: str) -> sp.csr_matrix:
    """Bring a chunk (as ``detected``) to the model's ``normalisation``.

    Log-normalised input (log1p of counts per 10,000) is used as is by ``log1p_cp10k`` and
    ``log_normalised`` models (raw counts are log1p-CP10k-normalised for both) and by
    ``log1p`` ones (whose raw input is ``log(counts + 1)``), and expm1-ed for ``max_scaled``
    ones (the per-cell factor cancels: the result is the counts divided by their maximum).
    """
    if normalisation in ("log1p_cp10k", "log_normalised"):
        return (
            sp.csr_matrix(chunk, dtype=np.float32)
            if detected == "log_normalised"
            else log1p_cp10k(chunk)
        )
    if normalisation == "log1p":  # ScLSTM's log(counts + 1); log-normalised input as it is
        if detected == "log_normalised":
            return sp.csr_matrix(chunk, dtype=np.float32)
        chunk = sp.csr_matrix(chunk, dtype=np.float32, copy=True)
        chunk.data = np.log1p(chunk.data)
        return chunk
    if normalisation == "max_scaled":
        if detected == "log_normalised":
            chunk = sp.csr_matrix(chunk, dtype=np.float32, copy=True)
            chunk.data = np.expm1(chunk.data)
        return max_scaled(chunk)
    raise InputError(
        f"the reference's model expects {normalisation!r} input, which this scatlas cannot "
        f"produce (known: {', '.join(NORMALISATIONS)}); upgrade scatlas",
        field="normalisation",
    )


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
    translation: str = ""  # "" or the ortholog / id->symbol translation used

    @property
    def fraction(self) -> float:
        return self.n_matched / self.n_reference_genes if self.n_reference_genes else 0.0

    def describe(self) -> dict:
        return {
            "n_matched": self.n_matched,
            "n_reference_genes": self.n_reference_genes,
            "fraction": self.fraction,
            "matched_by": self.source,
            "key": self.key,
            "translation": self.translation or "none",
        }


def map_genes(
    var: pd.DataFrame, gene_ids: list[str], gene_symbols: list[str], *, orthologs: bool = True
) -> GeneMapping:
    """Translate input genes to reference gene ids by id or symbol, whichever overlaps more.

    With ``orthologs`` the input names are also translated mouse ↔ human (and human Ensembl
    ids to symbols); a translation is used only when it matches more reference genes.
    """
    by_id: dict[str, str] = {}
    for g in gene_ids:
        by_id.setdefault(g, g)
        by_id.setdefault(_strip_version(g), g)
    by_symbol: dict[str, str] = {}
    for g, s in zip(gene_ids, gene_symbols, strict=True):
        if s and s != "nan":
            by_symbol.setdefault(s, g)
    candidates = [("var_names", "", [str(v) for v in var.index])]
    candidates += [(c, "", var[c].astype(str).tolist()) for c in GENE_COLUMNS if c in var.columns]
    best: GeneMapping | None = None

    def consider(source: str, how: str, values: list[str], keys) -> None:
        nonlocal best
        for key, table, norm in keys:
            names = [table.get(v, table.get(norm(v), "")) if v else "" for v in values]
            n = len({n for n in names if n})
            if best is None or n > best.n_matched:
                best = GeneMapping(source, key, n, len(gene_ids), names, how)

    both = (("gene_id", by_id, _strip_version), ("gene_symbol", by_symbol, str))
    for source, how, values in candidates:
        consider(source, how, values, both)
    if orthologs and by_symbol:
        try:
            for source, _, values in candidates:
                for how, translated in translations(values):
                    consider(source, how, translated, (("gene_symbol", by_symbol, str),))
        except InputError as exc:  # the tables are optional: without them, no translation
            log.warning("gene names not translated: %s", exc)
    assert best is not None
    return best


@dataclass
class QueryMatrix:
    """The expression the query is annotated from, its genes, and where it came from."""

    X: object  # cells x genes, sparse or dense
    var: pd.DataFrame
    where: str  # "X", "raw" or "layers['<name>']"


def _has_negative(X) -> bool:
    values = _values(X)
    return bool(values.size) and float(np.nanmin(values)) < 0


def _candidates(adata, layer: str) -> list[QueryMatrix]:
    """The matrices ``layer`` allows, in order of preference."""
    raw = [QueryMatrix(adata.raw.X, adata.raw.var, "raw")] if adata.raw is not None else []
    counts = (
        [QueryMatrix(adata.layers["counts"], adata.var, "layers['counts']")]
        if "counts" in adata.layers
        else []
    )
    x = [QueryMatrix(adata.X, adata.var, "X")] if adata.X is not None else []
    if layer == "auto":
        return counts + raw + x
    if layer == "X":
        return x
    if layer == "raw":
        return raw
    return (
        [QueryMatrix(adata.layers[layer], adata.var, f"layers[{layer!r}]")]
        if layer in adata.layers
        else []
    )


def choose_matrix(adata, layer: str = "auto", *, source: str | None = None) -> QueryMatrix:
    """The query's expression: ``layer`` ``X``, ``raw`` or a layer's name, or ``auto``:
    ``layers['counts']``, else ``.raw`` (all genes, before a scanpy workflow's HVG subset),
    else ``.X`` — skipping scaled matrices (negative values, as after ``sc.pp.scale``)."""
    found = _candidates(adata, layer)
    if not found:
        have = ["X"] + (["raw"] if adata.raw is not None else []) + list(adata.layers)
        raise InputError(
            f"the input has no {layer!r} expression (it has: {', '.join(have)})",
            path=source,
            field="layer",
        )
    usable = [m for m in found if layer != "auto" or not _has_negative(m.X)]
    if not usable:
        raise InputError(
            "every expression matrix of the input has negative values (scaled data, as after "
            "scanpy.pp.scale); keep raw counts in layers['counts'] or log-normalised values in "
            ".raw (adata.raw = adata before scaling) and query again",
            path=source,
            field="X",
        )
    chosen = usable[0]
    skipped = [m.where for m in found[: found.index(chosen)]]
    log.info(
        "annotating from %s (%d genes)%s",
        chosen.where,
        chosen.var.shape[0],
        f"; skipped scaled {', '.join(skipped)}" if skipped else "",
    )
    return chosen
