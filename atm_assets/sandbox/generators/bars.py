"""Calendar and bar APIs: trade_cal, daily and adj_factor (newest day first, ts_code ascending)."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from atm_assets.sandbox.generators.prices import Tradable
from atm_assets.sandbox.query import (
    ApiSpec,
    codes_param,
    date_param,
    int_param,
    param,
    register_api,
)
from atm_assets.sandbox.tradecal import CALENDAR_END, CALENDAR_START, calendar

if TYPE_CHECKING:
    from atm_assets.sandbox.dataset import SandboxDataset

_CAL_EXCHANGES = frozenset({"SSE", "SZSE", "BSE", "CFFEX", "SHFE", "CZCE", "DCE", "INE", "GFEX"})

TRADE_CAL_FIELDS: tuple[str, ...] = ("exchange", "cal_date", "is_open", "pretrade_date")
DAILY_FIELDS: tuple[str, ...] = (
    "ts_code",
    "trade_date",
    "open",
    "high",
    "low",
    "close",
    "pre_close",
    "change",
    "pct_chg",
    "vol",
    "amount",
)
ADJ_FACTOR_FIELDS: tuple[str, ...] = ("ts_code", "trade_date", "adj_factor")


def _trade_cal_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    exchange = (param(params, "exchange") or "SSE").upper()
    if exchange not in _CAL_EXCHANGES:
        return
    start = date_param(params, "start_date") or CALENDAR_START
    end = date_param(params, "end_date") or CALENDAR_END
    is_open = int_param(params, "is_open")
    cal = calendar()
    lo = bisect.bisect_left(cal.dates, start)
    hi = bisect.bisect_right(cal.dates, end)
    # The live service lists the newest date first.
    for i in range(hi - 1, lo - 1, -1):
        if is_open is not None and cal.is_open[i] != is_open:
            continue
        yield {
            "exchange": exchange,
            "cal_date": cal.dates[i],
            "is_open": cal.is_open[i],
            "pretrade_date": cal.pretrade[i],
        }


def _bar_days(params: Mapping[str, Any]) -> list[str]:
    cal = calendar()
    trade_date = date_param(params, "trade_date")
    if trade_date is not None:
        return [trade_date] if trade_date in cal.open_index else []
    start = date_param(params, "start_date") or CALENDAR_START
    end = date_param(params, "end_date") or CALENDAR_END
    return cal.open_between(start, end)[::-1]


def _bar_stocks(ds: SandboxDataset, params: Mapping[str, Any]) -> list[Tradable]:
    listing = ds.listing()
    codes = codes_param(params)
    if codes is None:
        return listing.tradables()
    found = (listing.tradable(c) for c in codes)
    return [t for t in found if t is not None]


def _iter_bars(
    ds: SandboxDataset, params: Mapping[str, Any]
) -> Iterator[tuple[Tradable, str, int]]:
    """(stock, day, day index) in API order: newest day first, ts_code ascending within a day."""
    stocks = _bar_stocks(ds, params)
    open_index = calendar().open_index
    for day in _bar_days(params):
        i = open_index[day]
        for t in stocks:
            if t.trades_on(day) and not t.suspended(i):
                yield t, day, i


def _daily_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for t, day, i in _iter_bars(ds, params):
        yield dict(zip(DAILY_FIELDS, (t.ts_code, day, *t.bar(i)), strict=True))


def _adj_factor_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for t, day, i in _iter_bars(ds, params):
        yield {"ts_code": t.ts_code, "trade_date": day, "adj_factor": t.adj_factor(i)}


register_api(ApiSpec("trade_cal", TRADE_CAL_FIELDS, _trade_cal_rows))
register_api(ApiSpec("daily", DAILY_FIELDS, _daily_rows))
register_api(ApiSpec("adj_factor", ADJ_FACTOR_FIELDS, _adj_factor_rows))
