"""Per-study mapping (expression.h5ad -> cell_types.tsv), overrides, bad input, and the
verified download of an ontology release (through a loopback server)."""

from __future__ import annotations

import json
import logging

import anndata
import numpy as np
import pandas as pd
import pytest
from _http_loopback import Loopback

from scatlas.errors import InputError, ServiceError
from scatlas.fileio import sha256_file
from scatlas.ontology import (
    as_text,
    cached_matcher,
    download_ontology,
    load_ontology,
    map_study,
    map_texts,
    read_cell_types,
    read_overrides,
)
from scatlas.package_data import snapshot_obo
from scatlas.sources.http import HttpClient

B_CELL, T_CELL, NK_CELL, PBMC = "CL:0000236", "CL:0000084", "CL:0000623", "CL:2000001"


@pytest.fixture(scope="module")
def obo(repo_root):
    return snapshot_obo()


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
            "GSM2 | cell type: T cell; sorted: B cell",
            "GSM3 | PBMC",
            "GSM4 | cell type: B cells",
            "GSM5 | my odd cells",
            "",
        ],
    )
    overrides = tmp_path / "overrides.tsv"
    overrides.write_text("text\tcl_id\nmy odd cells\tCL:0000623\n")
    out = tmp_path / "cell_types.tsv"
    df = map_study(h5, obo, out, overrides=overrides)
    assert list(df.columns) == [
        "cl_id", "cl_label", "evidence", "confidence", "status", "candidates"
    ]  # fmt: skip
    back = read_cell_types(out)
    assert list(back["status"]) == ["mapped", "ambiguous", "mapped", "mapped", "mapped", "empty"]
    # the competing terms of the ambiguous cell are its candidates, for a curator to pick
    assert (
        B_CELL in back.loc["GSM2", "candidates"] and "CL:0000084" in back.loc["GSM2", "candidates"]
    )
    assert back.loc["GSM1", "candidates"].startswith(f"{B_CELL} B cell (1.00)")
    assert list(back.index) == ["GSM1", "GSM2", "GSM3", "GSM4", "GSM5", "GSM6"]
    assert list(back["cl_id"]) == [B_CELL, "", PBMC, B_CELL, NK_CELL, ""]
    assert back.loc["GSM3", "cl_label"] == "peripheral blood mononuclear cell"
    assert (
        back.loc["GSM3", "evidence"]
        == 'source name: "PBMC" ~ "PBMC" (abbreviation; abbreviations.tsv:33)'
    )
    assert back.loc["GSM5", "evidence"] == 'source name: "my odd cells" ~ "override" (override)'
    assert back.loc["GSM2", "evidence"].startswith("ambiguous:")
    assert back.loc["GSM6", "evidence"] == "no text" and back.loc["GSM6", "confidence"] == 0.0
    assert back.loc["GSM1", "confidence"] == 1.0
    assert not list(tmp_path.glob(".cell_types.tsv*"))  # no temporary left behind


def test_map_study_bad_inputs(tmp_path, obo):
    h5 = _study_h5ad(tmp_path / "expression.h5ad", ["B cell"])
    bad = tmp_path / "overrides.tsv"
    bad.write_text("text\tcl_id\nPBMC\tCL:9999999\n")
    with pytest.raises(InputError) as err:
        map_study(h5, obo, tmp_path / "ct.tsv", overrides=bad)
    assert err.value.field == "cl_id" and "CL:9999999" in str(err.value)
    assert "line 2" in str(err.value) and str(bad) in str(err.value)
    bad.write_text("txt\tcl_id\nPBMC\tCL:2000001\n")
    with pytest.raises(InputError, match="'text'"):
        map_study(h5, obo, tmp_path / "ct.tsv", overrides=bad)
    no_text = tmp_path / "nt.h5ad"
    anndata.AnnData(X=np.zeros((1, 1)), obs=pd.DataFrame(index=["c1"])).write_h5ad(no_text)
    with pytest.raises(InputError, match="source_text"):
        map_study(no_text, obo, tmp_path / "ct.tsv")
    not_obo = tmp_path / "cl.obo"
    not_obo.write_text("neither OBO nor JSON\n")
    with pytest.raises(InputError, match="not an OBO file"):
        map_study(h5, not_obo, tmp_path / "ct.tsv")
    not_obo.write_text('{"graphs": []}\n')  # CL's own JSON: named for what it is
    with pytest.raises(InputError, match="OBO Graphs JSON.*cl.obo"):
        map_study(h5, not_obo, tmp_path / "ct.tsv")
    assert not (tmp_path / "ct.tsv").exists()


