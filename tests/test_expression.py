"""The per-study expression AnnData: from featureCounts (reads) and from author matrices."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from dm6_pipeline import DM6, RUNS, SAMPLES, dm6_pipeline, write_manifest

from scatlas.reads.expression import (
    OBS_COLUMNS,
    build_expression,
    build_study_expression,
    gene_index,
    source_text,
)
from scatlas.reads.quant import read_featurecounts, rpkm
from scatlas.reads.reference import load_gene_table
from scatlas.sheets import SAMPLE_COLUMNS


def write_samples(path: Path, rows: list[dict]) -> Path:
    """A schema-valid samples.tsv: required fields the test does not care about get defaults."""
    full = [
        {"study": "GSE1", "technology": "smartseq" if r.get("run") else "matrix", **r} for r in rows
    ]
    pd.DataFrame(full, columns=SAMPLE_COLUMNS).fillna("").to_csv(path, sep="\t", index=False)
    return path


@pytest.fixture(scope="session")
def dm6(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> DM6:
    return dm6_pipeline(shared_data, tmp_path_factory)


def dm6_samples(path: Path) -> Path:
    genotype = ["wild type", "wild type", "Smn mutant", "Smn mutant"]
    return write_samples(
        path,
        [
            {
                "study": "GSE49587",
                "sample": s,
                "title": f"larva {g} rep {i % 2 + 1}",
                "organism": "Drosophila melanogaster",
                "source_name": "whole larvae",
                "characteristics": f"genotype: {g}; stage: L2 larva",
                "library_layout": "PAIRED",
                "technology": "smartseq",
                "run": r,
            }
            for i, (s, r, g) in enumerate(zip(SAMPLES, RUNS, genotype, strict=True))
        ],
    )


def test_source_text() -> None:
    assert (
        source_text({"title": "A", "source_name": "liver", "characteristics": "age: 3"})
        == "A | liver | age: 3"
    )
    assert source_text({"title": "A", "source_name": "", "characteristics": "x: y"}) == "A | x: y"


@pytest.mark.tools
def test_reads_study(dm6: DM6, tmp_path: Path) -> None:
    genes = load_gene_table(dm6.gtf)
    samples = dm6_samples(tmp_path / "samples.tsv")
    out = tmp_path / "studies" / "GSE49587" / "expression.h5ad"
    adata = build_expression(
        "GSE49587", samples, genes, out, counts_tsv=dm6.counts_tsv, alignment_tsv=dm6.alignment_tsv
    )
    counts, _ = read_featurecounts(dm6.counts_tsv)
    assert adata.shape == (4, 167)
    assert list(adata.obs_names) == SAMPLES and list(adata.var_names) == list(genes.index)
    assert sp.isspmatrix_csr(adata.X) and adata.X.dtype == np.int32
    expected = counts.reindex(genes.index).to_numpy().T
    np.testing.assert_array_equal(adata.X.toarray(), expected)
    layer = adata.layers["rpkm"]
    assert sp.isspmatrix_csr(layer) and layer.dtype == np.float32
    np.testing.assert_allclose(layer.toarray(), rpkm(expected.T, genes["length"]).T, rtol=1e-6)
    obs = adata.obs
    assert list(obs.columns) == OBS_COLUMNS
    assert obs["run"].tolist() == RUNS and (obs["study"] == "GSE49587").all()
    assert (
        obs.loc["GSM0000003", "source_text"]
        == "larva Smn mutant rep 1 | whole larvae | genotype: Smn mutant; stage: L2 larva"
    )
    assert (obs["organism"] == "Drosophila melanogaster").all()
    assert adata.var.loc["FBgn0031208", "gene_symbol"] == "CG11023"
    assert adata.var["length"].tolist() == genes["length"].tolist()
    assert adata.uns["scatlas"] == {
        "study": "GSE49587",
        "status": "ok",
        "reason": "",
        "normalised": False,
        "technology": "smartseq",
        "n_runs_ok": 4,
        "n_runs_skipped": 0,
        "n_runs_failed": 0,
    }
    back = ad.read_h5ad(out)
    np.testing.assert_array_equal(back.X.toarray(), expected)
    assert back.uns["scatlas"]["status"] == "ok" and back.obs.equals(adata.obs)
    assert sorted(p.name for p in out.parent.iterdir()) == ["expression.h5ad"]


@pytest.mark.tools
def test_runs_of_one_sample_are_summed(dm6: DM6, tmp_path: Path) -> None:
    genes = load_gene_table(dm6.gtf)
    alignment = pd.read_csv(dm6.alignment_tsv, sep="\t", dtype=str, keep_default_na=False)
    alignment.loc[1, "sample"] = SAMPLES[0]  # SRR948305 is a second run of the first sample
    alignment.to_csv(tmp_path / "alignment.tsv", sep="\t", index=False)
    adata = build_expression(
        "GSE49587",
        dm6_samples(tmp_path / "samples.tsv"),
        genes,
        tmp_path / "e.h5ad",
        counts_tsv=dm6.counts_tsv,
        alignment_tsv=tmp_path / "alignment.tsv",
    )
    counts, _ = read_featurecounts(dm6.counts_tsv)
    counts = counts.reindex(genes.index)
    assert list(adata.obs_names) == [SAMPLES[0], SAMPLES[2], SAMPLES[3]]
    assert adata.obs.loc[SAMPLES[0], "run"] == "SRR948304;SRR948305"
    summed = (counts["SRR948304"] + counts["SRR948305"]).to_numpy()
    np.testing.assert_array_equal(adata.X[0].toarray().ravel(), summed)
    np.testing.assert_allclose(
        adata.layers["rpkm"][0].toarray().ravel(),
        summed * 1e9 / (summed.sum() * genes["length"].to_numpy()),
        rtol=1e-6,
    )


def test_failed_study_gives_empty_file(tmp_path: Path) -> None:
    genes = pd.DataFrame(
        {
            "gene_symbol": ["A", "B"],
            "biotype": ["", ""],
            "chrom": ["1", "1"],
            "strand": ["+", "-"],
            "length": [100, 200],
        },
        index=pd.Index(["G1", "G2"], name="gene_id"),
    )
    samples = write_samples(tmp_path / "samples.tsv", [])
    out = tmp_path / "e.h5ad"
    adata = build_expression(
        "GSE1",
        samples,
        genes,
        out,
        counts_tsv=tmp_path / "c.tsv",
        status={"status": "failed", "reason": "no FASTQ could be downloaded"},
    )
    back = ad.read_h5ad(out)
    for a in (adata, back):
        assert a.shape == (0, 2) and a.X.dtype == np.int32
        assert a.uns["scatlas"]["status"] == "failed"
        assert a.uns["scatlas"]["reason"] == "no FASTQ could be downloaded"
        assert list(a.obs.columns) == OBS_COLUMNS and "rpkm" in a.layers

    # No run aligned: header-only counts and an alignment table of failures.
    (tmp_path / "c.tsv").write_text("# none\nGeneid\tChr\tStart\tEnd\tStrand\tLength\n")
    pd.DataFrame(
        {
            "run": ["SRR0000001", "SRR0000002"],
            "sample": ["GSM1", "GSM2"],
            "status": ["failed", "skipped"],
            "reason": ["hisat2 exited with status 1", "alignment rate 12.0% < 40%"],
        }
    ).to_csv(tmp_path / "a.tsv", sep="\t", index=False)
    adata = build_expression(
        "GSE1", samples, genes, out, counts_tsv=tmp_path / "c.tsv", alignment_tsv=tmp_path / "a.tsv"
    )
    info = ad.read_h5ad(out).uns["scatlas"]
    assert adata.n_obs == 0 and info["status"] == "failed"
    assert (
        "1 skipped, 1 failed" in info["reason"] and "alignment rate 12.0% < 40%" in info["reason"]
    )
    assert (info["n_runs_ok"], info["n_runs_skipped"], info["n_runs_failed"]) == (0, 1, 1)


@pytest.fixture(scope="module")
def human_genes(shared_data: Path) -> pd.DataFrame:
    """GENCODE v44 ids and names. The lengths are a stand-in (1 kb): no human GTF is shipped."""
    table = pd.read_csv(
        shared_data / "orthologs" / "GENCODEv44_Gene_id2name.csv",
        header=None,
        names=["gene_id", "gene_symbol"],
        dtype=str,
    ).drop_duplicates("gene_id")
    table = table.set_index("gene_id").sort_index()
    return table.assign(biotype="", chrom="", strand="", length=1000)[
        ["gene_symbol", "biotype", "chrom", "strand", "length"]
    ]


def test_gene_index(human_genes: pd.DataFrame) -> None:
    where = gene_index(["ENSG00000141510", "ENSG00000141510.18", "tp53", "NOT_A_GENE"], human_genes)
    tp53 = human_genes.index.get_loc("ENSG00000141510")
    assert where.tolist() == [tp53, tp53, tp53, -1]


def test_matrix_study_pbmc(shared_data: Path, human_genes: pd.DataFrame, tmp_path: Path) -> None:
    mtx = (
        shared_data
        / "expression"
        / "pbmc-zheng-sorted"
        / "zheng_sorted_reference.genes_x_cells.mtx.gz"
    )
    manifest = write_manifest(
        tmp_path / "manifest.tsv", [{"run": "", "sample": "", "files": str(mtx), "status": "ok"}]
    )
    samples = write_samples(
        tmp_path / "samples.tsv",
        [
            {
                "study": "GSE0000001",
                "sample": "GSM0000100",
                "title": "FACS-sorted PBMC",
                "organism": "Homo sapiens",
                "source_name": "peripheral blood",
                "characteristics": "cell type: sorted immune cells",
                "technology": "matrix",
            }
        ],
    )
    out = tmp_path / "e.h5ad"
    adata = build_expression("GSE0000001", samples, human_genes, out, matrix_manifest=manifest)
    assert adata.shape == (2140, len(human_genes))
    assert adata.X.dtype == np.int32 and not adata.uns["scatlas"]["normalised"]
    assert adata.uns["scatlas"]["technology"] == "matrix"
    assert adata.obs_names[0] == "bcellsAAAGATCTCCGAAT-1"
    # All cells belong to the study's one sample.
    assert (adata.obs["sample"] == "GSM0000100").all()
    assert (
        adata.obs["source_text"].iloc[0]
        == "FACS-sorted PBMC | peripheral blood | cell type: sorted immune cells"
    )
    # Symbols became GENCODE ids; a known marker keeps its counts.
    raw = pd.read_csv(
        mtx.with_name("zheng_sorted_reference.genes_x_cells.genes.txt.gz"), header=None
    )[0]
    import scipy.io

    cd3e_raw = scipy.io.mmread(mtx).tocsr()[raw.tolist().index("CD3E")].toarray().ravel()
    cd3e = adata[:, human_genes.index[human_genes["gene_symbol"] == "CD3E"][0]].X.toarray().ravel()
    np.testing.assert_array_equal(cd3e, cd3e_raw)
    matched = (gene_index(raw.tolist(), human_genes) >= 0).sum()
    assert matched / len(raw) > 0.85 and adata.X.sum() > 0  # 7,979 of 8,863 symbols
    total = scipy.io.mmread(mtx).sum()
    assert adata.X.sum() <= total


def test_matrix_study_celseq2_with_gsm_cells(
    shared_data: Path, human_genes: pd.DataFrame, tmp_path: Path
) -> None:
    path = shared_data / "expression" / "celllines-celseq2" / "sc_celseq2.count.csv.gz"
    table = pd.read_csv(path, index_col=0).iloc[:, :3]
    cells = ["GSM0000201", "GSM0000202", "GSM0000203"]
    table.columns = cells
    small = tmp_path / "three_cells.csv"
    table.to_csv(small)
    manifest = write_manifest(
        tmp_path / "manifest.tsv", [{"run": "", "sample": "", "files": str(small), "status": "ok"}]
    )
    samples = write_samples(
        tmp_path / "samples.tsv",
        [
            {
                "study": "GSE118767",
                "sample": c,
                "title": f"cell {i}",
                "organism": "Homo sapiens",
                "source_name": "lung adenocarcinoma cell line",
                "characteristics": f"cell line: {line}",
            }
            for i, (c, line) in enumerate(zip(cells, ["H1975", "H2228", "HCC827"], strict=True))
        ],
    )
    adata = build_expression(
        "GSE118767", samples, human_genes, tmp_path / "e.h5ad", matrix_manifest=manifest
    )
    assert list(adata.obs_names) == cells and adata.obs["sample"].tolist() == cells
    assert adata.obs.loc["GSM0000202", "source_text"].endswith("cell line: H2228")
    ids = [g for g in table.index if g in human_genes.index]
    np.testing.assert_array_equal(adata[:, ids].X.toarray(), table.loc[ids].to_numpy().T)
    # RPKM with N = the cell's counts over the reference genes (ERCC spikes are not counted).
    n = table.loc[ids].sum().to_numpy()
    assert (table.sum().to_numpy() > n).all()
    np.testing.assert_allclose(
        adata.layers["rpkm"][:, adata.var_names.get_indexer(ids)].toarray(),
        table.loc[ids].to_numpy().T * 1e9 / (n[:, None] * 1000),
        rtol=1e-6,
    )


def test_normalised_matrix(tmp_path: Path, human_genes: pd.DataFrame) -> None:
    values = pd.DataFrame(
        [[0.0, 1.386], [2.1, 0.0]], index=["TP53", "CD3E"], columns=["GSM0000301", "GSM0000302"]
    )
    values.to_csv(tmp_path / "lognorm.tsv", sep="\t")
    manifest = write_manifest(
        tmp_path / "m.tsv",
        [{"run": "", "sample": "", "files": str(tmp_path / "lognorm.tsv"), "status": "ok"}],
    )
    samples = write_samples(
        tmp_path / "s.tsv", [{"sample": "GSM0000301"}, {"sample": "GSM0000302"}]
    )
    adata = build_expression(
        "GSE2", samples, human_genes, tmp_path / "e.h5ad", matrix_manifest=manifest
    )
    assert adata.uns["scatlas"]["normalised"] is True
    assert adata.X.dtype == np.float32 and adata.layers["rpkm"].nnz == 0
    tp53 = human_genes.index[human_genes["gene_symbol"] == "TP53"][0]
    np.testing.assert_allclose(adata[:, tp53].X.toarray().ravel(), [0.0, 1.386], rtol=1e-6)
    back = ad.read_h5ad(tmp_path / "e.h5ad")
    assert bool(back.uns["scatlas"]["normalised"]) is True


def test_bad_matrix_is_a_failed_study(tmp_path: Path, human_genes: pd.DataFrame) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "matrix.mtx").write_text(
        "%%MatrixMarket matrix coordinate integer general\n2 3 1\n1 1 4\n"
    )
    (tmp_path / "m" / "barcodes.tsv").write_text("AAACCTGAGAAGGCCT-1\nAAACCTGAGACAGACC-1\n")
    (tmp_path / "m" / "features.tsv").write_text("ENSG00000141510\tTP53\n")
    manifest = write_manifest(
        tmp_path / "man.tsv",
        [{"run": "", "sample": "", "files": str(tmp_path / "m"), "status": "ok"}],
    )
    samples = write_samples(tmp_path / "s.tsv", [])
    adata = build_expression(
        "GSE3", samples, human_genes, tmp_path / "e.h5ad", matrix_manifest=manifest
    )
    info = adata.uns["scatlas"]
    assert adata.n_obs == 0 and info["status"] == "failed"
    assert str(tmp_path / "m" / "matrix.mtx") in info["reason"] and "barcodes" in info["reason"]


@pytest.mark.tools
def test_build_study_expression_from_rule_inputs(dm6: DM6, tmp_path: Path) -> None:
    meta = tmp_path / "study.json"
    meta.write_text(
        json.dumps({"study": "GSE49587", "status": "ok", "reason": "", "title": "Smn larvae"})
    )
    inputs = {
        "samples": dm6_samples(tmp_path / "samples.tsv"),
        "meta": meta,
        "genes": dm6.index.parent / "genes.tsv",  # written beside the HISAT2 index
        "counts": dm6.counts_tsv,
        "alignment": dm6.alignment_tsv,
    }
    adata = build_study_expression("GSE49587", inputs, tmp_path / "e.h5ad")
    assert adata.shape == (4, 167) and adata.uns["scatlas"]["status"] == "ok"
    assert adata.X.sum() == read_featurecounts(dm6.counts_tsv)[0].to_numpy().sum()
    meta.write_text(json.dumps({"status": "skipped", "reason": "not single-cell"}))
    adata = build_study_expression("GSE49587", inputs, tmp_path / "e.h5ad")
    assert adata.n_obs == 0 and adata.uns["scatlas"]["reason"] == "not single-cell"


def test_matrix_study_10x_hdf5_by_gene_names(tmp_path: Path, human_genes: pd.DataFrame) -> None:
    """A 10x HDF5 matrix whose gene ids belong to another annotation release: the genes are
    found through the names the file gives beside the ids."""
    import h5py
    from test_matrices import CELLS, COUNTS, GENE_NAMES, write_10x_h5

    path = write_10x_h5(tmp_path / "GSM0000401_filtered_feature_bc_matrix.h5")
    with h5py.File(path, "r+") as f:
        del f["matrix/features/id"]
        f["matrix/features"].create_dataset(
            "id", data=np.array([f"ENSG9999999990{i}" for i in range(4)], dtype="S")
        )
    manifest = write_manifest(
        tmp_path / "m.tsv",
        [
            {
                "run": "",
                "sample": "GSM0000401",
                "files": f"{path};{tmp_path / 'x.csv'}",
                "status": "ok",
            }
        ],
    )
    samples = write_samples(
        tmp_path / "s.tsv", [{"sample": "GSM0000401", "title": "PBMC", "technology": "matrix"}]
    )
    adata = build_expression(
        "GSE4", samples, human_genes, tmp_path / "e.h5ad", matrix_manifest=manifest
    )
    assert adata.uns["scatlas"]["status"] == "ok" and not adata.uns["scatlas"]["normalised"]
    assert adata.obs_names.tolist() == CELLS and adata.X.dtype == np.int32
    ids = [human_genes.index[human_genes["gene_symbol"] == n][0] for n in GENE_NAMES]
    np.testing.assert_array_equal(adata[:, ids].X.toarray(), COUNTS.T)
    assert adata.X.sum() == COUNTS.sum()  # the antibody feature is not a gene
    assert (adata.obs["sample"] == "GSM0000401").all()


def test_reads_study_without_cells_takes_author_matrices(
    tmp_path: Path, human_genes: pd.DataFrame
) -> None:
    """A series with SRA runs whose samples are of a droplet protocol scatlas does not count
    itself (their rows are author matrices): no run is aligned, the matrices are used."""
    pd.DataFrame(
        [[3, 0], [1, 7]], index=["TP53", "CD3E"], columns=["GSM0000501", "GSM0000502"]
    ).to_csv(tmp_path / "counts.csv")
    manifest = write_manifest(
        tmp_path / "m.tsv",
        [{"run": "", "sample": "", "files": str(tmp_path / "counts.csv"), "status": "ok"}],
    )
    (tmp_path / "c.tsv").write_text("# none\nGeneid\tChr\tStart\tEnd\tStrand\tLength\n")
    samples = write_samples(
        tmp_path / "s.tsv",
        [{"sample": s, "technology": "matrix"} for s in ("GSM0000501", "GSM0000502")],
    )
    adata = build_expression(
        "GSE5",
        samples,
        human_genes,
        tmp_path / "e.h5ad",
        counts_tsv=tmp_path / "c.tsv",
        matrix_manifest=manifest,
    )
    assert adata.uns["scatlas"]["status"] == "ok" and adata.uns["scatlas"]["technology"] == "matrix"
    assert adata.obs_names.tolist() == ["GSM0000501", "GSM0000502"] and adata.X.sum() == 11
