"""Catalog: schema migrations, upserts with history, statuses and reasons, refreshes."""

from __future__ import annotations

import itertools
import sqlite3

import pytest

from scatlas.errors import InputError
from scatlas.ingest.catalog import MIGRATIONS, SCHEMA_VERSION, Catalog


def clock(day: str = "2024-01-01"):
    ticks = itertools.count(1)
    return lambda: f"{day}T00:00:{next(ticks):02d}Z"


def study(cat: Catalog, **kw) -> str:
    args = {
        "source": "geo",
        "title": "A Molecular Census of Arcuate Hypothalamus and Median Eminence Cell Types",
        "organism": "Mus musculus",
        "kind": "reads",
        "status": "ok",
        "reason": "single-cell candidate with SRA reads",
    }
    args.update(kw)
    return cat.upsert_study("GSE93374", **args)


def test_migrations_apply_in_order_once(tmp_path):
    db = tmp_path / "catalog.sqlite"
    with Catalog(db) as cat:
        assert cat.version == SCHEMA_VERSION == len(MIGRATIONS) == 4
        study(cat)
    with Catalog(db) as cat:  # reopening applies nothing and keeps the data
        assert cat.version == 4 and len(cat.rows("studies")) == 1
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = {
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")
    }
    assert {
        "studies",
        "samples",
        "runs",
        "refreshes",
        "history",
        "runs_by_study",
        "history_by_key",
    } <= names
    conn.close()


def test_old_schema_is_upgraded_keeping_data(tmp_path):
    db = tmp_path / "catalog.sqlite"
    with Catalog(db, migrations=MIGRATIONS[:1]) as cat:
        assert cat.version == 1
        study(cat)
    conn = sqlite3.connect(db)
    assert "runs_by_study" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    with Catalog(db) as cat:
        assert cat.version == 4
        assert cat.rows("studies")[0]["organism"] == "Mus musculus"
    with pytest.raises(InputError, match="newer than this scatlas"):
        Catalog(db, migrations=MIGRATIONS[:1])


def test_migration_4_renames_the_query_columns_discover(tmp_path):
    """A schema-3 catalog's query_status/query_reason (and their history) become
    discover_status/discover_reason, values kept."""
    db = tmp_path / "catalog.sqlite"
    with Catalog(db, migrations=MIGRATIONS[:3], now=clock()) as cat:
        cat.upsert_study("GSE1", source="geo", status="ok", reason="r")
    conn = sqlite3.connect(db)  # as scatlas 0.1 wrote them
    conn.execute("UPDATE studies SET query_status = 'skipped', query_reason = 'series type'")
    conn.execute(
        "INSERT INTO history (table_name, key, field, old, new, changed_at) "
        "VALUES ('studies', 'GSE1', 'query_status', 'ok', 'skipped', '2024-01-01')"
    )
    conn.commit()
    conn.close()
    with Catalog(db) as cat:
        row = cat.rows("studies")[0]
        assert (row["discover_status"], row["discover_reason"]) == ("skipped", "series type")
        assert "query_status" not in row
        assert [k["status"] for k in cat.known_studies()] == ["skipped"]
        fields = {r["field"] for r in cat.rows("history")}
        assert "discover_status" in fields and "query_status" not in fields


def test_migration_3_keeps_v2_rows_and_backfills_their_query_rows(tmp_path):
    """A schema-2 catalog (round one) gains the query-row, fingerprint and error columns;
    its rows keep their values, their query status is back-filled from their status, and
    a refresh can list them as known studies."""
    db = tmp_path / "catalog.sqlite"
    with Catalog(db, migrations=MIGRATIONS[:2], now=clock()) as cat:
        study(cat)
        cat.upsert_study(
            "GSE100750", source="geo", status="skipped", reason="series type is ChIP-Seq"
        )
        cat.upsert_run(
            "SRR5164436", sample="GSM2452122", study="GSE93374", status="ok", reason="ok"
        )
        rid = cat.start_refresh("2017-01-01", None)
        cat.finish_refresh(rid, status="ok", n_studies=2, n_new=2, reason="2 new")
        assert cat.known_studies() == []  # schema 2 has no query rows
        with pytest.raises(sqlite3.OperationalError):
            cat.upsert_study("GSE1", source="geo", status="ok", reason="r", fingerprint="ab")
    with Catalog(db, now=clock("2024-02-01")) as cat:
        assert cat.version == 4
        rows = {r["study"]: r for r in cat.rows("studies")}
        assert rows["GSE93374"]["title"].startswith("A Molecular Census")
        assert (rows["GSE93374"]["discover_status"], rows["GSE93374"]["fingerprint"]) == ("ok", "")
        assert rows["GSE100750"]["discover_reason"] == "series type is ChIP-Seq"
        assert cat.rows("runs")[0]["error_file"] == ""
        assert [k["study"] for k in cat.known_studies()] == ["GSE100750", "GSE93374"]
        assert cat.last_refresh()["n_changed"] is None and cat.last_refresh()["n_new"] == 2
        # the first fingerprint is not a change; the second one is, and history keeps both
        study(cat, fingerprint="0123456789abcdef", n_samples=11)
        study(cat, fingerprint="fedcba9876543210", n_samples=12)
        assert cat.changes_since("2024-02-01T00:00:00Z") == {
            "new": [],
            "changed": ["GSE93374"],
        }
        hist = [(h["field"], h["old"], h["new"]) for h in cat.history("studies", "GSE93374")]
        assert ("fingerprint", "0123456789abcdef", "fedcba9876543210") in hist
        assert ("n_samples", "11", "12") in hist
    with pytest.raises(InputError, match="unknown column"), Catalog(db) as cat:
        study(cat, colour="blue")


