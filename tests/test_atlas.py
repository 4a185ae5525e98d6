"""Atlas assembly on small synthetic studies labelled with real Cell Ontology terms."""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scatlas.atlas.assemble import AtlasError, assemble_atlas, choose_splits
from scatlas.errors import InputError
from scatlas.ontology import cached_ontology
from scatlas.package_data import snapshot_obo
from scatlas.settings import AtlasSettings

B, T, NK, HEP = "CL:0000236", "CL:0000084", "CL:0000623", "CL:0000182"
OBSOLETE_OSTEO, OSTEO = "CL:0000375", "CL:0007010"


@pytest.fixture(scope="module")
def onto(repo_root):
    return cached_ontology(snapshot_obo())


def make_study(root, study, genes, labels, *, seed, low=(), status="ok", normalised=False):
    """One study folder: expression.h5ad + cell_types.tsv. ``labels`` per cell ("" =
    unlabelled); cells whose position is in ``low`` get too few counts for QC."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    X = rng.poisson(4.0, size=(n, len(genes))).astype(np.int32)
    for i in low:
        X[i] = 0
        X[i, :3] = 1
    cells = [f"{study}_c{i}" if study.startswith("GSM") else f"AAAC{i:04d}-1" for i in range(n)]
    obs = pd.DataFrame(
        {
            "study": study,
            "sample": [f"GSM{seed}{i:03d}" for i in range(n)],
            "run": "",
            "source_text": [f"cell type: {lab}" for lab in labels],
            "organism": "Homo sapiens",
        },
        index=cells,
    )
    var = pd.DataFrame(
        {
            "gene_symbol": [g.replace("ENSG", "SYM") for g in genes],
            "length": [1000 + k for k in range(len(genes))],
        },
        index=genes,
    )
    adata = anndata.AnnData(X=sp.csr_matrix(X), obs=obs, var=var)
    adata.uns["scatlas"] = {
        "study": study,
        "status": status,
        "reason": "no runs aligned" if status != "ok" else "",
        "normalised": normalised,
        "technology": "matrix",
    }
    folder = root / study
    folder.mkdir(parents=True)
    adata.write_h5ad(folder / "expression.h5ad")
    ct = pd.DataFrame(
        {"cl_id": labels, "cl_label": "", "evidence": "", "confidence": 1.0},
        index=pd.Index(cells, name="cell"),
    )
    ct.to_csv(folder / "cell_types.tsv", sep="\t")
    return folder / "expression.h5ad", folder / "cell_types.tsv", X


GENES_A = [f"ENSG{i:05d}" for i in range(0, 80)]
GENES_B = [f"ENSG{i:05d}" for i in range(20, 100)]


@pytest.fixture()
def four_studies(tmp_path):
    """GSE1/GSE2/GSE3 share B, T and NK cells; GSE4 alone has hepatocytes."""
    specs = {
        "GSE1": (GENES_A, [B] * 12 + [T] * 12 + [NK] * 4 + [""] * 3, (0, 1)),
        "GSE2": (GENES_B, [B] * 12 + [T] * 12 + [NK] * 4, (5,)),
        "GSE3": (GENES_A, [B] * 12 + [T] * 12 + [NK] * 4 + [OBSOLETE_OSTEO] * 2, ()),
        "GSE4": (GENES_B, [B] * 12 + [HEP] * 12, ()),
    }
    out = {}
    for k, (study, (genes, labels, low)) in enumerate(specs.items()):
        out[study] = make_study(tmp_path / "studies", study, genes, labels, seed=k + 1, low=low)
    return out


# what these small synthetic studies are sized for (the schema's defaults suit real studies)
SMALL = {"min_genes": 50, "min_counts": 200, "min_cells_per_type": 10, "n_query_studies": 1}


def _assemble(tmp_path, studies, onto, **kw):
    kw = {**SMALL, **kw}
    names = sorted(studies)
    return assemble_atlas(
        [studies[s][0] for s in names],
        [studies[s][1] for s in names],
        tmp_path / "atlas" / "atlas.h5ad",
        tmp_path / "atlas" / "splits.tsv",
        ontology=onto,
        settings=AtlasSettings(**kw),
    )


def test_assemble_gene_space_qc_and_labels(tmp_path, four_studies, onto):
    adata = _assemble(tmp_path, four_studies, onto, min_genes=20, min_counts=100)
    back = anndata.read_h5ad(tmp_path / "atlas" / "atlas.h5ad")
    assert back.shape == adata.shape
    # union of genes, sorted ids; symbols and lengths carried over
    assert list(back.var_names) == [f"ENSG{i:05d}" for i in range(100)]
    assert back.var.loc["ENSG00090", "gene_symbol"] == "SYM00090"
    assert back.var.loc["ENSG00090", "length"] == 1000 + 70  # position 70 in GENES_B
    assert sp.issparse(back.X) and back.X.dtype == np.float32
    # QC: 3 + 1 cells with 3 counts dropped; recorded per study
    qc = back.uns["scatlas"]["qc"]
    assert (qc["GSE1"]["cells_in"], qc["GSE1"]["failed_qc"], qc["GSE1"]["cells"]) == (31, 2, 29)
    assert qc["GSE2"]["failed_qc"] == 1 and qc["GSE3"]["failed_qc"] == 0
    assert back.n_obs == 31 + 28 + 30 + 24 - 3
    assert (back.obs["n_counts"] >= 100).all() and (back.obs["n_genes"] >= 20).all()
    # zero fill: GSE2 never measured genes 0-19, GSE1 never measured 80-99
    gse2 = (back.obs["study"] == "GSE2").to_numpy()
    gse1 = (back.obs["study"] == "GSE1").to_numpy()
    assert back.X[gse2][:, :20].nnz == 0 and back.X[gse1][:, 80:].nnz == 0
    # values are the study's raw counts, cell for cell
    _, _, raw1 = four_studies["GSE1"]
    row = back.obs_names.get_loc("GSE1:AAAC0002-1")
    np.testing.assert_array_equal(back.X[row].toarray().ravel()[:80], raw1[2])
    # labels: obsolete term followed to its replacement; unlabelled cells kept
    gse3 = back.obs[back.obs["study"] == "GSE3"]
    assert (gse3["cl_id"] == OSTEO).sum() == 2
    assert set(gse3.loc[gse3["cl_id"] == OSTEO, "cl_label"]) == {onto.label(OSTEO)}
    unl = back.obs[back.obs["cl_id"] == ""]
    assert len(unl) == 3 and not unl["trainable"].any()
    # trainable: types with >= 10 cells after QC (B, T, NK, hepatocyte; not the 2 osteoprogenitors)
    counts = back.obs.loc[back.obs["cl_id"] != "", "cl_id"].value_counts()
    expected = set(counts.index[counts >= 10])
    assert expected == {B, T, NK, HEP} and counts[OSTEO] == 2
    assert set(back.uns["scatlas"]["trainable_types"]) == expected
    assert (back.obs["trainable"] == back.obs["cl_id"].isin(expected)).all()
    assert back.obs.loc["GSE1:AAAC0002-1", "cell"] == "AAAC0002-1"
    # highly variable genes: chosen on the training studies, recorded
    selection = back.uns["scatlas"]["gene_selection"]
    train_studies = sorted(set(back.obs.loc[back.obs["split"] == "train", "study"]))
    assert list(selection["studies"]) == train_studies
    assert back.var["highly_variable"].sum() == selection["n_selected"] > 0
    assert back.var["highly_variable_rank"].notna().sum() == selection["n_selected"]
    assert (back.var.loc[back.var["highly_variable"], "hvg_studies"] >= 1).all()


def test_split_is_study_disjoint_and_types_in_train(tmp_path, four_studies, onto):
    for seed in range(6):
        adata = _assemble(tmp_path, four_studies, onto, min_genes=20, min_counts=100, seed=seed)
        obs = adata.obs
        per_study = obs.groupby("study", observed=True)["split"].nunique()
        assert (per_study == 1).all()
        split_of = obs.groupby("study", observed=True)["split"].first().to_dict()
        assert sorted(split_of.values()) == ["query", "train", "train", "validation"]
        # GSE4's hepatocytes exist nowhere else: it can never be held out automatically
        assert split_of["GSE4"] == "train"
        train_types = set(obs.loc[(obs["split"] == "train") & obs["trainable"], "cl_id"])
        held = set(obs.loc[(obs["split"] != "train") & obs["trainable"], "cl_id"])
        assert held <= train_types
        assert list(adata.uns["scatlas"]["novel_types"]) == []
    splits = pd.read_csv(tmp_path / "atlas" / "splits.tsv", sep="\t")
    assert list(splits.columns) == ["study", "split", "n_cells", "n_labelled"]
    assert splits.set_index("study").loc["GSE1", "n_cells"] == 29
    assert splits.set_index("study").loc["GSE1", "n_labelled"] == 26
    assert dict(zip(splits["study"], splits["split"], strict=True)) == split_of


def test_split_is_deterministic(tmp_path, four_studies, onto):
    a = _assemble(tmp_path, four_studies, onto, min_genes=20, min_counts=100, seed=3)
    b = _assemble(tmp_path, four_studies, onto, min_genes=20, min_counts=100, seed=3)
    assert a.uns["scatlas"]["splits"] == b.uns["scatlas"]["splits"]


def test_explicit_lists_win_and_record_novel_types(tmp_path, four_studies, onto):
    adata = _assemble(
        tmp_path,
        four_studies,
        onto,
        min_genes=20,
        min_counts=100,
        query_studies=["GSE4"],
        validation_studies=["GSE1"],
    )
    assert adata.uns["scatlas"]["splits"] == {
        "GSE1": "validation",
        "GSE2": "train",
        "GSE3": "train",
        "GSE4": "query",
    }
    assert list(adata.uns["scatlas"]["novel_types"]) == [HEP]
    with pytest.raises(InputError, match="GSE9"):
        _assemble(tmp_path, four_studies, onto, query_studies=["GSE9"])
    with pytest.raises(AtlasError, match="both"):
        _assemble(tmp_path, four_studies, onto, query_studies=["GSE1"], validation_studies=["GSE1"])
    with pytest.raises(AtlasError, match="no study for training"):
        _assemble(
            tmp_path,
            four_studies,
            onto,
            query_studies=["GSE1", "GSE2"],
            validation_studies=["GSE3", "GSE4"],
        )


def test_failed_studies_skipped_and_too_few_studies(tmp_path, onto, caplog):
    root = tmp_path / "studies"
    ok1 = make_study(root, "GSE10", GENES_A, [B] * 12 + [T] * 12, seed=1)
    ok2 = make_study(root, "GSE11", GENES_A, [B] * 12 + [T] * 12, seed=2)
    failed = make_study(root, "GSE12", GENES_A, [B] * 5, seed=3, status="failed")
    empty = make_study(root, "GSE13", GENES_A, [], seed=4)
    allbad = make_study(root, "GSE14", GENES_A, [B, B], seed=5, low=(0, 1))
    normed = make_study(root, "GSE15", GENES_A, [B] * 12, seed=6, normalised=True)
    skipped_up = make_study(root, "GSE16", GENES_A, [], seed=7, status="skipped")
    studies = {
        "GSE10": ok1,
        "GSE11": ok2,
        "GSE12": failed,
        "GSE13": empty,
        "GSE14": allbad,
        "GSE15": normed,
        "GSE16": skipped_up,
    }
    with caplog.at_level("WARNING"):
        adata = _assemble(tmp_path, studies, onto, min_genes=20, min_counts=100)
    skipped = adata.uns["scatlas"]["skipped"]
    assert set(skipped) == {"GSE12", "GSE13", "GSE14", "GSE16"}
    assert skipped["GSE12"] == "study failed upstream: no runs aligned"
    assert skipped["GSE16"] == "study skipped upstream: no runs aligned"
    assert "no cell passed QC" in skipped["GSE14"] and skipped["GSE13"] == "no cells"
    assert "GSE12 skipped" in caplog.text
    # author-normalised values stay in the atlas, flagged, never trainable
    assert adata.uns["scatlas"]["normalised_studies"] == ["GSE15"]
    normed_cells = adata.obs["study"] == "GSE15"
    assert normed_cells.sum() == 12 and adata.obs.loc[normed_cells, "normalised"].all()
    assert not adata.obs.loc[normed_cells, "trainable"].any()
    assert not adata.obs.loc[~normed_cells, "normalised"].any()
    # three usable studies: the two of counts are one train, one query
    splits = adata.uns["scatlas"]["splits"]
    assert set(splits) == {"GSE10", "GSE11", "GSE15"}
    assert sorted(splits[s] for s in ("GSE10", "GSE11")) == ["query", "train"]
    few = [studies[k] for k in ("GSE10", "GSE12", "GSE13")]
    bad = tmp_path / "bad"
    with pytest.raises(AtlasError, match="at least 2 usable studies") as err:
        assemble_atlas(
            [f[0] for f in few],
            [f[1] for f in few],
            bad / "atlas.h5ad",
            bad / "splits.tsv",
            ontology=onto,
            settings=AtlasSettings(**{**SMALL, "min_genes": 20, "min_counts": 100}),
        )
    assert "GSE12: study failed upstream: no runs aligned" in str(err.value)
    assert not (bad / "atlas.h5ad").exists() and not (bad / "splits.tsv").exists()


def test_choose_splits_prefers_covered_studies():
    types = {"S1": {B, T}, "S2": {B, T}, "S3": {B}, "S4": {HEP, B}, "S5": set()}
    for seed in range(10):
        split = choose_splits(types, n_query_studies=1, n_validation_studies=1, seed=seed)
        assert split["S4"] == "train"  # hepatocytes only there
        assert split["S5"] == "train"  # unlabelled studies are not held out while others qualify
        held = [s for s, v in split.items() if v != "train"]
        assert len(held) == 2
        train = set().union(*(types[s] for s, v in split.items() if v == "train"))
        assert all(types[s] <= train for s in held)
    # impossible to cover: the study leaving fewest types uncovered goes, novel recorded upstream
    split = choose_splits({"S1": {B}, "S2": {T}}, n_query_studies=1, n_validation_studies=1, seed=0)
    assert sorted(split.values()) == ["query", "train"]


def test_study_titles_come_from_each_study_json(tmp_path, four_studies, onto):
    import json

    folder = four_studies["GSE2"][0].parent
    (folder / "study.json").write_text(json.dumps({"study": "GSE2", "title": "PBMC of two donors"}))
    (four_studies["GSE3"][0].parent / "study.json").write_text("{not json")  # ignored
    adata = _assemble(tmp_path, four_studies, onto)
    assert adata.uns["scatlas"]["study_titles"] == {"GSE2": "PBMC of two donors"}
