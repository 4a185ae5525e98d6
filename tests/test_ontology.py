"""Cell Ontology loading, graph walks and free-text matching on the real CL 2022-12-15 release."""

from __future__ import annotations

import glob

import anndata
import numpy as np
import pandas as pd
import pytest

from scatlas.errors import InputError
from scatlas.ontology import (
    ROOT,
    UnknownTermError,
    cached_matcher,
    cached_ontology,
    load_ontology,
    map_study,
    normalise_text,
    read_cell_types,
    split_fields,
)

B_CELL, T_CELL, NK_CELL = "CL:0000236", "CL:0000084", "CL:0000623"
LYMPHOCYTE, LEUKOCYTE = "CL:0000542", "CL:0000738"
CD4_AB_T = "CL:0000624"
BETA_CELL, PITUITARY_BASOPHIL = "CL:0000169", "CL:0000639"


@pytest.fixture(scope="module")
def obo(repo_root):
    return repo_root / "resources" / "ontology" / "cl-basic.obo"


@pytest.fixture(scope="module")
def onto(obo):
    return cached_ontology(obo)


@pytest.fixture(scope="module")
def matcher(obo):
    return cached_matcher(obo)


# --- loading ---------------------------------------------------------------------------


def test_snapshot_is_the_shared_release(obo, shared_data):
    assert obo.read_bytes() == (shared_data / "ontology" / "cl-basic_2022-12-15.obo").read_bytes()


def test_load_real_release(onto, obo):
    assert "2022-12-15" in onto.version
    assert len(onto) == 2795  # CL: terms only (the 9 CP: terms are dropped)
    assert len(onto.term_ids()) == 2795 - 151  # current terms (151 CL terms are obsolete)
    assert onto.label(B_CELL) == "B cell"
    assert onto.label("CL:0000000") == "cell"
    assert cached_ontology(obo) is onto  # cached per process


def test_rejects_ontology_pronto_cannot_parse(shared_data):
    bad = shared_data / "ontology" / "general_cell_types_upper_slim_2026-06-08.obo"
    with pytest.raises(InputError) as err:
        load_ontology(bad)
    assert err.value.path == str(bad)
    assert bad.name in str(err.value)


@pytest.mark.parametrize("content", ["hello world\n", "", '{"graphs": []}\n'])
def test_rejects_non_obo(tmp_path, content):
    path = tmp_path / "x.obo"
    path.write_text(content)
    with pytest.raises(InputError, match="x.obo"):
        load_ontology(path)


def test_rejects_obo_without_cl_terms(tmp_path):
    path = tmp_path / "go.obo"
    path.write_text("format-version: 1.2\n\n[Term]\nid: GO:0000001\nname: thing\n")
    with pytest.raises(InputError, match="no Cell Ontology"):
        load_ontology(path)
    with pytest.raises(InputError, match="not found"):
        load_ontology(tmp_path / "missing.obo")


# --- graph -----------------------------------------------------------------------------


def test_ancestors_and_descendants(onto):
    anc = onto.ancestors(B_CELL)
    assert {LYMPHOCYTE, LEUKOCYTE, ROOT} <= anc
    assert B_CELL not in anc and T_CELL not in anc
    assert B_CELL in onto.ancestors(B_CELL, include_self=True)
    assert onto.parents(B_CELL) == {"CL:0000945"}  # lymphocyte of B lineage
    desc = onto.descendants(T_CELL)
    assert CD4_AB_T in desc and B_CELL not in desc
    assert B_CELL in onto.descendants(LYMPHOCYTE) and T_CELL in onto.descendants(LYMPHOCYTE)
    # every current term except the extra roots descends from "cell"
    assert len(onto.descendants(ROOT)) > 2500
    # the walk is consistent both ways
    assert all(B_CELL in onto.descendants(a) for a in anc)


def test_is_related_lca_distance(onto):
    assert onto.is_related(T_CELL, CD4_AB_T) and onto.is_related(CD4_AB_T, T_CELL)
    assert onto.is_related(B_CELL, B_CELL)
    assert not onto.is_related(B_CELL, T_CELL)
    assert onto.lca(B_CELL, T_CELL) == LYMPHOCYTE
    assert onto.lca(CD4_AB_T, T_CELL) == T_CELL
    assert onto.distance(B_CELL, B_CELL) == 0
    assert onto.distance(B_CELL, "CL:0000945") == 1
    # B cell -> lymphocyte of B lineage -> lymphocyte <- T cell
    assert onto.distance(B_CELL, T_CELL) == onto.distance(T_CELL, B_CELL) == 3
    # CD4+ ab T cell -> CD4+ T cell -> T cell (shortest upward path)
    assert onto.distance(CD4_AB_T, T_CELL) == 3
    assert onto.distance(B_CELL, NK_CELL) == 5
    assert onto.max_distance([B_CELL, T_CELL, NK_CELL]) == 5
    assert onto.max_distance([B_CELL]) == 0


