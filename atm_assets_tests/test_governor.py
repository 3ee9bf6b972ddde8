"""Rate governor: shared per-API budgets across real processes, on SQLite and on PostgreSQL."""

import datetime as dt
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import pytest
import sqlalchemy as sa

from atm_assets.core.dialects.postgresql import PostgresStore
from atm_assets.core.errors import ConfigError, TushareError
from atm_assets.core.governor import (
    SHANGHAI,
    ApiPermissionDeniedError,
    Budget,
    Budgets,
    DailyQuotaExhaustedError,
    Governor,
    SqliteStore,
    classify_refusal,
    next_day_reset,
    per_minute_for_points,
    shanghai_day,
)
from atm_assets_tests import governor_procs as procs
from atm_assets_tests.governor_procs import Spec

SPAWN = multiprocessing.get_context("spawn")
MINUTE_MSG = "抱歉，您每分钟最多访问该接口2次，权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
DAY_MSG = (
    "抱歉，您每天最多访问该接口5次，权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
)
PERM_MSG = "抱歉，您没有接口(stock_basic)访问权限，权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"


def one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(error.value)
    assert text and "\n" not in text
    return text


# --- budgets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "points,per_minute",
    [(120, 50), (1999, 50), (2000, 200), (4999, 200), (5000, 500), (15000, 500)],
)
def test_the_points_tier_sets_the_per_minute_limit(points, per_minute):
    assert per_minute_for_points(points) == per_minute
    assert Budgets(points).for_api("daily") == Budget(per_minute, None)


@pytest.mark.parametrize("points", [119, 0, -5, 2000.0, True, "2000", None])
def test_points_outside_every_tier_are_refused(points):
    with pytest.raises(ConfigError) as e:
        per_minute_for_points(points)
    assert repr(points) in one_line(e) or str(points) in one_line(e)


@pytest.mark.parametrize(
    "kwargs", [{"per_minute": 0}, {"per_minute": -1}, {"per_day": 0}, {"per_minute": 1.5}]
)
def test_zero_negative_or_fractional_limits_are_refused(kwargs):
    with pytest.raises(ConfigError) as e:
        Budget(**kwargs)
    assert "positive whole number" in one_line(e)


def test_bad_budget_settings_are_refused_with_one_line():
    with pytest.raises(ConfigError) as e:
        Budget(per_minute=True)
    one_line(e)
    with pytest.raises(ConfigError) as e:
        Budgets(2000, overrides={"daily": {"per_hour": 3}})
    assert "override for API daily has unknown keys ['per_hour']" in one_line(e)
    with pytest.raises(ConfigError) as e:
        Budgets(2000, overrides={"daily": {"per_day": -3}})
    assert "override for API daily: per_day must be a positive whole number" in one_line(e)
    with pytest.raises(ConfigError) as e:
        Budgets(2000, defaults={"no such api!": Budget(1)})
    one_line(e)
    with pytest.raises(ConfigError) as e:
        Budgets(50)
    assert "below the lowest known tier" in one_line(e)


def test_catalog_defaults_lower_the_tier_and_overrides_replace_field_by_field():
    budgets = Budgets(
        2000,
        defaults={"stock_basic": Budget(1, None), "daily": Budget(500, 8000)},
        overrides={"daily": {"per_day": 100}, "moneyflow": Budget(per_minute=900)},
    )
    assert budgets.for_api("stock_basic") == Budget(1, None)  # the API's own lower limit
    assert budgets.for_api("daily") == Budget(200, 100)  # the tier caps the default
    assert budgets.for_api("moneyflow") == Budget(900, None)  # the user knows better
    assert budgets.for_api("adj_factor") == Budget(200, None)
    assert Budgets(None).for_api("daily") == Budget(None, None)
    assert Budgets(None, defaults={"stock_basic": Budget(1)}).for_api("stock_basic") == Budget(1)


