"""SQLite: the embedded default. Multi-row upserts or inserts in the caller's transaction."""

from __future__ import annotations

import sqlite3
from typing import Any, ClassVar

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection, Engine

from atm_assets.core.datasets import SYNC_COMMIT, SYNCED_AT
from atm_assets.core.dialects.base import EmbeddedDialect, Group, one_by_one
from atm_assets.core.errors import AppendConflictError
from atm_assets.core.keys import key_text
from atm_assets.core.tables import Row, TableRef, WriteCounts, frame_rows, now_utc

# A temporary (per connection) table of one row: inserts counted by the trigger.
_COUNTER = "atm_inserted_rows"
# Rows per INSERT statement, at most (and as the connection's variable limit allows).
ROWS_PER_STATEMENT = 2000


def insert_rows(conn: Connection, head: str, tail: str, rows: list[Row], width: int) -> int:
    """`head VALUES (…), (…) tail` over `rows` of `width` values, in as few statements as the
    variable limit allows; the rows changed. Not executemany: it releases and retakes the GIL
    for every row, and while other threads parse answers each retake waits up to a switch
    interval (5 ms), turning 30 ms for 5,000 rows into seconds."""
    raw = conn.connection.driver_connection
    limit = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if raw is not None else 999
    per = max(1, min(ROWS_PER_STATEMENT, limit // width))
    row_marks = "(" + ", ".join("?" * width) + ")"
    changed = 0
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        marks = ", ".join([row_marks] * len(chunk))
        params = tuple(v for row in chunk for v in row)
        changed += conn.exec_driver_sql(f"{head} VALUES {marks}{tail}", params).rowcount
    return changed


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (state list, downstream assets) work while a sync writes;
    # synchronous=NORMAL in WAL mode is still safe against a killed process.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


class SqliteDialect(EmbeddedDialect):
    name: ClassVar[str] = "sqlite"
    title: ClassVar[str] = "SQLite"

    def create_engine(self, url: URL, connect_timeout: int) -> Engine:
        engine = sa.create_engine(url, connect_args={"timeout": 60})
        sa.event.listen(engine, "connect", _pragmas)
        return engine

    def connect_args(self, connect_timeout: int) -> dict[str, Any]:
        return {"timeout": 60}

    def insert(self, table: sa.Table) -> Any:
        return sqlite_insert(table)

    def existing_keys(self, conn: Connection, table: TableRef, frame: pd.DataFrame) -> list[Row]:
        # Keys go into a temporary table by multi-row inserts and meet the table's primary key in
        # one join: SQL-compiled IN lists of a few hundred keys each cost ~0.3 s per 5,000 rows.
        if frame.empty:
            return []
        keys_table = f"atm_keys_{table.table.name}"
        key = table.key
        key_cols = ", ".join(f'"{k}"' for k in key)
        keys = frame_rows(frame, key)
        stored = dict(zip(frame_rows(frame, key, table.spec.date_columns), keys, strict=True))
        conn.exec_driver_sql(f'CREATE TEMP TABLE IF NOT EXISTS "{keys_table}" ({key_cols})')
        conn.exec_driver_sql(f'DELETE FROM "{keys_table}"')
        insert_rows(conn, f'INSERT INTO "{keys_table}"', "", list(stored), len(key))
        picked = ", ".join(f'k."{c}"' for c in key)
        match = " AND ".join(f'k."{c}" = t."{c}"' for c in key)
        found = conn.exec_driver_sql(
            f'SELECT {picked} FROM "{keys_table}" k JOIN {table.sql_name} t ON {match}'
        ).fetchall()
        conn.exec_driver_sql(f'DELETE FROM "{keys_table}"')
        return sorted(stored[tuple(r)] for r in found)

    def intervals(self, table: TableRef, mode: str) -> SqliteIntervals:
        return SqliteIntervals(self, table, mode)


class SqliteIntervals:
    """Upsert rewrites only rows that changed (`WHERE … IS NOT excluded…`); append refuses keys
    that exist, naming them, before writing any row of the interval; replace inserts every row
    (its caller emptied the partition in the same transaction; a table may have no key)."""

    def __init__(self, dialect: SqliteDialect, table: TableRef, mode: str) -> None:
        self.dialect = dialect
        self.t = table
        self.mode = mode
        fields = table.spec.fields
        self.width = len(fields) + 2
        cols = ", ".join(f'"{c}"' for c in [*fields, SYNCED_AT, SYNC_COMMIT])
        self.head = f"INSERT INTO {table.sql_name} ({cols})"
        self.tail = ""
        if mode == "upsert":
            data_cols = [c for c in fields if c not in table.key]
            sets = ", ".join(
                f'"{c}" = excluded."{c}"' for c in [*data_cols, SYNCED_AT, SYNC_COMMIT]
            )
            changed = " OR ".join(f'"{c}" IS NOT excluded."{c}"' for c in data_cols)
            keys = ", ".join(f'"{k}"' for k in table.key)
            self.tail = f" ON CONFLICT ({keys}) DO UPDATE SET {sets} WHERE {changed}"

    def write_many(self, conn: Connection, group: Group, commit_id: str) -> list[WriteCounts]:
        return one_by_one(self, conn, group, commit_id)

    def write(self, conn: Connection, rows: pd.DataFrame, commit_id: str) -> WriteCounts:
        t = self.t
        if self.mode != "replace":
            rows = rows.drop_duplicates(t.key, keep="last")
        if self.mode == "append":
            existing = self.dialect.existing_keys(conn, t, rows)
            if existing:
                shown = [key_text(k) for k in existing[:20]]
                raise AppendConflictError(t.qualified_name, shown, len(existing))
        elif self.mode == "upsert":
            self._count_inserts(conn)
        tail = (now_utc().replace(tzinfo=None).isoformat(sep=" "), commit_id)
        values = [r + tail for r in frame_rows(rows, t.spec.fields, t.spec.date_columns)]
        changes = insert_rows(conn, self.head, self.tail, values, self.width)
        if self.mode in ("append", "replace"):
            return WriteCounts(inserted=len(values))
        # changes() counts rows inserted plus rows the DO UPDATE rewrote (changed ones only).
        inserted = int(conn.exec_driver_sql(f"SELECT n FROM {_COUNTER}").scalar_one())
        updated = changes - inserted
        return WriteCounts(inserted, updated, len(values) - inserted - updated)

    def _count_inserts(self, conn: Connection) -> None:
        """Zero this connection's insert counter, which a trigger raises for every row the
        upsert inserts (not for the ones it updates): the split costs no key lookups."""
        trigger = f'"atm_count_{self.t.table.name}"'
        conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {_COUNTER} (n INTEGER NOT NULL)")
        conn.exec_driver_sql(
            f"CREATE TEMP TRIGGER IF NOT EXISTS {trigger} AFTER INSERT ON main.{self.t.sql_name} "
            f"BEGIN UPDATE {_COUNTER} SET n = n + 1; END"
        )
        conn.exec_driver_sql(f"DELETE FROM {_COUNTER}")
        conn.exec_driver_sql(f"INSERT INTO {_COUNTER} VALUES (0)")


DIALECT = SqliteDialect()
