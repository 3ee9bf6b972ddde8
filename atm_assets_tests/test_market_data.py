"""trade_cal, daily, adj_factor and the derived tables: exact contents, closed days, checks."""

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from atm_assets.core.datasets import (
    ADJ_FACTOR,
    DAILY,
    DAILY_HFQ,
    STOCK_UNIVERSE,
    TRADE_CAL,
    TableSpec,
    calendar_range,
)
from atm_assets.core.dates import parse_day
from atm_assets.core.market import (
    adjust_bars,
    check_codes_known,
    check_high_not_below_low,
    check_no_null_prices,
    check_unique_keys,
    listed_universe,
)

from .conftest import ALL_TARGETS
from .helpers import controller, failure_message, run_job, run_stock_basic

# 2024-09-30 (Mon) .. 2024-10-09 (Wed): National Day closes the market from Oct 1 to Oct 7.
WEEK = ("2024-09-30", "2024-10-09")
OPEN_DAYS = ["20240930", "20241008", "20241009"]


def as_table_rows(spec: TableSpec, rows: list[dict]) -> list[dict]:
    """Sandbox rows as the table holds them: dates parsed, in key order."""
    out = []
    for row in rows:
        row = dict(row)
        for col in spec.date_columns:
            row[col] = parse_day(row[col]) if row[col] else None
        out.append(row)
    return sorted(out, key=lambda r: tuple(str(r[k]) for k in spec.key))


def table_rows(target, spec: TableSpec) -> list[dict]:
    rows = target.rows(spec)
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in spec.key))


def sync_calendar(exchanges=("SSE", "SSE")):
    result = run_job("trade_cal_job", exchanges)
    assert result.success, failure_message(result)
    return result


def test_trade_cal_per_exchange_equals_source(target, atm_env, sb):
    result = sync_calendar(("SSE", "BSE"))
    dates = calendar_range()
    expected = []
    for exchange in ("SSE", "SZSE", "BSE"):
        expected += sb.dataset.trade_cal(exchange, dates["start_date"], dates["end_date"])
    assert table_rows(target, TRADE_CAL) == as_table_rows(TRADE_CAL, expected)
    mats = result.asset_materializations_for_node("trade_cal")
    # Each partition's materialisation names its own task; all carry the run's totals.
    assert {m.partition: m.metadata["tasks"].value for m in mats} == {
        "SSE": ["trade_cal_sync_SSE"],
        "SZSE": ["trade_cal_sync_SZSE"],
        "BSE": ["trade_cal_sync_BSE"],
    }
    assert {m.metadata["total_saved"].value for m in mats} == {len(expected)}


@pytest.mark.parametrize("target", ALL_TARGETS, indirect=True)
def test_daily_and_adj_factor_equal_source_and_skip_closed_days(target, atm_env, sb):
    sync_calendar()
    sb.clear_calls()
    result = run_job("market_data_job", WEEK)
    assert result.success, failure_message(result)

    for spec, source in ((DAILY, sb.dataset.daily), (ADJ_FACTOR, sb.dataset.adj_factor)):
        expected = [r for day in OPEN_DAYS for r in source(trade_date=day)]
        assert len(expected) > 3 * 4000
        assert table_rows(target, spec) == as_table_rows(spec, expected)
        mats = result.asset_materializations_for_node(spec.name)
        assert mats[0].metadata["closed_days"].value == 5
        # An open day's materialisation carries its task's stats; a closed day's none.
        tasks = {m.partition: m.metadata["tasks"].value for m in mats if "tasks" in m.metadata}
        assert tasks == {parse_day(d).isoformat(): [f"{spec.name}_sync_{d}"] for d in OPEN_DAYS}
        stats = {m.partition: m.metadata["task_stats"].value for m in mats if "tasks" in m.metadata}
        day = parse_day(OPEN_DAYS[0]).isoformat()
        assert stats[day][f"{spec.name}_sync_{OPEN_DAYS[0]}"]["inserted"] == len(
            source(trade_date=OPEN_DAYS[0])
        )
    # Closed days cost no call; each open day is one query per API.
    asked = sorted((c["api_name"], c["params"].get("trade_date")) for c in sb.calls())
    assert asked == sorted((api, d) for api in ("daily", "adj_factor") for d in OPEN_DAYS)

    # Upsert again: same rows, nothing duplicated, all unchanged.
    again = run_job("market_data_job", WEEK)
    assert again.success, failure_message(again)
    meta = again.asset_materializations_for_node("daily")[0].metadata
    assert meta["unchanged"].value == meta["total_fetched"].value > 0
    assert meta["inserted"].value == meta["updated"].value == 0


def test_daily_needs_the_calendar_first(sqlite_target, atm_env, sb):
    result = run_job("market_data_job", "2024-10-08")
    assert not result.success
    message = failure_message(result)
    assert "has no SSE rows" in message and "materialise trade_cal partition SSE first" in message
    assert not sqlite_target.writer(DAILY).exists() or sqlite_target.rows(DAILY) == []
    assert [c for c in sb.calls() if c["api_name"] == "daily"] == []


