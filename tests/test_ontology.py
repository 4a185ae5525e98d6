"""Cell Ontology loading (with repairs of real OBO quirks) and graph walks, on the real CL
2022-12-15 release and the 2026 subset that pronto rejects as shipped."""

from __future__ import annotations

import io
import warnings

import pronto
import pytest

from scatlas.errors import InputError
from scatlas.ontology import (
    ROOT,
    UnknownTermError,
    cached_ontology,
    load_ontology,
    sanitise_obo,
)
from scatlas.package_data import snapshot_obo

B_CELL, T_CELL, NK_CELL = "CL:0000236", "CL:0000084", "CL:0000623"
LYMPHOCYTE, LEUKOCYTE = "CL:0000542", "CL:0000738"
CD4_AB_T = "CL:0000624"


@pytest.fixture(scope="module")
def obo(repo_root):
    return snapshot_obo()


@pytest.fixture(scope="module")
def onto(obo):
    return cached_ontology(obo)


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


def test_repairs_and_loads_the_2026_subset_pronto_rejects(shared_data, caplog):
    bad = shared_data / "ontology" / "general_cell_types_upper_slim_2026-06-08.obo"
    with pytest.raises(SyntaxError):  # pronto alone rejects the file as shipped
        pronto.Ontology(str(bad))
    onto = load_ontology(bad)
    assert len(onto) == 85 and "2026-06-08" in onto.version
    assert onto.label("CL:0000057") == "fibroblast"
    assert onto.parents("CL:0000057") == {"CL:0000499"}  # stromal cell
    assert "part_of" in onto.relations  # BFO:0000050 read as part_of
    assert onto.info("CL:0000066").anatomy == ("UBERON:0000483",)  # epithelium
    assert "escaped IRI in xref repaired" in caplog.text  # the repair is reported


