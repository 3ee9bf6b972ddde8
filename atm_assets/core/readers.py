"""Reads for research: financials as known on a day, adjusted bars, panels in the database."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from atm_assets.core.catalog import catalog
from atm_assets.core.datasets import ADJ_FACTOR, DAILY, PRICE_COLUMNS, TableSpec
from atm_assets.core.dialects import dialect_of
from atm_assets.core.errors import ConfigError
from atm_assets.core.tables import build_table
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
    # Versions alike in all of these: the rest of the key decides (every column, for a table
    # without one), never the order the table happens to be read in.
    order += [c for c in (spec.key or spec.fields) if c not in order]
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


# -- panels: adjusted bars and point-in-time financials, computed in the database --

ADJUSTMENTS: tuple[str, ...] = ("none", "qfq", "hfq")


def pro_bar_round_array(values: Any) -> np.ndarray:
    """`'%.2f' % v` read back (pro_bar's FORMAT) over an array, fast: numpy's rounding agrees
    with it except near a half cent, where scaling by 100 can tip the value; those few are
    formatted one by one. NaN stays NaN."""
    x = np.asarray(values, dtype="float64")
    out = np.round(x, 2)
    scaled = np.abs(x * 100.0)
    near_half = np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6
    for i in np.flatnonzero(near_half & np.isfinite(x)):
        out[i] = float(f"{x[i]:.2f}")
    return out


def _tables(schema: str | None, *specs: TableSpec) -> list[sa.Table]:
    # Plain table objects: reads need no dialect strategy (any SQLAlchemy database will do).
    metadata = sa.MetaData()
    return [build_table(spec, schema, metadata) for spec in specs]


def _check_columns(spec: TableSpec, columns: Sequence[str], allowed: Sequence[str]) -> list[str]:
    if not columns:
        raise ConfigError(f"name at least one column of {spec.name} ({', '.join(allowed)})")
    unknown = [c for c in columns if c not in allowed]
    if unknown:
        raise ConfigError(
            f"{spec.name} has no column {', '.join(map(repr, unknown))} "
            f"(one of {', '.join(allowed)})"
        )
    return list(dict.fromkeys(columns))


def _check_window(start: dt.date, end: dt.date) -> None:
    if start > end:
        raise ConfigError(f"start date {start} is after end date {end}")


def adjusted_bars_query(
    columns: Sequence[str],
    start: dt.date,
    end: dt.date,
    adjust: str,
    codes: Sequence[str] | None = None,
    schema: str | None = None,
    with_factor: bool = False,
) -> sa.Select:
    """One SELECT of daily's `columns` for [start, end], ordered by date and code, adjusted as
    `pro_bar` adjusts (tushare/pro/data_pro.py, 1.4.29): each bar joined to its day's factor,
    a missing factor taken from the stock's previous bar in the window (pro_bar bfills its
    newest-first frame), hfq = price × factor, qfq = price × factor ÷ the stock's newest
    factor in the window (`fcts['adj_factor'][0]`). Window functions only (COUNT/MAX OVER), so
    SQLite, PostgreSQL and DuckDB run it alike. Prices come back unrounded: each database
    rounds halves its own way, so the 2-decimal rounding is done by the caller. `with_factor`
    (qfq/hfq) adds a last column, `factor`: the ratio the bar's prices were multiplied by."""
    if with_factor and adjust == "none":
        raise ConfigError("a factor comes with qfq or hfq adjustment only, not with none")
    daily, factors = _tables(schema, DAILY, ADJ_FACTOR)
    price_cols = [c for c in columns if c in PRICE_COLUMNS]
    where = [daily.c.trade_date.between(start, end)]
    if codes:
        where.append(daily.c.ts_code.in_(list(codes)))
    # The window is said on both sides: each database then prunes adj_factor by date itself.
    joined: Any = daily.outerjoin(
        factors,
        sa.and_(
            factors.c.ts_code == daily.c.ts_code,
            factors.c.trade_date == daily.c.trade_date,
            factors.c.trade_date.between(start, end),
        ),
    )
    anchor_cols: list[Any] = []
    if adjust == "qfq":
        # Each stock's newest factor in the window, one row per stock, joined to the bars by
        # code alone: a small hash table (an index on SQLite), not a second pass over factors.
        newest_where = [factors.c.trade_date.between(start, end), factors.c.adj_factor.is_not(None)]
        if codes:
            newest_where.append(factors.c.ts_code.in_(list(codes)))
        newest_day = (
            sa.select(factors.c.ts_code, sa.func.max(factors.c.trade_date).label("day"))
            .where(*newest_where)
            .group_by(factors.c.ts_code)
            .subquery("newest_day")
        )
        anchor_t = _tables(schema, ADJ_FACTOR)[0].alias("anchor_factor")
        anchor = (
            sa.select(newest_day.c.ts_code, anchor_t.c.adj_factor.label("anchor"))
            .join_from(
                newest_day,
                anchor_t,
                sa.and_(
                    anchor_t.c.ts_code == newest_day.c.ts_code,
                    anchor_t.c.trade_date == newest_day.c.day,
                ),
            )
            .subquery("anchor")
        )
        joined = joined.outerjoin(anchor, anchor.c.ts_code == daily.c.ts_code)
        anchor_cols = [anchor.c.anchor]
    bars = (
        sa.select(
            daily.c.ts_code,
            daily.c.trade_date,
            *[daily.c[c] for c in columns],
            factors.c.adj_factor.label("f"),
            *anchor_cols,
        )
        .select_from(joined)
        .where(*where)
        .cte("bars")
    )
    if adjust == "none":
        return sa.select(bars.c.trade_date, bars.c.ts_code, *[bars.c[c] for c in columns]).order_by(
            bars.c.trade_date, bars.c.ts_code
        )
    # A bar without its day's factor takes the stock's previous one in the window (forward
    # fill: a run of bars after a factor shares its count of factors seen so far). Factors are
    # seldom missing, so only the stocks with a gap go through the two window functions; the
    # others (nearly all) keep their own, which saves a sort of every bar by stock.
    gaps = sa.select(bars.c.ts_code).where(bars.c.f.is_(None)).distinct().scalar_subquery()
    whole = sa.select(bars, bars.c.f.label("factor")).where(bars.c.ts_code.not_in(gaps))
    keep = [c.name for c in bars.c]
    gap_filled = _forward_fill(
        bars, "f", ["trade_date"], keep, {"factor": "f"}, bars.c.ts_code.in_(gaps)
    )
    filled = sa.union_all(whole, gap_filled).cte("filled")
    ratio: sa.ColumnElement[Any] = filled.c.factor
    if adjust == "qfq":
        ratio = filled.c.factor / filled.c.anchor
    out = [(filled.c[c] * ratio).label(c) if c in price_cols else filled.c[c] for c in columns]
    if with_factor:
        out.append(ratio.label("factor"))
    return sa.select(filled.c.trade_date, filled.c.ts_code, *out).order_by(
        filled.c.trade_date, filled.c.ts_code
    )


