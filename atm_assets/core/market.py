"""Trading-calendar lookups and the derived market tables: adjusted bars and the daily universe."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from atm_assets.core.datasets import (
    DAILY_HFQ,
    PRICE_COLUMNS,
    STOCK_UNIVERSE,
    TRADE_CAL,
)
from atm_assets.core.errors import DataValidationError
from atm_assets.core.keys import key_texts
from atm_assets.core.writer import TableWriter

# The SSE calendar decides A-share trading days (SZSE and BSE keep the same holidays).
CALENDAR_EXCHANGE = "SSE"


def trading_status(
    calendar: TableWriter, days: Sequence[dt.date], exchange: str = CALENDAR_EXCHANGE
) -> dict[dt.date, bool]:
    """Open (True) or closed (False) for each day, from the trade_cal table.

    A day the table does not know is an error, not a guess: the calendar must be synced first.
    """
    if calendar.spec is not TRADE_CAL:
        raise TypeError("trading_status reads the trade_cal table")
    if not days:
        return {}
    known: dict[dt.date, bool] = {}
    if calendar.exists():
        lo, hi = min(days), max(days)
        table = calendar.table
        stmt = sa.select(table.c.cal_date, table.c.is_open).where(
            table.c.exchange == exchange, table.c.cal_date.between(lo, hi)
        )
        with calendar.engine.connect() as conn:
            known = {row.cal_date: bool(row.is_open) for row in conn.execute(stmt)}
    missing = [d for d in days if d not in known]
    if missing:
        sample = ", ".join(d.isoformat() for d in missing[:5])
        raise DataValidationError(
            f"{calendar.qualified_name} has no {exchange} rows for {len(missing)} day(s) "
            f"({sample}{', …' if len(missing) > 5 else ''}): materialise trade_cal partition "
            f"{exchange} first"
        )
    return {d: known[d] for d in days}


def pro_bar_round(values: pd.Series) -> pd.Series:
    """Prices as `pro_bar` rounds them: formatted to 2 decimals ('%.2f') and read back."""
    return values.map(lambda v: float(f"{v:.2f}") if pd.notna(v) else None)


def adjust_bars(daily: pd.DataFrame, adj_factor: pd.DataFrame) -> pd.DataFrame:
    """Backward-adjusted (后复权) bars as Tushare's `pro_bar(adj="hfq")` makes them: each price
    times the day's factor, rounded to 2 decimals; a day without a factor takes the stock's
    factor of the day before (pro_bar back-fills its newest-first frame); change and pct_chg
    recomputed from the adjusted close and pre_close. A bar with no factor on or before it
    keeps NULL prices, so the no-NULL-prices check reports it instead of a silent unadjusted
    price."""
    key = ["ts_code", "trade_date"]
    factors = adj_factor[[*key, "adj_factor"]]
    merged = daily.merge(factors, on=key, how="left", validate="many_to_one")
    merged = merged.sort_values(key, kind="stable").reset_index(drop=True)
    factor = pd.to_numeric(merged["adj_factor"], errors="coerce")
    factor = factor.groupby(merged["ts_code"]).ffill()
    out = pd.DataFrame({"ts_code": merged["ts_code"], "trade_date": merged["trade_date"]})
    for column in PRICE_COLUMNS:
        out[column] = pro_bar_round(pd.to_numeric(merged[column], errors="coerce") * factor)
    change = out["close"].astype(float) - out["pre_close"].astype(float)
    out["change"] = change
    out["pct_chg"] = pro_bar_round(change / out["pre_close"].astype(float) * 100)
    out["vol"] = pd.to_numeric(merged["vol"], errors="coerce")
    out["amount"] = pd.to_numeric(merged["amount"], errors="coerce")
    out["adj_factor"] = factor
    return _as_spec(out, DAILY_HFQ.fields, key)


def listed_universe(stock_basic: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """Who traded each day, with name, exchange, market, industry and status from stock_basic.
    A traded code missing from stock_basic keeps NULL listing facts (the check reports it)."""
    facts = stock_basic[["ts_code", "name", "exchange", "market", "industry", "list_status"]]
    bars = daily[["trade_date", "ts_code", "close", "amount"]]
    merged = bars.merge(facts, on="ts_code", how="left", validate="many_to_one")
    return _as_spec(merged, STOCK_UNIVERSE.fields, ["trade_date", "ts_code"])


def _as_spec(frame: pd.DataFrame, fields: list[str], key: list[str]) -> pd.DataFrame:
    out = frame[fields].astype(object)
    out = out.where(out.notna(), None)
    return out.sort_values(key, kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class CheckOutcome:
    """One data-quality check over a frame: passed, how many rows failed, a sample of keys."""

    name: str
    passed: bool
    failed_rows: int
    sample: list[str]
    description: str


def _outcome(name: str, description: str, bad: pd.DataFrame, key: Iterable[str]) -> CheckOutcome:
    key = list(key)
    sample = key_texts(bad.head(5), key)
    return CheckOutcome(name, bad.empty, len(bad), sample, description)


def check_unique_keys(frame: pd.DataFrame, key: Sequence[str]) -> CheckOutcome:
    bad = frame[frame.duplicated(list(key), keep=False)]
    return _outcome("unique_keys", f"({', '.join(key)}) is unique", bad, key)


def check_no_null_prices(
    frame: pd.DataFrame, key: Sequence[str], columns: Sequence[str] = PRICE_COLUMNS
) -> CheckOutcome:
    bad = frame[frame[list(columns)].isna().any(axis=1)]
    return _outcome("no_null_prices", f"{', '.join(columns)} are never NULL", bad, key)


def check_high_not_below_low(frame: pd.DataFrame, key: Sequence[str]) -> CheckOutcome:
    high = pd.to_numeric(frame["high"], errors="coerce")
    low = pd.to_numeric(frame["low"], errors="coerce")
    bad = frame[high < low]
    return _outcome("high_not_below_low", "high ≥ low on every bar", bad, key)


def check_codes_known(
    frame: pd.DataFrame, known_codes: Iterable[str], key: Sequence[str]
) -> CheckOutcome:
    known = set(known_codes)
    bad = frame[~frame["ts_code"].isin(known)]
    return _outcome("ts_code_in_stock_basic", "every traded ts_code is in stock_basic", bad, key)
