"""Reading author matrices: Matrix Market (10x and prefixed layouts) and dense tables."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from scatlas.errors import InputError
from scatlas.reads.matrices import is_integer_matrix, read_matrix

# genes × cells
COUNTS = np.array(
    [
        [0, 3, 0, 1],
        [5, 0, 0, 2],
        [0, 0, 7, 0],
    ]
)
GENE_IDS = ["ENSG00000000003", "ENSG00000000005", "ENSG00000000419"]
GENE_NAMES = ["TSPAN6", "TNMD", "DPM1"]
CELLS = ["AAACCTGAGAAGGCCT-1", "AAACCTGAGACAGACC-1", "AAACCTGAGATAGTCA-1", "AAACCTGAGCGATGAC-1"]


def _gz_text(path: Path, text: str) -> Path:
    with gzip.open(path, "wt") as fh:
        fh.write(text)
    return path


def write_10x(folder: Path, counts: np.ndarray = COUNTS, cells: list[str] = CELLS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "matrix.mtx.gz", "wb") as fh:
        scipy.io.mmwrite(fh, sp.coo_matrix(counts), field="integer")
    _gz_text(folder / "barcodes.tsv.gz", "".join(f"{c}\n" for c in cells))
    _gz_text(
        folder / "features.tsv.gz",
        "".join(f"{g}\t{n}\tGene Expression\n" for g, n in zip(GENE_IDS, GENE_NAMES, strict=True)),
    )
    return folder


def test_10x_folder_and_file(tmp_path: Path) -> None:
    folder = write_10x(tmp_path / "filtered_feature_bc_matrix")
    for path in (folder, folder / "matrix.mtx.gz"):
        x, cells, genes = read_matrix(path)
        assert sp.isspmatrix_csr(x) and x.shape == (4, 3)
        np.testing.assert_array_equal(x.toarray(), COUNTS.T)
        assert cells == CELLS and genes == GENE_IDS
        assert is_integer_matrix(x)


def test_geo_prefixed_triplet(tmp_path: Path) -> None:
    # GEO supplementary style: GSM..._matrix.mtx.gz with GSM..._barcodes/genes beside it.
    with gzip.open(tmp_path / "GSM0000001_matrix.mtx.gz", "wb") as fh:
        scipy.io.mmwrite(fh, sp.coo_matrix(COUNTS), field="integer")
    _gz_text(tmp_path / "GSM0000001_barcodes.tsv.gz", "\n".join(CELLS) + "\n")
    (tmp_path / "GSM0000001_genes.tsv").write_text(
        "".join(f"{g}\t{n}\n" for g, n in zip(GENE_IDS, GENE_NAMES, strict=True))
    )
    x, cells, genes = read_matrix(tmp_path / "GSM0000001_matrix.mtx.gz")
    np.testing.assert_array_equal(x.toarray(), COUNTS.T)
    assert cells == CELLS and genes == GENE_IDS


def test_barcodes_disagree_with_matrix(tmp_path: Path) -> None:
    folder = write_10x(tmp_path / "m", cells=CELLS[:3])
    with pytest.raises(InputError, match="lists 3 cells") as err:
        read_matrix(folder)
    assert err.value.path == str(folder / "matrix.mtx.gz")
    dup = write_10x(tmp_path / "d", cells=[CELLS[0]] * 4)
    with pytest.raises(InputError, match="repeat"):
        read_matrix(dup)
    (tmp_path / "e").mkdir()
    with pytest.raises(InputError, match="exactly one .mtx"):
        read_matrix(tmp_path / "e")


def test_dense_tables_both_orientations(tmp_path: Path) -> None:
    genes_x_cells = pd.DataFrame(COUNTS, index=GENE_IDS, columns=CELLS)
    csv = tmp_path / "counts.csv.gz"
    genes_x_cells.to_csv(csv)
    x, cells, genes = read_matrix(csv)
    np.testing.assert_array_equal(x.toarray(), COUNTS.T)
    assert cells == CELLS and genes == GENE_IDS
    # cells × genes TSV (symbols in the header): recognised by its barcodes...
    tsv = tmp_path / "cells.tsv"
    genes_x_cells.T.set_axis(GENE_NAMES, axis=1).to_csv(tsv, sep="\t")
    x, cells, genes = read_matrix(tsv)
    np.testing.assert_array_equal(x.toarray(), COUNTS.T)
    assert cells == CELLS and genes == GENE_NAMES
    # ...and by known gene symbols when the cells have plain names.
    plain = genes_x_cells.T.set_axis(GENE_NAMES, axis=1).set_axis(["c1", "c2", "c3", "c4"], axis=0)
    plain.to_csv(tmp_path / "plain.csv")
    x, cells, genes = read_matrix(
        tmp_path / "plain.csv", known_genes=["tspan6", "TNMD", "DPM1", "X"]
    )
    assert cells == ["c1", "c2", "c3", "c4"] and genes == GENE_NAMES
    np.testing.assert_array_equal(x.toarray(), COUNTS.T)


def test_dense_bad_values(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("gene,c1,c2\nENSG00000000003,1,2\nENSG00000000005,3,oops\n")
    with pytest.raises(InputError, match="oops|non-numeric") as err:
        read_matrix(bad)
    assert err.value.path == str(bad)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("gene,c1,c2\nENSG00000000003,1,2,3,4\nENSG00000000005,3,4\n")
    with pytest.raises(InputError):
        read_matrix(ragged)
    with pytest.raises(InputError, match="not found"):
        read_matrix(tmp_path / "missing.csv")


def test_is_integer_matrix() -> None:
    assert is_integer_matrix(np.array([[0.0, 2.0], [3.0, 0.0]]))
    assert not is_integer_matrix(np.array([[0.5, 2.0]]))
    assert not is_integer_matrix(sp.csr_matrix(np.array([[-1.0, 2.0]])))
    assert not is_integer_matrix(np.array([[np.nan, 1.0]]))
    assert is_integer_matrix(sp.csr_matrix((2, 2)))


def test_pbmc_zheng_matrix_market(shared_data: Path) -> None:
    folder = shared_data / "expression" / "pbmc-zheng-sorted"
    mtx = folder / "zheng_sorted_reference.genes_x_cells.mtx.gz"
    x, cells, genes = read_matrix(mtx)
    # Genes × cells on disk (8,863 genes, 2,140 cells): read as cells × genes.
    assert x.shape == (2140, 8863) and len(cells) == 2140 and len(genes) == 8863
    assert cells[0] == "bcellsAAAGATCTCCGAAT-1" and genes[:2] == ["LINC00115", "NOC2L"]
    raw = scipy.io.mmread(mtx).tocsc()
    assert x.nnz == raw.nnz and x.sum() == raw.sum()
    np.testing.assert_array_equal(x[0].toarray().ravel(), raw[:, 0].toarray().ravel())
    assert is_integer_matrix(x)
    labels = pd.read_csv(folder / "zheng_sorted_reference.labels.csv")
    assert labels["cell"].tolist() == cells


def test_celseq2_dense_csv(shared_data: Path) -> None:
    path = shared_data / "expression" / "celllines-celseq2" / "sc_celseq2.count.csv.gz"
    x, cells, genes = read_matrix(path)
    # R's write.csv layout (header one field short): genes × cells with Ensembl ids.
    assert x.shape == (274, 28204)
    assert cells[:3] == ["A1", "A10", "A11"] and genes[0] == "ENSG00000281131"
    assert all(g.startswith(("ENSG", "ERCC")) for g in genes)
    assert is_integer_matrix(x) and x.sum() > 1e6
    meta = pd.read_csv(
        shared_data / "expression" / "celllines-celseq2" / "sc_celseq2.metadata.csv.gz", index_col=0
    )
    assert sorted(meta.index) == sorted(cells)


def test_lognormalised_pancreas_is_not_integer(shared_data: Path) -> None:
    mtx = shared_data / "expression" / "pancreas-wang-xin" / "wang.lognorm.genes_x_cells.mtx.gz"
    assert not is_integer_matrix(scipy.io.mmread(mtx))
    # No barcodes file beside it: refused, naming the file.
    with pytest.raises(InputError, match="barcodes") as err:
        read_matrix(mtx)
    assert err.value.path == str(mtx)


def write_10x_h5(
    path: Path,
    counts: np.ndarray = COUNTS,
    cells: list[str] = CELLS,
    *,
    version: int = 3,
    extra_barcode: bool = False,
) -> Path:
    """A 10x Genomics feature-barcode matrix in Cell Ranger's HDF5 layout: CSC, features x
    barcodes; v3 adds an antibody-capture feature that is not a gene."""
    import h5py

    ids, names, types = list(GENE_IDS), list(GENE_NAMES), ["Gene Expression"] * len(GENE_IDS)
    if version == 3:
        counts = np.vstack([counts, np.arange(1, counts.shape[1] + 1)])
        ids, names, types = ids + ["CD3_TotalSeqB"], names + ["CD3"], types + ["Antibody Capture"]
    m = sp.csc_matrix(counts)
    barcodes = cells + (["TTTGTCATCTTTAGTC-1"] if extra_barcode else [])
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix" if version == 3 else "GRCh38")
        g.create_dataset("barcodes", data=np.array(barcodes, dtype="S"))
        g.create_dataset("data", data=m.data.astype(np.int32))
        g.create_dataset("indices", data=m.indices.astype(np.int64))
        g.create_dataset("indptr", data=m.indptr.astype(np.int64))
        g.create_dataset("shape", data=np.array(m.shape, dtype=np.int32))
        if version == 3:
            feat = g.create_group("features")
            feat.create_dataset("id", data=np.array(ids, dtype="S"))
            feat.create_dataset("name", data=np.array(names, dtype="S"))
            feat.create_dataset("feature_type", data=np.array(types, dtype="S"))
            feat.create_dataset("genome", data=np.array(["GRCh38"] * len(ids), dtype="S"))
            feat.create_dataset("_all_tag_keys", data=np.array([b"genome"]))
        else:
            g.create_dataset("genes", data=np.array(ids, dtype="S"))
            g.create_dataset("gene_names", data=np.array(names, dtype="S"))
    return path


@pytest.mark.parametrize("version", [3, 2])
def test_10x_hdf5(tmp_path: Path, version: int) -> None:
    from scatlas.reads.matrices import read_matrix_named

    path = write_10x_h5(tmp_path / "filtered_feature_bc_matrix.h5", version=version)
    for given in (path, tmp_path):  # the file, or a folder holding it
        x, cells, genes, names = read_matrix_named(given)
        assert sp.isspmatrix_csr(x) and x.shape == (4, 3)  # the antibody feature is dropped
        np.testing.assert_array_equal(x.toarray(), COUNTS.T)
        assert cells == CELLS and genes == GENE_IDS and names == GENE_NAMES
    # detected by content, not by name
    renamed = tmp_path / "counts.bin"
    renamed.write_bytes(path.read_bytes())
    assert read_matrix(renamed)[1] == CELLS


def test_10x_hdf5_barcodes_disagree(tmp_path: Path) -> None:
    path = write_10x_h5(tmp_path / "m.h5", extra_barcode=True)
    with pytest.raises(InputError, match="5 barcodes|4 barcodes") as err:
        read_matrix(path)
    assert str(path) in str(err.value) and "barcodes" in str(err.value)
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("x", data=[1, 2])
    with pytest.raises(InputError, match="not a 10x matrix"):
        read_matrix(tmp_path / "other.h5")
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_matrix(tmp_path / "empty.h5")