def _forward_fill(
    source: Any,
    marker: str,
    order: Sequence[str],
    keep: Sequence[str],
    fill: Mapping[str, str],
    where: Any = None,
) -> sa.Select:
    """`source`'s `keep` columns, and each `fill` column (name → source column) carried forward
    per stock, in `order`, from the last row whose `marker` is not NULL. A run of rows after a
    marked one shares its count of marks so far, so the run's MAX is the marked row's value:
    window functions only (COUNT/MAX OVER), which SQLite, PostgreSQL and DuckDB run alike."""
    runs = sa.select(
        source,
        sa.func.count(source.c[marker])
        .over(
            partition_by=source.c.ts_code,
            order_by=[source.c[c] for c in order],
            rows=(None, 0),
        )
        .label("run_no"),
    )
    if where is not None:
        runs = runs.where(where)
    cte = runs.cte(f"{source.name}_runs")
    group = [cte.c.ts_code, cte.c.run_no]
    return sa.select(
        *[cte.c[c] for c in keep],
        *[sa.func.max(cte.c[c]).over(partition_by=group).label(name) for name, c in fill.items()],
    )


def _fetch(engine: sa.Engine, stmt: sa.Select, columns: Sequence[str], wide: bool) -> pd.DataFrame:
    """The answer as a long table, dates as `datetime.date`. A wide panel is placed by the
    pivot whatever the rows' order, so its query is not sorted (on DuckDB the sort is a third
    of the time), and its dates are converted once per day, not once per row."""
    if wide:
        stmt = stmt.order_by(None)
    with engine.connect() as conn:
        frame = dialect_of(conn).read_frame(conn, stmt)
    frame.columns = pd.Index(["trade_date", "ts_code", *columns])
    if not wide:
        for name in frame.columns:
            if frame[name].dtype.kind == "M":
                frame[name] = _as_dates(frame[name])
    return frame


def _as_dates(values: pd.Series) -> pd.Series | pd.Index:
    """datetime64 values as `datetime.date` objects (NaT as None), each distinct day
    converted once."""
    codes, days = pd.factorize(values)
    # A code of -1 (NaT) takes the last element.
    objects = np.array([*(d.date() for d in days), None], dtype=object)
    if isinstance(values, pd.Index):
        return pd.Index(objects[codes], name=values.name, dtype=object)
    return pd.Series(objects[codes], index=values.index, name=values.name)


