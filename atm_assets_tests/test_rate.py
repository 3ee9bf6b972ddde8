"""The rate governor wired in: one budget across processes, refusal classes, calls in flight."""

import threading
import time

import pytest

from atm_assets.core.datasets import ADJ_FACTOR, DAILY, STOCK_BASIC
from atm_assets.core.errors import ConfigError, TushareProtocolError
from atm_assets.core.governor import CallCancelledError, Governor, SqliteStore
from atm_assets.core.governor.shared import budgets_from
from atm_assets.core.settings import RetrySettings, TushareSettings, load_settings
from atm_assets.core.tushare_client import TushareClient

from .helpers import controller, failure_message, run_job, start_controller
from .test_backfill import SMALL
from .test_market_data import table_rows

# Two disjoint ranges of 8 open days each (National Day holidays end on 2024-10-07).
FIRST = ("2024-10-08", "2024-10-17")
SECOND = ("2024-10-18", "2024-10-29")


def _dates(rows: list[dict]) -> set[str]:
    return {r["trade_date"].strftime("%Y%m%d") for r in rows}


def _calls(sb, api: str) -> list[dict]:
    return [c for c in sb.calls() if c["api_name"] == api]


@pytest.fixture
def calendar(sqlite_target, atm_env, sb):
    """Small stock lists and the SSE calendar synced: daily then needs one call per open day."""
    sb.set_sizes(SMALL)
    result = run_job("trade_cal_job", "SSE")
    assert result.success, failure_message(result)
    sb.clear_calls()
    return sqlite_target


# -- settings --


@pytest.mark.pure
def test_budgets_come_from_the_tier_the_override_and_per_api_limits():
    settings = load_settings(env={"TUSHARE_API_LIMITS": "daily=500, stk_limit=200/10000"})
    budgets = budgets_from(settings.tushare)
    assert budgets.for_api("stock_basic").per_minute == 50  # 120 points
    assert (budgets.for_api("daily").per_minute, budgets.for_api("daily").per_day) == (500, None)
    assert budgets.for_api("stk_limit").per_day == 10000
    settings = load_settings(env={"TUSHARE_POINTS": "5000", "TUSHARE_API_LIMITS": "x=/3"})
    assert budgets_from(settings.tushare).for_api("x").per_minute == 500
    assert budgets_from(settings.tushare).for_api("x").per_day == 3
    settings = load_settings(env={"TUSHARE_POINTS": "5000", "TUSHARE_CALLS_PER_MINUTE": "7"})
    assert budgets_from(settings.tushare).for_api("daily").per_minute == 7


@pytest.mark.pure
@pytest.mark.parametrize("value", ["daily", "daily=0", "daily=a/1", "1x=5", "daily=/", "=5"])
def test_a_malformed_api_limit_names_the_variable(value):
    with pytest.raises(ConfigError, match="TUSHARE_API_LIMITS: API limit .* is not `api=PER_MIN`"):
        load_settings(env={"TUSHARE_API_LIMITS": value})


@pytest.mark.pure
def test_points_below_the_lowest_tier_are_refused():
    with pytest.raises(ConfigError, match="TUSHARE_POINTS: must be"):
        load_settings(env={"TUSHARE_POINTS": "100"})


# -- one budget for every process --


