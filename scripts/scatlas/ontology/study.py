"""Map one study's cells to Cell Ontology terms: expression.h5ad -> cell_types.tsv."""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from pathlib import Path

import anndata
import h5py
import pandas as pd

from ..errors import InputError
from ..fileio import atomic_path
from .graph import CellOntology
from .load import cached_ontology
from .matching import TermMatcher, normalise_text

log = logging.getLogger(__name__)

CELL_TYPE_COLUMNS = ["cl_id", "cl_label", "evidence", "confidence"]

_matchers: dict[int, TermMatcher] = {}
_lock = threading.Lock()


def cached_matcher(obo: str | os.PathLike) -> TermMatcher:
    """A `TermMatcher` over the (cached) ontology in ``obo``, built once per process."""
    onto = cached_ontology(obo)
    with _lock:
        matcher = _matchers.get(id(onto))
        if matcher is None or matcher.ontology is not onto:
            matcher = TermMatcher(onto)
            _matchers[id(onto)] = matcher
        return matcher


def read_overrides(path: str | os.PathLike, ontology: CellOntology) -> dict[str, str]:
    """Curated mappings: a TSV with columns ``text`` and ``cl_id``.

    Returns normalised text -> current CL id. An id that is not a term of the ontology
    (or obsolete without a replacement) raises `InputError`.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment=None)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"cannot read overrides: {exc}", path=str(path)) from exc
    for col in ("text", "cl_id"):
        if col not in df.columns:
            raise InputError("missing column", path=str(path), field=col)
    out: dict[str, str] = {}
    for row, (text, cl_id) in enumerate(zip(df["text"], df["cl_id"], strict=True), start=2):
        key, cl_id = normalise_text(text), cl_id.strip()
        if not key:
            raise InputError(f"empty text on line {row}", path=str(path), field="text")
        current = ontology.resolve(cl_id)
        if current is None:
            raise InputError(
                f"line {row}: {cl_id!r} is not a current Cell Ontology term",
                path=str(path),
                field="cl_id",
            )
        if current != cl_id:
            log.warning("overrides line %d: obsolete %s replaced by %s", row, cl_id, current)
        if out.get(key, current) != current:
            raise InputError(
                f"line {row}: {text!r} is already mapped to {out[key]}",
                path=str(path),
                field="text",
            )
        out[key] = current
    return out


def read_obs(expression_h5ad: str | os.PathLike) -> pd.DataFrame:
    """The ``obs`` table of an h5ad file, without reading the matrix."""
    path = Path(expression_h5ad)
    try:
        with h5py.File(path, "r") as fh:
            obs = anndata.io.read_elem(fh["obs"])
    except (OSError, KeyError) as exc:
        raise InputError(f"not a readable h5ad file: {exc}", path=str(path), field="obs") from exc
    return obs


def map_study(
    expression_h5ad: str | os.PathLike,
    obo: str | os.PathLike,
    out_tsv: str | os.PathLike,
    overrides: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Map every cell's ``obs["source_text"]`` to a CL term; write ``cell_types.tsv``.

    The table is indexed by cell id with columns cl_id, cl_label, evidence, confidence;
    unmapped cells have an empty cl_id, confidence 0 and (when ambiguous) the competing
    hits as evidence.
    """
    obs = read_obs(expression_h5ad)
    if "source_text" not in obs.columns:
        raise InputError(
            "no source_text column in obs", path=str(expression_h5ad), field="source_text"
        )
    matcher = cached_matcher(obo)
    table = overrides and read_overrides(overrides, matcher.ontology)
    texts = obs["source_text"].astype(object).where(obs["source_text"].notna(), "").astype(str)
    rows: dict[str, tuple[str, str, str, float]] = {}
    status: Counter[str] = Counter()
    for text, n in texts.value_counts(sort=False).items():
        res = matcher.explain(text, table or None)
        status[res.status] += int(n)
        m = res.match
        rows[text] = (
            (m.cl_id, m.cl_label, m.evidence, m.confidence) if m else ("", "", res.evidence, 0.0)
        )
    out = pd.DataFrame(
        [rows[t] for t in texts], index=obs.index.astype(str), columns=CELL_TYPE_COLUMNS
    )
    out.index.name = "cell"
    with atomic_path(out_tsv, suffix=".tsv") as tmp:
        out.to_csv(tmp, sep="\t", float_format="%.3f")
    log.info(
        "%s: %d cells, %d mapped, %d ambiguous, %d unmatched",
        expression_h5ad,
        len(out),
        status["mapped"],
        status["ambiguous"],
        status["unmatched"],
    )
    return out


def read_cell_types(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``cell_types.tsv`` written by `map_study` (empty cl_id kept as "")."""
    path = Path(path)
    try:
        # index_col would parse ids such as "0001" as numbers: set the index afterwards
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"cannot read cell types: {exc}", path=str(path)) from exc
    missing = [c for c in CELL_TYPE_COLUMNS if c not in df.columns[1:]]
    if missing:
        raise InputError("missing column", path=str(path), field=missing[0])
    df = df.set_index(df.columns[0])
    df["confidence"] = pd.to_numeric(df["confidence"], errors="coerce").fillna(0.0)
    return df
