"""PostgreSQL writes, set-based: COPY straight into the table, or COPY to a stage and merge."""

from __future__ import annotations

import pandas as pd
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from atm_assets.core.datasets import SYNC_COMMIT, SYNCED_AT
from atm_assets.core.errors import AppendConflictError, DataValidationError
from atm_assets.core.keys import key_text
from atm_assets.core.pg_copy import copy_frame
from atm_assets.core.writer import PG_TYPES, Row, TableWriter, WriteCounts, now_utc


class PostgresIntervals:
    """An interval is first COPYed straight into the table, as fast as a raw COPY, under a
    savepoint; if a key already exists that COPY fails at the first such row, is rolled back,
    and the interval goes through a temporary staging table and one INSERT … ON CONFLICT DO
    UPDATE that rewrites only changed rows — as do the task's later intervals, since a key met
    once means more are likely. Append never stages: a key that exists is an error (the task
    checked every key up front, so this means a race)."""

    def __init__(self, writer: TableWriter, mode: str) -> None:
        self.w = writer
        self.mode = mode
        self.try_direct = True

    def write(self, conn: Connection, rows: pd.DataFrame, commit_id: str) -> WriteCounts:
        w = self.w
        repeats = bool(rows.duplicated(w.key).any())
        if self.mode == "append" and repeats:
            raise DataValidationError(
                f"append into {w.qualified_name}: the same key appears twice in one interval"
            )
        if self.mode == "append" or (self.try_direct and not repeats):
            counts = self._copy_direct(conn, rows, commit_id)
            if counts is not None:
                return counts
            self.try_direct = False
        return self._stage_and_apply(conn, rows, commit_id, repeats)

    def _conflict(self, keys: list[Row]) -> AppendConflictError:
        return AppendConflictError(
            self.w.qualified_name, [key_text(k) for k in keys[:20]], len(keys)
        )

    def _copy_direct(
        self, conn: Connection, rows: pd.DataFrame, commit_id: str
    ) -> WriteCounts | None:
        w = self.w
        extra = [(SYNCED_AT, "timestamptz", now_utc()), (SYNC_COMMIT, "text", commit_id)]
        savepoint = conn.begin_nested()
        try:
            copy_frame(conn, w.sql_name, w.copy_columns, rows, extra)
        except (sa.exc.IntegrityError, psycopg.IntegrityError):
            # COPY runs on the raw cursor, so the driver's own error arrives unwrapped.
            savepoint.rollback()
            if self.mode == "append":
                keys = w.existing_keys(conn, rows)
                if not keys:
                    raise
                raise self._conflict(keys) from None
            return None
        savepoint.commit()
        return WriteCounts(inserted=len(rows))

    def _stage_and_apply(
        self, conn: Connection, rows: pd.DataFrame, commit_id: str, repeats: bool
    ) -> WriteCounts:
        w = self.w
        stage = f"atm_stage_{w.table.name}"
        cols = ", ".join(f'"{c.name}" {PG_TYPES[c.type]}' for c in w.spec.columns)
        # ON COMMIT DELETE ROWS: every interval starts from an empty stage.
        conn.exec_driver_sql(
            f'CREATE TEMP TABLE IF NOT EXISTS "{stage}" ({cols}, _seq bigserial) '
            "ON COMMIT DELETE ROWS"
        )
        copy_frame(conn, f'"{stage}"', w.copy_columns, rows)
        source_cols = ", ".join(f's."{f}"' for f in w.spec.fields)
        source = f'SELECT {source_cols}, %(now)s, %(cid)s FROM "{stage}" s'
        if repeats:
            keys = ", ".join(f's."{k}"' for k in w.key)
            # A repeated key: the last staged version wins.
            source = (
                f'SELECT DISTINCT ON ({keys}) {source_cols}, %(now)s, %(cid)s FROM "{stage}" s '
                f"ORDER BY {keys}, s._seq DESC"
            )
        all_cols = ", ".join(f'"{c}"' for c in [*w.spec.fields, SYNCED_AT, SYNC_COMMIT])
        key_cols = ", ".join(f'"{k}"' for k in w.key)
        data_cols = [c for c in w.spec.fields if c not in w.key]
        sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in [*data_cols, SYNCED_AT, SYNC_COMMIT])
        old = ", ".join(f't."{c}"' for c in data_cols)
        new = ", ".join(f'EXCLUDED."{c}"' for c in data_cols)
        row = conn.exec_driver_sql(
            f"WITH up AS (INSERT INTO {w.sql_name} AS t ({all_cols}) {source} "
            f"ON CONFLICT ({key_cols}) DO UPDATE SET {sets} "
            f"WHERE ({old}) IS DISTINCT FROM ({new}) "
            "RETURNING (t.xmax = 0) AS inserted) "
            "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) "
            "FROM up",
            {"now": now_utc(), "cid": commit_id},
        ).one()
        inserted, updated = int(row[0]), int(row[1])
        distinct = int((~rows.duplicated(w.key, keep="last")).sum()) if repeats else len(rows)
        return WriteCounts(inserted, updated, distinct - inserted - updated)
