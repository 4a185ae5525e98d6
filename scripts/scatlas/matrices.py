"""Reading author-processed expression matrices: Matrix Market triplets and dense CSV/TSV.

Everything comes back as ``(X, cell_ids, gene_labels)`` with ``X`` a CSR matrix of
cells × genes. Conventions:

* Matrix Market follows 10x: the ``.mtx`` is genes × cells, with ``barcodes.tsv`` (cells)
  and ``features.tsv``/``genes.tsv`` (genes; the first column, the stable id, is the label).
  A ``.mtx`` whose shape is cells × genes (by the lengths of those two files) is accepted
  too; any other shape is an error.
* A dense table has one label column and one header row, genes × cells by default. It is
  read as cells × genes instead when its header looks like genes and its first column does
  not (stable gene ids, or ``known_genes`` when given), or its first column looks like cell
  barcodes / run or sample accessions and its header does not.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from scatlas.compression import open_binary, open_text
from scatlas.errors import InputError

log = logging.getLogger(__name__)

GENE_ID = re.compile(
    r"^(ENS[A-Z]*G\d{6,}|FBgn\d{7}|WBGene\d{8}|Y[A-P][LR]\d{3}[WC](-[A-Z])?|ERCC-\d{5})(\.\d+)?$"
)
CELL_ID = re.compile(r"^([A-Za-z0-9]+[_:.-])?[ACGTN]{8,}([_.-]\d+)?$|^(GSM|[SED]RR|[SED]RS)\d+$")
BARCODE_NAMES = ("barcodes.tsv", "cells.txt", "barcodes.txt", "cells.tsv")
FEATURE_NAMES = ("features.tsv", "genes.tsv", "genes.txt", "features.txt")
_CELLS_PER_CHUNK = 5_000_000  # values held in memory at once while reading a dense table


def _strip_gz(name: str) -> str:
    return name[:-3] if name.endswith(".gz") else name


def _is_mtx(path: Path) -> bool:
    return _strip_gz(path.name).endswith(".mtx")


def _sibling(mtx: Path, names: tuple[str, ...], what: str) -> Path:
    """The barcodes/features file that belongs to ``mtx`` (same folder, same prefix)."""
    stem = _strip_gz(mtx.name)[: -len(".mtx")]
    bases = {stem}
    if stem.lower().endswith("matrix"):
        bases.add(stem[: -len("matrix")].rstrip("._"))
    found = []
    for base in sorted(bases):
        for name in names:
            for joiner in ("", ".", "_") if base else ("",):
                for gz in ("", ".gz"):
                    candidate = mtx.parent / f"{base}{joiner}{name}{gz}"
                    if candidate.is_file() and candidate not in found:
                        found.append(candidate)
    if len(found) != 1:
        listed = ", ".join(str(p.name) for p in found) or "none"
        raise InputError(
            f"need exactly one {what} file beside the matrix, found {listed}",
            path=str(mtx),
            field=what,
        )
    return found[0]


def _read_labels(path: Path, what: str) -> list[str]:
    """First tab-separated column of every line (10x barcodes/features files, no header)."""
    with open_text(path) as fh:
        labels = [
            line.rstrip("\r\n").split("\t")[0].strip().strip('"') for line in fh if line.strip()
        ]
    if not labels:
        raise InputError(f"{what} file is empty", path=str(path), field=what)
    return labels


def _read_mtx(mtx: Path) -> tuple[sp.csr_matrix, list[str], list[str]]:
    barcodes_path = _sibling(mtx, BARCODE_NAMES, "barcodes")
    features_path = _sibling(mtx, FEATURE_NAMES, "features")
    cells = _read_labels(barcodes_path, "barcodes")
    genes = _read_labels(features_path, "features")
    try:
        with open_binary(mtx) as fh:
            m = scipy.io.mmread(fh)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"cannot read Matrix Market file: {exc}", path=str(mtx)) from exc
    m = sp.csr_matrix(m)
    n_rows, n_cols = m.shape
    if (n_rows, n_cols) == (len(genes), len(cells)):
        x = m.T.tocsr()
    elif (n_rows, n_cols) == (len(cells), len(genes)):
        x = m
    else:
        raise InputError(
            f"matrix is {n_rows} x {n_cols} but {barcodes_path.name} lists {len(cells)} cells "
            f"and {features_path.name} {len(genes)} genes",
            path=str(mtx),
            field="barcodes",
        )
    return x, cells, genes


def _looks_like(labels: list[str], pattern: re.Pattern[str], sample: int = 200) -> float:
    picked = labels[:sample]
    return sum(bool(pattern.match(x)) for x in picked) / max(1, len(picked))


def _known_fraction(labels: list[str], known: set[str], sample: int = 500) -> float:
    picked = labels[:sample]
    return sum(x.upper().split(".")[0] in known for x in picked) / max(1, len(picked))


def _genes_in_header(rows: list[str], cols: list[str], known_genes: Collection[str] | None) -> bool:
    """True when the table is cells × genes (see the module docstring)."""
    if known_genes:
        known = {g.upper().split(".")[0] for g in known_genes}
        k_rows, k_cols = _known_fraction(rows, known), _known_fraction(cols, known)
        if max(k_rows, k_cols) >= 0.2:
            return k_cols > k_rows
    g_rows, g_cols = _looks_like(rows, GENE_ID), _looks_like(cols, GENE_ID)
    if g_cols > 0.5 and g_rows <= 0.5:
        return True
    c_rows, c_cols = _looks_like(rows, CELL_ID), _looks_like(cols, CELL_ID)
    return c_rows > 0.5 and c_cols <= 0.5 and g_rows <= 0.5


def _read_dense(
    path: Path, known_genes: Collection[str] | None
) -> tuple[sp.csr_matrix, list[str], list[str]]:
    with open_text(path) as fh:
        first = fh.readline()
    if not first.strip():
        raise InputError("matrix file is empty", path=str(path))
    sep = "\t" if first.count("\t") >= first.count(",") else ","
    n_cols = first.count(sep) + 1
    blocks, row_labels = [], []
    header: list[str] | None = None
    try:
        with open_text(path) as fh:
            reader = pd.read_csv(
                fh,
                sep=sep,
                index_col=0,
                quoting=csv.QUOTE_MINIMAL,
                chunksize=max(1, _CELLS_PER_CHUNK // n_cols),
                low_memory=False,
            )
            for chunk in reader:
                if header is None:
                    header = [str(c) for c in chunk.columns]
                values = chunk.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
                if np.isnan(values).any():
                    bad = np.argwhere(np.isnan(values))[0]
                    raise InputError(
                        f"non-numeric or missing value at row {chunk.index[bad[0]]!r}, "
                        f"column {chunk.columns[bad[1]]!r}",
                        path=str(path),
                        field=str(chunk.columns[bad[1]]),
                    )
                blocks.append(sp.csr_matrix(values))
                row_labels += [str(i) for i in chunk.index]
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise InputError(f"cannot parse matrix table: {exc}", path=str(path)) from exc
    if header is None or not blocks:
        raise InputError("matrix table has no data rows", path=str(path))
    m = sp.vstack(blocks, format="csr")
    if _genes_in_header(row_labels, header, known_genes):
        return m, row_labels, header
    return m.T.tocsr(), header, row_labels


def read_matrix(
    path: Path, *, known_genes: Collection[str] | None = None
) -> tuple[sp.csr_matrix, list[str], list[str]]:
    """Read an expression matrix; return ``(X cells × genes CSR, cell_ids, gene_labels)``.

    ``path`` is a folder holding one ``*.mtx(.gz)`` with its barcodes/features files, a
    ``.mtx(.gz)`` file (companions found by name beside it: ``barcodes.tsv``,
    ``features.tsv``/``genes.tsv``, or ``<prefix>.cells.txt``/``<prefix>.genes.txt``), or a
    dense CSV/TSV table (gzip or plain). ``known_genes`` (gene ids and symbols) helps decide
    the orientation of dense tables. Values are returned as stored (int64 for integer
    Matrix Market files, float64 otherwise). Raises InputError naming the file when the
    parts disagree, ids repeat, or values are not numbers.
    """
    path = Path(path)
    if path.is_dir():
        mtx = sorted(p for p in path.iterdir() if p.is_file() and _is_mtx(p))
        if len(mtx) != 1:
            raise InputError(
                f"folder must hold exactly one .mtx file, found {len(mtx)}", path=str(path)
            )
        x, cells, genes = _read_mtx(mtx[0])
        where = mtx[0]
    elif path.is_file():
        x, cells, genes = _read_mtx(path) if _is_mtx(path) else _read_dense(path, known_genes)
        where = path
    else:
        raise InputError("matrix file not found", path=str(path))
    dup = pd.Index(cells)[pd.Index(cells).duplicated()]
    if len(dup):
        raise InputError(
            f"{len(dup)} cell id(s) repeat, e.g. {dup[0]!r}", path=str(where), field="barcodes"
        )
    log.info("read %s: %d cells x %d genes, %d non-zero", where, x.shape[0], x.shape[1], x.nnz)
    return x, cells, genes


def is_integer_matrix(m: np.ndarray | sp.spmatrix | sp.sparray) -> bool:
    """True when every value is a finite non-negative whole number (raw counts).

    A matrix with fractions or negative values holds normalised values.
    """
    data = m.data if sp.issparse(m) else np.asarray(m)
    if data.size == 0:
        return True
    if np.issubdtype(data.dtype, np.integer):
        return bool(data.min() >= 0)
    return bool(np.all(np.isfinite(data)) and data.min() >= 0 and np.all(data == np.floor(data)))
