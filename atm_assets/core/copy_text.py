"""PostgreSQL COPY text from DataFrames, serialised column-wise and streamed slice by slice."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy.engine import Connection

Row = tuple[Any, ...]

# Field/row separators and NULL marker used while serialising; none can occur in PostgreSQL text
# (which refuses NUL) or, in practice, in Tushare data; their counts are checked anyway.
_FIELD, _ROW, _NULL = "\x00", "\x01", "\x02"
_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def copy_value(value: object) -> str:
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
    lines = ["\t".join(map(copy_value, row)) for row in rows]
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
    tail = "".join("\t" + copy_value(v) for v in extra)
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


def copy_from(conn: Connection, sql: str, stream: io.TextIOBase) -> None:
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        cur.copy_expert(sql, stream)
