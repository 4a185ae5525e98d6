"""The loopback mirror: real response formats, paging, date windows, ranges, faults, safety."""

from __future__ import annotations

import csv
import hashlib
import http.client
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests

from scatlas.demo.mirror import Fault, MirrorServer
from scatlas.demo.world import generate_world
from scatlas.errors import InputError

FASTQ = "/vol1/fastq/SRR990/001/SRR99000001/SRR99000001.fastq.gz"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mirror") / "world"
    generate_world(out, seed=3, reads_per_cell=60)
    return out


@pytest.fixture()
def mirror(world):
    with MirrorServer(world) as m:
        yield m


def _get(m: MirrorServer, path: str, **kw) -> requests.Response:
    return requests.get(m.url + path, timeout=10, **kw)


def _esearch(m, **params) -> dict:
    r = _get(m, "/entrez/eutils/esearch.fcgi", params={"db": "gds", "retmode": "json", **params})
    assert r.status_code == 200
    return r.json()["esearchresult"]


# -- E-utilities --------------------------------------------------------------------------------


def test_esearch_format_and_paging(mirror, shared_data):
    real = json.loads((shared_data / "geo" / "ffq" / "GSE93374_search.txt").read_text())
    res = _esearch(mirror, term="single cell[All Fields] AND gse[ETYP]", retmax=4)
    assert set(res) <= set(real["esearchresult"]) and {
        "count",
        "retmax",
        "retstart",
        "idlist",
    } <= set(res)
    assert res["count"] == "10" and res["retmax"] == "4" and res["retstart"] == "0"
    pages = [res["idlist"]]
    for start in (4, 8):
        page = _esearch(mirror, term="single cell", retmax=4, retstart=start)
        assert page["retstart"] == str(start)
        pages.append(page["idlist"])
    ids = [i for p in pages for i in p]
    assert len(pages[-1]) == 2 and len(ids) == len(set(ids)) == 10
    assert set(ids) == {str(200900000 + k) for k in range(1, 11)}  # the ATAC series is a hit too
    assert "200900099" not in ids  # the held-out study is not published


def test_esearch_date_window_and_accession_term(mirror):
    in_2024 = _esearch(
        mirror,
        term="single cell",
        mindate="2024/01/01",
        maxdate="2024/12/31",
        datetype="pdat",
        retmax=100,
    )
    assert set(in_2024["idlist"]) == {"200900001", "200900002", "200900003", "200900004"}
    assert "2024/01/01[PDAT] : 2024/12/31[PDAT]" in in_2024["querytranslation"]
    spring = _esearch(mirror, term="x", mindate="2025/01", maxdate="2025/04", retmax=100)
    assert set(spring["idlist"]) == {
        "200900005",
        "200900006",
        "200900008",
    }  # Feb 14, Apr 30, Jan 20
    one = _esearch(mirror, term="GSE900007[GEO Accession]")
    assert one["idlist"] == ["200900007"] and one["count"] == "1"


def test_esearch_xml_by_default(mirror):
    r = _get(
        mirror, "/entrez/eutils/esearch.fcgi", params={"db": "gds", "term": "cells", "retmax": 2}
    )
    assert r.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(r.content)
    assert root.tag == "eSearchResult" and root.findtext("Count") == "10"
    assert len(root.find("IdList")) == 2


def test_esummary_get_and_post(mirror, shared_data):
    real = json.loads((shared_data / "geo" / "ffq" / "GSE93374_summary.txt").read_text())
    r = _get(
        mirror,
        "/entrez/eutils/esummary.fcgi",
        params={"db": "gds", "id": "200900001,200900007", "retmode": "json"},
    )
    body = r.json()
    assert set(body) == set(real) and body["header"] == real["header"]
    result = body["result"]
    assert result["uids"] == ["200900001", "200900007"]
    assert set(result["200900001"]) == set(real["result"]["200093374"])
    assert result["200900001"]["accession"] == "GSE900001"
    assert result["200900001"]["extrelations"][0]["targetobject"] == "SRP990001"
    assert result["200900007"]["extrelations"] == [] and result["200900007"]["suppfile"] == "CSV"

    ids = ",".join(str(200900000 + k) for k in range(1, 10)) + ",200900099"
    posted = requests.post(
        mirror.url + "/entrez/eutils/esummary.fcgi",
        data={"db": "gds", "id": ids, "retmode": "json"},
        timeout=10,
    ).json()["result"]
    assert len(posted["uids"]) == 10
    assert posted["200900099"] == {"uid": "200900099", "error": "cannot get document summary"}
    assert (
        posted["200900008"]["gdstype"]
        == "Genome binding/occupancy profiling by high throughput sequencing"
    )


