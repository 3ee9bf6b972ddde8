"""COPY a DataFrame into PostgreSQL in the binary format, through psycopg 3."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy.engine import Connection

# ATM column types as PostgreSQL binary COPY types: values go in as Python objects, with no
# text escaping at all (a tab, a newline, a backslash or "\N" in a string is just data).
PG_TYPES = {"str": "text", "date": "date", "float": "float8", "int": "int8"}
# Rows per slice: the column lists of one slice are all that is held besides the frame.
SLICE_ROWS = 5000


def copy_frame(
    conn: Connection,
    table: str,
    columns: Sequence[tuple[str, str]],
    frame: pd.DataFrame,
    extra: Sequence[tuple[str, str, Any]] = (),
) -> None:
    """COPY `columns` ((name, ATM type) pairs) of `frame` into `table` (a quoted SQL name),
    each row followed by the constant `extra` ((name, PostgreSQL type, value) triples), on the
    caller's transaction."""
    names = [name for name, _ in columns] + [name for name, _, _ in extra]
    types = [PG_TYPES[kind] for _, kind in columns] + [kind for _, kind, _ in extra]
    tail = tuple(value for _, _, value in extra)
    quoted = ", ".join(f'"{n}"' for n in names)
    raw = conn.connection.driver_connection
    assert raw is not None
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY {table} ({quoted}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(types)
        for start in range(0, len(frame), SLICE_ROWS):
            part = frame.iloc[start : start + SLICE_ROWS]
            for row in zip(*[part[name].tolist() for name, _ in columns], strict=True):
                copy.write_row(row + tail)
