"""Tables of users' own assets: their columns read off a DataFrame, or off the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa

from atm_assets.core.datasets import SYNC_COMMIT, SYNCED_AT, Column, ColumnType, TableSpec
from atm_assets.core.errors import ConfigError
from atm_assets.core.settings import validate_identifier


def column_type(values: pd.Series) -> ColumnType:
    """The ATM type a column of a user's frame is stored as: whole numbers and booleans as
    int, other numbers as float, dates (and midnight timestamps) as date, the rest as text."""
    kind = values.dtype.kind
    if kind in "biu":
        return "int"
    if kind == "f":
        return "float"
    if kind == "M":
        stamps = values.dropna()
        return "date" if (stamps == stamps.dt.normalize()).all() else "str"
    present = values.dropna()
    if len(present) and all(
        isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in present
    ):
        return "date"
    if len(present) and all(isinstance(v, bool | int) for v in present):
        return "int"
    if len(present) and all(isinstance(v, bool | int | float) for v in present):
        return "float"
    return "str"


def frame_spec(name: str, frame: pd.DataFrame, key: Sequence[str] = ()) -> TableSpec:
    """The table a user's asset writes: one column per frame column, typed from its values;
    `key` (the asset's `atm/key` metadata) as primary key, else none."""
    validate_identifier(name, "table name")
    columns = []
    for column in frame.columns:
        label = validate_identifier(str(column), f"column of {name}")
        if label in (SYNCED_AT, SYNC_COMMIT):
            raise ConfigError(f"{name}: column {label} is ATM's own bookkeeping; rename it")
        columns.append(Column(label, column_type(frame[column]), nullable=label not in key))
    missing = [k for k in key if k not in frame.columns]
    if missing:
        raise ConfigError(f"{name}: key column(s) {', '.join(missing)} not in the frame")
    return TableSpec(name=name, api_name="", columns=tuple(columns), key=tuple(key))


def as_stored(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """The frame with values as the table stores them: dates as dates, text as text."""
    out = frame.copy()
    for column in spec.columns:
        values = out[column.name]
        if column.type == "date" and values.dtype.kind == "M":
            out[column.name] = [None if pd.isna(v) else v.date() for v in values]
        elif column.type == "str":
            out[column.name] = [None if _missing(v) else str(v) for v in values]
        elif column.type == "int":
            out[column.name] = [None if _missing(v) else int(v) for v in values]
        elif column.type == "float":
            out[column.name] = [None if _missing(v) else float(v) for v in values]
    return out


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


_REFLECTED: dict[type, ColumnType] = {
    sa.Date: "date",
    sa.Integer: "int",
    sa.Float: "float",
    sa.Numeric: "float",
}


def reflected_spec(engine: sa.Engine, schema: str | None, name: str) -> TableSpec | None:
    """The spec of a table a user's asset wrote earlier, read off the database (None: no
    such table)."""
    if not sa.inspect(engine).has_table(name, schema=schema):
        return None
    table = sa.Table(name, sa.MetaData(), autoload_with=engine, schema=schema)
    columns = []
    for c in table.columns:
        if c.name in (SYNCED_AT, SYNC_COMMIT):
            continue
        kind: ColumnType = next(
            (t for cls, t in _REFLECTED.items() if isinstance(c.type, cls)), "str"
        )
        columns.append(Column(c.name, kind, nullable=bool(c.nullable)))
    key = tuple(c.name for c in table.primary_key.columns)
    return TableSpec(name=name, api_name="", columns=tuple(columns), key=key)