# -- ENA -------------------------------------------------------------------------------------------


def _filereport(m, **params) -> requests.Response:
    return _get(m, "/ena/portal/api/filereport", params={"result": "read_run", **params})


def test_filereport_fields_and_matching(mirror, world):
    fields = "fastq_md5,run_accession,fastq_ftp,fastq_bytes,sample_alias"
    r = _filereport(mirror, accession="SRP990002", fields=fields)
    assert r.status_code == 200
    rows = list(csv.DictReader(r.text.splitlines(), delimiter="\t"))
    assert r.text.splitlines()[0] == fields.replace(",", "\t")
    assert len(rows) == 60 and all(len(row["fastq_ftp"].split(";")) == 2 for row in rows)
    first = rows[0]
    for key in (
        "run_accession",
        "experiment_accession",
        "sample_accession",
        "secondary_sample_accession",
    ):
        full = _filereport(mirror, accession=first["run_accession"], fields="all").text.splitlines()
        one = dict(zip(full[0].split("\t"), full[1].split("\t"), strict=True))
        again = _filereport(mirror, accession=one[key], fields=fields)
        assert list(csv.DictReader(again.text.splitlines(), delimiter="\t")) == [first], key
    assert len(_filereport(mirror, accession="PRJNA990002", fields=fields).text.splitlines()) == 61
    sub = _filereport(mirror, accession="ERR99000001", fields="fastq_ftp,submitted_ftp").text
    fq_url, sub_url = sub.splitlines()[1].split("\t")[1:3]
    fq_first, sub_first = fq_url.split(";")[0], sub_url.split(";")[0]
    assert sub_first.startswith("ftp.sra.ebi.ac.uk/vol1/run/ERR990/ERR99000001/")
    assert (
        _get(mirror, "/" + sub_first.split("/", 1)[1]).content
        == _get(mirror, "/" + fq_first.split("/", 1)[1]).content
    )
    ae = _filereport(
        mirror, accession="ERP990001", format="json", fields="run_accession,fastq_ftp"
    ).json()
    assert len(ae) == 48 and ae[0]["run_accession"].startswith("ERR")
    # md5s published by ENA match the served bytes
    for row in rows[:3]:
        for url, md5 in zip(row["fastq_ftp"].split(";"), row["fastq_md5"].split(";"), strict=True):
            data = _get(mirror, "/" + url.split("/", 1)[1]).content
            assert hashlib.md5(data).hexdigest() == md5


def test_filereport_nothing_and_errors(mirror):
    none = _filereport(mirror, accession="SRR0000001")
    assert none.status_code == 204 and none.content == b""
    bad = _filereport(mirror, accession="SRP990001", fields="run_accession,parent_study")
    assert bad.status_code == 400 and "parent_study" in bad.json()["message"]
    default = _filereport(mirror, accession="SRR99000001")
    assert default.text.splitlines()[0].split("\t")[:4] == [
        "run_accession",
        "fastq_ftp",
        "fastq_bytes",
        "fastq_md5",
    ]


# -- BioStudies --------------------------------------------------------------------------------------


