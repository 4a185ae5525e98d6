"""``scatlas serve``: the API (bad uploads, two at once, the work folder) and the page in a
real browser (Debian's chromium driven by chromium-driver through Selenium): upload, wait,
pick a cluster, check the heatmap, plot, DAG, studies and DE, download. A screenshot of the
page is kept in ``test-artifacts/`` (or ``$SCATLAS_TEST_ARTIFACTS``)."""

import io
import json
import threading
import time
import urllib.error
import urllib.request
import uuid

import anndata as ad
import numpy as np
import pytest
from browser import ARTIFACTS, chromium
from synthetic_atlas import NOVEL, gene_ids, publish_without_study

from scatlas.annotate.reference import Reference
from scatlas.cli import build_parser
from scatlas.package_data import snapshot_obo
from scatlas.web.app import create_app

HELD_OUT = "GSE100004"  # the query study: it holds the novel type


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A release without one study, that study as the query, and a running server."""
    root = tmp_path_factory.mktemp("serve")
    de_table = {"CL_0000236.tsv": _de_table()}
    path, query = publish_without_study(
        root, HELD_OUT, ontology_obo=snapshot_obo(), celltypist=False, de_tables=de_table
    )
    query.write_h5ad(root / "query.h5ad")
    reference = Reference.load(path)
    work = root / "work"
    app = create_app(reference, work, max_upload_mb=1, demo_query=root / "query.h5ad")
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{server.server_port}", "root": root, "work": work}
    server.shutdown()
    app.extensions["scatlas_jobs"].close()


def _de_table() -> str:
    """A meta-analysis table as scatlas.de writes it: B cell's markers are genes 1-30."""
    genes = gene_ids(200)[:12]
    rows = [
        "gene\tgene_symbol\tlogfc__GSE100001\tpadj__GSE100001\tlogfc__GSE100002\t"
        "padj__GSE100002\tstouffer_z\tfdr\tdirection\tsignificant"
    ]
    for i, g in enumerate(genes):
        rows.append(
            f"{g}\tBMARK{i}\t{3 - i / 10}\t0.001\t{2.5 - i / 10}\t0.002\t{20 - i}\t0.001\tup\tTrue"
        )
    return "\n".join(rows) + "\n"


