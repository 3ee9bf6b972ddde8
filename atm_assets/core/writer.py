"""A dataset's table: DDL, reads and key probes; writes go through a per-dialect strategy."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from atm_assets.core.datasets import SYNC_COMMIT, SYNCED_AT, TableSpec
from atm_assets.core.db import create_tables, insert_for, validate_identifier
from atm_assets.core.errors import ConfigError, DataValidationError
from atm_assets.core.pg_copy import copy_frame
from atm_assets.core.settings import MODES

if TYPE_CHECKING:
    from atm_assets.core.settings import Mode

_SQL_TYPES: dict[str, Callable[[], sa.types.TypeEngine[Any]]] = {
    "str": sa.Text,
    "date": sa.Date,
    "float": lambda: sa.Float(precision=53),
    "int": sa.BigInteger,
}
PG_TYPES = {"str": "text", "date": "date", "float": "double precision", "int": "bigint"}

Row = tuple[Any, ...]
# One row per table ATM writes: an id that is new whenever the table is created anew, so a
# checkpoint saved for one table is never used against another that has the same name.
REGISTRY_TABLE = "ingestion_tables"


def build_table(
    spec: TableSpec, schema: str | None, metadata: sa.MetaData, name: str | None = None
) -> sa.Table:
    """The SQLAlchemy table for a spec: one column per field, the key as primary key."""
    table_name = validate_identifier(name or spec.name, "table name")
    columns = [
        sa.Column(
            c.name,
            _SQL_TYPES[c.type](),
            primary_key=c.name in spec.key,
            nullable=c.nullable and c.name not in spec.key,
        )
        for c in spec.columns
    ]
    columns.append(sa.Column(SYNCED_AT, sa.DateTime(timezone=True), nullable=False))
    columns.append(sa.Column(SYNC_COMMIT, sa.Text, nullable=True))
    return sa.Table(table_name, metadata, *columns, schema=schema)


@dataclass
class WriteCounts:
    """What one interval (or a whole task) did to the table."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def saved(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def __iadd__(self, other: WriteCounts) -> WriteCounts:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        return self


class Intervals(Protocol):
    """How one task's checkpoint intervals get into the table (a strategy per dialect)."""

    def write(self, conn: Connection, rows: pd.DataFrame, commit_id: str) -> WriteCounts:
        """Write `rows` inside the caller's open transaction on `conn`, stamped `commit_id`."""
        ...


def sqlite_value(value: Any) -> Any:
    """A value as SQLite stores it: dates the way SQLAlchemy's Date type reads them back."""
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def frame_rows(
    frame: pd.DataFrame, columns: Sequence[str], dates_as_text: Collection[str] = ()
) -> list[Row]:
    """Plain tuples in `columns` order (column lists zipped: far cheaper than itertuples); the
    `dates_as_text` columns hold their dates as SQLite stores them."""
    lists = [
        [sqlite_value(v) for v in frame[c].tolist()] if c in dates_as_text else frame[c].tolist()
        for c in columns
    ]
    return list(zip(*lists, strict=True))


