"""The catalog: a SQLite record of every study, sample and run scatlas has seen, and why.

* Every row has a ``status`` (new, ok, skipped, failed) and a human-readable ``reason``.
* Nothing is ever deleted; every change of a field is recorded in ``history``.
* The schema is versioned with ``PRAGMA user_version`` and :data:`MIGRATIONS`, applied in order.
* WAL journal, ``busy_timeout``; each update runs in one transaction (``with cat.transaction():``
  groups many upserts into one).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from scatlas.errors import InputError

STATUSES = ("new", "ok", "skipped", "failed")
_STATUS_CHECK = "status IN ('new','ok','skipped','failed')"

# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "tables: studies, samples, runs, refreshes, history",
        f"""
        CREATE TABLE studies (
            study TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            organism TEXT NOT NULL DEFAULT '',
            kind TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL CHECK ({_STATUS_CHECK}),
            reason TEXT NOT NULL CHECK (reason <> ''),
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            metadata_sha256 TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE samples (
            sample TEXT NOT NULL,
            study TEXT NOT NULL REFERENCES studies(study),
            title TEXT NOT NULL DEFAULT '',
            organism TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL CHECK ({_STATUS_CHECK}),
            reason TEXT NOT NULL CHECK (reason <> ''),
            PRIMARY KEY (study, sample)
        );
        CREATE TABLE runs (
            run TEXT PRIMARY KEY,
            sample TEXT NOT NULL,
            study TEXT NOT NULL REFERENCES studies(study),
            layout TEXT NOT NULL DEFAULT '',
            alignment_rate REAL,
            status TEXT NOT NULL CHECK ({_STATUS_CHECK}),
            reason TEXT NOT NULL CHECK (reason <> ''),
            updated TEXT NOT NULL
        );
        CREATE TABLE refreshes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started TEXT NOT NULL,
            finished TEXT,
            status TEXT NOT NULL CHECK ({_STATUS_CHECK}),
            date_from TEXT,
            date_to TEXT,
            n_studies INTEGER,
            n_new INTEGER,
            reason TEXT NOT NULL CHECK (reason <> '')
        );
        CREATE TABLE history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            table_name TEXT NOT NULL,
            key TEXT NOT NULL,
            field TEXT NOT NULL,
            old TEXT,
            new TEXT,
            changed_at TEXT NOT NULL
        );
        """,
    ),
    (
        "indexes for per-study and per-key look-ups",
        """
        CREATE INDEX samples_by_study ON samples(study);
        CREATE INDEX runs_by_study ON runs(study);
        CREATE INDEX runs_by_sample ON runs(sample);
        CREATE INDEX history_by_key ON history(table_name, key);
        """,
    ),
    (
        "incremental refresh: each study's query row and upstream fingerprint, structured "
        "errors (file, field) on studies and runs, changed-study counts on refreshes",
        """
        ALTER TABLE studies ADD COLUMN n_samples INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE studies ADD COLUMN submitted TEXT NOT NULL DEFAULT '';
        ALTER TABLE studies ADD COLUMN updated TEXT NOT NULL DEFAULT '';
        ALTER TABLE studies ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
        ALTER TABLE studies ADD COLUMN query_status TEXT NOT NULL DEFAULT '';
        ALTER TABLE studies ADD COLUMN query_reason TEXT NOT NULL DEFAULT '';
        ALTER TABLE studies ADD COLUMN supplementary TEXT NOT NULL DEFAULT '';
        ALTER TABLE studies ADD COLUMN error_file TEXT NOT NULL DEFAULT '';
        ALTER TABLE studies ADD COLUMN error_field TEXT NOT NULL DEFAULT '';
        ALTER TABLE runs ADD COLUMN error_file TEXT NOT NULL DEFAULT '';
        ALTER TABLE runs ADD COLUMN error_field TEXT NOT NULL DEFAULT '';
        ALTER TABLE refreshes ADD COLUMN n_changed INTEGER;
        UPDATE studies SET query_status = status, query_reason = reason;
        CREATE INDEX refreshes_by_status ON refreshes(status, id);
        """,
    ),
    (
        "the GEO/ArrayExpress search is 'discover' (as the rule and config): its columns too",
        """
        ALTER TABLE studies RENAME COLUMN query_status TO discover_status;
        ALTER TABLE studies RENAME COLUMN query_reason TO discover_reason;
        UPDATE history SET field = 'discover_status'
            WHERE table_name = 'studies' AND field = 'query_status';
        """,
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)

# Columns whose changes are history; last_seen/updated move on every refresh and are not.
_TRACKED = {
    "studies": (
        "source",
        "title",
        "organism",
        "kind",
        "status",
        "reason",
        "metadata_sha256",
        "n_samples",
        "updated",
        "fingerprint",
        "discover_status",
        "supplementary",
        "error_file",
        "error_field",
    ),
    "samples": ("title", "organism", "status", "reason"),
    "runs": (
        "sample",
        "study",
        "layout",
        "alignment_rate",
        "status",
        "reason",
        "error_file",
        "error_field",
    ),
}
# The discover row of a study as studies.tsv holds it; the catalog keeps it so that a refresh
# that searches only a new date window still lists every study known before.
DISCOVER_FIELDS = (
    "n_samples",
    "submitted",
    "updated",
    "fingerprint",
    "discover_status",
    "discover_reason",
)


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def migrate(conn: sqlite3.Connection, migrations: list[tuple[str, str]] = MIGRATIONS) -> int:
    """Apply the migrations the database has not seen, in order; return the new version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise InputError(
            f"catalog schema version {version} is newer than this scatlas ({len(migrations)}); upgrade scatlas",
            field="PRAGMA user_version",
        )
    for number, (_, sql) in enumerate(migrations[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in (s.strip() for s in sql.split(";")):
                if statement:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return conn.execute("PRAGMA user_version").fetchone()[0]


class Catalog:
    """The catalog database. Use as a context manager::

    with Catalog("results/catalog.sqlite") as cat, cat.transaction():
        cat.upsert_study("GSE93374", source="geo", ..., status="ok", reason="...")
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        busy_timeout_ms: int = 30000,
        now: Callable[[], str] = utc_now,
        migrations: list[tuple[str, str]] = MIGRATIONS,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._now = now
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=busy_timeout_ms / 1000
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._depth = 0
        self._lock = threading.RLock()
        self.version = migrate(self._conn, migrations)

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (nested calls join the outer one)."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self._conn
            except BaseException:
                self._depth -= 1
                if outer:
                    self._conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._conn.execute("COMMIT")

    # -- helpers --------------------------------------------------------------------------
    @staticmethod
    def _check(status: str, reason: str, what: str) -> None:
        if status not in STATUSES:
            raise InputError(
                f"{what}: status {status!r} is not one of {', '.join(STATUSES)}", field="status"
            )
        if not str(reason or "").strip():
            raise InputError(f"{what}: every row needs a human-readable reason", field="reason")

    def _upsert(
        self,
        table: str,
        key: Mapping[str, Any],
        values: dict[str, Any],
        *,
        insert_only: dict[str, Any],
    ) -> str:
        """Insert or update one row; record changed tracked fields in history.

        Returns "inserted", "updated" or "unchanged".
        """
        where = " AND ".join(f"{k} = ?" for k in key)
        key_text = "/".join(str(v) for v in key.values())
        now = self._now()
        with self.transaction() as conn:
            old = conn.execute(
                f"SELECT * FROM {table} WHERE {where}", tuple(key.values())
            ).fetchone()
            if old is None:
                row = {**key, **values, **insert_only}
                cols = ", ".join(row)
                conn.execute(
                    f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(row))})",
                    tuple(row.values()),
                )
                self._history(conn, table, key_text, "status", None, values.get("status"), now)
                return "inserted"
            changed = [
                f for f in _TRACKED[table] if f in values and _text(old[f]) != _text(values[f])
            ]
            sets = ", ".join(f"{k} = ?" for k in values)
            conn.execute(
                f"UPDATE {table} SET {sets} WHERE {where}", (*values.values(), *key.values())
            )
            for f in changed:
                self._history(conn, table, key_text, f, old[f], values[f], now)
            return "updated" if changed else "unchanged"

    @staticmethod
    def _history(
        conn: sqlite3.Connection, table: str, key: str, field: str, old: Any, new: Any, now: str
    ) -> None:
        conn.execute(
            "INSERT INTO history (table_name, key, field, old, new, changed_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                table,
                key,
                field,
                None if old is None else _text(old),
                None if new is None else _text(new),
                now,
            ),
        )

    # -- writes ---------------------------------------------------------------------------
    def upsert_study(
        self,
        study: str,
        *,
        source: str,
        title: str = "",
        organism: str = "",
        kind: str = "",
        status: str,
        reason: str,
        metadata_sha256: str = "",
        **extra: Any,
    ) -> str:
        """Insert or update a study. ``extra`` may set the schema-3 columns (the discover row:
        n_samples, submitted, updated, fingerprint, discover_status, discover_reason; and
        supplementary, error_file, error_field); those not given are left as they are."""
        self._check(status, reason, f"study {study}")
        allowed = set(DISCOVER_FIELDS) | {"supplementary", "error_file", "error_field"}
        unknown = sorted(set(extra) - allowed)
        if unknown:
            raise InputError(f"study {study}: unknown column(s) {unknown}", field=unknown[0])
        now = self._now()
        values: dict[str, Any] = {
            "source": source,
            "title": title or "",
            "organism": organism or "",
            "kind": kind or "",
            "status": status,
            "reason": reason,
            "last_seen": now,
        }
        if metadata_sha256:
            values["metadata_sha256"] = metadata_sha256
        for key, value in extra.items():
            if value is not None:
                values[key] = int(value or 0) if key == "n_samples" else str(value)
        return self._upsert("studies", {"study": study}, values, insert_only={"first_seen": now})

    def upsert_sample(
        self,
        study: str,
        sample: str,
        *,
        title: str = "",
        organism: str = "",
        status: str,
        reason: str,
    ) -> str:
        self._check(status, reason, f"sample {study}/{sample}")
        values = {
            "title": title or "",
            "organism": organism or "",
            "status": status,
            "reason": reason,
        }
        return self._upsert("samples", {"study": study, "sample": sample}, values, insert_only={})

    def upsert_run(
        self,
        run: str,
        *,
        sample: str,
        study: str,
        layout: str = "",
        alignment_rate: float | None = None,
        status: str,
        reason: str,
        error_file: str | None = None,
        error_field: str | None = None,
    ) -> str:
        self._check(status, reason, f"run {run}")
        values: dict[str, Any] = {
            "sample": sample,
            "study": study,
            "layout": layout or "",
            "status": status,
            "reason": reason,
        }
        if alignment_rate is not None:
            values["alignment_rate"] = float(alignment_rate)
        if error_file is not None:
            values["error_file"] = error_file
        if error_field is not None:
            values["error_field"] = error_field
        values["updated"] = self._now()
        return self._upsert("runs", {"run": run}, values, insert_only={})

    def start_refresh(
        self,
        date_from: str | None = None,
        date_to: str | None = None,
        reason: str = "refresh started",
    ) -> int:
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO refreshes (started, status, date_from, date_to, reason) VALUES (?, 'new', ?, ?, ?)",
                (self._now(), date_from, date_to, reason),
            )
            return int(cur.lastrowid or 0)

    def finish_refresh(
        self,
        refresh_id: int,
        *,
        status: str,
        n_studies: int,
        n_new: int,
        reason: str,
        n_changed: int | None = None,
    ) -> None:
        self._check(status, reason, f"refresh {refresh_id}")
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE refreshes SET finished = ?, status = ?, n_studies = ?, n_new = ?, reason = ? WHERE id = ?",
                (self._now(), status, n_studies, n_new, reason, refresh_id),
            )
            if cur.rowcount != 1:
                raise InputError(f"no refresh with id {refresh_id}", field="refreshes.id")
            if n_changed is not None:
                conn.execute(
                    "UPDATE refreshes SET n_changed = ? WHERE id = ?", (n_changed, refresh_id)
                )

    def close_interrupted_refreshes(self, reason: str) -> int:
        """Mark refreshes that started but never finished (killed, crashed) as failed."""
        self._check("failed", reason, "interrupted refreshes")
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE refreshes SET status = 'failed', reason = ?, finished = ? "
                "WHERE status = 'new' AND finished IS NULL",
                (reason, self._now()),
            )
            return int(cur.rowcount)

    def last_refresh(self, status: str | None = "ok") -> dict[str, Any] | None:
        """The most recent refresh (with ``status``, or of any status when None)."""
        sql = "SELECT * FROM refreshes" + (" WHERE status = ?" if status else "")
        row = self._conn.execute(
            sql + " ORDER BY id DESC LIMIT 1", (status,) if status else ()
        ).fetchone()
        return dict(row) if row else None

    def known_studies(self) -> list[dict[str, Any]]:
        """Every study's last discover row, in the studies.tsv shape (status = discover's)."""
        if self.version < 3:
            return []
        rows = self._conn.execute(
            "SELECT study, source, title, organism, kind, n_samples, submitted, updated, "
            "discover_status AS status, discover_reason AS reason, fingerprint FROM studies "
            "WHERE discover_status <> '' ORDER BY study"
        )
        return [dict(r) for r in rows]

    def changes_since(self, since: str) -> dict[str, list[str]]:
        """Studies first seen at or after ``since`` (new) and studies whose upstream
        fingerprint changed since then (changed)."""
        new = [
            r[0]
            for r in self._conn.execute(
                "SELECT study FROM studies WHERE first_seen >= ? ORDER BY study", (since,)
            )
        ]
        changed = [
            r[0]
            for r in self._conn.execute(
                "SELECT DISTINCT key FROM history WHERE table_name = 'studies' AND "
                "field = 'fingerprint' AND old IS NOT NULL AND old <> '' AND changed_at >= ? "
                "ORDER BY key",
                (since,),
            )
            if r[0] not in new
        ]
        return {"new": new, "changed": changed}

    # -- reads ----------------------------------------------------------------------------
    def rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        if table not in ("studies", "samples", "runs", "refreshes", "history"):
            raise KeyError(table)
        clause = " AND ".join(f"{k} = ?" for k in where)
        sql = f"SELECT * FROM {table}" + (f" WHERE {clause}" if clause else "") + " ORDER BY rowid"
        return [dict(r) for r in self._conn.execute(sql, tuple(where.values()))]

    def history(self, table: str | None = None, key: str | None = None) -> list[dict[str, Any]]:
        where = {k: v for k, v in (("table_name", table), ("key", key)) if v is not None}
        return self.rows("history", **where)

    def summary(self) -> dict[str, Any]:
        """Counts per table and status, plus the last refresh."""
        out: dict[str, Any] = {}
        for table in ("studies", "samples", "runs"):
            counts = dict.fromkeys(STATUSES, 0)
            for status, n in self._conn.execute(
                f"SELECT status, COUNT(*) FROM {table} GROUP BY status"
            ):
                counts[status] = n
            out[table] = {"total": sum(counts.values()), **counts}
        last = self._conn.execute("SELECT * FROM refreshes ORDER BY id DESC LIMIT 1").fetchone()
        out["refreshes"] = self._conn.execute("SELECT COUNT(*) FROM refreshes").fetchone()[0]
        out["last_refresh"] = dict(last) if last else None
        out["schema_version"] = self.version
        return out


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)
