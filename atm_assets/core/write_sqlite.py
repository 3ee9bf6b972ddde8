"""SQLite writes: one prepared upsert or insert, executemany, in the caller's transaction."""

from __future__ import annotations

import pandas as pd
from sqlalchemy.engine import Connection

from atm_assets.core.datasets import SYNC_COMMIT, SYNCED_AT
from atm_assets.core.errors import AppendConflictError
from atm_assets.core.keys import key_text
from atm_assets.core.writer import TableWriter, WriteCounts, frame_rows, now_utc


class SqliteIntervals:
    """Upsert rewrites only rows that changed (`WHERE … IS NOT excluded…`); append refuses keys
    that exist, naming them, before writing any row of the interval."""

    def __init__(self, writer: TableWriter, mode: str) -> None:
        self.w = writer
        self.mode = mode
        fields = writer.spec.fields
        cols = ", ".join(f'"{c}"' for c in [*fields, SYNCED_AT, SYNC_COMMIT])
        marks = ", ".join("?" for _ in range(len(fields) + 2))
        self.sql = f"INSERT INTO {writer.sql_name} ({cols}) VALUES ({marks})"
        if mode == "upsert":
            data_cols = [c for c in fields if c not in writer.key]
            sets = ", ".join(
                f'"{c}" = excluded."{c}"' for c in [*data_cols, SYNCED_AT, SYNC_COMMIT]
            )
            changed = " OR ".join(f'"{c}" IS NOT excluded."{c}"' for c in data_cols)
            keys = ", ".join(f'"{k}"' for k in writer.key)
            self.sql += f" ON CONFLICT ({keys}) DO UPDATE SET {sets} WHERE {changed}"

    def write(self, conn: Connection, rows: pd.DataFrame, commit_id: str) -> WriteCounts:
        w = self.w
        rows = rows.drop_duplicates(w.key, keep="last")
        existing = w.existing_keys(conn, rows)
        if self.mode == "append" and existing:
            shown = [key_text(k) for k in existing[:20]]
            raise AppendConflictError(w.qualified_name, shown, len(existing))
        tail = (now_utc().replace(tzinfo=None).isoformat(sep=" "), commit_id)
        values = frame_rows(rows, w.spec.fields, w.spec.date_columns)
        params = [r + tail for r in values]
        result = conn.exec_driver_sql(self.sql, params)
        inserted = len(values) - len(existing)
        updated = max(0, result.rowcount - inserted) if self.mode == "upsert" else 0
        return WriteCounts(inserted, updated, len(existing) - updated)