class TableWriter:
    """One dataset's table; all DDL and DML on it goes through here."""

    def __init__(
        self, engine: Engine, spec: TableSpec, schema: str | None = None, name: str | None = None
    ) -> None:
        self.engine = engine
        self.spec = spec
        self.schema = validate_identifier(schema, "database schema") if schema else None
        self.dialect = engine.dialect.name
        if self.dialect == "sqlite" and self.schema:
            raise ConfigError("SQLite has no schemas: leave the schema unset for SQLite")
        self.metadata = sa.MetaData()
        self.table = build_table(spec, self.schema, self.metadata, name)
        self.registry = sa.Table(
            REGISTRY_TABLE,
            self.metadata,
            sa.Column("table_name", sa.Text, primary_key=True),
            sa.Column("table_id", sa.Text, nullable=False),
            sa.Column("created_at", sa.Text, nullable=False),
            schema=self.schema,
        )
        self.key = list(spec.key)
        self._table_id: str | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table.name}" if self.schema else self.table.name

    @property
    def sql_name(self) -> str:
        """The quoted (and checked) table name for hand-written SQL."""
        t = self.table
        return f'"{t.schema}"."{t.name}"' if t.schema else f'"{t.name}"'

    @property
    def copy_columns(self) -> list[tuple[str, str]]:
        return [(c.name, c.type) for c in self.spec.columns]

    def ensure_table(self) -> None:
        """Create schema and table if missing; safe to call from concurrent processes."""
        existed = self.exists()
        create_tables(self.engine, self.metadata, self.schema, [self.table, self.registry])
        self._table_id = self._register(renew=not existed)

    @property
    def table_id(self) -> str:
        """The id of this incarnation of the table (ensure_table first)."""
        if self._table_id is None:
            self.ensure_table()
        assert self._table_id is not None
        return self._table_id

    def _register(self, renew: bool) -> str:
        """The table's id; a new one when the table was just created (it may have been dropped
        and created again, or this is another database than last time). Reads alone when the
        id exists: a write would wait behind any sync holding SQLite's write lock."""
        reg = self.registry
        select = sa.select(reg.c.table_id).where(reg.c.table_name == self.table.name)
        if not renew:
            with self.engine.connect() as conn:
                found = conn.execute(select).scalar_one_or_none()
            if found is not None:
                return str(found)
        with self.engine.begin() as conn:
            if renew:
                conn.execute(sa.delete(reg).where(reg.c.table_name == self.table.name))
            stmt = insert_for(conn)(reg).values(
                table_name=self.table.name,
                table_id=uuid.uuid4().hex,
                created_at=now_utc().isoformat(timespec="seconds"),
            )
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["table_name"]))
            return str(conn.execute(select).scalar_one())

    def has_key(self, key: str) -> bool | None:
        """Whether the row with key text `key` ("000001.SZ|2024-01-02") is in the table; None
        when the text cannot be read back into the key's columns."""
        from atm_assets.core.keys import SEPARATOR

        parts = key.split(SEPARATOR)
        if len(parts) != len(self.key):
            return None
        try:
            values = [
                _parse_key_part(self.spec.column(c).type, v)
                for c, v in zip(self.key, parts, strict=True)
            ]
        except ValueError:
            return None
        stmt = sa.select(sa.literal(1)).limit(1)
        for column, value in zip(self.key, values, strict=True):
            stmt = stmt.where(self.table.c[column] == value)
        with self.engine.connect() as conn:
            return conn.execute(stmt).first() is not None

    def exists(self) -> bool:
        return sa.inspect(self.engine).has_table(self.table.name, schema=self.schema)

    def count(self, conn: Connection | None = None) -> int:
        stmt = sa.select(sa.func.count()).select_from(self.table)
        if conn is not None:
            return int(conn.execute(stmt).scalar_one())
        with self.engine.connect() as c:
            return int(c.execute(stmt).scalar_one())

    def commit_exists(self, conn: Connection, commit_id: str) -> bool:
        stmt = sa.select(sa.literal(1)).where(self.table.c[SYNC_COMMIT] == commit_id).limit(1)
        return conn.execute(stmt).first() is not None

    def read(
        self, where: dict[str, list[Any]] | None = None, with_bookkeeping: bool = False
    ) -> pd.DataFrame:
        """Rows of the table (optionally filtered by column values), ordered by key."""
        cols = [self.table.c[f] for f in self.spec.fields]
        if with_bookkeeping:
            cols += [self.table.c[SYNCED_AT], self.table.c[SYNC_COMMIT]]
        stmt = sa.select(*cols).order_by(*[self.table.c[k] for k in self.key])
        for column, values in (where or {}).items():
            stmt = stmt.where(self.table.c[column].in_(values))
        with self.engine.connect() as conn:
            result = conn.execute(stmt)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()), dtype=object)

    def may_hold_keys_of(self, conn: Connection, frame: pd.DataFrame) -> bool:
        """Cheap pre-test (one index range probe): False means no key of `frame` is in the
        table, so the full key check can be skipped — a first load pays nothing for it."""
        if frame.empty:
            return False
        # Bounds on the leading key column: any stored key of the frame lies between them.
        lead = frame[self.key[0]]
        column = self.table.c[self.key[0]]
        stmt = sa.select(sa.literal(1)).where(column.between(lead.min(), lead.max())).limit(1)
        return conn.execute(stmt).first() is not None

    def existing_keys(self, conn: Connection, frame: pd.DataFrame) -> list[Row]:
        """Keys of `frame` that are already in the table, sorted."""
        if frame.empty:
            return []
        if self.dialect == "postgresql":
            return self._existing_keys_pg(conn, frame)
        return self._existing_keys_sqlite(conn, frame)

    def _existing_keys_sqlite(self, conn: Connection, frame: pd.DataFrame) -> list[Row]:
        from atm_assets.core.write_sqlite import insert_rows

        # Keys go into a temporary table by multi-row inserts and meet the table's primary key in
        # one join: SQL-compiled IN lists of a few hundred keys each cost ~0.3 s per 5,000 rows.
        keys_table = f"atm_keys_{self.table.name}"
        key_cols = ", ".join(f'"{k}"' for k in self.key)
        keys = frame_rows(frame, self.key)
        stored = dict(zip(frame_rows(frame, self.key, self.spec.date_columns), keys, strict=True))
        conn.exec_driver_sql(f'CREATE TEMP TABLE IF NOT EXISTS "{keys_table}" ({key_cols})')
        conn.exec_driver_sql(f'DELETE FROM "{keys_table}"')
        insert_rows(conn, f'INSERT INTO "{keys_table}"', "", list(stored), len(self.key))
        picked = ", ".join(f'k."{c}"' for c in self.key)
        match = " AND ".join(f'k."{c}" = t."{c}"' for c in self.key)
        found = conn.exec_driver_sql(
            f'SELECT {picked} FROM "{keys_table}" k JOIN {self.sql_name} t ON {match}'
        ).fetchall()
        conn.exec_driver_sql(f'DELETE FROM "{keys_table}"')
        return sorted(stored[tuple(r)] for r in found)

    def _existing_keys_pg(self, conn: Connection, frame: pd.DataFrame) -> list[Row]:
        # One COPY and one indexed join instead of a query per batch.
        keys_table = f"atm_keys_{self.table.name}"
        cols = ", ".join(f'"{k}" {PG_TYPES[self.spec.column(k).type]}' for k in self.key)
        key_cols = ", ".join(f'"{k}"' for k in self.key)
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{keys_table}"')
        conn.exec_driver_sql(f'CREATE TEMP TABLE "{keys_table}" ({cols})')
        columns = [(k, self.spec.column(k).type) for k in self.key]
        copy_frame(conn, f'"{keys_table}"', columns, frame)
        rows = conn.exec_driver_sql(
            f'SELECT {key_cols} FROM "{keys_table}" JOIN {self.sql_name} USING ({key_cols}) '
            f"ORDER BY {key_cols}"
        ).fetchall()
        conn.exec_driver_sql(f'DROP TABLE "{keys_table}"')
        return [tuple(r) for r in rows]

    def intervals(self, mode: Mode) -> Intervals:
        """The write strategy for one task: PostgreSQL COPY paths, or SQLite executemany."""
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
        if self.dialect == "postgresql":
            from atm_assets.core.write_postgres import PostgresIntervals

            return PostgresIntervals(self, mode)
        from atm_assets.core.write_sqlite import SqliteIntervals

        return SqliteIntervals(self, mode)

    def replace_rows(self, frame: pd.DataFrame, column: str, values: Sequence[Any]) -> WriteCounts:
        """Make the rows whose `column` is in `values` exactly `frame`, in one transaction.

        For derived tables: they are a function of their inputs, so a partition is rewritten
        whole (rows that no longer derive from anything disappear), never merged.
        """
        outside = frame[~frame[column].isin(list(values))] if len(frame) else frame
        if len(outside):
            raise DataValidationError(
                f"{self.qualified_name}: {len(outside)} row(s) lie outside the {column} values "
                "being replaced"
            )
        self.ensure_table()
        with self.engine.begin() as conn:
            conn.execute(sa.delete(self.table).where(self.table.c[column].in_(list(values))))
            return self.intervals("append").write(conn, frame, uuid.uuid4().hex)


def _parse_key_part(kind: str, text: str) -> Any:
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    return text


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
