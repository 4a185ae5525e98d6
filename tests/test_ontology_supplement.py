"""A cellxgene-ontology-guide release completed from the pinned snapshot
(`scatlas.ontology.supplement`): what is added, and what is left as the newer release has it."""

from __future__ import annotations

from scatlas.ontology import FieldText, TermMatcher, load_ontology
from scatlas.ontology.graph import CellOntology, TermInfo
from scatlas.ontology.releases import CELLXGENE, ontology_file
from scatlas.ontology.supplement import supplemented


def _onto(terms: list[TermInfo], **edges: dict[str, set[str]]) -> CellOntology:
    return CellOntology({t.id: t for t in terms}, edges, version="test")


BASE = _onto(
    [
        TermInfo("CL:1", "cell", subsets=("ubprop:upper_level",)),
        TermInfo("CL:2", "leukocyte", synonyms=(("immune cell", "RELATED"), ("WBC", "EXACT"))),
        TermInfo("CL:3", "progenitor", synonyms=(("early cell", "RELATED"),)),
        TermInfo("CL:4", "lymphocyte", synonyms=(("lymph cell", "BROAD"),)),
        TermInfo("CL:5", "gone", synonyms=(("old name", "NARROW"),)),
        TermInfo("CL:6", "kept apart", synonyms=(("apart cell", "RELATED"),)),
    ],
    is_a={"CL:2": {"CL:1"}, "CL:3": {"CL:1"}, "CL:4": {"CL:2"}, "CL:6": {"CL:1"}},
    develops_from={"CL:4": {"CL:3"}, "CL:2": {"CL:6"}},
)
NEWER = _onto(
    [
        TermInfo("CL:1", "cell"),
        TermInfo("CL:2", "leukocyte"),
        TermInfo("CL:3", "progenitor cell"),
        TermInfo("CL:4", "lymphocyte"),
        TermInfo("CL:5", "gone", obsolete=True, replaced_by=("CL:4",)),
        TermInfo("CL:6", "kept apart", obsolete=True),
        TermInfo("CL:7", "early cell"),  # a text the base had as CL:3's synonym
    ],
    is_a={"CL:2": {"CL:1"}, "CL:3": {"CL:1"}, "CL:4": {"CL:3"}, "CL:7": {"CL:3"}},
)


def test_the_other_scopes_are_added_where_the_newer_release_uses_no_such_text():
    out = supplemented(NEWER, BASE)
    assert out.info("CL:2").synonyms == (("immune cell", "RELATED"),)  # not its EXACT "WBC"
    assert out.info("CL:4").synonyms == (("lymph cell", "BROAD"),)
    assert out.info("CL:3").synonyms == ()  # "early cell" names CL:7 in the newer release
    assert out.info("CL:1").subsets == ("ubprop:upper_level",)
    assert "CL:1" not in {t for t in out.term_ids() if out.is_informative(t)}
    assert out.supplemented_from == "test: 2 synonyms, 1 develops_from links"


def test_obsolete_terms_and_the_newer_graph_are_left_as_they_are():
    out = supplemented(NEWER, BASE)
    assert out.info("CL:5").synonyms == () and out.resolve("CL:5") == "CL:4"
    assert out.info("CL:6").synonyms == ()
    assert out.parents("CL:4", ("is_a",)) == {"CL:3"}  # the newer is_a, not the base's
    assert out.parents("CL:4", ("develops_from",)) == {"CL:3"}
    assert out.parents("CL:2", ("develops_from",)) == set()  # CL:6 is obsolete in the newer
    assert {t: out.label(t) for t in out.term_ids()} == {
        t: NEWER.label(t) for t in NEWER.term_ids()
    }
    assert NEWER.info("CL:2").synonyms == () and NEWER.supplemented_from == ""


def test_the_2026_release_reads_what_its_json_drops():
    path = ontology_file(CELLXGENE)
    plain = load_ontology(path, supplement=False)
    onto = load_ontology(path)
    assert plain.supplemented_from == "" and "2022-12-15" in onto.supplemented_from
    assert ("beta cell", "BROAD") not in plain.info("CL:0000169").synonyms
    assert ("beta cell", "BROAD") in onto.info("CL:0000169").synonyms
    # CL 2026 names a term "early enterocyte": CL 2022's RELATED synonym is not added
    assert ("early enterocyte", "RELATED") not in onto.info("CL:0009067").synonyms
    assert onto.parents("CL:0000826", ("develops_from",)) == {"CL:0000051"}  # pro-B < CLP
    assert "develops_from" not in plain.relations
    assert len(onto.term_ids()) == len(plain.term_ids())
    field = [FieldText("cell type", "Beta cells", "cell type")]
    assert TermMatcher(plain).annotate(field).match is None
    hit = TermMatcher(onto).annotate(field).match
    assert hit.cl_id == "CL:0000169" and "BROAD" in hit.evidence
