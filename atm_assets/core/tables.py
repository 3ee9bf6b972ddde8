"""A dataset's table as SQL sees it: columns and key, and the rows and counts written to it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from atm_assets.core.datasets import SYNC_COMMIT, SYNCED_AT, TableSpec
from atm_assets.core.settings import validate_identifier

SQL_TYPES: dict[str, Callable[[], sa.types.TypeEngine[Any]]] = {
    "str": sa.Text,
    "date": sa.Date,
    "float": lambda: sa.Float(precision=53),
    "int": sa.BigInteger,
}
# ATM column types as Arrow's: what a database scans (DuckDB) or a COPY reads (PostgreSQL, as
# CSV) in bulk, without a Python call per value.
ARROW_TYPES = {"str": pa.string(), "date": pa.date32(), "float": pa.float64(), "int": pa.int64()}

Row = tuple[Any, ...]
# The rows of one partition: column → (low, high), both inclusive; a list of them is their
# union. Partition schemes are turned into bounds by the Dagster layer (partitions.py).
Bounds = dict[str, tuple[Any, Any]]


def bounds_clause(table: sa.Table, bounds: Sequence[Bounds]) -> sa.ColumnElement[bool]:
    """SQL for "in any of these partitions": one IN list when every partition is one value of
    one column (trade dates), else an OR of per-partition ranges."""
    columns = {c for b in bounds for c in b}
    if len(columns) == 1 and all(lo == hi for b in bounds for lo, hi in b.values()):
        (column,) = columns
        return table.c[column].in_(sorted({b[column][0] for b in bounds}))
    parts = [
        sa.and_(
            *[
                table.c[c] == lo if lo == hi else table.c[c].between(lo, hi)
                for c, (lo, hi) in b.items()
            ]
        )
        for b in bounds
    ]
    return sa.or_(*parts) if parts else sa.false()


def partition_bounds(spec: TableSpec, partition: Mapping[str, str]) -> list[Bounds] | None:
    """The rows a task's request covers, from the columns that carry its parameters (a trade
    date, an exchange, a report period): one partition's bounds, or None for the whole table
    (a snapshot)."""
    from atm_assets.core.dates import parse_tushare_date

    checked = spec.checked_columns(partition)
    if not checked:
        return None
    bounds: Bounds = {}
    for column, value in checked.items():
        typed = parse_tushare_date(value) if spec.column(column).type == "date" else value
        bounds[column] = (typed, typed)
    return [bounds]


def outside_bounds(frame: pd.DataFrame, bounds: Sequence[Bounds]) -> pd.Series:
    """Rows of `frame` in none of the partitions (a derived table's rows must lie inside)."""
    inside = pd.Series(False, index=frame.index)
    for b in bounds:
        mask = pd.Series(True, index=frame.index)
        for column, (lo, hi) in b.items():
            values = frame[column]
            mask &= values.map(lambda v, lo=lo, hi=hi: v is not None and lo <= v <= hi).astype(bool)
        inside |= mask
    return ~inside


def build_table(
    spec: TableSpec, schema: str | None, metadata: sa.MetaData, name: str | None = None
) -> sa.Table:
    """The SQLAlchemy table for a spec: one column per field, the key as primary key."""
    table_name = validate_identifier(name or spec.name, "table name")
    columns = [
        sa.Column(
            c.name,
            SQL_TYPES[c.type](),
            primary_key=c.name in spec.key,
            nullable=c.nullable and c.name not in spec.key,
        )
        for c in spec.columns
    ]
    columns.append(sa.Column(SYNCED_AT, sa.DateTime(timezone=True), nullable=False))
    columns.append(sa.Column(SYNC_COMMIT, sa.Text, nullable=True))
    return sa.Table(table_name, metadata, *columns, schema=schema)


@dataclass(frozen=True)
class TableRef:
    """One dataset's table in one database: what a dialect's write strategy works on."""

    spec: TableSpec
    table: sa.Table

    @property
    def key(self) -> list[str]:
        return list(self.spec.key)

    @property
    def schema(self) -> str | None:
        return self.table.schema

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
        """(name, ATM type) of every field, in order."""
        return [(c.name, c.type) for c in self.spec.columns]


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


def sqlite_value(value: Any) -> Any:
    """A value as SQLite stores it: dates the way SQLAlchemy's Date type reads them back."""
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def column_values(column: pd.Series) -> list[Any]:
    """A column's values as Python objects. Text stays Arrow strings through validation
    (pandas 3 holds it so, missing as NaN): here it becomes `str`, a missing one None."""
    if isinstance(column.dtype, pd.StringDtype):
        return list(column.to_numpy(dtype=object, na_value=None))
    return column.tolist()


def frame_rows(
    frame: pd.DataFrame, columns: Sequence[str], dates_as_text: Collection[str] = ()
) -> list[Row]:
    """Plain tuples in `columns` order (column lists zipped: far cheaper than itertuples); the
    `dates_as_text` columns hold their dates as SQLite stores them."""
    lists = [
        [sqlite_value(v) for v in frame[c].tolist()]
        if c in dates_as_text
        else column_values(frame[c])
        for c in columns
    ]
    return list(zip(*lists, strict=True))


def typed_frame(columns: Sequence[tuple[str, str]], rows: pd.DataFrame) -> pa.Table:
    """`columns` ((name, ATM type) pairs) of the rows as an Arrow table of their types. A
    missing value (None, NaN) is NULL; text is kept byte for byte."""
    arrays = []
    for name, kind in columns:
        values: Any = rows[name]
        try:
            arrays.append(pa.array(values, type=ARROW_TYPES[kind], from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            if kind not in ("float", "int"):
                raise
            # Numbers may arrive as text (a user's YAML dataset): read as a database's CAST
            # would.
            numbers = pd.to_numeric(values, errors="raise")
            arrays.append(pa.array(numbers, type=ARROW_TYPES[kind], from_pandas=True))
    return pa.table(arrays, names=[name for name, _ in columns])


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
