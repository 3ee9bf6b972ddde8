"""DuckDB: the embedded columnar target. Intervals go in as DataFrames DuckDB scans in bulk."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import NullPool

from atm_assets.core.datasets import SYNC_COMMIT, SYNCED_AT
from atm_assets.core.dialects.base import EmbeddedDialect, Group
from atm_assets.core.errors import AppendConflictError, DatabaseInUseError
from atm_assets.core.keys import key_text
from atm_assets.core.tables import Row, TableRef, WriteCounts, now_utc, typed_frame

# ATM column types as DuckDB's: the staged frame's columns are cast to them.
DUCKDB_TYPES = {"str": "VARCHAR", "date": "DATE", "float": "DOUBLE", "int": "BIGINT"}
# DuckDB's refusal to open a file another process holds (its message, one line of it).
_HELD = re.compile(r'Could not set lock on file "(?P<file>[^"]+)".*?PID (?P<pid>\d+)')


def in_use_error(error: BaseException) -> DatabaseInUseError | None:
    """DuckDB's "Could not set lock on file" as one line naming the file and its holder."""
    found = _HELD.search(str(error))
    if found is None:
        return None
    return DatabaseInUseError(
        f"DuckDB file {found['file']} is in use by another process (pid {found['pid']}): "
        "DuckDB lets one process at a time open a file; wait for it to finish (or use "
        "PostgreSQL for several writing processes)"
    )


def _explain(context: Any) -> BaseException | None:
    # SQLAlchemy calls this for every DBAPI error, opening a connection included.
    return in_use_error(context.original_exception)


@contextlib.contextmanager
def registered(raw: Any, name: str, frame: pa.Table) -> Iterator[None]:
    """`frame` visible to SQL on `raw` as the view `name` while the block runs. After a failed
    statement DuckDB refuses everything but a rollback: the error that caused it is raised, not
    the view's removal failing behind it (a later registration under the name replaces it)."""
    raw.register(name, frame)
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            raw.unregister(name)
        raise
    raw.unregister(name)


def _raw(conn: Connection) -> Any:
    """The duckdb connection under SQLAlchemy's, in the same transaction."""
    raw = conn.connection.driver_connection
    assert raw is not None
    return raw


class DuckDbDialect(EmbeddedDialect):
    name: ClassVar[str] = "duckdb"
    title: ClassVar[str] = "DuckDB"

    def create_engine(self, url: URL, connect_timeout: int) -> Engine:
        # No pool: a process holds DuckDB's file lock only while it has a connection open, so
        # a daemon's schedule tick or a `state list` does not lock out the next run's process.
        engine = sa.create_engine(url, poolclass=NullPool)
        sa.event.listen(engine, "handle_error", _explain)
        return engine

    def insert(self, table: sa.Table) -> Any:
        # duckdb-engine compiles PostgreSQL's INSERT … ON CONFLICT, which DuckDB speaks.
        return pg_insert(table)

    def existing_keys(self, conn: Connection, table: TableRef, frame: pd.DataFrame) -> list[Row]:
        # The keys are scanned as a frame and meet the table's primary key in one join.
        if frame.empty:
            return []
        key = table.key
        view = f"atm_keys_{table.table.name}"
        raw = _raw(conn)
        keys = typed_frame([(k, table.spec.column(k).type) for k in key], frame)
        picked = ", ".join(f't."{k}"' for k in key)
        match = " AND ".join(f'CAST(k."{k}" AS {_type(table, k)}) = t."{k}"' for k in key)
        order = ", ".join(str(i + 1) for i in range(len(key)))
        with registered(raw, view, keys):
            found = raw.execute(
                f'SELECT {picked} FROM "{view}" k JOIN {table.sql_name} t ON {match} '
                f"ORDER BY {order}"
            ).fetchall()
        return [tuple(r) for r in found]

    def intervals(self, table: TableRef, mode: str) -> DuckDbIntervals:
        return DuckDbIntervals(self, table, mode)

    @contextlib.contextmanager
    def session(self, engine: Engine) -> Iterator[None]:
        # Each connection opens the file (NullPool: no idle process keeps its lock) and the last
        # one to close checkpoints it; one held for the run keeps the database open between the
        # writer's transactions, sparing both per transaction.
        with engine.connect():
            yield

    def columns_of(self, table: TableRef, frame: pd.DataFrame) -> pa.Table:
        return typed_frame(table.copy_columns, frame)

    def upsert_rows(
        self, conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]
    ) -> None:
        # Set-based, as the intervals: one UPDATE … FROM and one INSERT … SELECT of the rows
        # scanned as a frame, where a statement per row cost milliseconds each.
        if len(rows) < 2:
            for values in rows:
                _upsert_one(conn, table, values)
            return
        key = [c.name for c in table.primary_key.columns]
        names = list(rows[0])
        rest = [c for c in names if c not in key]
        name = ".".join(f'"{part}"' for part in (table.schema, table.name) if part)
        view = f"atm_rows_{table.name}"
        frame = pa.table({c: [r[c] for r in rows] for c in names})
        match = " AND ".join(f't."{c}" = s."{c}"' for c in key)
        columns = ", ".join(f'"{c}"' for c in names)
        raw = _raw(conn)
        with registered(raw, view, frame):
            raw.execute(
                f"UPDATE {name} AS t SET "
                + ", ".join(f'"{c}" = s."{c}"' for c in rest)
                + f' FROM "{view}" s WHERE {match}'
            )
            raw.execute(
                f'INSERT INTO {name} ({columns}) SELECT {columns} FROM "{view}" s '
                f"WHERE NOT EXISTS (SELECT 1 FROM {name} t WHERE {match})"
            )

    def key_constraints(self, conn: Connection, table: sa.Table) -> tuple[list[str], list[str]]:
        # duckdb_engine's reflection of a primary key fails (it asks for a REGCLASS type).
        rows = conn.execute(
            sa.text(
                "SELECT constraint_type, constraint_column_names FROM duckdb_constraints() "
                "WHERE table_name = :name AND schema_name = current_schema()"
            ),
            {"name": table.name},
        ).all()
        primary = next((list(cols) for kind, cols in rows if kind == "PRIMARY KEY"), [])
        not_null = [c for kind, cols in rows if kind in ("NOT NULL", "PRIMARY KEY") for c in cols]
        return primary, not_null

    def read_frame(self, conn: Connection, stmt: sa.Select) -> pd.DataFrame:
        # DuckDB hands its answer over as Arrow columns, not as a Python tuple per row:
        # millions of rows in a fraction of the time (dates stay datetime64: a Python object
        # per row is what the columns spare).
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        params = [compiled.params[name] for name in compiled.positiontup or ()]
        table = _raw(conn).sql(str(compiled), params=params or None).to_arrow_table()
        return table.to_pandas(date_as_object=False)


