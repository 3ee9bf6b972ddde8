"""Pure checks and conversions for fetched rows: partition membership, keys, fields, dates."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from atm_assets.core.datasets import TableSpec
from atm_assets.core.dates import parse_tushare_date
from atm_assets.core.errors import DataValidationError
from atm_assets.core.keys import key_texts


def normalize_frame(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Columns in spec order, NaN as None, dates as `datetime.date`; strings stay as they are."""
    out = frame.astype(object).where(frame.notna(), None)
    for name in spec.date_columns:
        parsed = []
        for key, value in zip(key_texts(out, spec.key), out[name], strict=True):
            try:
                parsed.append(parse_tushare_date(value))
            except ValueError as e:
                raise DataValidationError(
                    f"{spec.name}: row {key} has an unparseable {name}: {value!r} ({e})"
                ) from None
        out[name] = pd.Series(parsed, index=out.index, dtype=object)
    for column in spec.columns:
        if column.type == "int":
            out[column.name] = _as_ints(out, spec, column.name)
    return out[spec.fields]


def _as_ints(frame: pd.DataFrame, spec: TableSpec, name: str) -> pd.Series:
    """An integer column comes back as floats once one value is missing (pandas); whole numbers
    go back to int, anything else is an error naming the row."""
    values = []
    for key, value in zip(key_texts(frame, spec.key), frame[name], strict=True):
        if isinstance(value, float):
            if not value.is_integer():
                raise DataValidationError(
                    f"{spec.name}: row {key} has a non-integer {name}: {value!r}"
                )
            value = int(value)
        values.append(value)
    return pd.Series(values, index=frame.index, dtype=object)


def validate_rows(
    frame: pd.DataFrame, spec: TableSpec, partition: Mapping[str, str | None]
) -> pd.DataFrame:
    """Check a fetched frame against its request; return it normalized and sorted by key.

    Fails (writing nothing is the caller's side) when fields differ from the spec, a key is
    missing or repeated, a row lies outside the partition, or a date cannot be parsed.
    """
    got = [str(c) for c in frame.columns]
    if got != spec.fields:
        missing = [f for f in spec.fields if f not in got]
        extra = [f for f in got if f not in spec.fields]
        raise DataValidationError(
            f"{spec.name}: fields differ from the request (missing {missing}, unexpected {extra})"
        )
    for column in spec.key:
        nulls = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if nulls.any():
            raise DataValidationError(
                f"{spec.name}: {int(nulls.sum())} row(s) have an empty key column {column}"
            )
    dupes = frame[frame.duplicated(list(spec.key), keep=False)]
    if len(dupes):
        keys = sorted(set(key_texts(dupes, spec.key)))
        raise DataValidationError(
            f"{spec.name}: key {'/'.join(spec.key)} is not unique: {len(keys)} key(s) repeat, "
            f"e.g. {', '.join(keys[:5])}"
        )
    for column, expected in spec.checked_columns(partition).items():
        if not expected:
            continue
        wrong = frame[frame[column] != expected]
        if len(wrong):
            sample = ", ".join(
                f"{k} ({column}={v!r})"
                for k, v in zip(key_texts(wrong, spec.key)[:5], wrong[column][:5], strict=False)
            )
            raise DataValidationError(
                f"{spec.name}: {len(wrong)} row(s) outside the partition {column}={expected}: "
                f"{sample}"
            )
    for column in spec.fields:
        if spec.column(column).type != "str":
            continue
        texts = frame[column]
        nul = texts.map(lambda v: isinstance(v, str) and "\x00" in v)
        if nul.any():
            keys = key_texts(frame[nul], spec.key)
            raise DataValidationError(
                f"{spec.name}: {int(nul.sum())} row(s) hold a NUL character in {column}, which a "
                f"database text column cannot store, e.g. {', '.join(keys[:5])}"
            )
    out = normalize_frame(frame, spec)
    return out.sort_values(list(spec.key), kind="stable").reset_index(drop=True)
