"""A dataset's table: DDL, reads and key probes; writes go through its database's dialect."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from atm_assets.core.datasets import SYNC_COMMIT, SYNCED_AT, TableSpec
from atm_assets.core.db import create_tables, validate_identifier
from atm_assets.core.dialects import Group, Intervals, dialect_of
from atm_assets.core.errors import ConfigError, DataValidationError
from atm_assets.core.settings import MODES
from atm_assets.core.tables import (
    Bounds,
    Row,
    TableRef,
    WriteCounts,
    bounds_clause,
    build_table,
    now_utc,
    outside_bounds,
)

if TYPE_CHECKING:
    from atm_assets.core.settings import Mode

# One row per table ATM writes: an id that is new whenever the table is created anew, so a
# checkpoint saved for one table is never used against another that has the same name.
REGISTRY_TABLE = "ingestion_tables"

__all__ = ["REGISTRY_TABLE", "Group", "Row", "TableWriter", "WriteCounts"]


class TableWriter:
    """One dataset's table; all DDL and DML on it goes through here."""

    def __init__(
        self, engine: Engine, spec: TableSpec, schema: str | None = None, name: str | None = None
    ) -> None:
        self.engine = engine
        self.spec = spec
        self.schema = validate_identifier(schema, "database schema") if schema else None
        self.dialect = dialect_of(engine)
        if self.schema and not self.dialect.has_schemas:
            raise ConfigError(f"{self.dialect.name} has no schemas: leave the schema unset for it")
        self.metadata = sa.MetaData()
        self.table = build_table(spec, self.schema, self.metadata, name)
        self.ref = TableRef(spec, self.table)
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
        return self.ref.qualified_name

    @property
    def sql_name(self) -> str:
        """The quoted (and checked) table name for hand-written SQL."""
        return self.ref.sql_name

    @property
    def copy_columns(self) -> list[tuple[str, str]]:
        return self.ref.copy_columns

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
            stmt = self.dialect.insert(reg).values(
                table_name=self.table.name,
                table_id=uuid.uuid4().hex,
                created_at=now_utc().isoformat(timespec="seconds"),
            )
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["table_name"]))
            return str(conn.execute(select).scalar_one())

    def key_constraints(self) -> tuple[bool, bool]:
        """Whether the table as it stands (not as ATM would create it: an older copy or a
        hand-made one may lack them) makes its key unique, and its key columns NOT NULL."""
        if not self.key:
            return False, False
        with self.engine.connect() as conn:
            primary, not_null = self.dialect.key_constraints(conn, self.table)
        return set(primary) == set(self.key), set(self.key) <= set(not_null)

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

    def drop(self) -> None:
        """Drop the table (a user's unpartitioned asset whose columns changed)."""
        self.table.drop(self.engine, checkfirst=True)
        self._table_id = None

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
        self,
        bounds: Sequence[Bounds] | None = None,
        with_bookkeeping: bool = False,
        since: tuple[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Rows of the table, ordered by key (by every column for a table without one): all,
        those of some partitions (`bounds`), or those whose column is at least a value
        (`since`: (column, low))."""
        cols = [self.table.c[f] for f in self.spec.fields]
        if with_bookkeeping:
            cols += [self.table.c[SYNCED_AT], self.table.c[SYNC_COMMIT]]
        order = self.key or self.spec.fields
        stmt = sa.select(*cols).order_by(*[self.table.c[k] for k in order])
        if bounds is not None:
            stmt = stmt.where(bounds_clause(self.table, bounds))
        if since is not None:
            stmt = stmt.where(self.table.c[since[0]] >= since[1])
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
        return self.dialect.existing_keys(conn, self.ref, frame)

    def session(self) -> contextlib.AbstractContextManager[None]:
        """Held around a run's writes (see `Dialect.session`)."""
        return self.dialect.session(self.engine)

    def columns_of(self, frame: pd.DataFrame) -> Any:
        """`frame` as the database scans it in bulk (see `Dialect.columns_of`), or None."""
        return self.dialect.columns_of(self.ref, frame)

    def intervals(self, mode: Mode | Literal["replace"]) -> Intervals:
        """The write strategy of one task, in its database's dialect."""
        if mode not in (*MODES, "replace"):
            raise ConfigError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
        return self.dialect.intervals(self.ref, mode)

    def replace(
        self,
        frame: pd.DataFrame,
        bounds: Sequence[Bounds] | None,
        partitions: Sequence[str] | None = None,
    ) -> WriteCounts:
        """Make the rows of some partitions (`bounds`; None: the whole table) exactly `frame`,
        in one transaction, exclusive of any other replace of them: `partitions` names them
        (partition keys), else each bounds entry is one.

        For tables that are a function of their inputs (derived tables, users' assets) and for
        tables without a natural key: a partition is rewritten whole (rows that no longer
        belong disappear), never merged.
        """
        if bounds is not None and len(frame):
            outside = outside_bounds(frame, bounds)
            if outside.any():
                raise DataValidationError(
                    f"{self.qualified_name}: {int(outside.sum())} row(s) lie outside the "
                    "partitions being replaced"
                )
        self.ensure_table()
        with self.engine.begin() as conn:
            return self.replace_in(conn, frame, bounds, uuid.uuid4().hex, partitions)

    def replace_in(
        self,
        conn: Connection,
        frame: pd.DataFrame,
        bounds: Sequence[Bounds] | None,
        commit_id: str,
        partitions: Sequence[str] | None = None,
    ) -> WriteCounts:
        """`replace` inside the caller's transaction, the rows stamped `commit_id`; another
        replace of the same partitions waits for this transaction to end."""
        if bounds is None:
            partitions = None
        elif partitions is None:
            partitions = [_bounds_text(b) for b in bounds]
        self.dialect.serialise_replace(conn, self.qualified_name, partitions)
        stmt = sa.delete(self.table)
        if bounds is not None:
            stmt = stmt.where(bounds_clause(self.table, bounds))
        conn.execute(stmt)
        if not len(frame):
            return WriteCounts()
        return self.intervals("replace").write(conn, frame, commit_id)


def _bounds_text(bounds: Bounds) -> str:
    """One partition's bounds as text, the same for every run that replaces it."""
    return ";".join(f"{column}={lo}..{hi}" for column, (lo, hi) in sorted(bounds.items()))


def _parse_key_part(kind: str, text: str) -> Any:
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    return text
