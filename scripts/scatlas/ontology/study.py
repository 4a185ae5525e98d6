"""Map one study's cells to Cell Ontology terms: expression.h5ad -> cell_types.tsv."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import anndata
import h5py
import pandas as pd
from tqdm import tqdm

from scatlas.errors import InputError
from scatlas.fileio import atomic_path
from scatlas.logs import progress_enabled
from scatlas.ontology.graph import CellOntology
from scatlas.ontology.load import cached_ontology
from scatlas.ontology.matching import MAX_TEXT_CHARS, TermMatcher
from scatlas.ontology.text import normalise_text
from scatlas.settings import OntologySettings
from scatlas.sheets import validate_sheet

log = logging.getLogger(__name__)

CELL_TYPE_COLUMNS = ["cl_id", "cl_label", "evidence", "confidence"]
#: written after the required columns: the mapping's status and its top-k candidates
#: ("CL:... label (0.95); ..."), for a curator to pick another answer
EXTRA_COLUMNS = ["status", "candidates"]
_CL_ID = re.compile(r"^CL:\d{7}\Z", re.ASCII)

_matchers: dict[tuple[int, bool, float], TermMatcher] = {}
_lock = threading.Lock()


def cached_matcher(
    obo: str | os.PathLike, specialise_by_tissue: bool = True, min_confidence: float = 0.0
) -> TermMatcher:
    """A `TermMatcher` over the (cached) ontology in ``obo``, built once per process."""
    onto = cached_ontology(obo)
    key = (id(onto), specialise_by_tissue, min_confidence)
    with _lock:
        matcher = _matchers.get(key)
        if matcher is None or matcher.ontology is not onto:
            matcher = TermMatcher(
                onto, specialise_by_tissue=specialise_by_tissue, min_confidence=min_confidence
            )
            _matchers[key] = matcher
        return matcher


def as_text(value: object) -> tuple[str, bool]:
    """``value`` as text, and whether bytes that are not UTF-8 had to be replaced (with
    U+FFFD). None/NaN are empty text; bytes are decoded; lone surrogates (bytes smuggled
    through ``surrogateescape``) are replaced."""
    if value is None or (isinstance(value, float) and value != value):
        return "", False
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8"), False
        except UnicodeDecodeError:
            return bytes(value).decode("utf-8", errors="replace"), True
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", errors="surrogateescape")
        return raw.decode("utf-8", errors="replace"), True
    return text, False


def read_overrides(path: str | os.PathLike, ontology: CellOntology) -> dict[str, str]:
    """Curated mappings: a TSV with columns ``text`` and ``cl_id`` (and an optional
    ``comment``), checked against ``workflow/schemas/overrides.schema.yaml``.

    Returns normalised text -> current CL id. An id that is not a term of the ontology
    (or obsolete without a replacement), an empty text or one text mapped to two terms
    raises `InputError` naming the file, line and field.
    """
    path = Path(path)
    try:
        df = pd.read_csv(
            path, sep="\t", dtype=str, keep_default_na=False, comment=None, encoding="utf-8"
        )
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read overrides: {exc}", path=str(path)) from exc
    except pd.errors.EmptyDataError as exc:
        raise InputError("empty file (expected a header: text, cl_id)", path=str(path)) from exc
    for col in ("text", "cl_id"):
        if col not in df.columns:
            raise InputError("missing column", path=str(path), field=col)
    for row, cl_id in enumerate(df["cl_id"], start=2):
        if not _CL_ID.match(cl_id.strip()):
            raise InputError(
                f"line {row}: {cl_id!r} is not a CL id (CL:nnnnnnn)", path=str(path), field="cl_id"
            )
    validate_sheet(df, "overrides", path=path)
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


@contextlib.contextmanager
def _collector_paused():
    """The cyclic garbage collector off while texts are mapped: matching makes no
    reference cycles (its records are dataclasses and tuples, freed by reference counts),
    and its full collections over the matcher's large lexicon cost ~15% of the time."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def map_texts(
    matcher: TermMatcher,
    texts: Sequence[object],
    overrides: Mapping[str, str] | None = None,
    *,
    source: str = "",
) -> tuple[list[tuple[str, str, str, float, str, str]], Counter[str]]:
    """(cl_id, cl_label, evidence, confidence, status, candidates) for each text (each
    distinct text mapped once) and the number of texts per status (mapped, ambiguous,
    unmatched, withheld, empty)."""
    decoded = [as_text(t) for t in texts]
    bad = sum(flag for _, flag in decoded)
    if bad:
        log.warning("%s: %d texts held bytes that are not UTF-8 (replaced by U+FFFD)", source, bad)
    distinct = list(dict.fromkeys(t for t, _ in decoded))
    rows: dict[str, tuple[str, str, str, float, str, str]] = {}
    per_text: dict[str, str] = {}
    truncated = matcher.n_truncated
    with _collector_paused():
        for text in tqdm(distinct, desc="cell types", unit="text", disable=not progress_enabled()):
            res = matcher.explain(text, overrides or None)
            per_text[text] = res.status
            m = res.match
            found = (
                (m.cl_id, m.cl_label, m.evidence, m.confidence)
                if m
                else ("", "", res.evidence, 0.0)
            )
            rows[text] = (*found, res.status, res.candidates_text())
    if matcher.n_truncated > truncated:
        log.warning(
            "%s: %d texts cut to %d characters",
            source,
            matcher.n_truncated - truncated,
            MAX_TEXT_CHARS,
        )
    status: Counter[str] = Counter(per_text[t] for t, _ in decoded)
    return [rows[t] for t, _ in decoded], status


def map_study(
    expression_h5ad: str | os.PathLike,
    obo: str | os.PathLike,
    out_tsv: str | os.PathLike,
    overrides: str | os.PathLike | None = None,
    *,
    specialise_by_tissue: bool = OntologySettings.specialise_by_tissue,
    min_confidence: float = OntologySettings.min_confidence,
) -> pd.DataFrame:
    """Map every cell's ``obs["source_text"]`` to a CL term; write ``cell_types.tsv``.

    The table is indexed by cell id with columns cl_id, cl_label, evidence, confidence,
    status and candidates (the best terms considered with their confidence, best first);
    unmapped cells have an empty cl_id, confidence 0 and the reason (the competing hits
    when ambiguous) as evidence.
    """
    obs = read_obs(expression_h5ad)
    if "source_text" not in obs.columns:
        raise InputError(
            "no source_text column in obs", path=str(expression_h5ad), field="source_text"
        )
    matcher = cached_matcher(obo, specialise_by_tissue, min_confidence)
    table = read_overrides(overrides, matcher.ontology) if overrides else None
    rows, status = map_texts(
        matcher, list(obs["source_text"].astype(object)), table, source=str(expression_h5ad)
    )
    out = pd.DataFrame(rows, index=obs.index.astype(str), columns=CELL_TYPE_COLUMNS + EXTRA_COLUMNS)
    out.index.name = "cell"
    with atomic_path(out_tsv, suffix=".tsv") as tmp:
        out.to_csv(tmp, sep="\t", float_format="%.3f")
    log.info(
        "%s: %d cells, %d mapped, %d ambiguous, %d unmatched, %d withheld (low confidence), "
        "%d without text",
        expression_h5ad,
        len(out),
        status["mapped"],
        status["ambiguous"],
        status["unmatched"],
        status["withheld"],
        status["empty"],
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
