"""Table writer: upsert or append a frame in transactions; COPY-staged bulk path on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from atm_assets.core.datasets import SYNC_COMMIT, SYNCED_AT, TableSpec
from atm_assets.core.db import ensure_schema, validate_identifier
from atm_assets.core.errors import AppendConflictError, ConfigError, DataValidationError

MODES = ("upsert", "append")

_SQL_TYPES = {
    "str": sa.Text,
    "date": sa.Date,
    "float": lambda: sa.Float(precision=53),
    "int": sa.BigInteger,
}


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


_PG_TYPES = {"str": "text", "date": "date", "float": "double precision", "int": "bigint"}

Row = tuple[Any, ...]


def _copy_value(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return (
                value.replace("\\", "\\\\")
                .replace("\t", "\\t")
                .replace("\n", "\\n")
                .replace("\r", "\\r")
            )
        return value
    if isinstance(value, float):
        return "\\N" if value != value else repr(value)
    return str(value)


def copy_text(rows: Sequence[Row]) -> io.StringIO:
    """Serialise rows in PostgreSQL COPY text format (NULL is \\N, tabs/newlines escaped)."""
    lines = ["\t".join(map(_copy_value, row)) for row in rows]
    return io.StringIO("\n".join(lines) + ("\n" if lines else ""))


def frame_rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[Row]:
    """Plain tuples in `columns` order: the writer's unit, far cheaper than pandas per batch."""
    return list(frame[list(columns)].itertuples(index=False, name=None))