def _wide(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """date × ts_code (both sorted); several columns become the outer level of the column
    index. Each cell is placed by the integer codes of its date and stock: millions of bars
    become a panel in a fraction of a second, where a general pivot takes several."""
    days, day_values = pd.factorize(frame["trade_date"], sort=True)
    codes, code_values = pd.factorize(frame["ts_code"], sort=True)
    seen = np.zeros((len(day_values), len(code_values)), dtype=bool)
    seen[days, codes] = True
    if int(seen.sum()) < len(frame):
        raise ValueError("a panel needs one row per (trade_date, ts_code)")
    index = pd.Index(day_values, name="trade_date")
    if index.dtype.kind == "M":
        index = _as_dates(index)
    panels = {}
    for column in columns:
        values = frame[column].to_numpy()
        dtype = np.float64 if values.dtype.kind in "iuf" else object
        cells = np.full((len(day_values), len(code_values)), np.nan, dtype=dtype)
        cells[days, codes] = values
        panels[column] = pd.DataFrame(
            cells, index=index, columns=pd.Index(code_values, name="ts_code")
        )
    if len(columns) == 1:
        return panels[columns[0]]
    return pd.concat(panels, axis=1, names=[None, "ts_code"])


def read_panel(
    engine: sa.Engine,
    columns: Sequence[str],
    start: dt.date,
    end: dt.date,
    adjust: str = "none",
    codes: Sequence[str] | None = None,
    schema: str | None = None,
    wide: bool = False,
    with_factor: bool = False,
) -> pd.DataFrame:
    """daily's `columns` for [start, end]: a long table (trade_date, ts_code, columns…) or,
    `wide`, a date × ts_code panel. `adjust` qfq/hfq adjusts open, high, low, close and
    pre_close in the database as pro_bar does and, like pro_bar, rounds them to 2 decimals and
    recomputes change (close − pre_close) and pct_chg; vol and amount are never adjusted.
    `with_factor` adds a last column, `factor`: what each bar's prices were multiplied by
    before rounding (hfq: its adj_factor, filled as the prices are; qfq: that ÷ the anchor)."""
    if adjust not in ADJUSTMENTS:
        raise ConfigError(
            f"unknown adjustment {adjust!r}: expected one of {', '.join(ADJUSTMENTS)}"
        )
    allowed = [f for f in DAILY.fields if f not in DAILY.key]
    wanted = _check_columns(DAILY, columns, allowed)
    _check_window(start, end)
    fetched = list(wanted)
    recompute = adjust != "none" and bool({"change", "pct_chg"} & set(wanted))
    if recompute:
        fetched += [c for c in ("close", "pre_close") if c not in fetched]
    stmt = adjusted_bars_query(fetched, start, end, adjust, codes, schema, with_factor)
    extra = ["factor"] if with_factor else []
    frame = _fetch(engine, stmt, [*fetched, *extra], wide)
    if adjust != "none":
        for c in fetched:
            if c in PRICE_COLUMNS:
                frame[c] = pro_bar_round_array(frame[c].astype("float64"))
        if recompute:
            change = frame["close"] - frame["pre_close"]
            frame["change"] = change
            frame["pct_chg"] = pro_bar_round_array(change / frame["pre_close"] * 100)
    wanted += extra
    frame = frame[["trade_date", "ts_code", *wanted]]
    return _wide(frame, wanted) if wide else frame


def point_in_time_query(
    spec: TableSpec,
    columns: Sequence[str],
    start: dt.date,
    end: dt.date,
    codes: Sequence[str] | None = None,
    schema: str | None = None,
    report_type: str | None = "1",
) -> sa.Select:
    """For every (trade_date, ts_code) of daily in [start, end], `columns` of the latest
    report known that day: of the reports announced on or before it (`spec.known_from`), the
    newest period (end_date), in its newest version (announcement, then update_flag) — a
    correction of an older period announced later does not displace a newer period. Each
    stock's announcements and days are one stream ordered by date, and a day takes the last
    announcement before it: window functions only, for SQLite, PostgreSQL and DuckDB."""
    assert spec.known_from is not None
    daily, facts = _tables(schema, DAILY, spec)
    known = facts.c[spec.known_from]
    where = [known.is_not(None), known <= end]
    if codes:
        where.append(facts.c.ts_code.in_(list(codes)))
    if "report_type" in spec.fact_key and report_type is not None:
        where.append(facts.c.report_type == report_type)
    version = [facts.c.update_flag.desc()] if "update_flag" in spec.fields else []
    # Ties broken by the rest of the key (every column of a table without one): deterministic.
    rest = [
        facts.c[k]
        for k in (spec.key or spec.fields)
        if k not in ("ts_code", "end_date", spec.known_from)
    ]
    # One report per stock and announcement day: the newest period, its newest version.
    ranked = (
        sa.select(
            facts.c.ts_code,
            known.label("known"),
            facts.c.end_date,
            *[facts.c[c] for c in columns],
            sa.func.row_number()
            .over(
                partition_by=[facts.c.ts_code, known],
                order_by=[facts.c.end_date.desc(), *version, *rest],
            )
            .label("pick"),
        )
        .where(*where)
        .cte("ranked")
    )
    daily_best = (
        sa.select(
            ranked,
            sa.func.max(ranked.c.end_date)
            .over(partition_by=ranked.c.ts_code, order_by=ranked.c.known, rows=(None, 0))
            .label("newest_period"),
        )
        .where(ranked.c.pick == 1)
        .cte("daily_best")
    )
    # Reports that take over on their day: the newest period seen so far.
    events = (
        sa.select(daily_best)
        .where(daily_best.c.end_date == daily_best.c.newest_period)
        .cte("events")
    )
    day_where = [daily.c.trade_date.between(start, end)]
    if codes:
        day_where.append(daily.c.ts_code.in_(list(codes)))
    # Days and the reports' announcements in one stream per stock, ordered by date (an
    # announcement before the day it falls on: it is in force that day); each day then takes
    # the values of the last announcement before it. Window functions over one sort, where a
    # join by date range would be a nested loop on SQLite (it builds no index for a range).
    payload = ["end_date", "known", *columns]
    stream = sa.union_all(
        sa.select(
            events.c.ts_code,
            events.c.known.label("day"),
            sa.literal(0).label("is_day"),
            *[events.c[c] for c in payload],
        ),
        sa.select(
            daily.c.ts_code,
            daily.c.trade_date.label("day"),
            sa.literal(1).label("is_day"),
            *[sa.null().label(c) for c in payload],
        ).where(*day_where),
    ).cte("stream")
    filled = _forward_fill(
        stream, "known", ["day", "is_day"], ["ts_code", "day", "is_day"], {c: c for c in payload}
    ).cte("filled")
    return (
        sa.select(
            filled.c.day.label("trade_date"),
            filled.c.ts_code,
            filled.c.end_date.label("report_end_date"),
            filled.c.known.label("report_" + spec.known_from),
            *[filled.c[c] for c in columns],
        )
        .where(filled.c.is_day == 1)
        .order_by(filled.c.day, filled.c.ts_code)
    )


def read_point_in_time(
    engine: sa.Engine,
    dataset: str,
    columns: Sequence[str],
    start: dt.date,
    end: dt.date,
    codes: Sequence[str] | None = None,
    schema: str | None = None,
    report_type: str | None = "1",
    wide: bool = False,
) -> pd.DataFrame:
    """`point_in_time_query` as a long table (with the report's end_date and announcement
    date) or, `wide`, a date × ts_code panel of the columns."""
    spec = catalog().get(dataset)
    if spec is None or not spec.known_from or "end_date" not in spec.fields:
        known = ", ".join(n for n, s in catalog().items() if s.known_from)
        raise ConfigError(f"{dataset!r} is not a point-in-time dataset (one of {known})")
    allowed = [
        c.name for c in spec.columns if c.type in ("float", "int") and c.name not in spec.key
    ]
    wanted = _check_columns(spec, columns, allowed)
    _check_window(start, end)
    stmt = point_in_time_query(spec, wanted, start, end, codes, schema, report_type)
    extra = ["report_end_date", "report_" + spec.known_from]
    frame = _fetch(engine, stmt, [*extra, *wanted], wide)
    return _wide(frame, wanted) if wide else frame


def read_research(
    engine: sa.Engine,
    dataset: str,
    columns: Sequence[str],
    start: dt.date,
    end: dt.date,
    adjust: str = "none",
    codes: Sequence[str] | None = None,
    schema: str | None = None,
    report_type: str | None = "1",
    wide: bool = False,
) -> pd.DataFrame:
    """The controller's `read`: daily bars (adjusted) or a point-in-time dataset."""
    if dataset == "daily":
        return read_panel(engine, columns, start, end, adjust, codes, schema, wide)
    if adjust != "none":
        raise ConfigError(f"--adjust applies to daily only, not {dataset}")
    return read_point_in_time(
        engine, dataset.replace("-", "_"), columns, start, end, codes, schema, report_type, wide
    )


def write_frame(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """A panel to CSV or Parquet (by suffix), written to a temporary file and renamed."""
    import tempfile

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    wide = not {"trade_date", "ts_code"} <= set(frame.columns)
    out = frame
    if wide and isinstance(frame.columns, pd.MultiIndex):
        out = frame.copy()
        out.columns = [f"{a}:{b}" for a, b in frame.columns]
    try:
        if target.suffix == ".parquet":
            out.to_parquet(tmp, index=wide)
        else:
            out.to_csv(tmp, index=wide)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
