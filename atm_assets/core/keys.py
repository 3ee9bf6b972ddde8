"""Row keys as text ("000001.SZ|2024-01-02"): one separator, one way to join and compare."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

SEPARATOR = "|"


def key_text(values: Iterable[Any]) -> str:
    return SEPARATOR.join(str(v) for v in values)


def key_texts(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """Each row's key as text, in row order."""
    return [key_text(row) for row in frame[list(columns)].itertuples(index=False, name=None)]


def rows_after(frame: pd.DataFrame, columns: Sequence[str], last_key: str | None) -> pd.DataFrame:
    """The rows of a key-sorted frame that come after `last_key` (a resumed task's checkpoint)."""
    if last_key is None:
        return frame
    if len(columns) == 1:
        return frame[frame[columns[0]].astype(str) > last_key]
    last = tuple(last_key.split(SEPARATOR))
    rows = frame[list(columns)].itertuples(index=False, name=None)
    return frame[[tuple(map(str, r)) > last for r in rows]]