def test_append_over_existing_trade_date_fails_and_changes_nothing(sqlite_target, atm_env, sb):
    sync_calendar()
    assert run_job("market_data_job", "2024-10-08").success
    before = table_rows(sqlite_target, DAILY)
    result = run_job("market_data_job", "2024-10-08", config={"daily": {"mode": "append"}})
    assert not result.success
    assert "already exist" in failure_message(result)
    assert table_rows(sqlite_target, DAILY) == before


def checks_of(result, asset: str) -> dict[str, object]:
    return {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == asset
    }


def test_derived_tables_and_their_checks(target, atm_env, sb):
    sync_calendar()
    assert run_stock_basic(("SSE|L", "BSE|G")).success
    assert run_job("market_data_job", WEEK).success

    result = run_job("market_derived_job", WEEK)
    assert result.success, failure_message(result)
    daily = pd.DataFrame(table_rows(target, DAILY))
    factors = pd.DataFrame(table_rows(target, ADJ_FACTOR))
    stocks = pd.DataFrame(target.rows())
    assert table_rows(target, DAILY_HFQ) == adjust_bars(daily, factors).to_dict("records")
    universe = listed_universe(stocks, daily)
    assert table_rows(target, STOCK_UNIVERSE) == universe.to_dict("records")
    assert len(universe) == len(daily) and universe["name"].notna().all()
    # hfq = price × factor to 2 decimals as pro_bar formats it, spot-checked on one row; change
    # and pct_chg recomputed from the adjusted prices.
    row = daily.iloc[0]
    hfq = next(r for r in table_rows(target, DAILY_HFQ) if r["ts_code"] == row["ts_code"])
    factor = factors[(factors.ts_code == row.ts_code) & (factors.trade_date == row.trade_date)]
    assert hfq["close"] == float("%.2f" % (row["close"] * float(factor["adj_factor"].iloc[0])))
    assert hfq["change"] == hfq["close"] - hfq["pre_close"]
    assert hfq["pct_chg"] == float("%.2f" % (hfq["change"] / hfq["pre_close"] * 100))
    for asset in ("daily_hfq", "stock_universe"):
        assert all(e.passed for e in checks_of(result, asset).values()), asset
    assert set(checks_of(result, "daily_hfq")) == {
        "unique_keys",
        "no_null_prices",
        "high_not_below_low",
    }

    # Break the inputs on purpose: an inverted bar, a missing factor, an unknown stock.
    engine = target.engine()
    d, a = target.writer(DAILY).table, target.writer(ADJ_FACTOR).table
    first = daily.iloc[0]
    # A stock's first day in the range: no earlier factor to take (a later day's would be).
    second = daily[daily.ts_code != first.ts_code].sort_values(["trade_date", "ts_code"]).iloc[0]
    # Another stock's second day in the range: its first day's factor stands in.
    other = daily[~daily.ts_code.isin([first.ts_code, second.ts_code])].sort_values(
        ["ts_code", "trade_date"]
    )
    later = other[other.ts_code == other.ts_code.iloc[0]].iloc[1]
    with engine.begin() as conn:
        conn.execute(
            sa.update(d)
            .where(d.c.ts_code == first.ts_code, d.c.trade_date == first.trade_date)
            .values(high=1.0, low=2.0)
        )
        for gone in (second, later):
            conn.execute(
                sa.delete(a).where(a.c.ts_code == gone.ts_code, a.c.trade_date == gone.trade_date)
            )
        ghost = {**first.to_dict(), "ts_code": "999999.SH"}
        conn.execute(
            sa.insert(d).values(**ghost, synced_at=dt.datetime.now(dt.UTC), sync_commit="test")
        )
    broken = run_job("market_derived_job", WEEK)
    hfq_checks = checks_of(broken, "daily_hfq")
    assert not hfq_checks["high_not_below_low"].passed
    assert hfq_checks["high_not_below_low"].metadata["failed_rows"].value == 1
    assert not hfq_checks["no_null_prices"].passed  # the bar without a factor, and the ghost
    assert hfq_checks["no_null_prices"].metadata["failed_rows"].value == 2
    assert hfq_checks["unique_keys"].passed
    # The later day's missing factor is the day before's, as pro_bar back-fills it.
    (filled,) = [
        r
        for r in table_rows(target, DAILY_HFQ)
        if r["ts_code"] == later.ts_code and r["trade_date"] == later.trade_date
    ]
    before = factors[(factors.ts_code == later.ts_code) & (factors.trade_date < later.trade_date)]
    day_before = float(before.sort_values("trade_date")["adj_factor"].iloc[-1])
    assert filled["adj_factor"] == day_before
    assert filled["close"] == float("%.2f" % (later["close"] * day_before))
    universe_checks = checks_of(broken, "stock_universe")
    assert not universe_checks["ts_code_in_stock_basic"].passed
    assert universe_checks["ts_code_in_stock_basic"].metadata["sample_keys"].value == [
        f"{first.trade_date}|999999.SH"
    ]


