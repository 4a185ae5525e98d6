"""Reading author-processed expression matrices: 10x HDF5, Matrix Market triplets and dense
CSV/TSV.

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


def _read_columns(path: Path, what: str) -> list[list[str]]:
    """Tab-separated fields of every non-empty line (10x barcodes/features files, no header)."""
    with open_text(path) as fh:
        rows = [
            [f.strip().strip('"') for f in line.rstrip("\r\n").split("\t")]
            for line in fh
            if line.strip()
        ]
    if not rows:
        raise InputError(f"{what} file is empty", path=str(path), field=what)
    return rows


def _read_labels(path: Path, what: str) -> list[str]:
    """First tab-separated column of every line (10x barcodes/features files, no header)."""
    return [r[0] for r in _read_columns(path, what)]


def _read_mtx(mtx: Path) -> tuple[sp.csr_matrix, list[str], list[str], list[str] | None]:
    barcodes_path = _sibling(mtx, BARCODE_NAMES, "barcodes")
    features_path = _sibling(mtx, FEATURE_NAMES, "features")
    cells = _read_labels(barcodes_path, "barcodes")
    features = _read_columns(features_path, "features")
    genes = [r[0] for r in features]
    names = (
        [r[1] if len(r) > 1 else "" for r in features]
        if any(len(r) > 1 for r in features)
        else None
    )
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
    return x, cells, genes, names


HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(8) == HDF5_MAGIC


def _h5_strings(ds) -> list[str]:  # type: ignore[no-untyped-def]
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in ds[()]]


def _read_10x_h5(path: Path) -> tuple[sp.csr_matrix, list[str], list[str], list[str] | None]:
    """A 10x Genomics HDF5 feature-barcode matrix (Cell Ranger 3+: group ``matrix`` with
    ``features/{id,name,feature_type}``; Cell Ranger 2: one group per genome with ``genes``
    and ``gene_names``). The matrix is CSC, features x barcodes; only "Gene Expression"
    features are kept."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            groups = [f["matrix"]] if "matrix" in f else [f[k] for k in f if "genes" in f[k]]
            if not groups:
                raise InputError(
                    "HDF5 file is not a 10x matrix (no 'matrix' group or genome groups)",
                    path=str(path),
                    field="matrix",
                )
            blocks, ids, names, barcodes = [], [], [], None
            for g in groups:
                for key in ("barcodes", "data", "indices", "indptr", "shape"):
                    if key not in g:
                        raise InputError(
                            f"10x HDF5 group {g.name!r} lacks {key!r}", path=str(path), field=key
                        )
                cells = _h5_strings(g["barcodes"])
                if "features" in g:
                    feat = g["features"]
                    gid, gname = _h5_strings(feat["id"]), _h5_strings(feat["name"])
                    ftype = (
                        _h5_strings(feat["feature_type"])
                        if "feature_type" in feat
                        else ["Gene Expression"] * len(gid)
                    )
                else:
                    gid = _h5_strings(g["genes"])
                    gname = _h5_strings(g["gene_names"]) if "gene_names" in g else list(gid)
                    ftype = ["Gene Expression"] * len(gid)
                n_feat, n_bc = (int(v) for v in g["shape"][()])
                indptr, indices = g["indptr"][()], g["indices"][()]
                data = g["data"][()]
                if n_bc != len(cells) or n_feat != len(gid) or len(gname) != len(gid):
                    raise InputError(
                        f"matrix shape is {n_feat} features x {n_bc} barcodes but the file lists "
                        f"{len(gid)} features and {len(cells)} barcodes",
                        path=str(path),
                        field="barcodes",
                    )
                if (
                    len(indptr) != n_bc + 1
                    or len(indices) != len(data)
                    or indptr[-1] != len(data)
                    or (len(indices) and (indices.min() < 0 or indices.max() >= n_feat))
                ):
                    raise InputError(
                        f"inconsistent sparse matrix in group {g.name!r} (indptr/indices/data)",
                        path=str(path),
                        field="indptr",
                    )
                if barcodes is not None and cells != barcodes:
                    raise InputError(
                        "genome groups list different barcodes", path=str(path), field="barcodes"
                    )
                barcodes = cells
                m = sp.csc_matrix((data, indices, indptr), shape=(n_feat, n_bc))
                keep = np.flatnonzero(np.asarray(ftype) == "Gene Expression")
                blocks.append(m[keep, :].T.tocsr())
                ids += [gid[i] for i in keep]
                names += [gname[i] for i in keep]
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"cannot read 10x HDF5 matrix: {exc}", path=str(path)) from exc
    assert barcodes is not None
    x = blocks[0] if len(blocks) == 1 else sp.hstack(blocks, format="csr")
    return x, barcodes, ids, names


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


def read_matrix_named(
    path: Path, *, known_genes: Collection[str] | None = None
) -> tuple[sp.csr_matrix, list[str], list[str], list[str] | None]:
    """:func:`read_matrix`, plus the gene names (symbols) where the file has them beside the
    stable ids (10x features files and HDF5), else None."""
    path = Path(path)
    names: list[str] | None = None
    if path.is_dir():
        mtx = sorted(p for p in path.iterdir() if p.is_file() and _is_mtx(p))
        h5 = sorted(p for p in path.iterdir() if p.is_file() and p.suffix == ".h5")
        if len(mtx) == 1:
            x, cells, genes, names = _read_mtx(mtx[0])
            where = mtx[0]
        elif not mtx and len(h5) == 1:
            x, cells, genes, names = _read_10x_h5(h5[0])
            where = h5[0]
        else:
            raise InputError(
                f"folder must hold exactly one .mtx (or one 10x .h5) file, found {len(mtx)}",
                path=str(path),
            )
    elif path.is_file():
        if path.stat().st_size == 0:
            raise InputError("matrix file is empty", path=str(path))
        if is_hdf5(path):
            x, cells, genes, names = _read_10x_h5(path)
        elif _is_mtx(path):
            x, cells, genes, names = _read_mtx(path)
        else:
            x, cells, genes = _read_dense(path, known_genes)
        where = path
    else:
        raise InputError("matrix file not found", path=str(path))
    dup = pd.Index(cells)[pd.Index(cells).duplicated()]
    if len(dup):
        raise InputError(
            f"{len(dup)} cell id(s) repeat, e.g. {dup[0]!r}", path=str(where), field="barcodes"
        )
    log.info("read %s: %d cells x %d genes, %d non-zero", where, x.shape[0], x.shape[1], x.nnz)
    return x, cells, genes, names


def read_matrix(
    path: Path, *, known_genes: Collection[str] | None = None
) -> tuple[sp.csr_matrix, list[str], list[str]]:
    """Read an expression matrix; return ``(X cells × genes CSR, cell_ids, gene_labels)``.

    ``path`` is a 10x Genomics HDF5 file (detected by content: :func:`_read_10x_h5`), a
    folder holding one ``*.mtx(.gz)`` with its barcodes/features files (or one ``.h5``), a
    ``.mtx(.gz)`` file (companions found by name beside it: ``barcodes.tsv``,
    ``features.tsv``/``genes.tsv``, or ``<prefix>.cells.txt``/``<prefix>.genes.txt``), or a
    dense CSV/TSV table (gzip or plain). ``known_genes`` (gene ids and symbols) helps decide
    the orientation of dense tables. Values are returned as stored (int64 for integer
    Matrix Market files, float64 otherwise). Raises InputError naming the file when the
    parts disagree, ids repeat, or values are not numbers.
    """
    x, cells, genes, _ = read_matrix_named(path, known_genes=known_genes)
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
