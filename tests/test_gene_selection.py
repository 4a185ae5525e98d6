"""Highly variable genes across training studies: chosen, recorded, trained on, published."""

import json

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from synthetic_atlas import train_tiny, write_atlas

from scatlas.atlas.genes import select_genes
from scatlas.errors import InputError
from scatlas.models.trainer import resolve_params


def _studies(seed=0):
    """Three studies of 200 cells x 400 genes: genes 0-9 vary (on/off) in studies A and B,
    genes 10-19 only in B, 20-29 only in A, 50-59 only in the held-out study C; the rest are Poisson
    at means spanning the same range (so every mean bin has flat genes)."""
    rng = np.random.default_rng(seed)
    blocks, studies = [], []
    means = np.geomspace(1, 40, 400)[rng.permutation(400)]
    for name, varied in (("A", range(30)), ("B", range(20)), ("C", range(50, 60))):
        lam = np.tile(means, (200, 1))
        on = rng.random((200, 400)) < 0.5
        for g in (g for g in varied if not (name == "A" and 10 <= g < 20)):
            lam[:, g] = np.where(on[:, g], 2 * means[g], 0.05)
        blocks.append(rng.poisson(lam))
        studies += [name] * 200
    X = sp.csr_matrix(np.vstack(blocks).astype(np.float32))
    return X, np.array(studies, dtype=object)


def test_genes_variable_in_most_training_studies_first_held_out_ignored():
    X, studies = _studies()
    use = studies != "C"
    var, record = select_genes(X, studies, use, np.zeros(len(studies), bool), n_top_genes=20)
    selected = set(np.flatnonzero(var["highly_variable"]))
    assert set(range(10)) < selected < set(range(30)) and len(selected) == 20
    assert not var["highly_variable"].iloc[50:60].any()  # the held-out study's genes
    assert (var["hvg_studies"].iloc[:10] == 2).all() and (var["hvg_studies"].iloc[10:30] <= 1).all()
    # called by both training studies: ranked before the genes only one study calls
    assert sorted(var["highly_variable_rank"].iloc[:10]) == list(range(1, 11))
    assert var["highly_variable_rank"].iloc[30:].isna().all()
    assert record["studies"] == ["A", "B"] and record["n_selected"] == 20
    with_c, _ = select_genes(
        X, studies, np.ones(len(studies), bool), np.zeros(len(X.indptr) - 1, bool), 20
    )
    assert with_c["highly_variable"].iloc[50:60].any()  # had C been a training study


def test_log_normalised_study_used_as_it_is():
    X, studies = _studies(seed=1)
    from scatlas.models.normalize import log1p_cp10k

    L = log1p_cp10k(X)
    a, _ = select_genes(X, studies, studies != "C", np.zeros(len(studies), bool), 10)
    b, _ = select_genes(L, studies, studies != "C", np.ones(len(studies), bool), 10)
    assert (a["highly_variable"] == b["highly_variable"]).all()


def _atlas_with_hvg(tmp_path, n_top=40):
    path = write_atlas(tmp_path / "atlas.h5ad", cells_per_type=40, n_genes=120)
    atlas = ad.read_h5ad(path)
    var, record = select_genes(
        atlas.X,
        atlas.obs["study"].to_numpy(),
        (atlas.obs["split"] == "train").to_numpy(),
        np.zeros(atlas.n_obs, bool),
        n_top,
    )
    for column in var:
        atlas.var[column] = var[column].to_numpy()
    atlas.uns["scatlas"] = {**atlas.uns.get("scatlas", {}), "gene_selection": record}
    atlas.write_h5ad(path)
    return path, atlas


def test_model_trains_on_the_atlas_hvgs_and_records_them(tmp_path):
    path, atlas = _atlas_with_hvg(tmp_path)
    info = train_tiny(path, tmp_path / "dense", genes="hvg", epochs=2)
    hvg = list(atlas.var_names[atlas.var["highly_variable"].to_numpy(bool)])
    assert info["genes"] == hvg and len(hvg) == 40
    saved = json.loads((tmp_path / "dense" / "model.json").read_text())
    selection = saved["gene_selection"]
    assert selection["genes"] == "hvg" and selection["n_genes"] == 40
    assert selection["n_top_genes"] == 40 and isinstance(selection["studies"], list)
    every = train_tiny(path, tmp_path / "all", epochs=1)
    assert len(every["genes"]) == 120 and every["gene_selection"]["genes"] == "all"


def test_hvg_on_an_atlas_without_them_and_bad_choice_refused(tmp_path):
    path = write_atlas(tmp_path / "old.h5ad", cells_per_type=20, n_genes=60)
    with pytest.raises(InputError, match="highly variable") as err:
        train_tiny(path, tmp_path / "m", genes="hvg", epochs=1)
    assert err.value.field == "var.highly_variable"
    with pytest.raises(InputError, match="genes"):
        resolve_params("dense", {"genes": "top"})