def _upsert_one(conn: Connection, table: sa.Table, values: dict[str, Any]) -> None:
    # DuckDB's ON CONFLICT costs a few milliseconds a row, a good part of a checkpoint's
    # transaction; an UPDATE by key, then an INSERT when it met no row, a fraction of that.
    # A task's state is written under its task lock (and one process holds a DuckDB
    # file), so no other writer inserts the row in between.
    key = [c.name for c in table.primary_key.columns]
    rest = [c for c in values if c not in key]
    name = ".".join(f'"{part}"' for part in (table.schema, table.name) if part)
    sets = ", ".join(f'"{c}" = ?' for c in rest)
    where = " AND ".join(f'"{c}" = ?' for c in key)
    raw = _raw(conn)
    found = raw.execute(
        f"UPDATE {name} SET {sets} WHERE {where}", [*(values[c] for c in [*rest, *key])]
    )
    if not _count(found):
        columns = ", ".join(f'"{c}"' for c in [*key, *rest])
        marks = ", ".join("?" for _ in [*key, *rest])
        raw.execute(
            f"INSERT INTO {name} ({columns}) VALUES ({marks})",
            [values[c] for c in [*key, *rest]],
        )


def _type(table: TableRef, column: str) -> str:
    return DUCKDB_TYPES[table.spec.column(column).type]