def test_the_quota_day_turns_at_midnight_in_shanghai():
    before = dt.datetime(2024, 1, 1, 15, 59, 59, tzinfo=dt.UTC).timestamp()
    after = before + 1  # 16:00 UTC is 00:00 in Shanghai
    assert shanghai_day(before) == "2024-01-01" and shanghai_day(after) == "2024-01-02"
    assert next_day_reset(before) == after
    assert next_day_reset(after) == after + 86400
    assert dt.datetime.fromtimestamp(next_day_reset(before), SHANGHAI).hour == 0


def test_refusal_messages_are_classified():
    assert classify_refusal(MINUTE_MSG) == "minute"
    assert classify_refusal(DAY_MSG) == "day"
    assert classify_refusal(PERM_MSG) == "permission"
    assert classify_refusal("Tushare rate limit (40203): " + MINUTE_MSG) == "minute"
    assert classify_refusal("抱歉，您每小时最多访问该接口10次") == "day"
    assert classify_refusal("something else") is None


def test_bad_governor_settings_are_refused(tmp_path):
    store = SqliteStore(tmp_path / "governor.db")
    for kwargs, text in [
        ({"window": 0}, "window must be a positive"),
        ({"window": -2.0}, "window must be a positive"),
        ({"window": 60, "in_flight_timeout": 30}, "must be at least the window"),
        ({"permission_ttl": 0}, "permission_ttl must be a positive"),
    ]:
        with pytest.raises(ConfigError) as e:
            Governor(store, Budgets(2000), **kwargs)
        assert text in one_line(e)
    governor = Governor(store, Budgets(2000))
    with pytest.raises(ConfigError) as e:
        governor.refused("daily", "hour", "?")
    assert "unknown refusal kind 'hour'" in one_line(e)
    with pytest.raises(ConfigError) as e:
        with governor.call("daily; drop table x"):
            pass
    one_line(e)
    engine = sa.create_engine("postgresql+psycopg2://u@127.0.0.1:1/x")
    with pytest.raises(ConfigError) as e:
        PostgresStore(engine, 'x"; drop schema y')
    assert "not a plain identifier" in one_line(e)
    with pytest.raises(ConfigError) as e:
        PostgresStore(sa.create_engine("sqlite://"), None)
    one_line(e)
    governor.close()


def test_the_governor_errors_are_typed_tushare_errors_that_are_not_retried():
    assert issubclass(DailyQuotaExhaustedError, TushareError)
    assert not DailyQuotaExhaustedError("x").retryable
    assert not ApiPermissionDeniedError("x").retryable


# --- shared stores, real processes -----------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def spec(request, tmp_path) -> Spec:
    if request.param == "sqlite":
        return Spec("sqlite", str(tmp_path / "storage" / "governor.db"))
    url = request.getfixturevalue("pg_database")
    return Spec(
        "postgresql", url.render_as_string(hide_password=False), schema=f"g_{uuid.uuid4().hex[:8]}"
    )


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    """Two other processes, started once (spawn: nothing inherited from the test process)."""
    with ProcessPoolExecutor(max_workers=2, mp_context=SPAWN) as executor:
        yield executor


@pytest.fixture
def make() -> Iterator[Callable[[Spec], Governor]]:
    """Governors of the test process itself, closed at the end of the test."""
    made: list[Governor] = []

    def build(spec: Spec) -> Governor:
        made.append(spec.governor())
        return made[-1]

    yield build
    for governor in made:
        procs.close(governor)


def run(pool: ProcessPoolExecutor, fn, *args):
    return pool.submit(fn, *args).result(timeout=120)


def timed(governor: Governor, api: str) -> float:
    began = time.monotonic()
    with governor.call(api):
        pass
    return time.monotonic() - began


def most_calls_one_window_could_hold(records: list[tuple[float, float]], window: float) -> int:
    """The service counts a call when it arrives, somewhere in [start, end]; a window
    [t, t + window) can hold that arrival iff t is in (start - window, end]. The most such
    intervals over one point is the most calls any window could have counted."""
    events = [(start - window, 1) for start, _ in records] + [(end, 0) for _, end in records]
    depth = most = 0
    for _, opens in sorted(events):  # at equal times a close sorts first: (a, b] is half-open
        depth += 1 if opens else -1
        most = max(most, depth)
    return most


