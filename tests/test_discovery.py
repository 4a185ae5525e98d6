"""The query stage (scatlas.discover.studies): the search term, the window, SuperSeries, mixed
organisms, studies known from earlier runs, upstream changes and withdrawals."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from _http_loopback import Loopback, send

from scatlas.demo.metadata_world import Series, write_metadata_world
from scatlas.demo.mirror import MirrorServer
from scatlas.demo.run import service_urls
from scatlas.discover.studies import discover_studies
from scatlas.ingest.catalog import Catalog
from scatlas.ingest.catalog_update import update_catalog
from scatlas.sources import arrayexpress as ae
from scatlas.sources import geo
from scatlas.sources.http import HttpClient, Services

D = dt.date
HUMAN, MOUSE = "Homo sapiens", "Mus musculus"


def cfg(url: str, **query) -> dict:
    return {
        "services": {**service_urls(url), "retries": 1, "backoff_s": 0.01, "timeout_s": 5},
        "discover": {
            "sources": ["geo"],
            "organisms": [HUMAN, MOUSE],
            "term": "single cell",
            **query,
        },
    }


def svc(c: dict) -> Services:
    return Services(c["services"], env={"NCBI_API_KEY": "k"})


def table(path: Path) -> dict[str, dict]:
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return {r["study"]: r for r in df.to_dict("records")}


def test_search_term_uids_and_fingerprints(shared_data):
    term = geo.build_term('"single cell"[All Fields]', [HUMAN, MOUSE])
    assert term == (
        '("single cell"[All Fields]) AND gse[ETYP] AND '
        '("Homo sapiens"[Organism] OR "Mus musculus"[Organism])'
    )
    assert geo.build_term("", []) == "gse[ETYP]"
    assert geo.gse_uid("GSE93374") == "200093374"  # the uid the recorded esummary has
    summary = json.loads((shared_data / "geo/ffq/GSE93374_summary.txt").read_text())
    doc = summary["result"]["200093374"]
    fp = geo.fingerprint(doc)
    shuffled = {**doc, "samples": list(reversed(doc["samples"])), "pubmedids": ["1"]}
    assert geo.fingerprint(shuffled) == fp  # order and paper links are not content
    assert geo.fingerprint({**doc, "title": doc["title"] + "."}) != fp
    assert geo.fingerprint({**doc, "n_samples": 12}) != fp


def test_superseries_mixed_organisms_and_window(tmp_path):
    world = tmp_path / "world"
    write_metadata_world(
        world,
        [
            Series("GSE930001", D(2024, 5, 1), n_samples=2),
            Series("GSE930002", D(2023, 12, 1), n_samples=4, organisms=(MOUSE, HUMAN)),
            Series("GSE930003", D(2024, 5, 2), superseries_of=("GSE930001", "GSE930002")),
            Series("GSE930004", D(2024, 5, 3), n_samples=2, strategy="ATAC-seq"),
            Series("GSE930005", D(2023, 1, 1), n_samples=2),  # outside the window
        ],
    )
    with MirrorServer(world) as m:
        c = cfg(m.url, date_from="2024-05-01", date_to="2024-05-31")
        discover_studies(c, tmp_path / "studies.tsv", services=svc(c))
        esearch = next(t for _, _, t in m.requests if "esearch" in t)
    assert "mindate=2024%2F05%2F01" in esearch and "datetype=pdat" in esearch
    assert "gse%5BETYP%5D" in esearch and "Mus+musculus" in esearch
    rows = table(tmp_path / "studies.tsv")
    assert set(rows) == {"GSE930001", "GSE930002", "GSE930003", "GSE930004"}
    sup = rows["GSE930003"]
    assert sup["status"] == "skipped"
    assert sup["reason"] == (
        "SuperSeries of GSE930001, GSE930002: its samples are ingested through its sub-series"
    )
    # the sub-series published before the window comes in through its SuperSeries
    sub = rows["GSE930002"]
    assert sub["status"] == "ok" and sub["reason"].endswith("(sub-series of GSE930003)")
    # mixed organisms: one organism per study, the first of discover.organisms
    assert (
        sub["organism"] == HUMAN and "mixed organisms; ingested for Homo sapiens" in sub["reason"]
    )
    assert rows["GSE930001"]["status"] == "ok" and rows["GSE930001"]["fingerprint"]
    assert len({r["fingerprint"] for r in rows.values()}) == 4


def _world_with(tmp_path: Path, title_suffix: str = "", drop: bool = False) -> Path:
    world = tmp_path / "world"
    series = [Series("GSE940001", D(2024, 1, 5), n_samples=2, title_suffix=title_suffix)]
    if not drop:
        series.append(Series("GSE940002", D(2024, 1, 6), n_samples=2))
    write_metadata_world(world, series, with_fastq=False)
    return world


def _record(c: dict, tmp_path: Path, studies: Path) -> None:
    """What the workflow's catalog rule does after the query (no sheets needed here)."""
    update_catalog(c, tmp_path / "catalog.sqlite", studies, [])