def test_biostudies_search_study_and_files(mirror, world):
    r = _get(
        mirror,
        "/biostudies/api/v1/arrayexpress/search",
        params={"query": "single cell", "pageSize": 1},
    )
    body = r.json()
    assert {"page", "pageSize", "totalHits", "isTotalHitsExact", "hits"} <= set(body)
    assert body["totalHits"] == 2 and body["page"] == 1 and len(body["hits"]) == 1
    hit = body["hits"][0]
    assert set(hit) >= {
        "accession",
        "type",
        "title",
        "author",
        "links",
        "files",
        "release_date",
        "views",
        "isPublic",
    }
    page2 = _get(
        mirror,
        "/biostudies/api/v1/arrayexpress/search",
        params={"query": "single cell", "pageSize": 1, "page": 2},
    ).json()
    assert {hit["accession"], page2["hits"][0]["accession"]} == {"E-MTAB-99001", "E-MTAB-99002"}
    in_2024 = _get(
        mirror,
        "/biostudies/api/v1/arrayexpress/search",
        params={"query": "rna", "release_date": "[2024-01-01 TO 2024-12-31]"},
    ).json()
    assert [h["accession"] for h in in_2024["hits"]] == ["E-MTAB-99001"]
    clause = _get(
        mirror,
        "/biostudies/api/v1/arrayexpress/search",
        params={"query": "rna AND release_date:[2025-01-01 TO 2025-12-31]"},
    ).json()
    assert [h["accession"] for h in clause["hits"]] == ["E-MTAB-99002"]

    study = _get(mirror, "/biostudies/api/v1/studies/E-MTAB-99001")
    assert study.status_code == 200 and study.headers["Content-Type"] == "application/json"
    assert study.json()["accno"] == "E-MTAB-99001"
    missing = _get(mirror, "/biostudies/api/v1/studies/E-MTAB-12345")
    assert missing.status_code == 404 and missing.json() == {"errorMessage": "Study not found"}
    sdrf = _get(mirror, "/biostudies/files/E-MTAB-99001/E-MTAB-99001.sdrf.txt")
    assert sdrf.status_code == 200 and sdrf.text.startswith("Source Name\t")
    assert (
        sdrf.content
        == (world / "mirror/biostudies/files/E-MTAB-99001/E-MTAB-99001.sdrf.txt").read_bytes()
    )


# -- static files -------------------------------------------------------------------------------------


def test_static_head_range_and_404(mirror, world):
    full = (world / "mirror" / FASTQ.lstrip("/")).read_bytes()
    r = _get(mirror, FASTQ)
    assert r.status_code == 200 and r.content == full
    assert (
        r.headers["Content-Length"] == str(len(full))
        and r.headers["Content-Type"] == "application/x-gzip"
    )
    head = requests.head(mirror.url + FASTQ, timeout=10)
    assert (
        head.status_code == 200
        and head.headers["Content-Length"] == str(len(full))
        and head.content == b""
    )
    part = _get(mirror, FASTQ, headers={"Range": "bytes=100-"})
    assert part.status_code == 206 and part.content == full[100:]
    assert part.headers["Content-Range"] == f"bytes 100-{len(full) - 1}/{len(full)}"
    mid = _get(mirror, FASTQ, headers={"Range": "bytes=10-19"})
    assert mid.status_code == 206 and mid.content == full[10:20]
    assert _get(mirror, FASTQ, headers={"Range": f"bytes={len(full)}-"}).status_code == 416
    soft = _get(mirror, "/geo/series/GSE900nnn/GSE900001/soft/GSE900001_family.soft.gz")
    assert soft.status_code == 200 and soft.content[:2] == b"\x1f\x8b"
    assert (
        _get(mirror, "/geo/series/GSE900nnn/GSE900099/soft/GSE900099_family.soft.gz").status_code
        == 404
    )
    assert _get(mirror, "/nothing/here").status_code == 404


def test_resume_after_truncation_gives_the_same_bytes(mirror, world):
    full = (world / "mirror" / FASTQ.lstrip("/")).read_bytes()
    mirror.inject(FASTQ, Fault(truncate_at=1000))
    got = b""
    with (
        pytest.raises(requests.exceptions.ChunkedEncodingError),
        requests.get(mirror.url + FASTQ, stream=True, timeout=10) as r,
    ):
        assert r.headers["Content-Length"] == str(len(full))
        for chunk in r.iter_content(256):
            got += chunk
    assert 0 < len(got) <= 1000 and full.startswith(got)  # a downloader keeps what it received
    rest = _get(mirror, FASTQ, headers={"Range": f"bytes={len(got)}-"})
    assert rest.status_code == 206
    assert got + rest.content == full


