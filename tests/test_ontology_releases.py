"""Cell Ontology releases: the pinned snapshot, cellxgene-ontology-guide's JSON releases
(installed by `make`), and JSON files of that shape."""

from __future__ import annotations

import gzip
import json

import pytest

from scatlas.errors import InputError
from scatlas.ontology import FieldText, TermMatcher, load_ontology
from scatlas.ontology.releases import CELLXGENE, cellxgene_cl, cellxgene_releases, ontology_file
from scatlas.package_data import snapshot_obo

# a small release in cellxgene-ontology-guide's shape (id -> label, synonyms, ancestors with
# their distance, deprecated, replaced_by)
SMALL = {
    "CL:0000000": {"label": "cell", "ancestors": {}, "deprecated": False},
    "CL:0000738": {
        "label": "leukocyte",
        "synonyms": ["white blood cell", "immune cell"],
        "ancestors": {"CL:0000000": 1},
        "deprecated": False,
    },
    "CL:0000084": {
        "label": "T cell",
        "synonyms": ["T lymphocyte"],
        "ancestors": {"CL:0000738": 1, "CL:0000000": 2},
        "deprecated": False,
    },
    "CL:0000236": {
        "label": "B cell",
        "ancestors": {"CL:0000738": 1, "CL:0000000": 2},
        "deprecated": False,
    },
    "CL:0000003": {
        "label": "obsolete native cell",
        "ancestors": {},
        "deprecated": True,
        "replaced_by": "CL:0000000",
    },
    "CL:0009999": {
        "label": "obsolete thing",
        "ancestors": {},
        "deprecated": True,
        "replaced_by": "CLO:0000019",  # outside CL: not followed
    },
    "UBERON:0002048": {"label": "lung", "ancestors": {}, "deprecated": False},
}


def test_the_package_ships_newer_releases():
    releases = cellxgene_releases()
    assert "v2026-03-26" in releases and len(releases) >= 2
    assert list(releases) == sorted(releases)
    newest = ontology_file(CELLXGENE)
    assert newest == releases[list(releases)[-1]] == cellxgene_cl()
    assert ontology_file(f"{CELLXGENE}:v2025-07-30") == releases["v2025-07-30"]
    assert ontology_file(f"{CELLXGENE}:2025-07-30") == releases["v2025-07-30"]
    with pytest.raises(InputError, match="no CL release 'v1999-01-01'.*v2026-03-26"):
        ontology_file(f"{CELLXGENE}:v1999-01-01")
    assert ontology_file(None) == ontology_file("") == snapshot_obo()
    assert str(ontology_file("some/cl.obo")) == "some/cl.obo"


def test_the_2026_release_loads_and_maps():
    onto = load_ontology(ontology_file(CELLXGENE))
    assert onto.version == "v2026-03-26" and len(onto.term_ids()) > 3000
    assert onto.label("CL:0000182") == "hepatocyte"
    assert onto.is_ancestor("CL:0000066", "CL:0000182")  # epithelial cell > hepatocyte
    assert not onto.is_informative("CL:0000548")  # animal cell: too general
    assert ("B-lymphocyte", "EXACT") in onto.info("CL:0000236").synonyms
    matcher = TermMatcher(onto)
    res = matcher.annotate([FieldText("cell type", "B lymphocytes", "cell type")])
    assert res.match.cl_id == "CL:0000236" and "(EXACT)" in res.match.evidence


@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
def test_a_json_release_of_that_shape(tmp_path, suffix):
    path = tmp_path / f"CL-ontology-v2030-01-01{suffix}"
    data = json.dumps(SMALL).encode()
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    onto = load_ontology(path)
    assert onto.version == "v2030-01-01" and onto.source == str(path)
    assert set(onto.term_ids()) == {"CL:0000000", "CL:0000738", "CL:0000084", "CL:0000236"}
    assert onto.is_ancestor("CL:0000738", "CL:0000084")
    assert onto.resolve("CL:0000003") == "CL:0000000"  # replaced_by followed
    assert onto.info("CL:0009999").replaced_by == ()  # not a CL id
    matcher = TermMatcher(onto)
    hit = matcher.annotate([FieldText("cell type", "T and B cells", "cell type")]).match
    assert hit.cl_id == "CL:0000738"  # the list's common ancestor


@pytest.mark.parametrize("packed", [False, True])
def test_a_json_release_under_another_name_is_read_by_its_bytes(tmp_path, packed):
    """A published release keeps its ontology as ``ontology.obo`` whatever it was built
    from: a JSON release copied there is still read as one (zstd, gzip or plain)."""
    path = tmp_path / "ontology.obo"
    data = json.dumps(SMALL).encode()
    path.write_bytes(gzip.compress(data) if packed else b"\n  " + data)
    onto = load_ontology(path)
    assert set(onto.term_ids()) == {"CL:0000000", "CL:0000738", "CL:0000084", "CL:0000236"}
    real = tmp_path / "real" / "ontology.obo"
    real.parent.mkdir()
    real.write_bytes(ontology_file(CELLXGENE).read_bytes())  # zstd
    assert len(load_ontology(real).term_ids()) == len(
        load_ontology(ontology_file(CELLXGENE)).term_ids()
    )
    path.write_text("neither OBO nor JSON\n")
    with pytest.raises(InputError, match="not an OBO file"):
        load_ontology(path)


def test_bad_json_releases_name_the_file(tmp_path):
    bad = tmp_path / "cl.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not a readable ontology JSON") as err:
        load_ontology(bad)
    assert err.value.path == str(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(InputError, match="no term object"):
        load_ontology(bad)
    bad.write_text(json.dumps({"UBERON:1": {"label": "x"}}))
    with pytest.raises(InputError, match="no Cell Ontology"):
        load_ontology(bad)
    with pytest.raises(InputError, match="not found"):
        load_ontology(tmp_path / "missing.json")