class DuckDbIntervals:
    """An interval is handed to DuckDB as one DataFrame (scanned in bulk, no row-by-row
    statements) and applied set-based. When no stored row lies within its key bounds (one
    zonemap-pruned probe) it is one plain INSERT … SELECT; otherwise new keys by one INSERT …
    SELECT with an anti join,
    changed rows by one UPDATE … FROM (unchanged rows are never rewritten); both statements
    report their row counts, so the split costs nothing more. Append refuses keys that exist,
    naming them, before writing a row; replace inserts every row (its caller emptied the
    partition in the same transaction; a table may have no key)."""

    def __init__(self, dialect: DuckDbDialect, table: TableRef, mode: str) -> None:
        self.dialect = dialect
        self.t = table
        self.mode = mode
        self.view = f"atm_stage_{table.table.name}"
        fields = table.spec.fields
        cast = ", ".join(f'CAST(s."{c}" AS {_type(table, c)})' for c in fields)
        all_cols = ", ".join(f'"{c}"' for c in [*fields, SYNCED_AT, SYNC_COMMIT])
        self.insert_all = (
            f"INSERT INTO {table.sql_name} ({all_cols}) "
            f'SELECT {cast}, CAST(? AS TIMESTAMPTZ), ? FROM "{self.view}" s'
        )
        key = table.key
        # The stored rows an interval can meet lie within its keys' bounds: said in SQL, DuckDB
        # skips every row group whose min/max (zonemap) lies outside, instead of scanning the
        # whole table for each interval (a day of `daily` meets only that day's row groups).
        within = " AND ".join(f't."{k}" BETWEEN ? AND ?' for k in key)
        match = " AND ".join(
            [f't."{k}" = CAST(s."{k}" AS {_type(table, k)})' for k in key] + [within]
        )
        self.probe = f"SELECT 1 FROM {table.sql_name} t WHERE {within} LIMIT 1"
        self.insert_new = (
            f"{self.insert_all} WHERE NOT EXISTS (SELECT 1 FROM {table.sql_name} t WHERE {match})"
        )
        data_cols = [c for c in fields if c not in key]
        sets = ", ".join(f'"{c}" = CAST(s."{c}" AS {_type(table, c)})' for c in data_cols)
        changed = " OR ".join(
            f't."{c}" IS DISTINCT FROM CAST(s."{c}" AS {_type(table, c)})' for c in data_cols
        )
        self.update_changed = (
            (
                f"UPDATE {table.sql_name} AS t SET {sets}, "
                f'"{SYNCED_AT}" = CAST(? AS TIMESTAMPTZ), "{SYNC_COMMIT}" = ? '
                f'FROM "{self.view}" s WHERE {match} AND ({changed})'
            )
            if data_cols
            else None
        )

    def write_many(self, conn: Connection, group: Group, commit_id: str) -> list[WriteCounts]:
        """Fresh rows of several tasks (a first load, new days: no key twice and no stored row
        within their key bounds) go in as one INSERT … SELECT: DuckDB's cost is per statement
        and per commit far more than per row. Otherwise each frame is written as `write`
        would, one after the other."""
        typed = list(group.columns or [typed_frame(self.t.copy_columns, f) for f in group.frames])
        if len(typed) > 1 and self.mode == "upsert" and self.t.key:
            whole = pa.concat_tables(typed)
            if group.disjoint or not _has_duplicates(whole, self.t.key):
                raw = _raw(conn)
                with registered(raw, self.view, whole):
                    # Fetched to the end: the view is unregistered next, which DuckDB refuses
                    # while a result is still open.
                    if not raw.execute(self.probe, _bounds(whole, self.t.key)).fetchall():
                        raw.execute(self.insert_all, (now_utc(), commit_id))
                        return [WriteCounts(inserted=frame.num_rows) for frame in typed]
        return [
            self._write(conn, rows, frame, commit_id)
            for rows, frame in zip(group.frames, typed, strict=True)
        ]

    def write(self, conn: Connection, rows: pd.DataFrame, commit_id: str) -> WriteCounts:
        return self._write(conn, rows, typed_frame(self.t.copy_columns, rows), commit_id)

    def _write(
        self, conn: Connection, rows: pd.DataFrame, frame: pa.Table, commit_id: str
    ) -> WriteCounts:
        t = self.t
        if self.mode != "replace" and _has_duplicates(frame, t.key):
            # Rare (validated answers have unique keys): the last row of a key wins, as on the
            # other targets.
            rows = rows.drop_duplicates(t.key, keep="last")
            frame = typed_frame(t.copy_columns, rows)
        if self.mode == "append":
            existing = self.dialect.existing_keys(conn, t, rows)
            if existing:
                shown = [key_text(k) for k in existing[:20]]
                raise AppendConflictError(t.qualified_name, shown, len(existing))
        raw = _raw(conn)
        stamp = (now_utc(), commit_id)
        with registered(raw, self.view, frame):
            if self.mode in ("append", "replace"):
                raw.execute(self.insert_all, stamp)
                return WriteCounts(inserted=frame.num_rows)
            # Changed rows first: the rows the insert adds next are then not compared again.
            bounds = _bounds(frame, t.key)
            if raw.execute(self.probe, bounds).fetchone() is None:
                # No stored row within the interval's key bounds (a first load, a new day):
                # every row is new, and goes in without the joins.
                raw.execute(self.insert_all, stamp)
                return WriteCounts(inserted=frame.num_rows)
            updated = 0
            if self.update_changed is not None:
                updated = _count(raw.execute(self.update_changed, stamp + bounds))
            inserted = _count(raw.execute(self.insert_new, stamp + bounds))
        return WriteCounts(inserted, updated, frame.num_rows - inserted - updated)


def _has_duplicates(frame: pa.Table, key: list[str]) -> bool:
    # Arrow's hash grouping: a fraction of pandas' duplicated() on the same columns.
    return bool(key) and frame.group_by(key).aggregate([]).num_rows < frame.num_rows


def _bounds(frame: pa.Table, key: list[str]) -> tuple[Any, ...]:
    """Each key column's (min, max), from the Arrow columns: Python's min() and max() over a
    frame's objects took longer than the insert they bound."""
    bounds: list[Any] = []
    for k in key:
        extremes = pc.min_max(frame[k])
        bounds += [extremes["min"].as_py(), extremes["max"].as_py()]
    return tuple(bounds)


def _count(result: Any) -> int:
    """The row count DuckDB answers a DML statement with."""
    row = result.fetchone()
    return int(row[0]) if row else 0


DIALECT = DuckDbDialect()
