"""Reading query cells (h5ad, 10x HDF5, 10x Matrix Market folder) and writing the answer."""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad

from scatlas.errors import InputError
from scatlas.fileio import atomic_write_text

log = logging.getLogger(__name__)

MTX_NAMES = ("matrix.mtx.gz", "matrix.mtx")


def _read_10x_folder(path: Path) -> ad.AnnData:
    import scanpy as sc

    if not any((path / name).is_file() for name in MTX_NAMES):
        raise InputError(
            "the query is a folder without matrix.mtx(.gz): give an h5ad file, a 10x HDF5 "
            "file (.h5) or a 10x Matrix Market folder (matrix.mtx.gz, features.tsv.gz, "
            "barcodes.tsv.gz)",
            path=str(path),
        )
    adata = sc.read_10x_mtx(path, var_names="gene_ids", make_unique=False)
    log.info("read a 10x Matrix Market folder: %d cells x %d genes", *adata.shape)
    return adata


def _read_10x_h5(path: Path) -> ad.AnnData:
    import scanpy as sc

    adata = sc.read_10x_h5(path)  # var_names are symbols; var['gene_ids'] the stable ids
    if "gene_ids" in adata.var:
        adata.var["gene_symbol"] = adata.var_names.astype(str)
        adata.var_names = adata.var["gene_ids"].astype(str).to_numpy()
    log.info("read a 10x HDF5 file: %d cells x %d genes", *adata.shape)
    return adata


def _is_10x_h5(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            return "matrix" in fh or any(
                "genes" in fh[k] for k in fh if isinstance(fh[k], h5py.Group)
            )
    except OSError:
        return False


def read_query(path: Path) -> ad.AnnData:
    """Read query cells: an h5ad file, a 10x HDF5 file (``.h5``, Cell Ranger's
    ``filtered_feature_bc_matrix.h5``) or a 10x Matrix Market folder; missing, empty and
    unreadable inputs are refused with a clear error."""
    path = Path(path)
    if path.is_dir():
        return _read_10x_folder(path)
    if not path.is_file():
        raise InputError("the query file does not exist", path=str(path))
    if path.stat().st_size == 0:
        raise InputError(
            "the query file is empty (0 bytes); write the AnnData again", path=str(path)
        )
    try:
        if path.suffix == ".h5" or (path.suffix != ".h5ad" and _is_10x_h5(path)):
            return _read_10x_h5(path)
        return ad.read_h5ad(path)
    except InputError:
        raise
    except Exception as exc:  # h5py/anndata/scanpy raise many kinds for a file they cannot read
        raise InputError(
            f"cannot read the query ({type(exc).__name__}: {exc}); give an h5ad file written "
            "with adata.write_h5ad, a 10x HDF5 file (.h5) or a 10x Matrix Market folder",
            path=str(path),
        ) from exc


def write_csv(adata: ad.AnnData, path: Path, columns: list[str]) -> None:
    """The per-cell annotation (``columns`` of obs) as CSV, indexed by cell id, atomically."""
    table = adata.obs[[c for c in columns if c in adata.obs]].copy()
    table.index.name = "cell_id"
    atomic_write_text(path, table.to_csv())
