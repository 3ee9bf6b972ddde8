"""PostgreSQL: production. Set-based writes: COPY straight into the table, or COPY to a stage
and merge; session advisory locks; the rate governor's store shared by every host."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import pandas as pd
import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL, Connection, Engine

from atm_assets.core.datasets import SYNC_COMMIT, SYNCED_AT
from atm_assets.core.dialects import dialect_of
from atm_assets.core.dialects.base import Dialect, Group, SessionLocks, one_by_one
from atm_assets.core.errors import AppendConflictError, ConfigError, DataValidationError
from atm_assets.core.governor.stores import GovernorStore
from atm_assets.core.keys import key_text
from atm_assets.core.pg_copy import copy_csv
from atm_assets.core.settings import validate_identifier
from atm_assets.core.tables import Row, TableRef, WriteCounts, now_utc

# Column types of the temporary tables ATM stages rows in.
PG_TYPES = {"str": "text", "date": "date", "float": "double precision", "int": "bigint"}


class AdvisoryLocks:
    """Session-level advisory locks: the server drops them when the session ends."""

    def try_lock(self, conn: Connection, key: tuple[int, int]) -> bool:
        stmt = sa.text("SELECT pg_try_advisory_lock(:a, :b)")
        return bool(conn.execute(stmt, {"a": key[0], "b": key[1]}).scalar_one())

    def holds(self, conn: Connection, key: tuple[int, int]) -> bool:
        held = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND CAST(classid AS bigint) = :a "
                "AND CAST(objid AS bigint) = :b AND granted"
            ).bindparams(a=key[0] & 0xFFFFFFFF, b=key[1] & 0xFFFFFFFF)
        ).scalar_one()
        return bool(held)

    def unlock(self, conn: Connection, key: tuple[int, int]) -> None:
        conn.execute(sa.text("SELECT pg_advisory_unlock(:a, :b)"), {"a": key[0], "b": key[1]})


# A replace of more partitions than this locks its whole table: a lock per partition of a
# single-run backfill (thousands of days) would fill the server's shared lock table.
MAX_PARTITION_LOCKS = 64


def _replace_key(text: str) -> int:
    """A signed 64-bit advisory key: the one-number key space, apart from the (int, int) keys
    of task locks."""
    digest = hashlib.sha256(f"atm-replace:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresDialect(Dialect):
    name: ClassVar[str] = "postgresql"
    title: ClassVar[str] = "PostgreSQL"
    default_port: ClassVar[int | None] = 5432
    has_schemas: ClassVar[bool] = True
    server: ClassVar[bool] = True
    session_locks: ClassVar[SessionLocks | None] = AdvisoryLocks()

    def driver_url(self, url: URL) -> URL:
        # ATM writes through psycopg 3 (its COPY), whatever driver the URL names.
        return url.set(drivername="postgresql+psycopg")

    def create_engine(self, url: URL, connect_timeout: int) -> Engine:
        return sa.create_engine(
            url,
            pool_pre_ping=True,
            connect_args={"connect_timeout": connect_timeout, "application_name": "atm"},
        )

    def connect_args(self, connect_timeout: int) -> dict[str, Any]:
        return {"connect_timeout": connect_timeout, "application_name": "atm-lock"}

    def governor_store(self, engine: Engine, schema: str | None) -> GovernorStore:
        return PostgresStore(engine, schema)

    def insert(self, table: sa.Table) -> Any:
        return pg_insert(table)

    def serialise_replace(
        self, conn: Connection, table: str, partitions: Sequence[str] | None
    ) -> None:
        # Transaction-level advisory locks, freed by the commit or rollback (or the session's
        # end). Under READ COMMITTED the DELETE that follows takes its snapshot after the
        # wait, so a second replace deletes the first's committed rows instead of adding its
        # own beside them. The table's key is taken first, shared by partition replaces and
        # exclusive for a whole-table one; partition keys in sorted order: no deadlock.
        lock = sa.text("SELECT pg_advisory_xact_lock(:key)")
        whole = partitions is None or len(partitions) > MAX_PARTITION_LOCKS
        if whole:
            conn.execute(lock, {"key": _replace_key(table)})
            return
        assert partitions is not None
        shared = sa.text("SELECT pg_advisory_xact_lock_shared(:key)")
        conn.execute(shared, {"key": _replace_key(table)})
        for key in sorted({_replace_key(f"{table}|{p}") for p in partitions}):
            conn.execute(lock, {"key": key})

    def existing_keys(self, conn: Connection, table: TableRef, frame: pd.DataFrame) -> list[Row]:
        # One COPY and one indexed join instead of a query per batch.
        if frame.empty:
            return []
        keys_table = f"atm_keys_{table.table.name}"
        spec = table.spec
        cols = ", ".join(f'"{k}" {PG_TYPES[spec.column(k).type]}' for k in table.key)
        key_cols = ", ".join(f'"{k}"' for k in table.key)
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{keys_table}"')
        conn.exec_driver_sql(f'CREATE TEMP TABLE "{keys_table}" ({cols})')
        columns = [(k, spec.column(k).type) for k in table.key]
        copy_csv(conn, f'"{keys_table}"', columns, frame)
        rows = conn.exec_driver_sql(
            f'SELECT {key_cols} FROM "{keys_table}" JOIN {table.sql_name} USING ({key_cols}) '
            f"ORDER BY {key_cols}"
        ).fetchall()
        conn.exec_driver_sql(f'DROP TABLE "{keys_table}"')
        return [tuple(r) for r in rows]

    def intervals(self, table: TableRef, mode: str) -> PostgresIntervals:
        return PostgresIntervals(self, table, mode)


class PostgresIntervals:
    """An interval is first COPYed straight into the table, as fast as a raw COPY, under a
    savepoint; if a key already exists that COPY fails at the first such row, is rolled back,
    and the interval goes through a temporary staging table and one INSERT … ON CONFLICT DO
    UPDATE that rewrites only changed rows — as do the task's later intervals, since a key met
    once means more are likely. Append never stages: a key that exists is an error (the task
    checked every key up front, so this means a race)."""

    def __init__(self, dialect: PostgresDialect, table: TableRef, mode: str) -> None:
        self.dialect = dialect
        self.t = table
        self.mode = mode
        self.try_direct = True

    def write_many(self, conn: Connection, group: Group, commit_id: str) -> list[WriteCounts]:
        return one_by_one(self, conn, group, commit_id)

    def write(self, conn: Connection, rows: pd.DataFrame, commit_id: str) -> WriteCounts:
        if self.mode == "replace":
            # The caller emptied the partition in this transaction: every row goes in as is
            # (a table may have no key, and its repeated rows are data).
            t = self.t
            extra = [(SYNCED_AT, now_utc()), (SYNC_COMMIT, commit_id)]
            copy_csv(conn, t.sql_name, t.copy_columns, rows, extra)
            return WriteCounts(inserted=len(rows))
        repeats = bool(rows.duplicated(self.t.key).any())
        if self.mode == "append" and repeats:
            raise DataValidationError(
                f"append into {self.t.qualified_name}: the same key appears twice in one interval"
            )
        if self.mode == "append" or (self.try_direct and not repeats):
            counts = self._copy_direct(conn, rows, commit_id)
            if counts is not None:
                return counts
            self.try_direct = False
        return self._stage_and_apply(conn, rows, commit_id, repeats)

    def _conflict(self, keys: list[Row]) -> AppendConflictError:
        return AppendConflictError(
            self.t.qualified_name, [key_text(k) for k in keys[:20]], len(keys)
        )

    def _copy_direct(
        self, conn: Connection, rows: pd.DataFrame, commit_id: str
    ) -> WriteCounts | None:
        t = self.t
        extra = [(SYNCED_AT, now_utc()), (SYNC_COMMIT, commit_id)]
        savepoint = conn.begin_nested()
        try:
            copy_csv(conn, t.sql_name, t.copy_columns, rows, extra)
        except (sa.exc.IntegrityError, psycopg.IntegrityError):
            # COPY runs on the raw cursor, so the driver's own error arrives unwrapped.
            savepoint.rollback()
            if self.mode == "append":
                keys = self.dialect.existing_keys(conn, t, rows)
                if not keys:
                    raise
                raise self._conflict(keys) from None
            return None
        savepoint.commit()
        return WriteCounts(inserted=len(rows))

    def _stage_and_apply(
        self, conn: Connection, rows: pd.DataFrame, commit_id: str, repeats: bool
    ) -> WriteCounts:
        t = self.t
        stage = f"atm_stage_{t.table.name}"
        cols = ", ".join(f'"{c.name}" {PG_TYPES[c.type]}' for c in t.spec.columns)
        # ON COMMIT DELETE ROWS: every interval starts from an empty stage.
        conn.exec_driver_sql(
            f'CREATE TEMP TABLE IF NOT EXISTS "{stage}" ({cols}, _seq bigserial) '
            "ON COMMIT DELETE ROWS"
        )
        copy_csv(conn, f'"{stage}"', t.copy_columns, rows)
        fields = t.spec.fields
        source_cols = ", ".join(f's."{f}"' for f in fields)
        source = f'SELECT {source_cols}, %(now)s, %(cid)s FROM "{stage}" s'
        if repeats:
            keys = ", ".join(f's."{k}"' for k in t.key)
            # A repeated key: the last staged version wins.
            source = (
                f'SELECT DISTINCT ON ({keys}) {source_cols}, %(now)s, %(cid)s FROM "{stage}" s '
                f"ORDER BY {keys}, s._seq DESC"
            )
        all_cols = ", ".join(f'"{c}"' for c in [*fields, SYNCED_AT, SYNC_COMMIT])
        key_cols = ", ".join(f'"{k}"' for k in t.key)
        data_cols = [c for c in fields if c not in t.key]
        sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in [*data_cols, SYNCED_AT, SYNC_COMMIT])
        old = ", ".join(f't."{c}"' for c in data_cols)
        new = ", ".join(f'EXCLUDED."{c}"' for c in data_cols)
        row = conn.exec_driver_sql(
            f"WITH up AS (INSERT INTO {t.sql_name} AS t ({all_cols}) {source} "
            f"ON CONFLICT ({key_cols}) DO UPDATE SET {sets} "
            f"WHERE ({old}) IS DISTINCT FROM ({new}) "
            "RETURNING (t.xmax = 0) AS inserted) "
            "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) "
            "FROM up",
            {"now": now_utc(), "cid": commit_id},
        ).one()
        inserted, updated = int(row[0]), int(row[1])
        distinct = int((~rows.duplicated(t.key, keep="last")).sum()) if repeats else len(rows)
        return WriteCounts(inserted, updated, distinct - inserted - updated)


DIALECT = PostgresDialect()


class PostgresStore(GovernorStore):
    """Every host: tables in the target PostgreSQL database, admission serialised per API with
    `pg_advisory_xact_lock`, and the server's clock so hosts with skewed clocks agree."""

    def __init__(self, engine: Engine, schema: str | None = None) -> None:
        dialect = dialect_of(engine)
        if not isinstance(dialect, PostgresDialect):
            raise ConfigError(f"the cluster governor store needs PostgreSQL, not {dialect.title}")
        super().__init__(engine, validate_identifier(schema, "database schema") if schema else None)

    def describe(self) -> str:
        where = f"schema {self.schema}" if self.schema else "the default schema"
        url = self.engine.url
        return f"PostgreSQL {url.host}:{url.port or 5432}/{url.database}, {where}"

    @contextmanager
    def _transaction(self, key: str | None) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            # READ COMMITTED takes a snapshot per statement, so reads after the lock see what
            # the previous holder committed; a stricter level would snapshot before the wait.
            conn.execution_options(isolation_level="READ COMMITTED")
            with conn.begin():
                if key is not None:
                    a, b = _governor_key(f"{self.schema}.{key}")
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(a, b)))
                yield conn

    def _now(self, conn: Connection) -> float:
        return float(
            conn.execute(sa.text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one()
        )

    def _create_schema(self, conn: Connection) -> None:
        if self.schema is not None:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))

    def _insert(self, table: sa.Table) -> Any:
        return pg_insert(table)


def _governor_key(name: str) -> tuple[int, int]:
    digest = hashlib.sha256(f"atm-governor:{name}".encode()).digest()
    return (
        int.from_bytes(digest[:4], "big", signed=True),
        int.from_bytes(digest[4:8], "big", signed=True),
    )
