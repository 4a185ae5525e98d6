"""HTTP client behaviour against a scripted loopback server: retries, Retry-After, timeouts,
truncated bodies, HTML instead of data, verified and resumed downloads, rate limits."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest
from _http_loopback import Loopback, send, serve_file

from scatlas.errors import ServiceError
from scatlas.sources.http import (
    ChecksumError,
    HttpClient,
    RateLimiter,
    Services,
    file_matches,
    looks_like_html,
)

PAYLOAD = json.dumps({"esearchresult": {"count": "1", "idlist": ["200093374"]}})


def client(server: Loopback, **kw) -> HttpClient:
    opts = {"timeout": 2.0, "retries": 3, "backoff": 0.01, "requests_per_s": None}
    opts.update(kw)
    return HttpClient(server.base, **opts)


@pytest.fixture
def server():
    with Loopback() as s:
        yield s


def test_retries_503_then_succeeds(server):
    def route(req, n):
        if n <= 2:
            send(req, 503, "busy", {"Content-Type": "text/plain"})
        else:
            send(req, 200, PAYLOAD, {"Content-Type": "application/json"})

    server.routes["/esearch.fcgi"] = route
    data = client(server).get_json("esearch.fcgi", {"db": "gds"})
    assert data["esearchresult"]["idlist"] == ["200093374"]
    assert server.hits["/esearch.fcgi"] == 3


def test_503_every_time_fails_after_retries_naming_the_url(server):
    server.routes["/x"] = lambda req, n: send(req, 503, "busy")
    with pytest.raises(ServiceError) as err:
        client(server, retries=2).get("x", {"id": "GSE1"})
    assert server.hits["/x"] == 3
    assert err.value.url == server.url("/x?id=GSE1")
    assert "HTTP 503" in err.value.reason


def test_429_honours_retry_after(server):
    def route(req, n):
        if n == 1:
            send(req, 429, '{"error":"API rate limit exceeded"}', {"Retry-After": "1"})
        else:
            send(req, 200, PAYLOAD, {"Content-Type": "application/json"})

    server.routes["/r"] = route
    t0 = time.monotonic()
    client(server, backoff=0.001).get_json("r")
    assert time.monotonic() - t0 >= 1.0
    assert server.hits["/r"] == 2


def test_other_4xx_fails_at_once(server):
    server.routes["/missing"] = lambda req, n: send(req, 404, "no such accession")
    with pytest.raises(ServiceError) as err:
        client(server).get("missing")
    assert server.hits["/missing"] == 1
    assert "HTTP 404" in str(err.value) and "no such accession" in str(err.value)


def test_timeout_is_retried(server):
    def route(req, n):
        if n == 1:
            time.sleep(0.8)
        send(req, 200, PAYLOAD, {"Content-Type": "application/json"})

    server.routes["/slow"] = route
    data = client(server, timeout=0.3).get_json("slow")
    assert data["esearchresult"]["count"] == "1"
    assert server.hits["/slow"] == 2


def test_truncated_body_is_retried(server):
    def route(req, n):
        if n == 1:  # promise the whole body, send half, hang up
            send(
                req,
                200,
                PAYLOAD[: len(PAYLOAD) // 2],
                {"Content-Type": "application/json"},
                length=len(PAYLOAD),
            )
        else:
            send(req, 200, PAYLOAD, {"Content-Type": "application/json"})

    server.routes["/cut"] = route
    assert client(server).get_json("cut")["esearchresult"]["idlist"] == ["200093374"]
    assert server.hits["/cut"] == 2


def test_html_instead_of_json_is_an_error_naming_the_url(server):
    page = "<!DOCTYPE html><html><body>Service maintenance</body></html>"
    server.routes["/esummary.fcgi"] = lambda req, n: send(
        req, 200, page, {"Content-Type": "text/html"}
    )
    with pytest.raises(ServiceError) as err:
        client(server).get_json("esummary.fcgi", {"id": "1"})
    assert "HTML" in str(err.value)
    assert err.value.url == server.url("/esummary.fcgi?id=1")
    assert server.hits["/esummary.fcgi"] == 1
    # even when the server claims JSON
    server.routes["/tsv"] = lambda req, n: send(req, 200, page, {"Content-Type": "text/plain"})
    with pytest.raises(ServiceError, match="expected TSV"):
        client(server).get_text("tsv", expect="TSV")


def test_invalid_json_is_an_error(server):
    server.routes["/j"] = lambda req, n: send(
        req, 200, '{"a": ', {"Content-Type": "application/json"}
    )
    with pytest.raises(ServiceError, match="invalid JSON"):
        client(server).get_json("j")


def test_duplicated_json_field_and_non_utf8_body_are_errors(server):
    server.routes["/dup"] = lambda req, n: send(
        req, 200, '{"result": {"uids": ["1"]}, "result": {}}', {"Content-Type": "application/json"}
    )
    with pytest.raises(ServiceError, match="field 'result' twice") as err:
        client(server).get_json("dup")
    assert err.value.url == server.url("/dup")
    body = '{"title": "Müller"}'.encode("latin-1")  # declared UTF-8 (JSON), sent Latin-1
    server.routes["/latin"] = lambda req, n: send(
        req, 200, body, {"Content-Type": "application/json"}
    )
    with pytest.raises(ServiceError, match=r"not utf-8 text: byte 0xfc at offset 12 \(line 1\)"):
        client(server).get_json("latin")
    # a charset the server declares is honoured
    server.routes["/declared"] = lambda req, n: send(
        req, 200, body, {"Content-Type": "application/json; charset=ISO-8859-1"}
    )
    assert client(server).get_json("declared") == {"title": "Müller"}


def test_download_verifies_and_renames(server, tmp_path):
    data = bytes(range(256)) * 1000
    server.routes["/vol1/f.fastq.gz"] = data
    dest = tmp_path / "SRR1_1.fastq.gz"
    res = client(server).download(
        "vol1/f.fastq.gz", dest, md5=hashlib.md5(data).hexdigest(), size=len(data)
    )
    assert dest.read_bytes() == data
    assert res["bytes"] == len(data) and res["md5"] == hashlib.md5(data).hexdigest()
    assert not (tmp_path / "SRR1_1.fastq.gz.part").exists()
    assert file_matches(dest, md5=res["md5"], size=len(data))
    assert not file_matches(dest, md5="0" * 32, size=len(data))


def test_md5_mismatch_fails_after_retries(server, tmp_path):
    data = b"@r1\nACGT\n+\nIIII\n" * 100
    server.routes["/f"] = data
    dest = tmp_path / "SRR2.fastq.gz"
    wrong = "0" * 32
    with pytest.raises(ServiceError) as err:
        client(server, retries=2).download("f", dest, md5=wrong, size=len(data))
    assert server.hits["/f"] == 3
    url = server.url("/f")
    assert (
        err.value.reason
        == f"md5 mismatch for {url}: expected {wrong}, got {hashlib.md5(data).hexdigest()}"
    )
    assert not dest.exists() and not (tmp_path / "SRR2.fastq.gz.part").exists()
    assert isinstance(err.value, ChecksumError) and err.value.field == "fastq_md5"
    with pytest.raises(ChecksumError) as err:
        client(server, retries=0).download("f", dest, size=len(data) + 1)
    assert err.value.field == "fastq_bytes"


def test_download_resumes_with_range(server, tmp_path):
    data = bytes((i * 7) % 251 for i in range(300_000))

    def route(req, n):
        if n == 1:  # cut the first transfer short
            send(req, 200, data[:150_000], length=len(data))
        else:
            serve_file(req, data)

    server.routes["/big"] = route
    dest = tmp_path / "big.fastq.gz"
    res = client(server).download("big", dest, md5=hashlib.md5(data).hexdigest(), size=len(data))
    assert res["resumed"] is True and res["attempts"] == 2
    assert dest.read_bytes() == data
    ranges = [h.get("Range") for _, path, _, h in server.log if path == "/big"]
    assert ranges[0] is None
    start = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 150_000


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = b"ACGT" * 50_000
    dest = tmp_path / "x.fastq.gz"
    (tmp_path / "x.fastq.gz.part").write_bytes(b"garbage-from-an-old-attempt")
    server.routes["/x"] = lambda req, n: send(req, 200, data)  # 200, not 206
    res = client(server).download("x", dest, md5=hashlib.md5(data).hexdigest(), size=len(data))
    assert res["resumed"] is False and dest.read_bytes() == data


def test_rate_limit_spaces_requests(server):
    server.routes["/p"] = lambda req, n: send(req, 200, "ok", {"Content-Type": "text/plain"})
    c = client(server, requests_per_s=10)
    t0 = time.monotonic()
    for _ in range(6):
        c.get_text("p")
    assert time.monotonic() - t0 >= 5 / 10


def test_rate_limiter_is_thread_safe():
    limiter = RateLimiter(20)
    t0 = time.monotonic()
    threads = [
        threading.Thread(target=lambda: [limiter.acquire() for _ in range(3)]) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - t0 >= 8 / 20


def test_services_rates_api_key_and_url_mapping(server):
    cfg = {
        "eutils": server.url("/entrez/eutils"),
        "geo": server.url("/geo"),
        "ena_portal": server.url("/ena/portal/api"),
        "ena_files": server.base,
        "biostudies": server.url("/biostudies"),
        "retries": 0,
        "ncbi_requests_per_s": None,
        "other_requests_per_s": 10,
    }
    plain = Services(cfg, env={})
    assert plain.ncbi_rate == 3.0 and plain.eutils.limiter is plain.geo.limiter
    keyed = Services({**cfg, "ncbi_requests_per_s": 50}, env={"NCBI_API_KEY": "secret"})
    assert keyed.ncbi_rate == 10.0
    # the key is sent to E-utilities but never shown in errors
    server.routes["/entrez/eutils/esearch.fcgi"] = lambda req, n: send(req, 400, "bad term")
    with pytest.raises(ServiceError) as err:
        keyed.eutils.get_json("esearch.fcgi", {"term": "x"})
    assert server.log[-1][2]["api_key"] == ["secret"]
    assert "secret" not in str(err.value)

    m = plain.map_url
    assert m(
        "ftp://ftp.ncbi.nlm.nih.gov/geo/series/GSE93nnn/GSE93374/suppl/x.txt.gz"
    ) == server.url("/geo/series/GSE93nnn/GSE93374/suppl/x.txt.gz")
    assert m("https://ftp.ncbi.nlm.nih.gov/geo/samples/GSM1nnn/GSM1/suppl/a.bw") == server.url(
        "/geo/samples/GSM1nnn/GSM1/suppl/a.bw"
    )
    ena_path = "/vol1/fastq/ERR119/009/ERR1190989/ERR1190989.fastq.gz"
    for u in (
        f"ftp.sra.ebi.ac.uk{ena_path}",
        f"ftp://ftp.sra.ebi.ac.uk{ena_path}",
        f"https://ftp.sra.ebi.ac.uk{ena_path}",
    ):
        assert m(u) == server.url(ena_path)
    assert m(
        "ftp://ftp.ebi.ac.uk/biostudies/fire/E-MTAB-/615/E-MTAB-10615/Files/x.mtx.gz"
    ) == server.url("/biostudies/files/E-MTAB-10615/x.mtx.gz")
    assert m("https://example.org/a.txt") == "https://example.org/a.txt"
    assert plain.client_for(server.url(ena_path)) is plain.ena_files
    assert plain.client_for(server.url("/geo/x")) is plain.geo
    with pytest.raises(ServiceError, match="not under"):
        plain.client_for("https://example.org/evil.fastq.gz")


def test_looks_like_html():
    assert looks_like_html(b"\n  <!DOCTYPE html><html>")
    assert looks_like_html("<HTML><body>")
    assert not looks_like_html(b'{"a": 1}')
    assert not looks_like_html(b"<?xml version='1.0'?><EXPERIMENT_PACKAGE_SET>")
