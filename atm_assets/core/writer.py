"""Table writer: upsert or append a frame in transactions; COPY-staged bulk path on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Callable, Sequence
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
# Field/row separators and NULL marker used while serialising; none can occur in PostgreSQL text
# (which refuses NUL) or, in practice, in Tushare data; their counts are checked anyway.
_FIELD, _ROW, _NULL = "\x00", "\x01", "\x02"
_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def _copy_value(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        for raw, escaped in _ESCAPES:
            if raw in value:
                value = value.replace(raw, escaped)
        return value
    if isinstance(value, float):
        return "\\N" if value != value else repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def copy_text(rows: Sequence[Row]) -> io.StringIO:
    """Rows in PostgreSQL COPY text format (NULL is \\N, tabs/newlines escaped), value by value."""
    lines = ["\t".join(map(_copy_value, row)) for row in rows]
    return io.StringIO("\n".join(lines) + ("\n" if lines else ""))


def _column_strings(series: pd.Series, kind: str) -> tuple[list[str], int]:
    """A column as strings with NULLs marked, and how many NULLs it has."""
    values = series.to_numpy(dtype=object)
    nulls = pd.isna(values)
    count = int(nulls.sum())
    if kind == "str":
        out = values.copy()
        out[nulls] = _NULL
        return out.tolist(), count
    if kind == "date":
        return [_NULL if n else v.isoformat() for v, n in zip(values, nulls, strict=True)], count
    if kind == "float":
        return [_NULL if n else repr(float(v)) for v, n in zip(values, nulls, strict=True)], count
    return [_NULL if n else str(v) for v, n in zip(values, nulls, strict=True)], count


def frame_copy_text(
    frame: pd.DataFrame, columns: Sequence[tuple[str, str]], extra: Sequence[str] = ()
) -> str:
    """A frame in COPY text format, column-wise: joins and escapes run in C over whole strings.

    `columns` are (name, type) pairs; `extra` are constant values appended to every row. Falls
    back to value-by-value serialisation if a separator character occurs in the data.
    """
    n = len(frame)
    if n == 0:
        return ""
    cols, nulls = [], 0
    for name, kind in columns:
        strings, count = _column_strings(frame[name], kind)
        cols.append(strings)
        nulls += count
    text = _ROW.join(map(_FIELD.join, zip(*cols, strict=True)))
    fields = len(columns)
    if (
        text.count(_FIELD) != n * (fields - 1)
        or text.count(_ROW) != n - 1
        or text.count(_NULL) != nulls
    ):
        rows = list(zip(*[frame[c].tolist() for c, _ in columns], strict=True))
        body = copy_text([(*r, *extra) for r in rows]).getvalue()
        return body
    for raw, escaped in _ESCAPES:
        if raw in text:
            text = text.replace(raw, escaped)
    tail = "".join("\t" + _copy_value(v) for v in extra)
    text = text.replace(_FIELD, "\t").replace(_NULL, "\\N").replace(_ROW, tail + "\n")
    return text + tail + "\n"


class CopyStream(io.TextIOBase):
    """A frame as a COPY text stream, serialised slice by slice while PostgreSQL reads it: memory
    stays at one slice of text however large the interval."""

    def __init__(
        self,
        frame: pd.DataFrame,
        columns: Sequence[tuple[str, str]],
        extra: Sequence[str] = (),
        slice_rows: int = 5000,
    ) -> None:
        self._frame = frame
        self._columns = columns
        self._extra = extra
        self._slice = slice_rows
        self._next = 0
        self._buf = ""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        if self._next >= len(self._frame):
            return False
        part = self._frame.iloc[self._next : self._next + self._slice]
        self._next += len(part)
        self._buf, self._pos = frame_copy_text(part, self._columns, self._extra), 0
        return True

    def read(self, size: int | None = -1) -> str:
        if size is None or size < 0:
            parts = [self._buf[self._pos :]]
            while self._fill():
                parts.append(self._buf)
            self._buf, self._pos = "", 0
            return "".join(parts)
        while self._pos >= len(self._buf):
            if not self._fill():
                return ""
        out = self._buf[self._pos : self._pos + size]
        self._pos += len(out)
        return out


def format_keys(keys: Sequence[tuple[Any, ...]]) -> list[str]:
    return ["|".join(map(str, k)) for k in keys]


def frame_rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[Row]:
    """Plain tuples in `columns` order (column lists zipped: far cheaper than itertuples)."""
    return list(zip(*[frame[c].tolist() for c in columns], strict=True))


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

    @property
    def sql_name(self) -> str:
        """The quoted (and checked) table name for hand-written SQL."""
        t = self.table
        return f'"{t.schema}"."{t.name}"' if t.schema else f'"{t.name}"'

    @property
    def copy_columns(self) -> list[tuple[str, str]]:
        return [(c.name, c.type) for c in self.spec.columns]

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

    def existing_keys(self, conn: Connection, frame: pd.DataFrame) -> list[tuple[Any, ...]]:
        """Keys of `frame` that are already in the table, sorted."""
        if frame.empty:
            return []
        if self.dialect == "postgresql":
            return self._existing_keys_pg(conn, frame)
        table, key = self.table, self.key
        keys = frame_rows(frame, key)
        found: list[tuple[Any, ...]] = []
        # Stay under SQLite's bound-parameter limit.
        step = max(1, 900 // len(key))
        for start in range(0, len(keys), step):
            chunk = keys[start : start + step]
            if len(key) == 1:
                cond = table.c[key[0]].in_([k[0] for k in chunk])
            else:
                cond = sa.tuple_(*[table.c[k] for k in key]).in_(chunk)
            stmt = sa.select(*[table.c[k] for k in key]).where(cond)
            found += [tuple(r) for r in conn.execute(stmt)]
        return sorted(found)

    def _existing_keys_pg(self, conn: Connection, frame: pd.DataFrame) -> list[tuple[Any, ...]]:
        # One COPY and one indexed join instead of a query per batch.
        keys_table = f"atm_keys_{self.table.name}"
        cols = ", ".join(f'"{k}" {_PG_TYPES[self.spec.column(k).type]}' for k in self.key)
        key_cols = ", ".join(f'"{k}"' for k in self.key)
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{keys_table}"')
        conn.exec_driver_sql(f'CREATE TEMP TABLE "{keys_table}" ({cols})')
        columns = [(k, self.spec.column(k).type) for k in self.key]
        _copy(conn, f'COPY "{keys_table}" ({key_cols}) FROM STDIN', CopyStream(frame, columns))
        rows = conn.exec_driver_sql(
            f'SELECT {key_cols} FROM "{keys_table}" JOIN {self.sql_name} USING ({key_cols}) '
            f"ORDER BY {key_cols}"
        ).fetchall()
        conn.exec_driver_sql(f'DROP TABLE "{keys_table}"')
        return [tuple(r) for r in rows]

    def write_interval(
        self,
        conn: Connection,
        chunk: pd.DataFrame,
        mode: str,
        commit_id: str,
        batch_size: int,
        on_batch: Callable[[int], None] = lambda _n: None,
        try_direct: bool = True,
    ) -> tuple[WriteCounts, bool]:
        """Write one checkpoint interval inside the caller's open transaction on `conn`.

        `on_batch(rows)` is called per `batch_size` rows written. Returns the counts and whether
        PostgreSQL's direct path (COPY straight into the table) worked, i.e. is worth trying for
        the next interval (`try_direct`).
        """
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
        now = dt.datetime.now(dt.UTC)
        if self.dialect == "postgresql":
            interval = _PostgresInterval(self, conn, mode, commit_id, now)
            counts = interval.write(chunk, batch_size, on_batch, try_direct)
            return counts, interval.direct_worked
        counts = _ExecutemanyInterval(self, conn, mode, commit_id, now).write(
            chunk, batch_size, on_batch
        )
        return counts, False

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
            counts, _ = self.write_interval(
                conn, frame, "append", uuid.uuid4().hex, max(len(frame), 1)
            )
        return counts


def _copy(conn: Connection, sql: str, stream: io.TextIOBase) -> None:
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        cur.copy_expert(sql, stream)


class _Interval:
    def __init__(
        self, writer: TableWriter, conn: Connection, mode: str, commit_id: str, now: dt.datetime
    ) -> None:
        self.w = writer
        self.conn = conn
        self.mode = mode
        self.commit_id = commit_id
        self.now = now
        self.counts = WriteCounts()

    def _raise_conflict(self, keys: list[tuple[Any, ...]]) -> None:
        raise AppendConflictError(self.w.qualified_name, format_keys(keys[:20]), len(keys))


def _sqlite_value(value: Any) -> Any:
    # Store dates the way SQLAlchemy's Date type reads them back ("YYYY-MM-DD").
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


class _ExecutemanyInterval(_Interval):
    """SQLite: one prepared statement, executemany per batch, in the caller's transaction."""

    def write(
        self, chunk: pd.DataFrame, batch_size: int, on_batch: Callable[[int], None]
    ) -> WriteCounts:
        w = self.w
        fields = w.spec.fields
        cols = ", ".join(f'"{c}"' for c in [*fields, SYNCED_AT, SYNC_COMMIT])
        marks = ", ".join("?" for _ in range(len(fields) + 2))
        sql = f"INSERT INTO {w.sql_name} ({cols}) VALUES ({marks})"
        if self.mode == "upsert":
            data_cols = [c for c in fields if c not in w.key]
            sets = ", ".join(
                f'"{c}" = excluded."{c}"' for c in [*data_cols, SYNCED_AT, SYNC_COMMIT]
            )
            changed = " OR ".join(f'"{c}" IS NOT excluded."{c}"' for c in data_cols)
            keys = ", ".join(f'"{k}"' for k in w.key)
            sql = f"{sql} ON CONFLICT ({keys}) DO UPDATE SET {sets} WHERE {changed}"
        stamp = self.now.replace(tzinfo=None).isoformat(sep=" ")
        tail = (stamp, self.commit_id)
        dates = bool(w.spec.date_columns)
        for start in range(0, len(chunk), batch_size):
            batch = chunk.iloc[start : start + batch_size].drop_duplicates(w.key, keep="last")
            existing = w.existing_keys(self.conn, batch)
            if self.mode == "append" and existing:
                self._raise_conflict(existing)
            rows = frame_rows(batch, fields)
            if dates:
                params = [tuple(map(_sqlite_value, r)) + tail for r in rows]
            else:
                params = [r + tail for r in rows]
            result = self.conn.exec_driver_sql(sql, params)
            inserted = len(rows) - len(existing)
            updated = max(0, result.rowcount - inserted) if self.mode == "upsert" else 0
            self.counts += WriteCounts(inserted, updated, len(existing) - updated)
            on_batch(min(batch_size, len(chunk) - start))
        return self.counts