def test_path_traversal_is_refused(mirror, world):
    (world.parent / "secret.txt").write_text("secret")
    for path in (
        "/geo/../../world.json",
        "/geo/%2e%2e/%2e%2e/world.json",
        "/../secret.txt",
        "/vol1/..%2f..%2fworld.json",
        "/_index/gds.json",
        "/geo/series/GSE900nnn/..%5c..%5cworld.json",
    ):
        conn = http.client.HTTPConnection("127.0.0.1", mirror.port, timeout=10)
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        assert resp.status == 404, path
        assert b"secret" not in body and b"generator" not in body


# -- faults and the request log ------------------------------------------------------------------------


def test_faults_are_served_in_order_then_normal_service(mirror):
    path = "/entrez/eutils/esummary.fcgi?db=gds&id=200900001&retmode=json"
    mirror.inject(
        "/entrez/eutils/esummary",
        Fault(status=429, headers={"Retry-After": "1"}),
        Fault(status=503),
        Fault(body=b"<html><body>Service temporarily unavailable</body></html>"),
    )
    r1 = _get(mirror, path)
    assert r1.status_code == 429 and r1.headers["Retry-After"] == "1"
    r2 = _get(mirror, path)
    assert r2.status_code == 503
    r3 = _get(mirror, path)
    assert r3.status_code == 200 and r3.headers["Content-Type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        json.loads(r3.text)
    r4 = _get(mirror, path)
    assert r4.status_code == 200 and r4.json()["result"]["uids"] == ["200900001"]
    # a fault for one prefix leaves other paths alone
    mirror.inject("/ena/", Fault(status=500))
    assert _get(mirror, path).status_code == 200
    assert _filereport_status(mirror) == 500
    assert _filereport_status(mirror) == 200


def _filereport_status(m) -> int:
    return _get(
        m, "/ena/portal/api/filereport", params={"accession": "SRR99000001", "result": "read_run"}
    ).status_code


def test_delay_fault_times_out_a_client(mirror):
    mirror.inject("/biostudies/", Fault(delay_s=1.0))
    t0 = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(mirror.url + "/biostudies/api/v1/studies/E-MTAB-99001", timeout=0.3)
    assert time.monotonic() - t0 < 0.9
    ok = requests.get(mirror.url + "/biostudies/api/v1/studies/E-MTAB-99001", timeout=10)
    assert ok.status_code == 200


def test_request_log(mirror):
    n0 = len(mirror.requests)
    _get(mirror, "/entrez/eutils/esearch.fcgi?db=gds&term=x&retmode=json")
    requests.head(mirror.url + FASTQ, timeout=10)
    log = mirror.requests[n0:]
    assert [(m, p) for _, m, p in log] == [
        ("GET", "/entrez/eutils/esearch.fcgi?db=gds&term=x&retmode=json"),
        ("HEAD", FASTQ),
    ]
    assert log[0][0] <= log[1][0] <= time.monotonic()


def test_needs_a_world(tmp_path):
    with pytest.raises(InputError, match="not a demo world"):
        MirrorServer(tmp_path)


def test_port_and_restart(world):
    m = MirrorServer(world, port=0).start()
    try:
        assert m.url == f"http://127.0.0.1:{m.port}" and m.port > 0
        assert _get(m, "/biostudies/api/v1/studies/E-MTAB-99002").status_code == 200
    finally:
        m.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(m.url + "/biostudies/api/v1/studies/E-MTAB-99002", timeout=2)


def test_mirror_serve_on_a_busy_port_says_so(mirror, world, capsys):
    """`scatlas mirror serve` on a port in use: exit 2 (as every scatlas error) with what to do, no traceback."""
    from scatlas.cli import main

    assert main(["mirror", "serve", str(world), "--port", str(mirror.port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot serve on 127.0.0.1:{mirror.port}" in err and "--port" in err
    assert "Traceback" not in err