def test_sanitiser_repairs_are_counted():
    raw = (
        "\ufeffformat-version: 1.2\r\n\r\n[Term]\r\nid: CL:0000001\r\nname: x\r\n"
        'synonym: "y" EXACT OMO:0003000 []\r\nxref: http://a.org/Category\\:B\r\nxref:\r\n'
    ).encode() + b'def: "caf\xe9" []\n'
    fixed, report = sanitise_obo(raw)
    text = fixed.decode("utf-8")
    assert "\r" not in text and not text.startswith("\ufeff")
    assert "xref: http://a.org/Category:B" in text
    assert 'synonymtypedef: OMO:0003000 "OMO:0003000"' in text.split("[Term]")[0]
    assert 'def: "café" []' in text
    assert report.counts == {
        "byte order mark removed": 1,
        "non-UTF-8 bytes decoded as cp1252": 1,
        "carriage returns removed": 1,
        "empty clause dropped": 1,
        "escaped IRI in xref repaired": 1,
        "undeclared synonymtypedef declared": 1,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pronto guesses the encoding of a byte stream
        onto = pronto.Ontology(io.BytesIO(fixed))
    assert onto["CL:0000001"].name == "x"
    clean, report = sanitise_obo(b"format-version: 1.2\n\n[Term]\nid: CL:0000001\n")
    assert not report.changed and clean == b"format-version: 1.2\n\n[Term]\nid: CL:0000001\n"


def test_unrepairable_obo_is_rejected(tmp_path):
    path = tmp_path / "broken.obo"
    path.write_text('format-version: 1.2\n\n[Term]\nid: CL:0000001\nis_a: "unterminated\n')
    with pytest.raises(InputError) as err:
        load_ontology(path)
    assert err.value.path == str(path) and "not a loadable OBO" in str(err.value)


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


def test_lowest_common_ancestors_and_relations(onto):
    mono, mac, dc = "CL:0000576", "CL:0000235", "CL:0000451"
    assert onto.lowest_common_ancestors([mono, mac]) == {"CL:0000766"}  # myeloid leukocyte
    assert onto.lowest_common_ancestors([dc, mac]) == {"CL:0000145"}  # professional APC
    assert onto.lowest_common_ancestors([B_CELL, T_CELL]) == {LYMPHOCYTE}
    assert onto.lowest_common_ancestors([T_CELL, CD4_AB_T]) == {T_CELL}
    assert onto.lowest_common_ancestors([B_CELL]) == {B_CELL}
    assert onto.lowest_common_ancestors([]) == set()
    # T cell and neuron meet only at two upper-level terms: several minimal ancestors
    assert onto.lowest_common_ancestors([T_CELL, "CL:0000540"]) == {"CL:0002371", "CL:0000548"}
    assert onto.is_ancestor(T_CELL, CD4_AB_T) and not onto.is_ancestor(CD4_AB_T, T_CELL)
    assert not onto.is_ancestor(T_CELL, T_CELL) and not onto.is_ancestor(B_CELL, T_CELL)
    pairs = onto.related_pairs([T_CELL, CD4_AB_T, B_CELL, LYMPHOCYTE])
    assert (T_CELL, CD4_AB_T) in pairs and (CD4_AB_T, T_CELL) in pairs
    assert (LYMPHOCYTE, B_CELL) in pairs and (B_CELL, T_CELL) not in pairs
    assert len(pairs) == 2 * 4  # T-CD4T, T-lymph, CD4T-lymph, B-lymph, both orders


def test_informative_terms(onto):
    for upper in (ROOT, "CL:0000003", "CL:0000548", "CL:0002371", "CL:0000255"):
        assert not onto.is_informative(upper), upper  # cell, native, animal, somatic, eukaryotic
    for useful in (B_CELL, LEUKOCYTE, "CL:0000066", "CL:0000766"):
        assert onto.is_informative(useful)


def test_relation_set_is_a_parameter(tmp_path):
    path = tmp_path / "mini.obo"
    path.write_text(
        "format-version: 1.2\n\n"
        "[Term]\nid: CL:0000000\nname: cell\n\n"
        "[Term]\nid: CL:0000001\nname: islet cell\nis_a: CL:0000000\n\n"
        "[Term]\nid: CL:0000002\nname: beta cell\nis_a: CL:0000000\n"
        "relationship: part_of CL:0000001\n\n"
        "[Term]\nid: CL:0000003\nname: old beta cell\nis_obsolete: true\n"
        "consider: CL:0000002\n\n"
        "[Term]\nid: CL:0000004\nname: older cell\nis_obsolete: true\n"
        "replaced_by: CL:0000003\n\n"
        "[Term]\nid: CL:0000005\nname: dropped cell\nis_obsolete: true\n"
        "replaced_by: CLO:0000001\nconsider: CL:0000002\n\n"
        "[Typedef]\nid: part_of\nname: part of\n"
    )
    onto = load_ontology(path)
    assert onto.parents("CL:0000002") == {"CL:0000000", "CL:0000001"}
    assert onto.parents("CL:0000002", relations=["is_a"]) == {"CL:0000000"}
    assert onto.ancestors("CL:0000002", relations="is_a") == {"CL:0000000"}
    assert onto.descendants("CL:0000001") == {"CL:0000002"}
    assert onto.descendants("CL:0000001", relations=("is_a",)) == set()
    assert onto.distance("CL:0000002", "CL:0000001") == 1
    assert onto.distance("CL:0000002", "CL:0000001", relations=["is_a"]) == 2
    assert onto.is_related("CL:0000001", "CL:0000002")
    assert not onto.is_related("CL:0000001", "CL:0000002", relations=["is_a"])
    # obsolete terms: replaced_by first, then a single consider, followed transitively
    assert onto.resolve("CL:0000003") == "CL:0000002"
    assert onto.resolve("CL:0000003", consider=False) is None
    assert onto.resolve("CL:0000004") == "CL:0000002"
    assert onto.resolve("CL:0000005") is None  # replaced outside CL: consider not used
    assert onto.ancestors("CL:0000004") == onto.ancestors("CL:0000002")
