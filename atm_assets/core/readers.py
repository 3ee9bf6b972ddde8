"""Reads for research: financials as known on a day, forward-adjusted (前复权) bars."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa

from atm_assets.core.catalog import catalog
from atm_assets.core.datasets import ADJ_FACTOR, DAILY, PRICE_COLUMNS, TableSpec
from atm_assets.core.errors import ConfigError
from atm_assets.core.writer import TableWriter


def as_of(frame: pd.DataFrame, spec: TableSpec, day: dt.date) -> pd.DataFrame:
    """What was known on `day`: the rows announced by then (`spec.known_from` ≤ day), and of
    each fact (`spec.fact_key`: a company's report for a period and type) only the newest
    version. Pure: give it the table's rows."""
    if not spec.known_from or not spec.fact_key:
        raise ConfigError(f"{spec.name} is not a point-in-time dataset")
    announced = frame[frame[spec.known_from].notna()]
    # A boolean mask even when empty: an empty object Series would select columns.
    known = announced[announced[spec.known_from].map(lambda d: d <= day).astype(bool)]
    # A correction repeats a version's dates: update_flag 1 is the newer one.
    order = [
        *spec.fact_key,
        spec.known_from,
        *(["update_flag"] if "update_flag" in spec.fields else []),
    ]
    newest = known.sort_values(order, kind="stable").drop_duplicates(
        list(spec.fact_key), keep="last"
    )
    return newest.sort_values(list(spec.fact_key), kind="stable").reset_index(drop=True)


def latest_versions(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """The newest version of each fact (`as_of` today); other datasets as they are."""
    if not spec.known_from or not spec.fact_key:
        return frame
    return as_of(frame, spec, dt.date.max)


def read_as_of(
    engine: sa.Engine, dataset: str, day: dt.date, schema: str | None = None
) -> pd.DataFrame:
    """`as_of` over a synced point-in-time table (income, balancesheet, …, dividend)."""
    spec = catalog().get(dataset)
    if spec is None or not spec.known_from:
        known = ", ".join(n for n, s in catalog().items() if s.known_from)
        raise ConfigError(f"{dataset!r} is not a point-in-time dataset (one of {known})")
    writer = TableWriter(engine, spec, schema)
    table = writer.table
    stmt = sa.select(table).where(table.c[spec.known_from] <= day)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(stmt).mappings().all(), columns=spec.fields)
    return as_of(frame[spec.fields], spec, day)


def forward_adjust(daily: pd.DataFrame, factors: pd.DataFrame, anchor: dt.date) -> pd.DataFrame:
    """Forward-adjusted bars as Tushare's `pro_bar(adj="qfq")`: each price × its day's factor
    ÷ the factor on the anchor date (the stock's last factor on or before it), rounded to 2
    decimals as pro_bar does, so prices on the anchor date equal the traded ones. Pure; a bar
    without a factor keeps NULL prices."""
    key = ["ts_code", "trade_date"]
    bars = daily.merge(factors[[*key, "adj_factor"]], on=key, how="left")
    upto = factors[factors["trade_date"].map(lambda d: d <= anchor).astype(bool)]
    latest = (
        upto.sort_values(key, kind="stable")
        .drop_duplicates("ts_code", keep="last")
        .set_index("ts_code")["adj_factor"]
    )
    ratio = bars["adj_factor"] / bars["ts_code"].map(latest)
    out = bars.copy()
    for column in PRICE_COLUMNS:
        out[column] = (bars[column].astype(float) * ratio).round(2)
    return out.sort_values(key, kind="stable").reset_index(drop=True)


def read_forward_adjusted(
    engine: sa.Engine,
    start: dt.date,
    end: dt.date,
    anchor: dt.date,
    ts_codes: Sequence[str] | None = None,
    schema: str | None = None,
) -> pd.DataFrame:
    """Forward-adjusted bars from the synced daily and adj_factor tables."""
    frames = []
    for spec, lo in ((DAILY, start), (ADJ_FACTOR, min(start, anchor))):
        table = TableWriter(engine, spec, schema).table
        hi = end if spec is DAILY else max(end, anchor)
        stmt = sa.select(table).where(table.c.trade_date.between(lo, hi))
        if ts_codes:
            stmt = stmt.where(table.c.ts_code.in_(list(ts_codes)))
        with engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        frames.append(pd.DataFrame(rows, columns=spec.fields))
    return forward_adjust(frames[0], frames[1], anchor)
