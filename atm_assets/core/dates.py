"""Dates as Tushare writes them (YYYYMMDD) and as partition keys name them (YYYY-MM-DD)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from atm_assets.core.errors import DataValidationError


def parse_tushare_date(value: object) -> dt.date | None:
    """YYYYMMDD (Tushare's only date format) to a date; None, NaN and "" stay None."""
    if value is None or value != value:  # NaN is the one value unequal to itself
        return None
    text = str(value).strip()
    if text in ("", "<NA>"):
        return None
    if len(text) != 8 or not text.isdigit():
        raise ValueError(f"not a YYYYMMDD date: {value!r}")
    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))


def tushare_date(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def parse_day(text: str) -> dt.date:
    """A partition key ("2024-01-02") or a Tushare date ("20240102") as a date."""
    try:
        if len(text) == 8 and text.isdigit():
            return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
        return dt.date.fromisoformat(text)
    except ValueError:
        raise DataValidationError(f"{text!r} is not a date (YYYY-MM-DD or YYYYMMDD)") from None


# Tushare's calendar, publication times and quota days are Beijing time.
SHANGHAI = ZoneInfo("Asia/Shanghai")


def shanghai_today() -> dt.date:
    return dt.datetime.now(SHANGHAI).date()
