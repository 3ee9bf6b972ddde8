"""Pure checks and conversions for fetched rows: partition membership, keys, fields, dates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pandas as pd

from atm_assets.core.datasets import TableSpec
from atm_assets.core.errors import DataValidationError


def parse_tushare_date(value: object) -> dt.date | None:
    """YYYYMMDD (Tushare's only date format) to a date; None/NaN/empty stay None."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return None
    text = str(value).strip()
    if text == "":
        return None
    if len(text) != 8 or not text.isdigit():
        raise ValueError(f"not a YYYYMMDD date: {value!r}")
    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))


def format_tushare_date(value: dt.date | None) -> str | None:
    return None if value is None else value.strftime("%Y%m%d")


def normalize_frame(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Columns in spec order, NaN as None, dates as `datetime.date`; strings stay as they are."""
    out = frame.astype(object).where(frame.notna(), None)
    for name in spec.date_columns:
        parsed = []
        for key, value in zip(_keys(out, spec), out[name], strict=True):
            try:
                parsed.append(parse_tushare_date(value))
            except ValueError as e:
                raise DataValidationError(
                    f"{spec.name}: row {key} has an unparseable {name}: {value!r} ({e})"
                ) from None
        out[name] = pd.Series(parsed, index=out.index, dtype=object)
    return out[spec.fields]


def _keys(frame: pd.DataFrame, spec: TableSpec) -> list[str]:
    if len(spec.key) == 1:
        return [str(v) for v in frame[spec.key[0]]]
    return ["|".join(str(v) for v in row) for row in frame[list(spec.key)].itertuples(index=False)]


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
        keys = sorted(set(_keys(dupes, spec)))
        raise DataValidationError(
            f"{spec.name}: key {'/'.join(spec.key)} is not unique: {len(keys)} key(s) repeat, "
            f"e.g. {', '.join(keys[:5])}"
        )
    for column, expected in partition.items():
        if not expected:
            continue
        wrong = frame[frame[column] != expected]
        if len(wrong):
            sample = ", ".join(
                f"{k} ({column}={v!r})"
                for k, v in zip(_keys(wrong, spec)[:5], wrong[column][:5], strict=False)
            )
            raise DataValidationError(
                f"{spec.name}: {len(wrong)} row(s) outside the partition {column}={expected}: "
                f"{sample}"
            )
    out = normalize_frame(frame, spec)
    return out.sort_values(list(spec.key), kind="stable").reset_index(drop=True)