def test_known_studies_are_kept_rechecked_and_withdrawn(tmp_path):
    world = _world_with(tmp_path)
    db = tmp_path / "catalog.sqlite"
    with MirrorServer(world) as m:
        c = cfg(m.url, date_from="2024-01-01", date_to="2024-01-31")
        first = tmp_path / "q1.tsv"
        discover_studies(c, first, services=svc(c), catalog=db)
        _record(c, tmp_path, first)
        before = table(first)
        # upstream: GSE940001's samples are retitled, GSE940002 is withdrawn
        _world_with(tmp_path, title_suffix=" (corrected)", drop=True)
        m.reload()
        c2 = cfg(m.url, date_from="2024-02-01", date_to="2024-02-28")  # a window with nothing
        second = tmp_path / "q2.tsv"
        discover_studies(c2, second, services=svc(c2), catalog=db)
        summaries = [t for _, _, t in m.requests if "esummary" in t]
    after = table(second)
    assert set(after) == {"GSE940001", "GSE940002"}  # the whole atlas, not just the window
    assert after["GSE940001"]["fingerprint"] != before["GSE940001"]["fingerprint"]
    assert after["GSE940001"]["status"] == "ok"
    gone = after["GSE940002"]
    assert gone["status"] == "skipped" and gone["reason"].startswith("withdrawn upstream")
    assert gone["fingerprint"] == before["GSE940002"]["fingerprint"]
    assert any("id=200940001%2C200940002" in t for t in summaries)  # one request for both
    # without re-checking, known rows are taken as they are
    c3 = cfg(m.url, date_from="2024-02-01", recheck_known=False)
    with MirrorServer(world) as m2:
        c3 = cfg(m2.url, date_from="2024-02-01", date_to="2024-02-28", recheck_known=False)
        third = tmp_path / "q3.tsv"
        discover_studies(c3, third, services=svc(c3), catalog=db)
        assert not any("esummary" in t for _, _, t in m2.requests)
    assert table(third)["GSE940001"]["fingerprint"] == before["GSE940001"]["fingerprint"]


def test_max_studies_limits_only_new_studies(tmp_path):
    world = tmp_path / "world"
    write_metadata_world(
        world, [Series(f"GSE95000{i}", D(2024, 1, i), n_samples=1) for i in (1, 2, 3)]
    )
    db = tmp_path / "catalog.sqlite"
    with MirrorServer(world) as m:
        c = cfg(m.url, date_from="2024-01-01", date_to="2024-01-01")
        discover_studies(c, tmp_path / "a.tsv", services=svc(c), catalog=db)
        _record(c, tmp_path, tmp_path / "a.tsv")
        c = cfg(m.url, date_from="2024-01-01", date_to="2024-01-31", max_studies=1)
        discover_studies(c, tmp_path / "b.tsv", services=svc(c), catalog=db)
    rows = table(tmp_path / "b.tsv")
    assert rows["GSE950001"]["status"] == "ok"  # taken earlier: stays
    assert rows["GSE950003"]["status"] == "ok"  # the newest new one
    assert rows["GSE950002"]["reason"] == "beyond discover.max_studies (1, most recent first)"