class TableWriter:
    """Writes one dataset's table; all DDL and DML goes through here."""

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
        self.key = list(spec.key)
        self.key_index = [spec.fields.index(k) for k in spec.key]

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table.name}" if self.schema else self.table.name

    def ensure_table(self) -> None:
        """Create schema and table if missing; safe to call from concurrent processes."""
        ensure_schema(self.engine, self.schema)
        try:
            self.metadata.create_all(self.engine, tables=[self.table], checkfirst=True)
        except sa.exc.IntegrityError:
            # Two processes raced on CREATE TABLE; the loser finds the winner's table.
            self.metadata.create_all(self.engine, tables=[self.table], checkfirst=True)

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

    def read(self, where: dict[str, list[str]] | None = None, with_bookkeeping: bool = False):
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

    def key_of(self, row: Row) -> tuple[Any, ...]:
        return tuple(row[i] for i in self.key_index)

    def existing_keys(self, conn: Connection, keys: Sequence[tuple[Any, ...]]) -> list[str]:
        """Those of `keys` (tuples in key-column order) already in the table, sorted."""
        if not keys:
            return []
        if self.dialect == "postgresql":
            return self._existing_keys_pg(conn, keys)
        table, key = self.table, self.key
        found: list[str] = []
        # Stay under SQLite's bound-parameter limit.
        step = max(1, 900 // len(key))
        for start in range(0, len(keys), step):
            chunk = list(keys[start : start + step])
            if len(key) == 1:
                cond = table.c[key[0]].in_([r[0] for r in chunk])
            else:
                cond = sa.tuple_(*[table.c[k] for k in key]).in_(chunk)
            stmt = sa.select(*[table.c[k] for k in key]).where(cond)
            found += ["|".join(map(str, r)) for r in conn.execute(stmt)]
        return sorted(found)

    def _existing_keys_pg(self, conn: Connection, keys: Sequence[tuple[Any, ...]]) -> list[str]:
        # One COPY and one indexed join instead of a query per batch.
        keys_table = f"atm_keys_{self.table.name}"
        cols = ", ".join(f'"{k}" {_PG_TYPES[self.spec.column(k).type]}' for k in self.key)
        key_cols = ", ".join(f'"{k}"' for k in self.key)
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{keys_table}"')
        conn.exec_driver_sql(f'CREATE TEMP TABLE "{keys_table}" ({cols})')
        raw = conn.connection.dbapi_connection
        with raw.cursor() as cur:  # type: ignore[union-attr]
            cur.copy_expert(f'COPY "{keys_table}" ({key_cols}) FROM STDIN', copy_text(keys))
        rows = conn.exec_driver_sql(
            f'SELECT {key_cols} FROM "{keys_table}" JOIN {self.sql_name} USING ({key_cols}) '
            f"ORDER BY {key_cols}"
        ).fetchall()
        conn.exec_driver_sql(f'DROP TABLE "{keys_table}"')
        return ["|".join(map(str, r)) for r in rows]

    @property
    def sql_name(self) -> str:
        """The quoted (and checked) table name for hand-written SQL."""
        t = self.table
        return f'"{t.schema}"."{t.name}"' if t.schema else f'"{t.name}"'

    @contextmanager
    def interval(self, conn: Connection, mode: str, commit_id: str) -> Iterator[IntervalWriter]:
        """Write one checkpoint interval inside the caller's open transaction on `conn`."""
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
        now = dt.datetime.now(dt.UTC)
        if self.dialect == "postgresql":
            writer: IntervalWriter = _PostgresInterval(self, conn, mode, commit_id, now)
        else:
            writer = _ExecutemanyInterval(self, conn, mode, commit_id, now)
        yield writer


class IntervalWriter:
    """Receives the batches of one interval; `finish()` applies them and returns the counts."""

    def __init__(
        self, writer: TableWriter, conn: Connection, mode: str, commit_id: str, now: dt.datetime
    ) -> None:
        self.w = writer
        self.conn = conn
        self.mode = mode
        self.commit_id = commit_id
        self.now = now
        self.counts = WriteCounts()

    def add(self, batch: Sequence[Row]) -> None:
        raise NotImplementedError

    def finish(self) -> WriteCounts:
        raise NotImplementedError

    def _raise_conflict(self, keys: list[str], total: int) -> None:
        raise AppendConflictError(self.w.qualified_name, keys, total)


def _sqlite_value(value: Any) -> Any:
    # Store dates the way SQLAlchemy's Date type reads them back ("YYYY-MM-DD").
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


class _ExecutemanyInterval(IntervalWriter):
    """SQLite: batched executemany of one prepared statement in the caller's transaction."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        w = self.w
        fields = w.spec.fields
        cols = ", ".join(f'"{c}"' for c in [*fields, SYNCED_AT, SYNC_COMMIT])
        marks = ", ".join("?" for _ in range(len(fields) + 2))
        insert = f"INSERT INTO {w.sql_name} ({cols}) VALUES ({marks})"
        if self.mode == "append":
            self.sql = insert
        else:
            data_cols = [c for c in fields if c not in w.key]
            sets = ", ".join(
                f'"{c}" = excluded."{c}"' for c in [*data_cols, SYNCED_AT, SYNC_COMMIT]
            )
            changed = " OR ".join(f'"{c}" IS NOT excluded."{c}"' for c in data_cols)
            keys = ", ".join(f'"{k}"' for k in w.key)
            self.sql = f"{insert} ON CONFLICT ({keys}) DO UPDATE SET {sets} WHERE {changed}"
        self.stamp = self.now.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
        self.has_dates = bool(w.spec.date_columns)

    def add(self, batch: Sequence[Row]) -> None:
        if not batch:
            return
        latest = {self.w.key_of(r): r for r in batch}  # a repeated key: the last one wins
        batch = list(latest.values())
        existing = self.w.existing_keys(self.conn, list(latest))
        if self.mode == "append" and existing:
            self._raise_conflict(existing[:20], len(existing))
        tail = (self.stamp, self.commit_id)
        if self.has_dates:
            params = [tuple(map(_sqlite_value, r)) + tail for r in batch]
        else:
            params = [tuple(r) + tail for r in batch]
        result = self.conn.exec_driver_sql(self.sql, params)
        if self.mode == "append":
            self.counts.inserted += len(batch)
            return
        inserted = len(batch) - len(existing)
        updated = max(0, result.rowcount - inserted)
        self.counts += WriteCounts(inserted, updated, len(existing) - updated)

    def finish(self) -> WriteCounts:
        return self.counts


class _PostgresInterval(IntervalWriter):
    """PostgreSQL: COPY each batch into a temp staging table, then one set-based statement."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.stage = f"atm_stage_{self.w.table.name}"
        self.fields = self.w.spec.fields
        self.staged = 0
        self.seen: set = set()
        self.repeats = False
        cols = ", ".join(f'"{c.name}" {_PG_TYPES[c.type]}' for c in self.w.spec.columns)
        # ON COMMIT DELETE ROWS: every interval starts from an empty stage, no TRUNCATE needed.
        self.conn.exec_driver_sql(
            f'CREATE TEMP TABLE IF NOT EXISTS "{self.stage}" ({cols}, _seq bigserial) '
            "ON COMMIT DELETE ROWS"
        )
        self.copy_sql = (
            f'COPY "{self.stage}" ({", ".join(chr(34) + f + chr(34) for f in self.fields)}) '
            "FROM STDIN"
        )

    def add(self, batch: Sequence[Row]) -> None:
        if not batch:
            return
        size = len(self.seen)
        self.seen.update(self.w.key_of(r) for r in batch)
        if len(self.seen) != size + len(batch):
            self.repeats = True
        raw = self.conn.connection.dbapi_connection
        with raw.cursor() as cur:  # type: ignore[union-attr]
            cur.copy_expert(self.copy_sql, copy_text(batch))
        self.staged += len(batch)

    def _source(self) -> str:
        cols = ", ".join(f's."{f}"' for f in self.fields)
        if not self.repeats:
            return f'SELECT {cols}, %(now)s, %(cid)s FROM "{self.stage}" s'
        keys = ", ".join(f's."{k}"' for k in self.w.key)
        # Upsert takes the last staged version of a repeated key.
        return (
            f'SELECT DISTINCT ON ({keys}) {cols}, %(now)s, %(cid)s FROM "{self.stage}" s '
            f"ORDER BY {keys}, s._seq DESC"
        )

    def finish(self) -> WriteCounts:
        if self.staged == 0:
            return self.counts
        target = self.w.sql_name
        all_cols = ", ".join(f'"{c}"' for c in [*self.fields, SYNCED_AT, SYNC_COMMIT])
        key_cols = ", ".join(f'"{k}"' for k in self.w.key)
        params = {"now": self.now, "cid": self.commit_id}
        if self.mode == "append":
            if self.repeats:
                self._raise_repeats()
            # Plain INSERT (the fastest path); a unique violation rolls back to the savepoint and
            # is turned into a list of the conflicting keys.
            savepoint = self.conn.begin_nested()
            try:
                self.conn.exec_driver_sql(
                    f"INSERT INTO {target} ({all_cols}) {self._source()}", params
                )
            except sa.exc.IntegrityError:
                savepoint.rollback()
                keys = self._conflicting_keys(target)
                if not keys:
                    raise
                self._raise_conflict(keys[:20], len(keys))
            savepoint.commit()
            self.counts.inserted += self.staged
            return self.counts
        data_cols = [c for c in self.fields if c not in self.w.key]
        sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in [*data_cols, SYNCED_AT, SYNC_COMMIT])
        old = ", ".join(f't."{c}"' for c in data_cols)
        new = ", ".join(f'EXCLUDED."{c}"' for c in data_cols)
        row = self.conn.exec_driver_sql(
            f"WITH up AS (INSERT INTO {target} AS t ({all_cols}) {self._source()} "
            f"ON CONFLICT ({key_cols}) DO UPDATE SET {sets} "
            f"WHERE ({old}) IS DISTINCT FROM ({new}) "
            "RETURNING (t.xmax = 0) AS inserted) "
            "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) "
            "FROM up",
            params,
        ).one()
        inserted, updated = int(row[0]), int(row[1])
        distinct = len(self.seen)
        self.counts += WriteCounts(inserted, updated, distinct - inserted - updated)
        return self.counts

    def _raise_repeats(self) -> None:
        raise DataValidationError(
            f"append into {self.w.qualified_name}: the same key appears twice in one interval"
        )

    def _conflicting_keys(self, target: str) -> list[str]:
        key_cols = ", ".join(f'"{k}"' for k in self.w.key)
        rows = self.conn.exec_driver_sql(
            f'SELECT {key_cols} FROM "{self.stage}" s JOIN {target} t USING ({key_cols}) '
            f"ORDER BY {key_cols}"
        ).fetchall()
        return ["|".join(map(str, r)) for r in rows]