def test_disconnected_terms_meet_at_virtual_root(onto):
    other_root = "CL:0017500"  # "neutrophillic cytoplasm", a root beside CL:0000000
    assert onto.lca(other_root, B_CELL) is None
    assert onto.distance(other_root, B_CELL) == onto.depth(B_CELL) + 0 + 2


def test_obsolete_and_unknown_terms(onto):
    assert onto.resolve("CL:0000375") == "CL:0007010"  # obsolete osteoprogenitor cell
    assert onto.resolve("CL:0000002") is None  # replaced by a CLO term only
    assert onto.resolve("CL:9999999") is None
    assert onto.resolve(B_CELL) == B_CELL
    # graph methods follow replaced_by
    assert onto.ancestors("CL:0000375") == onto.ancestors("CL:0007010")
    with pytest.raises(UnknownTermError, match="CL:9999999"):
        onto.ancestors("CL:9999999")


# --- matching --------------------------------------------------------------------------


def test_normalise_and_split():
    assert normalise_text("  T-Cells ") == "t cell"
    assert normalise_text("CD4+ T lymphocytes") == "cd4+ t lymphocyte"
    assert normalise_text("Monocytes/Macrophages") == "monocyte macrophage"
    assert normalise_text("capillaries") == normalise_text("capillary")
    assert normalise_text("glass") == "glass"
    assert split_fields("GSM1 | source: PBMC; cell type: B cells") == ["GSM1", "PBMC", "B cells"]
    assert split_fields("CL:0000084") == ["CL:0000084"]


@pytest.mark.parametrize(
    ("text", "cl_id"),
    [
        ("B lymphocyte", B_CELL),
        ("NK cell", NK_CELL),
        ("cell type: T cells", T_CELL),
        ("pancreatic beta cell", BETA_CELL),
        ("Macrophages", "CL:0000235"),
        ("GSM123 | blood | cell type: natural killer cells", NK_CELL),
        ("insulin-secreting cell", BETA_CELL),
    ],
)
def test_map_cell_real_synonyms(matcher, text, cl_id):
    m = matcher.map_cell(text)
    assert m is not None and m.cl_id == cl_id
    assert m.cl_label == matcher.ontology.label(cl_id)
    assert 0 < m.confidence <= 1 and " ~ " in m.evidence


def test_scopes_give_confidence(matcher):
    (name,) = matcher.match("T cell")
    (exact,) = matcher.match("T lymphocyte")
    assert (name.confidence, exact.confidence) == (1.0, 0.95)
    assert exact.evidence == "T lymphocyte ~ T lymphocyte (EXACT)"
    broad = {m.cl_id: m for m in matcher.match("beta cell")}
    assert broad[BETA_CELL].evidence.endswith("(BROAD)")
    assert broad[PITUITARY_BASOPHIL].evidence.endswith("(RELATED)")


def test_most_specific_wins_and_ambiguity(matcher):
    m = matcher.map_cell("T cell | CD4-positive, alpha-beta T cell")
    assert m is not None and m.cl_id == CD4_AB_T
    m = matcher.map_cell("leukocyte; cell type: B cells")
    assert m is not None and m.cl_id == B_CELL
    res = matcher.explain("cell type: T cell | sorted: B cell")
    assert res.match is None and res.status == "ambiguous"
    assert B_CELL in res.evidence and T_CELL in res.evidence
    # "beta cell" is a loose synonym of two unrelated CL terms in this release
    res = matcher.explain("beta cell")
    assert res.match is None and res.status == "ambiguous"
    assert BETA_CELL in res.evidence and PITUITARY_BASOPHIL in res.evidence


@pytest.mark.parametrize(
    "text", ["peripheral blood", "cell", "cells", "", "tissue: pancreas | age: 3"]
)
def test_no_match(matcher, text):
    assert matcher.map_cell(text) is None
    assert matcher.match(text) == []