def test_excluding_a_known_study_marks_it(tmp_path):
    world = _world_with(tmp_path)
    db = tmp_path / "catalog.sqlite"
    with MirrorServer(world) as m:
        c = cfg(m.url, date_from="2024-01-01", date_to="2024-01-31")
        discover_studies(c, tmp_path / "a.tsv", services=svc(c), catalog=db)
        _record(c, tmp_path, tmp_path / "a.tsv")
        c = cfg(m.url, date_from="2024-03-01", date_to="2024-03-31", exclude=["GSE940002"])
        discover_studies(c, tmp_path / "b.tsv", services=svc(c), catalog=db)
        _record(c, tmp_path, tmp_path / "b.tsv")
    assert table(tmp_path / "b.tsv")["GSE940002"]["reason"] == "excluded by discover.exclude"
    with Catalog(db) as cat:
        row = cat.rows("studies", study="GSE940002")[0]
        hist = [h["field"] for h in cat.history("studies", "GSE940002")]
    assert row["status"] == "skipped" and "status" in hist  # marked, not dropped


def test_arrayexpress_window_is_sent_and_paging_stops_early():
    hits = [
        {"accession": f"E-MTAB-{9000 + i}", "title": f"t{i}", "release_date": d}
        for i, d in enumerate(
            ["2024-06-03", "2024-06-02", "2024-05-30", "2024-05-01", "2024-04-01"]
        )
    ]

    def search(req, n):
        page = int(req.query["page"][0])
        size = int(req.query["pageSize"][0])
        body = {"page": page, "pageSize": size, "totalHits": len(hits),
                "hits": hits[(page - 1) * size : page * size]}  # fmt: skip
        send(req, 200, json.dumps(body), {"Content-Type": "application/json"})

    with Loopback() as server:
        server.routes["/biostudies/" + ae.SEARCH_PATH] = search
        client = HttpClient(server.url("/biostudies"), retries=0)
        got = ae.search(client, "single cell", date_from="2024-06-01", date_to=None, page_size=2)
        asked = [q for _, p, q, _ in server.log if p.endswith("search")]
    assert [h["accession"] for h in got] == ["E-MTAB-9000", "E-MTAB-9001"]
    assert asked[0]["release_date"] == ["[2024-06-01 TO *]"]
    assert len(asked) == 2  # page 2 reached back before the window: no page 3


@pytest.mark.parametrize("status, withdrawn", [(404, True), (503, False)])
def test_known_arrayexpress_study_gone_or_unreachable(tmp_path, status, withdrawn):
    known = {
        "study": "E-MTAB-9000",
        "source": "arrayexpress",
        "title": "t",
        "organism": HUMAN,
        "kind": "reads",
        "n_samples": 3,
        "submitted": "2024-01-01",
        "updated": "",
        "status": "ok",
        "reason": "single-cell candidate",
        "fingerprint": "0123456789abcdef",
    }
    db = tmp_path / "catalog.sqlite"
    with Catalog(db) as cat:
        cat.upsert_study(
            "E-MTAB-9000",
            source="arrayexpress",
            title="t",
            organism=HUMAN,
            kind="reads",
            status="ok",
            reason="ok",
            **{k: known[k] for k in ("n_samples", "submitted", "updated", "fingerprint")},
            discover_status="ok",
            discover_reason="single-cell candidate",
        )
    with Loopback() as server:
        server.routes["/biostudies/" + ae.SEARCH_PATH] = json.dumps(
            {"page": 1, "pageSize": 100, "totalHits": 0, "hits": []}
        )
        server.routes["/biostudies/api/v1/studies/E-MTAB-9000"] = lambda req, n: send(
            req, status, json.dumps({"errorMessage": "x"}), {"Content-Type": "application/json"}
        )
        c = {
            "services": {"biostudies": server.url("/biostudies"), "retries": 0},
            "discover": {"sources": ["arrayexpress"], "organisms": [HUMAN]},
        }
        df = discover_studies(c, tmp_path / "s.tsv", catalog=db)
    [row] = df.to_dict("records")
    if withdrawn:
        assert (
            row["status"] == "skipped"
            and "withdrawn upstream (BioStudies: HTTP 404" in row["reason"]
        )
    else:  # a service that is down changes nothing
        assert {k: row[k] for k in ("status", "reason", "fingerprint")} == {
            k: known[k] for k in ("status", "reason", "fingerprint")
        }