def _post(url: str, fields: dict, files: dict | None = None) -> tuple[int, dict]:
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    for k, v in fields.items():
        body.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        )
    for k, (name, data) in (files or {}).items():
        body.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        body.write(data + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    req = urllib.request.Request(
        url,
        data=body.getvalue(),
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _get(url: str) -> dict:
    with urllib.request.urlopen(url) as r:
        return json.loads(r.read())


def _wait(url: str, job: str, timeout: float = 60) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        state = _get(f"{url}/api/jobs/{job}")
        if state["state"] in ("done", "failed"):
            return state
        time.sleep(0.2)
    raise AssertionError(f"job {job} did not finish: {state}")


def test_bad_uploads_get_the_clis_messages(site):
    url = site["url"]
    status, body = _post(f"{url}/api/jobs", {}, {"file": ("big.h5ad", b"0" * (2 * 1024 * 1024))})
    assert status == 413 and "larger than this server's limit of 1 MB" in body["error"]
    status, body = _post(f"{url}/api/jobs", {}, {"file": ("notes.txt", b"not an h5ad")})
    assert status == 202
    state = _wait(url, body["id"])
    assert state["state"] == "failed" and "cannot read the query" in state["error"]
    alien = ad.AnnData(np.ones((5, 20), dtype=np.float32))
    alien.var_names = [f"NOPE{i}" for i in range(20)]
    path = site["root"] / "alien.h5ad"
    alien.write_h5ad(path)
    status, body = _post(f"{url}/api/jobs", {}, {"file": ("alien.h5ad", path.read_bytes())})
    state = _wait(url, body["id"])
    assert state["state"] == "failed" and "genes were found in the input" in state["error"]
    status, body = _post(f"{url}/api/jobs", {}, {})
    assert status == 400 and "no file uploaded" in body["error"]


def test_two_uploads_at_once_and_only_the_work_folder(site):
    url, work = site["url"], site["work"]
    data = (site["root"] / "query.h5ad").read_bytes()
    outside = set(site["root"].parent.rglob("*")) - set(work.rglob("*"))
    ids = [
        _post(f"{url}/api/jobs", {}, {"file": ("../../escape.h5ad", data)})[1]["id"]
        for _ in range(2)
    ]
    states = [_wait(url, i) for i in ids]
    assert [s["state"] for s in states] == ["done", "done"] and ids[0] != ids[1]
    assert states[0]["name"] == "escape.h5ad"  # the upload's name, never its path
    for i in ids:
        assert sorted(p.name for p in (work / "jobs" / i).iterdir()) == [
            "annotated.csv",
            "annotated.h5ad",
            "input.h5ad",
        ]
    now = set(site["root"].parent.rglob("*")) - set(work.rglob("*"))
    assert now == outside  # nothing written outside the work folder
    with pytest.raises(urllib.error.HTTPError, match="404"):
        _get(f"{url}/api/jobs/{'0' * 32}")
    with pytest.raises(urllib.error.HTTPError, match="404"):
        _get(f"{url}/api/jobs/..%2F..%2Fetc")


def test_serve_binds_to_localhost_by_default():
    args = build_parser().parse_args(["serve", "--reference", "x"])
    assert args.host == "127.0.0.1" and args.port == 8000


def _cluster_of(url: str, browser, term: str) -> int:
    """The heatmap cluster whose cells score highest on ``term`` (asked from the API)."""
    from selenium.webdriver.common.by import By

    job = browser.find_element(By.ID, "download-h5ad").get_attribute("href").split("/")[-3]
    clusters = _get(f"{url}/api/jobs/{job}/result")["heatmap"]["clusters"]
    for c in clusters:
        view = _get(f"{url}/api/jobs/{job}/clusters/{c['cluster']}")
        if view["types"] and view["types"][0]["id"] == term:
            return c["cluster"]
    raise AssertionError(f"no cluster retrieves {term}")


def _browser():
    return chromium(1400, 2400)


def test_the_page_in_a_real_browser(site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser = _browser()
    try:
        wait = WebDriverWait(browser, 60)
        browser.get(site["url"])
        wait.until(lambda b: b.find_element(By.ID, "release-version").text == "v1")
        assert "passed" in browser.find_element(By.ID, "gate").text
        # a bad upload shows the CLI's message
        bad = site["root"] / "notes.txt"
        bad.write_text("not an h5ad")
        browser.find_element(By.ID, "file").send_keys(str(bad))
        browser.find_element(By.ID, "upload").click()
        wait.until(ec.visibility_of_element_located((By.ID, "error")))
        wait.until(lambda b: "cannot read the query" in b.find_element(By.ID, "error").text)
        # the demo query's file, uploaded
        browser.find_element(By.ID, "file").send_keys(str(site["root"] / "query.h5ad"))
        browser.find_element(By.ID, "upload").click()
        wait.until(ec.visibility_of_element_located((By.ID, "results")))
        assert not browser.find_element(By.ID, "error").is_displayed()
        heatmap = browser.find_element(By.ID, "heatmap")
        assert int(heatmap.get_attribute("width")) > 0 and int(heatmap.get_attribute("height")) > 0
        assert len(browser.find_elements(By.CSS_SELECTOR, "#dendrogram polyline")) > 10
        assert len(browser.find_elements(By.CSS_SELECTOR, "#heatmap-types span")) >= 3
        assert len(browser.find_elements(By.CSS_SELECTOR, "#distribution .bar")) >= 3
        buttons = browser.find_elements(By.CSS_SELECTOR, ".cluster-button")
        assert len(buttons) >= 2
        # the B cells' cluster (its DE table is in the release): the band's first of them
        band = browser.find_elements(By.CSS_SELECTOR, "#cluster-band rect")
        b_cluster = _cluster_of(site["url"], browser, "CL:0000236")
        next(r for r in band if r.get_attribute("data-cluster") == str(b_cluster)).click()
        wait.until(ec.visibility_of_element_located((By.ID, "cluster-panel")))
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#scatter circle.query"))
        assert browser.find_elements(By.CSS_SELECTOR, "#scatter circle.reference")
        assert browser.find_elements(By.CSS_SELECTOR, "#dag .dag-node.highlight")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#dag .dag-node")) > 2
        assert browser.find_elements(By.CSS_SELECTOR, "#dag line")
        assert browser.find_elements(By.CSS_SELECTOR, "#studies tbody tr")
        assert "BMARK0" in browser.find_element(By.ID, "de").text
        assert browser.find_elements(By.CSS_SELECTOR, "#de canvas.de-query")
        assert "GSE10000" in browser.find_element(By.ID, "studies").text
        legend = browser.find_element(By.ID, "scatter-legend").text
        Select(browser.find_element(By.ID, "colour-by")).select_by_value("study")
        assert browser.find_element(By.ID, "scatter-legend").text != legend
        buttons[-1].click()
        wait.until(lambda b: "selected" in buttons[-1].get_attribute("class"))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "serve.png"))
        href = browser.find_element(By.ID, "download-h5ad").get_attribute("href")
    finally:
        browser.quit()
    with urllib.request.urlopen(href) as r:
        assert "query_annotated.h5ad" in r.headers["Content-Disposition"]
        path = site["root"] / "downloaded.h5ad"
        path.write_bytes(r.read())
    annotated = ad.read_h5ad(path)
    assert "scatlas_cell_type" in annotated.obs
    novel = annotated.obs["truth"].isin([NOVEL[0]]).to_numpy()
    assert annotated.obs["scatlas_novel"].to_numpy()[novel].mean() > 0.5
    assert (ARTIFACTS / "serve.png").stat().st_size > 10_000
