"""Calendar and bar APIs: trade_cal, daily, adj_factor, weekly and monthly bars."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from atm_assets.sandbox.generators.common import mix
from atm_assets.sandbox.generators.prices import Tradable
from atm_assets.sandbox.query import (
    ApiSpec,
    codes_param,
    date_param,
    int_param,
    param,
    register_api,
)
from atm_assets.sandbox.tradecal import CALENDAR_END, CALENDAR_START, calendar, parse_date

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


def bar_days(params: Mapping[str, Any]) -> list[str]:
    cal = calendar()
    trade_date = date_param(params, "trade_date")
    if trade_date is not None:
        return [trade_date] if trade_date in cal.open_index else []
    start = date_param(params, "start_date") or CALENDAR_START
    end = date_param(params, "end_date") or CALENDAR_END
    return cal.open_between(start, end)[::-1]


def bar_stocks(ds: SandboxDataset, params: Mapping[str, Any]) -> list[Tradable]:
    listing = ds.listing()
    codes = codes_param(params)
    if codes is None:
        return listing.tradables()
    found = (listing.tradable(c) for c in codes)
    return [t for t in found if t is not None]


def iter_bars(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[tuple[Tradable, str, int]]:
    """(stock, day, day index) in API order: newest day first, ts_code ascending within a day."""
    stocks = bar_stocks(ds, params)
    open_index = calendar().open_index
    for day in bar_days(params):
        i = open_index[day]
        for t in stocks:
            if t.trades_on(day) and not t.suspended(i):
                yield t, day, i


def _daily_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for t, day, i in iter_bars(ds, params):
        yield dict(zip(DAILY_FIELDS, (t.ts_code, day, *t.bar(i)), strict=True))


def _adj_factor_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for t, day, i in iter_bars(ds, params):
        yield {"ts_code": t.ts_code, "trade_date": day, "adj_factor": t.adj_factor(i)}


PERIOD_BAR_FIELDS: tuple[str, ...] = (
    "ts_code",
    "trade_date",
    "close",
    "open",
    "high",
    "low",
    "pre_close",
    "change",
    "pct_chg",
    "vol",
    "amount",
)


@lru_cache(maxsize=2)
def periods(kind: str) -> dict[int, int]:
    """First open-day index of each week ("week", ISO weeks) or month, keyed by its last one."""
    days = calendar().open_dates
    start_of: dict[int, int] = {}
    start, prev_key = 0, None
    for i, day in enumerate(days):
        key = parse_date(day).isocalendar()[:2] if kind == "week" else day[:6]
        if prev_key is not None and key != prev_key:
            start_of[i - 1] = start
            start = i
        prev_key = key
    start_of[len(days) - 1] = start
    return start_of


def _period_bar(t: Tradable, start: int, end: int) -> dict[str, Any] | None:
    """One stock's bar over open days start..end from its daily bars (None: no bar at all)."""
    days = calendar().open_dates
    if days[end] < t.list_date or (t.delist_date is not None and days[start] >= t.delist_date):
        return None
    closes = t.closes(start - 1, end)
    # bar_with() inlined (same expressions, so the same floats): months must stay fast.
    key_bar, key_susp, vol_base = t.key ^ 0xBA5, t.key ^ 0x5E5, t.vol_base
    listed, delisted = t.list_date, t.delist_date
    first: int | None = None
    open_ = high = low = close = 0.0
    vol = amount = 0.0
    for i in range(start, end + 1):
        day = days[i]
        if day < listed or (delisted is not None and day >= delisted):
            continue
        if mix(key_susp, i) % 1000 < 12:
            continue
        c, pc = closes[i - start + 1], closes[i - start]
        z = mix(key_bar, i)
        o = round(pc * (1 + 0.02 * ((z & 0xFFFF) / 65536 - 0.5)), 2)
        h = max(round(max(o, c) * (1 + 0.02 * (((z >> 16) & 0xFFFF) / 65536)), 2), o, c)
        lo = min(round(min(o, c) * (1 - 0.02 * (((z >> 32) & 0xFFFF) / 65536)), 2), o, c)
        v = round(vol_base * (0.4 + 1.2 * (((z >> 48) & 0xFFFF) / 65536)), 2)
        if first is None:
            first, open_, high, low = i, o, h, lo
        else:
            high, low = max(high, h), min(low, lo)
        close = c
        vol += v
        amount += round(v * (o + h + lo + c) / 4 / 10, 3)
    if first is None:
        return None
    # The previous period's close is the last close before this period's first bar.
    prev = t.last_traded_before(first)
    pre_close = t.close(prev) if prev is not None else closes[first - start]
    change = round(close - pre_close, 2)
    return {
        "ts_code": t.ts_code,
        "trade_date": days[end],
        "close": close,
        "open": open_,
        "high": high,
        "low": low,
        "pre_close": pre_close,
        "change": change,
        # Tushare's weekly/monthly pct_chg is a fraction, not a percentage.
        "pct_chg": round(change / pre_close, 4),
        "vol": round(vol, 2),
        "amount": round(amount, 3),
    }


def _period_rows(
    ds: SandboxDataset, params: Mapping[str, Any], kind: str
) -> Iterator[dict[str, Any]]:
    cal = calendar()
    start_of = periods(kind)
    trade_date = date_param(params, "trade_date")
    if trade_date is not None:
        i = cal.open_index.get(trade_date)
        ends = [i] if i is not None and i in start_of else []
    else:
        start = date_param(params, "start_date") or CALENDAR_START
        end = date_param(params, "end_date") or CALENDAR_END
        lo = cal.index_on_or_after(start)
        hi = bisect.bisect_right(cal.open_dates, end) - 1
        ends = [e for e in range(hi, lo - 1, -1) if e in start_of]
    stocks = bar_stocks(ds, params)
    for end_index in ends:
        for t in stocks:
            row = _period_bar(t, start_of[end_index], end_index)
            if row is not None:
                yield row


def _weekly_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    return _period_rows(ds, params, "week")


def _monthly_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    return _period_rows(ds, params, "month")


register_api(
    ApiSpec(
        "trade_cal",
        TRADE_CAL_FIELDS,
        _trade_cal_rows,
        unique_key=("exchange", "cal_date"),
    )
)
register_api(
    ApiSpec(
        "daily",
        DAILY_FIELDS,
        _daily_rows,
        unique_key=("ts_code", "trade_date"),
    )
)
register_api(
    ApiSpec(
        "adj_factor",
        ADJ_FACTOR_FIELDS,
        _adj_factor_rows,
        unique_key=("ts_code", "trade_date"),
    )
)
register_api(
    ApiSpec(
        "weekly",
        PERIOD_BAR_FIELDS,
        _weekly_rows,
        cache=True,
        unique_key=("ts_code", "trade_date"),
    )
)
register_api(
    ApiSpec(
        "monthly",
        PERIOD_BAR_FIELDS,
        _monthly_rows,
        cache=True,
        unique_key=("ts_code", "trade_date"),
    )
)