def test_check_helpers_on_frames():
    frame = pd.DataFrame(
        {
            "ts_code": ["A", "A", "B"],
            "trade_date": ["d1", "d1", "d1"],
            "open": [1.0, 1.0, None],
            "high": [2.0, 2.0, 1.0],
            "low": [1.0, 1.0, 3.0],
            "close": [1.5, 1.5, 2.0],
            "pre_close": [1.0, 1.0, 2.0],
        }
    )
    key = ["ts_code", "trade_date"]
    unique = check_unique_keys(frame, key)
    assert (unique.passed, unique.failed_rows, unique.sample) == (False, 2, ["A|d1", "A|d1"])
    nulls = check_no_null_prices(frame, key)
    assert (nulls.passed, nulls.sample) == (False, ["B|d1"])
    inverted = check_high_not_below_low(frame, key)
    assert (inverted.passed, inverted.sample) == (False, ["B|d1"])
    known = check_codes_known(frame, ["A"], key)
    assert (known.passed, known.sample) == (False, ["B|d1"])
    assert check_codes_known(frame, ["A", "B"], key).passed
    assert check_unique_keys(frame.iloc[1:], key).passed


@pytest.mark.cli
@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_the_controller_syncs_daily_and_adj_factor_into_duckdb(target, atm_env, sb, workdir):
    from atm_assets.core.readers import forward_adjust, read_forward_adjusted

    env = {**atm_env, **target.env}
    for args in (
        ["trade-cal", "--exchange", "SSE"],
        ["daily", "--start-date", "20240930", "--end-date", "20241009"],
        # Task state in the DuckDB file too: checkpoints commit with the rows there.
        ["adj-factor", "--start-date", "20240930", "--end-date", "20241009", "--use-db-state"],
    ):
        done = controller("sync", *args, cwd=workdir, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
    sources = {DAILY: sb.dataset.daily, ADJ_FACTOR: sb.dataset.adj_factor}
    for spec, source in sources.items():
        expected = [r for day in OPEN_DAYS for r in source(trade_date=day)]
        assert table_rows(target, spec) == as_table_rows(spec, expected)
    status = controller("storage", "status", cwd=workdir, env=env)
    assert status.returncode == 0, status.stderr
    assert f"Database: DuckDB file {target.db.settings.duckdb_path}" in status.stdout
    assert f"Table daily: {len(table_rows(target, DAILY))} rows" in status.stdout
    listed = controller("state", "list", cwd=workdir, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "daily_sync_20241009" in listed.stdout and "adj_factor_sync_20241009" in listed.stdout
    # The reader runs its SQL on DuckDB too, and agrees with the pure definition.
    anchor = dt.date(2024, 10, 9)
    engine = target.engine()
    got = read_forward_adjusted(engine, dt.date(2024, 9, 30), anchor, anchor)
    daily = pd.DataFrame(table_rows(target, DAILY))[DAILY.fields]
    factors = pd.DataFrame(table_rows(target, ADJ_FACTOR))[ADJ_FACTOR.fields]
    pd.testing.assert_frame_equal(got, forward_adjust(daily, factors, anchor))


@pytest.mark.parametrize("text", ["2024-13-01", "yesterday", "2024010"])
def test_parse_day_rejects_non_dates(text):
    with pytest.raises(Exception, match="is not a date"):
        parse_day(text)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_append_key_probe_is_conservative_on_composite_keys(kind, request):
    """The range probe may say "maybe" wrongly, never "no" wrongly: a no skips the key check."""
    target = request.getfixturevalue("sqlite_target" if kind == "sqlite" else "pg_target")
    writer = target.writer(DAILY)
    writer.ensure_table()
    d1, d2 = dt.date(2024, 10, 8), dt.date(2024, 10, 9)

    def frame(*keys):
        return pd.DataFrame(keys, columns=["ts_code", "trade_date"])

    with writer.engine.connect() as conn:
        assert not writer.may_hold_keys_of(conn, frame(("000001.SZ", d1)))  # empty table
    row = {c: None for c in DAILY.fields} | {"ts_code": "000002.SZ", "trade_date": d1}
    with writer.engine.begin() as conn:
        conn.execute(sa.insert(writer.table).values(**row, synced_at=dt.datetime.now(dt.UTC)))
    with writer.engine.connect() as conn:
        assert writer.may_hold_keys_of(conn, frame(("000002.SZ", d1)))  # the stored key
        assert writer.may_hold_keys_of(conn, frame(("000001.SZ", d2), ("000003.SZ", d2)))
        assert not writer.may_hold_keys_of(conn, frame(("000003.SZ", d1), ("600000.SH", d2)))
        assert not writer.may_hold_keys_of(conn, frame())