def test_processes_and_threads_share_one_budget_without_starving(spec, make):
    limit, window, processes, threads, duration = 10, 2.0, 3, 4, 7.0
    spec = replace(spec, overrides={"daily": {"per_minute": limit}}, window=window)
    barrier, out = SPAWN.Barrier(processes), SPAWN.Queue()
    workers = [
        SPAWN.Process(target=procs.hammer, args=(spec, "daily", threads, duration, barrier, out))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        results = [out.get(timeout=120) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            worker.kill()
    assert len({pid for pid, _, _ in results}) == processes
    assert all(rs for _, _, rs in results), "a process was starved"
    records = sorted(r for _, _, rs in results for r in rs)
    assert most_calls_one_window_could_hold(records, window) <= limit
    # Steady use while every thread still calls, the first burst aside: each slot comes back
    # one window after its call ended.
    until = min(deadline for _, deadline, _ in results)
    starts = [start for start, _ in records if start < until]
    per_window = (len(starts) - limit) / (starts[-1] - starts[0]) * window
    assert per_window >= 0.8 * limit, f"{len(starts)} calls in {starts[-1] - starts[0]:.1f}s"
    governor = make(spec)
    store = governor.store
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(store.calls)).scalar_one()
        counted = conn.execute(sa.select(sa.func.sum(store.days.c.calls))).scalar_one()
    assert rows <= limit  # pruned as it goes
    assert counted == len(records)  # the day counter saw every call
    [daily] = governor.status()
    assert daily.calls_in_window <= limit


def test_a_per_minute_refusal_slows_every_process(spec, pool, make):
    spec = replace(spec, overrides={"daily": {"per_minute": 5}}, window=1.0)
    governor = make(spec)
    run(pool, procs.refuse, spec, "daily", "minute", MINUTE_MSG)
    [daily] = governor.status()
    assert daily.paused_until is not None and daily.minute_limit_seen == 2
    assert timed(governor, "adj_factor") < 0.5  # other APIs go on
    assert timed(governor, "daily") > 0.6  # paused for the window, though this process
    assert timed(governor, "daily") < 0.3  # saw no refusal and has calls left
    # The service said 2 a minute: that holds (for its quota day) below the configured 5.
    assert timed(governor, "daily") > 0.6


def test_daily_exhaustion_raises_at_once_in_every_process(spec, pool, make):
    governor = make(spec)
    run(pool, procs.refuse, spec, "daily", "day", DAY_MSG)
    reset = dt.datetime.fromtimestamp(next_day_reset(time.time()), SHANGHAI)
    began = time.monotonic()
    with pytest.raises(DailyQuotaExhaustedError) as e:
        with governor.call("daily"):
            pass
    assert time.monotonic() - began < 0.5
    text = one_line(e)
    assert "API daily" in text and f"resets at {reset:%Y-%m-%d} 00:00:00 Asia/Shanghai" in text
    assert e.value.resets_at == reset and e.value.api_name == "daily"
    outcome, seconds, message, _ = run(pool, procs.try_call, spec, "daily")
    assert (outcome, message) == ("DailyQuotaExhaustedError", text) and seconds < 0.5
    assert run(pool, procs.try_call, spec, "adj_factor")[0] == "ok"
    assert timed(governor, "adj_factor") < 0.5
    daily = {s.api_name: s for s in governor.status()}["daily"]
    assert daily.exhausted_until == reset and daily.exhausted_message == DAY_MSG


def test_a_configured_daily_budget_is_shared(spec, pool, make):
    spec = replace(spec, overrides={"daily": {"per_day": 3}})
    governor = make(spec)
    run(pool, procs.calls, spec, "daily", 2)
    with governor.call("daily"):
        pass
    with pytest.raises(DailyQuotaExhaustedError) as e:
        with governor.call("daily"):
            pass
    assert "the configured 3 calls a day are used up" in one_line(e)
    assert run(pool, procs.try_call, spec, "daily")[0] == "DailyQuotaExhaustedError"
    [daily] = governor.status()
    assert (daily.calls_today, daily.per_day) == (3, 3)


def test_a_permission_refusal_marks_only_that_api(spec, pool, make):
    governor = make(spec)
    run(pool, procs.refuse, spec, "stock_basic", "permission", PERM_MSG)
    with pytest.raises(ApiPermissionDeniedError) as e:
        with governor.call("stock_basic"):
            pass
    text = one_line(e)
    assert "API stock_basic" in text and PERM_MSG in text
    assert run(pool, procs.try_call, spec, "stock_basic")[0] == "ApiPermissionDeniedError"
    assert timed(governor, "daily") < 0.5
    status = {s.api_name: s for s in governor.status()}
    assert status["stock_basic"].denied_message == PERM_MSG
    assert status["stock_basic"].denied_at is not None
    assert status["daily"].denied_message is None
    assert governor.clear("stock_basic")
    assert timed(governor, "stock_basic") < 0.5
    # Or it lapses by itself after permission_ttl.
    run(pool, procs.refuse, spec, "stock_basic", "permission", PERM_MSG)
    lapsing = make(replace(spec, permission_ttl=0.3))
    with pytest.raises(ApiPermissionDeniedError):
        with lapsing.call("stock_basic"):
            pass
    time.sleep(0.4)
    assert timed(lapsing, "stock_basic") < 0.5


def test_status_shows_the_calls_of_other_processes(spec, pool, make):
    spec = replace(spec, points=2000, window=30.0, overrides={"daily": {"per_day": 1000}})
    governor = make(spec)
    run(pool, procs.calls, spec, "daily", 3)
    run(pool, procs.calls, spec, "adj_factor", 1)
    status = {s.api_name: s for s in governor.status()}
    assert set(status) == {"daily", "adj_factor"}
    daily = status["daily"]
    assert (daily.per_minute, daily.per_day, daily.window_seconds) == (200, 1000, 30.0)
    assert (daily.calls_in_window, daily.calls_today, daily.in_flight) == (3, 3, 0)
    assert (status["adj_factor"].calls_in_window, status["adj_factor"].calls_today) == (1, 1)
    # And the other way round: a call in flight here shows there.
    with governor.call("adj_factor"):
        seen = {s.api_name: s for s in run(pool, procs.status, spec)}
    assert (seen["adj_factor"].in_flight, seen["adj_factor"].calls_in_window) == (1, 2)


def test_a_call_counts_while_in_flight_and_a_dead_caller_frees_its_slot(spec, make):
    spec = replace(spec, overrides={"daily": {"per_minute": 1}}, window=0.5, in_flight_timeout=2.0)
    governor = make(spec)
    holding = threading.Event()

    def slow_call() -> None:
        with governor.call("daily"):
            holding.set()
            time.sleep(1.0)

    holder = threading.Thread(target=slow_call)
    holder.start()
    try:
        holding.wait(10)
        began = time.monotonic()
        with governor.call("daily"):
            pass
        # In flight for 1 s, longer than the window: it counted until it ended, then a window.
        assert time.monotonic() - began > 1.2
    finally:
        holder.join()
    dying = SPAWN.Process(target=procs.die_in_flight, args=(spec, "daily"))
    dying.start()
    dying.join(60)
    assert dying.exitcode == 3
    waited = timed(governor, "daily")
    # Its call never ended: it counts until in_flight_timeout, not forever.
    assert 0.5 < waited < 3.0


def test_the_cluster_store_uses_the_server_clock(pg_database, pool, make, monkeypatch):
    spec = Spec(
        "postgresql",
        pg_database.render_as_string(hide_password=False),
        schema=f"g_{uuid.uuid4().hex[:8]}",
        overrides={"daily": {"per_minute": 1}},
        window=1.0,
    )
    governor = make(spec)
    run(pool, procs.calls, spec, "daily", 1)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)  # this host's clock is an hour fast
    [daily] = governor.status()
    assert daily.calls_in_window == 1
    # A local clock would see the other host's call an hour old and let this one in at once.
    assert 0.3 < timed(governor, "daily") < 2.0