def test_upserts_record_history_and_never_delete(tmp_path):
    with Catalog(tmp_path / "c.sqlite", now=clock()) as cat:
        assert study(cat) == "inserted"
        assert study(cat) == "unchanged"
        assert (
            study(cat, status="failed", reason="all 11 downloads failed; first: HTTP 404")
            == "updated"
        )
        [row] = cat.rows("studies")
        assert row["status"] == "failed" and row["first_seen"] == "2024-01-01T00:00:01Z"
        assert row["last_seen"] > row["first_seen"]
        hist = cat.history("studies", "GSE93374")
        assert [(h["field"], h["old"], h["new"]) for h in hist] == [
            ("status", None, "ok"),
            ("status", "ok", "failed"),
            (
                "reason",
                "single-cell candidate with SRA reads",
                "all 11 downloads failed; first: HTTP 404",
            ),
        ]
        cat.upsert_sample(
            "GSE93374",
            "GSM2452122",
            title="Drop-Seq ... ad lib Chow_1",
            organism="Mus musculus",
            status="ok",
            reason="matrix sample",
        )
        cat.upsert_run(
            "SRR5164436",
            sample="GSM2452122",
            study="GSE93374",
            layout="PAIRED",
            status="new",
            reason="not downloaded yet",
        )
        cat.upsert_run(
            "SRR5164436",
            sample="GSM2452122",
            study="GSE93374",
            layout="PAIRED",
            alignment_rate=0.93,
            status="ok",
            reason="93% aligned",
        )
        [run] = cat.rows("runs")
        assert run["alignment_rate"] == pytest.approx(0.93) and run["status"] == "ok"
        fields = [h["field"] for h in cat.history("runs", "SRR5164436")]
        assert fields == ["status", "alignment_rate", "status", "reason"]
        s = cat.summary()
        assert s["studies"] == {"total": 1, "new": 0, "ok": 0, "skipped": 0, "failed": 1}
        assert s["samples"]["ok"] == 1 and s["runs"]["ok"] == 1 and s["schema_version"] == 4


def test_status_and_reason_are_required(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as cat:
        with pytest.raises(InputError, match="status 'done'"):
            study(cat, status="done")
        with pytest.raises(InputError, match="reason"):
            study(cat, reason="  ")
        study(cat)
        with pytest.raises(sqlite3.IntegrityError):  # the schema enforces it too
            cat._conn.execute("UPDATE studies SET status = 'gone'")
        with pytest.raises(sqlite3.IntegrityError):
            cat._conn.execute("UPDATE studies SET reason = ''")


def test_transaction_rolls_back_everything(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as cat:
        with pytest.raises(RuntimeError), cat.transaction():
            study(cat)
            cat.upsert_sample("GSE93374", "GSM2452122", status="ok", reason="kept")
            raise RuntimeError("disk full")
        assert cat.rows("studies") == [] and cat.rows("samples") == [] and cat.history() == []


def test_refreshes(tmp_path):
    with Catalog(tmp_path / "c.sqlite", now=clock()) as cat:
        rid = cat.start_refresh("2017-01-01", None)
        cat.finish_refresh(
            rid, status="ok", n_studies=3, n_new=2, reason="3 studies queried, 2 new"
        )
        s = cat.summary()
        assert s["refreshes"] == 1
        last = s["last_refresh"]
        assert (last["status"], last["n_new"], last["date_from"], last["date_to"]) == (
            "ok",
            2,
            "2017-01-01",
            None,
        )
        assert last["finished"] > last["started"]
        with pytest.raises(InputError, match="no refresh with id 99"):
            cat.finish_refresh(99, status="ok", n_studies=0, n_new=0, reason="x")
        # a refresh that never finished (killed) is closed as failed by the next one
        cat.start_refresh("2017-02-01", "2017-02-14")
        assert cat.last_refresh()["date_from"] == "2017-01-01"  # the last *successful* one
        assert cat.last_refresh(status=None)["status"] == "new"
        assert cat.close_interrupted_refreshes("interrupted: no finish recorded") == 1
        assert cat.last_refresh(status="failed")["reason"] == "interrupted: no finish recorded"
        assert cat.close_interrupted_refreshes("again") == 0
