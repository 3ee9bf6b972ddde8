"""COPY a DataFrame into PostgreSQL through psycopg 3, as CSV that Arrow writes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy.engine import Connection

from atm_assets.core.tables import typed_frame

# Every value quoted, a NULL left empty: PostgreSQL's CSV reads "" as an empty text and an
# empty field as NULL, and a quoted `\.` as data, never as the end of the COPY.
CSV_OPTIONS = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")


def copy_csv(
    conn: Connection,
    table: str,
    columns: Sequence[tuple[str, str]],
    frame: pd.DataFrame,
    extra: Sequence[tuple[str, Any]] = (),
) -> None:
    """COPY `columns` ((name, ATM type) pairs) of `frame` into `table` (a quoted SQL name),
    each row followed by the constant `extra` ((name, value) pairs), on the
    caller's transaction. Arrow writes the CSV from the frame's columns, so text held as Arrow
    strings never becomes Python objects: ~0.05 s for 172,000 rows of 19 columns, where a
    binary COPY's per-row encoding of Python objects took ~0.5 s. A tab, a newline, a
    backslash or "\\N" inside a quoted value is just data."""
    typed = typed_frame(columns, frame)
    for name, value in extra:
        text = value.isoformat() if hasattr(value, "isoformat") else str(value)
        typed = typed.append_column(name, pa.repeat(pa.scalar(text, pa.string()), len(frame)))
    quoted = ", ".join(f'"{n}"' for n in typed.column_names)
    raw = conn.connection.driver_connection
    assert raw is not None
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY {table} ({quoted}) FROM STDIN (FORMAT CSV)") as copy,
    ):
        pa_csv.write_csv(typed, _Sink(copy), CSV_OPTIONS)


class _Sink:
    """A file Arrow's CSV writer writes to, each block passed on to the COPY."""

    def __init__(self, copy: Any) -> None:
        self.copy = copy
        self.closed = False

    def write(self, data: Any) -> int:
        self.copy.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None