def test_gold_standard_tabula_muris(matcher, shared_data):
    files = sorted(glob.glob(str(shared_data / "ontology-gold" / "*_annotation.csv")))
    assert len(files) == 7
    gold = pd.concat(
        [
            pd.read_csv(f, usecols=["cell_ontology_class", "cell_ontology_id", "free_annotation"])
            for f in files
        ]
    )
    classes = gold[["cell_ontology_class", "cell_ontology_id"]].dropna().drop_duplicates()
    correct = [
        (m := matcher.map_cell(text)) is not None and m.cl_id == cl_id
        for text, cl_id in classes.itertuples(index=False)
    ]
    accuracy = float(np.mean(correct))
    free = gold[["free_annotation", "cell_ontology_id"]].dropna()
    uniq = free.drop_duplicates()
    mapped = {t: matcher.map_cell(t) for t in uniq["free_annotation"].unique()}
    coverage = np.mean([mapped[t] is not None for t in uniq["free_annotation"]])
    cell_cov = np.mean([mapped[t] is not None for t in free["free_annotation"]])
    print(
        f"\ngold class-text accuracy {accuracy:.3f} over {len(classes)} texts; free_annotation "
        f"coverage {coverage:.3f} of {len(uniq)} unique texts, {cell_cov:.3f} of {len(free)} cells"
    )
    assert len(classes) >= 25
    assert accuracy >= 0.95


# --- per-study mapping -----------------------------------------------------------------


def _study_h5ad(path, texts):
    obs = pd.DataFrame(
        {"study": "GSE1", "source_text": texts}, index=[f"GSM{i}" for i in range(1, len(texts) + 1)]
    )
    anndata.AnnData(X=np.zeros((len(texts), 2), dtype=np.int32), obs=obs).write_h5ad(path)
    return path


def test_map_study_writes_cell_types(tmp_path, obo):
    h5 = _study_h5ad(
        tmp_path / "expression.h5ad",
        [
            "GSM1 | cell type: B cells",
            "GSM2 | cell type: T cell | B cell",
            "GSM3 | PBMC",
            "GSM4 | cell type: B cells",
            "GSM5 | my odd cells",
        ],
    )
    overrides = tmp_path / "overrides.tsv"
    overrides.write_text("text\tcl_id\nPBMC\tCL:2000001\n")
    out = tmp_path / "cell_types.tsv"
    df = map_study(h5, obo, out, overrides=overrides)
    assert list(df.columns) == ["cl_id", "cl_label", "evidence", "confidence"]
    back = read_cell_types(out)
    assert list(back.index) == ["GSM1", "GSM2", "GSM3", "GSM4", "GSM5"]
    assert list(back["cl_id"]) == [B_CELL, "", "CL:2000001", B_CELL, ""]
    assert back.loc["GSM3", "cl_label"] == "peripheral blood mononuclear cell"
    assert back.loc["GSM3", "evidence"] == "PBMC ~ override (override)"
    assert back.loc["GSM2", "evidence"].startswith("ambiguous:")
    assert back.loc["GSM5", "confidence"] == 0.0 and back.loc["GSM1", "confidence"] == 1.0
    assert not list(tmp_path.glob(".cell_types.tsv*"))  # no temporary left behind


def test_map_study_bad_inputs(tmp_path, obo):
    h5 = _study_h5ad(tmp_path / "expression.h5ad", ["B cell"])
    bad = tmp_path / "overrides.tsv"
    bad.write_text("text\tcl_id\nPBMC\tCL:9999999\n")
    with pytest.raises(InputError) as err:
        map_study(h5, obo, tmp_path / "ct.tsv", overrides=bad)
    assert err.value.field == "cl_id" and "CL:9999999" in str(err.value)
    bad.write_text("txt\tcl_id\nPBMC\tCL:2000001\n")
    with pytest.raises(InputError, match="'text'"):
        map_study(h5, obo, tmp_path / "ct.tsv", overrides=bad)
    no_text = tmp_path / "nt.h5ad"
    anndata.AnnData(X=np.zeros((1, 1)), obs=pd.DataFrame(index=["c1"])).write_h5ad(no_text)
    with pytest.raises(InputError, match="source_text"):
        map_study(no_text, obo, tmp_path / "ct.tsv")
    assert not (tmp_path / "ct.tsv").exists()


def test_map_study_empty(tmp_path, obo):
    h5 = tmp_path / "empty.h5ad"
    obs = pd.DataFrame({"source_text": pd.Series([], dtype=str)}, index=pd.Index([], dtype=str))
    anndata.AnnData(X=np.zeros((0, 3), dtype=np.int32), obs=obs).write_h5ad(h5)
    df = map_study(h5, obo, tmp_path / "ct.tsv")
    assert len(df) == 0
    assert len(read_cell_types(tmp_path / "ct.tsv")) == 0


def test_cell_ids_kept_verbatim(tmp_path, obo):
    obs = pd.DataFrame({"source_text": ["B cell", "NK cell"]}, index=["0001", "1e5"])
    h5 = tmp_path / "e.h5ad"
    anndata.AnnData(X=np.zeros((2, 1)), obs=obs).write_h5ad(h5)
    map_study(h5, obo, tmp_path / "ct.tsv")
    back = read_cell_types(tmp_path / "ct.tsv")
    assert list(back.index) == ["0001", "1e5"] and list(back["cl_id"]) == [B_CELL, NK_CELL]