@pytest.mark.parametrize(
    ("content", "field", "message"),
    [
        ("text\tcl_id\nPBMC\tCL:9999999\n", "cl_id", "not a current Cell Ontology term"),
        ("text\tcl_id\nPBMC\tT cell\n", "cl_id", "is not a CL id"),
        ("text\tcl_id\n \tCL:0000084\n", "text", "empty text"),
        ("text\tcl_id\nT\tCL:0000084\nt\tCL:0000236\n", "text", "already mapped"),
        ("", None, "empty file"),
    ],
)
def test_bad_overrides(tmp_path, obo, content, field, message):
    path = tmp_path / "overrides.tsv"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as err:
        read_overrides(path, cached_matcher(obo).ontology)
    assert err.value.field == field and err.value.path == str(path)


def test_override_to_obsolete_term_follows_replacement(tmp_path, obo, caplog):
    path = tmp_path / "overrides.tsv"
    path.write_text("text\tcl_id\tcomment\nbone progenitors\tCL:0000375\tobsolete id\n")
    with caplog.at_level(logging.WARNING):
        table = read_overrides(path, cached_matcher(obo).ontology)
    assert table == {"bone progenitor": "CL:0007010"}
    assert "obsolete CL:0000375 replaced by CL:0007010" in caplog.text


def test_shipped_override_files_are_valid(repo_root, obo):
    onto = cached_matcher(obo).ontology
    assert read_overrides(repo_root / "config" / "ontology_overrides.tsv", onto) == {}
    demo = read_overrides(repo_root / "config" / "demo_ontology_overrides.tsv", onto)
    assert demo == {"cd14 positive mono": "CL:0000576"}


def test_non_utf8_and_odd_values(obo, caplog):
    assert as_text(b"B cells") == ("B cells", False)
    assert as_text(b"B cells \xff") == ("B cells \ufffd", True)
    assert as_text("B cells \udcff") == ("B cells \ufffd", True)  # surrogateescape'd byte
    assert as_text(None) == ("", False) and as_text(float("nan")) == ("", False)
    matcher = cached_matcher(obo)
    with caplog.at_level(logging.WARNING):
        rows, status = map_texts(
            matcher, [b"cell type: NK cells \xe9", "cell type: B cells", None], source="x.h5ad"
        )
    assert [r[0] for r in rows] == [NK_CELL, B_CELL, ""]
    assert status == {"mapped": 2, "empty": 1}
    assert "1 texts held bytes that are not UTF-8" in caplog.text


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


# --- download ----------------------------------------------------------------------------


def _client(server):
    return HttpClient(server.base, retries=1, backoff=0.01, timeout=5)


def test_download_verified_and_recorded(tmp_path, obo):
    data = obo.read_bytes()
    with Loopback() as server:
        server.routes["/obo/cl/cl-basic.obo"] = data
        dest = tmp_path / "resources" / "cl-current.obo"
        rec = download_ontology(
            server.url("/obo/cl/cl-basic.obo"),
            dest,
            sha256=sha256_file(obo),
            client=_client(server),
        )
    assert dest.read_bytes() == data
    assert rec["sha256"] == sha256_file(obo) and rec["n_terms"] == 2795
    assert "2022-12-15" in rec["version"]
    side = json.loads((tmp_path / "resources" / "cl-current.obo.sha256").read_text())
    assert side["sha256"] == rec["sha256"] and side["url"].endswith("/obo/cl/cl-basic.obo")
    assert load_ontology(dest).version == rec["version"]
    assert sorted(p.name for p in dest.parent.iterdir()) == [
        "cl-current.obo",
        "cl-current.obo.sha256",
    ]


def test_download_rejects_wrong_checksum_and_non_obo(tmp_path, obo, caplog):
    dest = tmp_path / "cl.obo"
    with Loopback() as server:
        server.routes["/cl.obo"] = obo.read_bytes()
        server.routes["/page.obo"] = "<html><body>Moved</body></html>"
        with pytest.raises(ServiceError, match="sha256 mismatch"):
            download_ontology(server.url("/cl.obo"), dest, sha256="0" * 64, client=_client(server))
        assert not dest.exists()
        with pytest.raises(InputError, match="not a usable ontology"):
            download_ontology(server.url("/page.obo"), dest, client=_client(server))
        assert not dest.exists()
        with caplog.at_level(logging.WARNING):  # no checksum: accepted, and said so
            rec = download_ontology(server.url("/cl.obo"), dest, client=_client(server))
    assert dest.exists() and rec["sha256"] == sha256_file(obo)
    assert "no sha256 configured" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cl.obo", "cl.obo.sha256"]