class _PostgresInterval(_Interval):
    """PostgreSQL, set-based. An interval is first COPYed straight into the table, as fast as a
    raw COPY, under a savepoint; if a key already exists that COPY fails at the first such row,
    is rolled back, and the interval goes through a temporary staging table and one
    INSERT … ON CONFLICT DO UPDATE that rewrites only changed rows (later intervals of the task
    go there directly). Append never stages: a key that exists is an error (the task checked
    every key up front, so this means a race)."""

    direct_worked = False

    def write(
        self,
        chunk: pd.DataFrame,
        batch_size: int,
        on_batch: Callable[[int], None],
        try_direct: bool,
    ) -> WriteCounts:
        w = self.w
        repeats = bool(chunk.duplicated(w.key).any())
        if self.mode == "append" and repeats:
            raise DataValidationError(
                f"append into {w.qualified_name}: the same key appears twice in one interval"
            )
        direct = self.mode == "append" or (try_direct and not repeats)
        if not (direct and self._copy_direct(chunk)):
            self._stage_and_apply(chunk, repeats)
        for start in range(0, len(chunk), batch_size):
            on_batch(min(batch_size, len(chunk) - start))
        return self.counts

    def _copy_direct(self, rows: pd.DataFrame) -> bool:
        w = self.w
        quoted = ", ".join(f'"{f}"' for f in w.spec.fields)
        stream = CopyStream(rows, w.copy_columns, (_copy_value(self.now), self.commit_id))
        savepoint = self.conn.begin_nested()
        try:
            _copy(
                self.conn,
                f'COPY {w.sql_name} ({quoted}, "{SYNCED_AT}", "{SYNC_COMMIT}") FROM STDIN',
                stream,
            )
        except (sa.exc.IntegrityError, self.conn.dialect.dbapi.IntegrityError):  # type: ignore[union-attr]
            # COPY runs on the raw cursor, so the driver's own error arrives unwrapped.
            savepoint.rollback()
            if self.mode == "append":
                keys = w.existing_keys(self.conn, rows)
                if not keys:
                    raise
                self._raise_conflict(keys)
            return False
        savepoint.commit()
        self.direct_worked = True
        self.counts.inserted += len(rows)
        return True

    def _stage_and_apply(self, rows: pd.DataFrame, repeats: bool) -> None:
        w = self.w
        stage = f"atm_stage_{w.table.name}"
        cols = ", ".join(f'"{c.name}" {_PG_TYPES[c.type]}' for c in w.spec.columns)
        # ON COMMIT DELETE ROWS: every interval starts from an empty stage.
        self.conn.exec_driver_sql(
            f'CREATE TEMP TABLE IF NOT EXISTS "{stage}" ({cols}, _seq bigserial) '
            "ON COMMIT DELETE ROWS"
        )
        quoted = ", ".join(f'"{f}"' for f in w.spec.fields)
        _copy(self.conn, f'COPY "{stage}" ({quoted}) FROM STDIN', CopyStream(rows, w.copy_columns))
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
        row = self.conn.exec_driver_sql(
            f"WITH up AS (INSERT INTO {w.sql_name} AS t ({all_cols}) {source} "
            f"ON CONFLICT ({key_cols}) DO UPDATE SET {sets} "
            f"WHERE ({old}) IS DISTINCT FROM ({new}) "
            "RETURNING (t.xmax = 0) AS inserted) "
            "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) "
            "FROM up",
            {"now": self.now, "cid": self.commit_id},
        ).one()
        inserted, updated = int(row[0]), int(row[1])
        distinct = int((~rows.duplicated(w.key, keep="last")).sum()) if repeats else len(rows)
        self.counts += WriteCounts(inserted, updated, distinct - inserted - updated)