@pytest.mark.cli
def test_two_controllers_share_one_budget_and_are_never_refused(calendar, sb, workdir):
    # The service refuses the 7th call in any 8 s window; each controller is told 6 per
    # window, and they sync disjoint ranges at the same time.
    sb.set_rate_limit(6, window=8)
    env = {"TUSHARE_CALLS_PER_MINUTE": "6", "TUSHARE_RATE_WINDOW": "8"}
    procs = [
        start_controller(
            "sync", "daily", "--start-date", first, "--end-date", last, cwd=workdir, env=env
        )
        for first, last in (FIRST, SECOND)
    ]
    outputs = [proc.communicate(timeout=240) for proc in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    calls = _calls(sb, "daily")
    assert len(calls) == 16
    assert [c for c in sb.calls() if c["code"] != 0] == []  # zero refusals
    times = sorted(c["time"] for c in calls)
    # Never more than 6 in a window across both processes: so 16 calls span two windows.
    assert all(times[i + 6] - times[i] >= 7.9 for i in range(len(times) - 6))
    assert _dates(calendar.rows(DAILY)) == {c["params"]["trade_date"] for c in calls}


# -- refusal classes --


def test_a_day_quota_stops_that_api_and_the_others_go_on(calendar, sb):
    sb.set_daily_quota(3, api="daily")
    keys = FIRST
    result = run_job("market_data_job", keys, assets=["daily", "adj_factor"])
    assert not result.success
    text = failure_message(result)
    assert "DailyQuotaExhaustedError" in text and "daily quota of API daily" in text, text
    assert "resets at" in text and "Asia/Shanghai" in text
    # adj_factor, another API in the same run, synced every day; daily kept what it fetched.
    adj_days = {c["params"]["trade_date"] for c in _calls(sb, "adj_factor")}
    assert len(adj_days) == 8 and _dates(table_rows(calendar, ADJ_FACTOR)) == adj_days
    assert len(_dates(table_rows(calendar, DAILY))) <= 3
    # Another run: daily stops before calling the service, adj_factor goes on.
    sb.clear_calls()
    again = run_job("market_data_job", SECOND, assets=["daily", "adj_factor"])
    assert not again.success and "daily quota of API daily" in failure_message(again)
    assert _calls(sb, "daily") == []
    assert len(_calls(sb, "adj_factor")) == 8


@pytest.mark.cli
def test_no_permission_marks_the_api_unavailable_until_cleared(calendar, sb, workdir):
    sb.deny("daily")
    sync = ("sync", "daily", "--start-date", FIRST[0], "--end-date", FIRST[1])
    denied = controller(*sync, cwd=workdir)
    assert denied.returncode == 1
    error = denied.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: ") and "refused this account access to API daily" in error
    first_calls = len(_calls(sb, "daily"))
    assert 1 <= first_calls <= 8  # those already in flight; none started after the refusal

    status = controller("tushare", "status", cwd=workdir)
    assert status.returncode == 0, status.stderr
    line = next(x for x in status.stdout.splitlines() if x.startswith("daily "))
    assert "NO PERMISSION" in line and "没有接口" in line
    assert "120 points tier, 50 calls/min per API" not in status.stdout  # atm_env overrides
    assert "100000 calls/min per API" in status.stdout

    sb.allow("daily")
    still = controller(*sync, cwd=workdir)
    assert still.returncode == 1 and "refused this account access" in still.stderr
    assert len(_calls(sb, "daily")) == first_calls  # the mark holds: no call made

    cleared = controller("tushare", "clear", "daily", cwd=workdir)
    assert cleared.returncode == 0 and "Cleared the refusals recorded for API daily" in (
        cleared.stdout
    )
    ok = controller(*sync, cwd=workdir)
    assert ok.returncode == 0, ok.stderr[-3000:]
    status = controller("tushare", "status", cwd=workdir)
    line = next(x for x in status.stdout.splitlines() if x.startswith("daily "))
    assert line.split()[-1] == "ok"
    assert int(line.split()[-2]) == first_calls + 8  # calls today, across processes


def test_a_minute_refusal_pauses_the_api_for_every_client(sb, tmp_path):
    store = SqliteStore(tmp_path / "governor.db")
    settings = TushareSettings(
        api_url=sb.url,
        calls_per_minute=100,
        rate_window_seconds=2,
        retry=RetrySettings(rate_limit_base_delay=0.01, base_delay=0.01),
    )
    clients = [
        TushareClient(sb.token, settings, governor=Governor(store, budgets_from(settings), 2))
        for _ in range(2)
    ]
    sb.inject("rate_limit", api="stock_basic", times=1)
    began = time.monotonic()
    clients[0].query("stock_basic", ["ts_code"], exchange="BSE", list_status="P")
    clients[1].query("stock_basic", ["ts_code"], exchange="BSE", list_status="P")
    # The refusal paused stock_basic one window for both; the service was not asked meanwhile.
    assert time.monotonic() - began >= 1.9
    calls = _calls(sb, "stock_basic")
    assert [c["code"] for c in calls] == [40203, 0, 0]
    assert calls[1]["time"] - calls[0]["time"] >= 1.9
    status = {s.api_name: s for s in clients[1].governor.status()}
    assert status["stock_basic"].calls_today == 3
    store.close()


# -- calls in flight --


def test_partitions_are_fetched_in_flight_under_latency(calendar, sb, monkeypatch):
    sb.set_latency(0.5)
    began = time.monotonic()
    result = run_job("market_data_job", (FIRST[0], SECOND[1]), assets=["daily"])
    assert result.success, failure_message(result)
    calls = _calls(sb, "daily")
    assert len(calls) == 16
    # 8 in flight: 16 calls of 0.5 s take about 1 s; one at a time they need 8 s.
    times = sorted(c["time"] for c in calls)
    assert times[-1] - times[0] < 4.0  # half of one at a time, with room for a loaded machine
    assert _dates(table_rows(calendar, DAILY)) == {c["params"]["trade_date"] for c in calls}
    assert time.monotonic() - began < 30


def test_pages_are_fetched_concurrently_and_in_order(sb):
    settings = TushareSettings(api_url=sb.url, max_in_flight=4)
    client = TushareClient(sb.token, settings)
    params = {"exchange": "SSE", "list_status": "L"}
    whole = client.query("stock_basic", STOCK_BASIC.fields, **params)
    assert len(whole) > 40
    sb.clear_calls()
    paged = client.query_all("stock_basic", STOCK_BASIC.fields, page_size=7, **params)
    assert paged.equals(whole)
    offsets = sorted(c["params"]["offset"] for c in _calls(sb, "stock_basic"))
    needed = len(whole) // 7 + 1
    assert offsets[:needed] == [7 * i for i in range(needed)]
    assert len(offsets) < needed + 4  # at most one batch past the end
    # daily ignores offset: the second page repeats the first, and that is an error.
    with pytest.raises(TushareProtocolError, match="ignored offset=3: paging does not advance"):
        client.query_all("daily", DAILY.fields, page_size=3, trade_date="20241008")


def test_a_call_waiting_for_the_budget_ends_when_its_run_stops(tmp_path):
    store = SqliteStore(tmp_path / "governor.db")
    governor = Governor(store, budgets_from(TushareSettings(calls_per_minute=1)), window=30)
    with governor.call("daily"):
        pass
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    began = time.monotonic()
    with pytest.raises(CallCancelledError, match="the run stopped"), governor.call("daily", stop):
        pass
    assert time.monotonic() - began < 5  # not the 30 s window
    store.close()
