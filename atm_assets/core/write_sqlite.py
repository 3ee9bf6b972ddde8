"""SQLite writes: multi-row upserts or inserts, in the caller's transaction."""

from __future__ import annotations

import sqlite3

import pandas as pd
from sqlalchemy.engine import Connection

from atm_assets.core.datasets import SYNC_COMMIT, SYNCED_AT
from atm_assets.core.errors import AppendConflictError
from atm_assets.core.keys import key_text
from atm_assets.core.writer import Row, TableWriter, WriteCounts, frame_rows, now_utc

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


class SqliteIntervals:
    """Upsert rewrites only rows that changed (`WHERE … IS NOT excluded…`); append refuses keys
    that exist, naming them, before writing any row of the interval."""

    def __init__(self, writer: TableWriter, mode: str) -> None:
        self.w = writer
        self.mode = mode
        fields = writer.spec.fields
        self.width = len(fields) + 2
        cols = ", ".join(f'"{c}"' for c in [*fields, SYNCED_AT, SYNC_COMMIT])
        self.head = f"INSERT INTO {writer.sql_name} ({cols})"
        self.tail = ""
        if mode == "upsert":
            data_cols = [c for c in fields if c not in writer.key]
            sets = ", ".join(
                f'"{c}" = excluded."{c}"' for c in [*data_cols, SYNCED_AT, SYNC_COMMIT]
            )
            changed = " OR ".join(f'"{c}" IS NOT excluded."{c}"' for c in data_cols)
            keys = ", ".join(f'"{k}"' for k in writer.key)
            self.tail = f" ON CONFLICT ({keys}) DO UPDATE SET {sets} WHERE {changed}"

    def write(self, conn: Connection, rows: pd.DataFrame, commit_id: str) -> WriteCounts:
        w = self.w
        rows = rows.drop_duplicates(w.key, keep="last")
        if self.mode == "append":
            existing = w.existing_keys(conn, rows)
            if existing:
                shown = [key_text(k) for k in existing[:20]]
                raise AppendConflictError(w.qualified_name, shown, len(existing))
        else:
            self._count_inserts(conn)
        tail = (now_utc().replace(tzinfo=None).isoformat(sep=" "), commit_id)
        values = [r + tail for r in frame_rows(rows, w.spec.fields, w.spec.date_columns)]
        changes = insert_rows(conn, self.head, self.tail, values, self.width)
        if self.mode == "append":
            return WriteCounts(inserted=len(values))
        # changes() counts rows inserted plus rows the DO UPDATE rewrote (changed ones only).
        inserted = int(conn.exec_driver_sql(f"SELECT n FROM {_COUNTER}").scalar_one())
        updated = changes - inserted
        return WriteCounts(inserted, updated, len(values) - inserted - updated)

    def _count_inserts(self, conn: Connection) -> None:
        """Zero this connection's insert counter, which a trigger raises for every row the
        upsert inserts (not for the ones it updates): the split costs no key lookups."""
        trigger = f'"atm_count_{self.w.table.name}"'
        conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {_COUNTER} (n INTEGER NOT NULL)")
        conn.exec_driver_sql(
            f"CREATE TEMP TRIGGER IF NOT EXISTS {trigger} AFTER INSERT ON main.{self.w.sql_name} "
            f"BEGIN UPDATE {_COUNTER} SET n = n + 1; END"
        )
        conn.exec_driver_sql(f"DELETE FROM {_COUNTER}")
        conn.exec_driver_sql(f"INSERT INTO {_COUNTER} VALUES (0)")
