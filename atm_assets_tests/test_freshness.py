"""Freshness against a calendar: newest partition held, newest expected, fresh / stale / never."""

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from atm_assets.core.catalog import build_catalog
from atm_assets.core.datasets import TRADE_CAL
from atm_assets.core.db import Database
from atm_assets.core.freshness import (
    FRESH,
    NEVER,
    PUBLICATION_TIMES,
    STALE,
    Calendar,
    assess_all,
    expected_report_period,
    parse_as_of,
    published_at,
)
from atm_assets.core.settings import DatabaseSection
from atm_assets.core.writer import TableWriter

ROOT = Path(__file__).resolve().parent.parent
CATALOG = build_catalog(None)
GRACE = dt.timedelta(minutes=60)
# 2024-01-01 is New Year's Day (closed); the 2nd to the 5th are open; the 6th and 7th a weekend.
CLOSED = {dt.date(2024, 1, 1)}
FIRST, LAST = dt.date(2023, 12, 25), dt.date(2024, 1, 31)


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(n) for n in range((last - first).days + 1)]


def _fill(engine: sa.Engine, name: str, rows: list[dict]) -> None:
    writer = TableWriter(engine, TRADE_CAL if name == "trade_cal" else CATALOG[name])
    writer.ensure_table()
    if rows:
        stamp = {"synced_at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "sync_commit": "test"}
        with engine.begin() as conn:
            conn.execute(writer.table.insert(), [{**stamp, **r} for r in rows])


@pytest.fixture
def db(tmp_path) -> Database:
    database = Database(DatabaseSection(sqlite_path=str(tmp_path / "storage" / "atm.db")))
    engine = database.create_engine()
    calendar = [
        {
            "exchange": "SSE",
            "cal_date": d,
            "is_open": int(d.weekday() < 5 and d not in CLOSED),
        }
        for d in _days(FIRST, LAST)
    ]
    _fill(engine, "trade_cal", calendar)

    def bars(name: str, *days: str) -> None:
        _fill(
            engine,
            name,
            [{"ts_code": "600000.SH", "trade_date": dt.date.fromisoformat(d)} for d in days],
        )

    bars("daily", "2024-01-02", "2024-01-03")  # two open days behind on the 5th
    bars("adj_factor", "2024-01-02", "2024-01-05")
    bars("margin_detail", "2024-01-04")  # next morning: the 4th is out on the 5th
    bars("weekly", "2023-12-29")
    _fill(engine, "income", [])  # a table with no rows: never synced
    engine.dispose()
    return database


def _assess(database: Database, as_of: str) -> dict:
    engine = database.create_engine()
    try:
        found = assess_all(list(CATALOG.values()), engine, None, parse_as_of(as_of), GRACE)
    finally:
        engine.dispose()
    return {f.dataset: f for f in found}


@pytest.mark.integration
def test_newest_held_against_newest_expected_on_the_calendar(db):
    at = _assess(db, "2024-01-05T20:00")
    daily = at["daily"]
    assert (daily.state, daily.held, daily.expected, daily.behind) == (
        STALE,
        "2024-01-03",
        "2024-01-05",
        2,
    )
    assert (at["adj_factor"].state, at["adj_factor"].behind) == (FRESH, 0)
    # Published the next weekday at 08:30: on the 5th the newest expected is the 4th.
    assert (at["margin_detail"].state, at["margin_detail"].expected) == (FRESH, "2024-01-04")
    # The week of January 1st ends on the 5th, whose bars come that evening (20:30 + grace).
    assert (at["weekly"].state, at["weekly"].held, at["weekly"].expected) == (
        FRESH,
        "2023-12-25",
        "2023-12-25",
    )
    assert at["trade_cal"].state == FRESH
    assert at["income"].state == NEVER and at["stock_basic"].state == NEVER
    assert at["stock_basic"].note == "no table" and at["income"].note == "table empty"

    late = _assess(db, "2024-01-05T23:00")
    assert (late["weekly"].state, late["weekly"].expected, late["weekly"].behind) == (
        STALE,
        "2024-01-01",
        4,  # the open days from Dec 29 to Jan 5: 2, 3, 4, 5
    )
    # Before the after-close grace has passed, the day before is what is expected.
    early = _assess(db, "2024-01-05T18:00")
    assert (early["daily"].expected, early["daily"].behind) == ("2024-01-04", 1)
    # New Year's Day is closed: the newest expected is the last open day of 2023.
    holiday = _assess(db, "2024-01-01T21:00")
    assert holiday["daily"].expected == "2023-12-29"
    # The calendar must reach today.
    assert _assess(db, "2024-02-02T12:00")["trade_cal"].state == STALE


@pytest.mark.pure
def test_publication_times_and_report_deadlines():
    from atm_assets.schedules import PUBLICATION_CRONS

    for slot, when in PUBLICATION_TIMES.items():
        minute, hour = PUBLICATION_CRONS[slot].split()[:2]
        assert (int(hour), int(minute)) == (when.hour, when.minute), slot
    friday = dt.date(2024, 1, 5)
    assert published_at("next_morning", friday).date() == dt.date(2024, 1, 8)
    assert published_at("after_close", friday).hour == 17
    # Q3 reports are due by October 31; annual ones by April 30 of the next year.
    quarters = [3, 6, 9, 12]
    assert expected_report_period(dt.date(2024, 11, 1), quarters) == dt.date(2024, 9, 30)
    assert expected_report_period(dt.date(2024, 10, 31), quarters) == dt.date(2024, 6, 30)
    assert expected_report_period(dt.date(2025, 5, 1), quarters) == dt.date(2025, 3, 31)
    # Dividend plans come for half-years only: Q3 is never expected of them.
    assert expected_report_period(dt.date(2024, 11, 1), [6, 12]) == dt.date(2024, 6, 30)
    weekdays = Calendar({}, "weekdays")
    assert weekdays.open_after(dt.date(2024, 1, 5), dt.date(2024, 1, 8)) == 1


def _controller(*args: str, cwd: Path, db: Database) -> subprocess.CompletedProcess:
    shutil.copy(ROOT / "dagster.yaml", cwd / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(cwd), "ATM_SQLITE_PATH": db.settings.sqlite_path}
    for var in ("DB_HOST", "ATM_DATABASE_URL", "ATM_CONFIG", "ATM_DATASETS"):
        env.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "atm_assets.cli", "freshness", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.cli
def test_controller_freshness_exits_3_when_a_synced_dataset_is_stale(db, tmp_path):
    proc = _controller("--as-of", "2024-01-05T20:00", cwd=tmp_path, db=db)
    assert proc.returncode == 3, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("daily "))
    assert re.split(r"\s{2,}", line)[1:5] == ["2024-01-03", "2024-01-05", "stale", "2 open days"]
    assert re.search(r"^income\s.*never synced", proc.stdout, re.M)
    assert "never synced" in proc.stdout.splitlines()[-1]

    proc = _controller(
        "adj-factor", "margin_detail", "income", "--json", "--as-of", "2024-01-05T20:00",
        cwd=tmp_path, db=db,
    )  # fmt: skip
    # Never-synced datasets are listed but do not fail it.
    assert proc.returncode == 0, proc.stderr
    rows = {r["dataset"]: r for r in json.loads(proc.stdout)}
    assert rows["adj_factor"]["state"] == FRESH and rows["income"]["state"] == NEVER
    assert rows["margin_detail"]["expected"] == "2024-01-04"

    proc = _controller("no-such-thing", cwd=tmp_path, db=db)
    assert proc.returncode == 2 and "unknown dataset" in proc.stderr
    proc = _controller("--as-of", "yesterday", cwd=tmp_path, db=db)
    assert proc.returncode == 2 and "--as-of" in proc.stderr


@pytest.mark.pure
def test_every_fetched_asset_has_a_freshness_policy_from_its_publication():
    from dagster import AssetKey

    from atm_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for spec in CATALOG.values():
        if spec.fetched:
            assert graph.get(AssetKey(spec.name)).freshness_policy is not None, spec.name
    daily = graph.get(AssetKey("daily")).freshness_policy
    # Published after the close (17:45 Asia/Shanghai), due an hour later on weekdays.
    assert (daily.deadline_cron, daily.timezone) == ("45 18 * * 1-5", "Asia/Shanghai")
    assert graph.get(AssetKey("margin_detail")).freshness_policy.deadline_cron == "30 9 * * 1-5"
    assert graph.get(AssetKey("weekly")).freshness_policy.deadline_cron == "30 21 * * 5"


@pytest.mark.cli
def test_the_definitions_with_their_policies_validate(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "atm_assets"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Validation successful" in proc.stderr + proc.stdout


# One dataset of every scheme a YAML file may declare: each must be kept fresh like the
# built-ins.
USER_SCHEMES = """datasets:
  my_snapshot: {api: my_snapshot, partition: snapshot, key: [ts_code], columns: {ts_code: str}}
  my_exchange:
    api: my_exchange
    partition: exchange
    key: [ts_code]
    columns: {ts_code: str, exchange: str}
  my_day:
    api: my_day
    partition: trade_date
    key: [ts_code, trade_date]
    columns: {ts_code: str, trade_date: date}
  my_week:
    api: my_week
    partition: week
    key: [ts_code, trade_date]
    columns: {ts_code: str, trade_date: date}
  my_month:
    api: my_month
    partition: month
    key: [ts_code, trade_date]
    columns: {ts_code: str, trade_date: date}
  my_period:
    api: my_period
    partition: period
    key: [ts_code, end_date]
    columns: {ts_code: str, end_date: date}
  my_index_month:
    api: my_index_month
    partition: index_month
    key: [index_code, trade_date]
    columns: {index_code: str, trade_date: date}
  my_index_year:
    api: my_index_year
    partition: index_year
    key: [ts_code, trade_date]
    columns: {ts_code: str, trade_date: date}
"""


def _ticks(cron: str, timezone: str, first: dt.datetime, last: dt.datetime) -> list[dt.datetime]:
    from dagster._utils.schedules import cron_string_iterator

    out: list[dt.datetime] = []
    for when in cron_string_iterator(first.timestamp(), cron, timezone):
        if when > last:
            return out
        out.append(when)
    return out


def test_every_fetched_dataset_has_a_schedule_that_keeps_it_within_its_policy(
    sqlite_target, tmp_path, monkeypatch
):
    """Every fetched dataset, built-in or declared in YAML (one of each scheme), is in the job
    of a schedule whose ticks meet its freshness policy: a tick in each deadline's window (the
    cron policies of dated data), or ticks never further apart than the warning window
    (reference data). Over three months of 2024, Asia/Shanghai."""
    from dagster import AssetKey
    from dagster._core.definitions.freshness import CronFreshnessPolicy

    from atm_assets.core.settings import load_settings
    from atm_assets.definitions import build_definitions

    (tmp_path / "datasets.yaml").write_text(USER_SCHEMES)
    monkeypatch.setenv("ATM_DATASETS", str(tmp_path / "datasets.yaml"))
    settings = load_settings()
    defs = build_definitions(settings)
    repo = defs.get_repository_def()
    covering: dict[str, list] = {}
    for schedule in repo.schedule_defs:
        job = defs.resolve_job_def(schedule.job_name)
        for key in job.asset_layer.selected_asset_keys:
            covering.setdefault(key.to_user_string(), []).append(schedule)
    graph = defs.resolve_asset_graph()
    first = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    last = dt.datetime(2024, 3, 31, tzinfo=dt.UTC)
    specs = build_catalog(tmp_path / "datasets.yaml").values()
    fetched = [s.name for s in specs if s.fetched]
    assert {"my_snapshot", "my_exchange", "my_day", "trade_cal", "index_basic"} <= set(fetched)
    for name in fetched:
        schedules = covering.get(name)
        assert schedules, f"{name}: no schedule syncs it"
        ticks = sorted(
            t
            for s in schedules
            for t in _ticks(s.cron_schedule, s.execution_timezone, first - dt.timedelta(40), last)
        )
        policy = graph.get(AssetKey(name)).freshness_policy
        assert policy is not None, name
        if isinstance(policy, CronFreshnessPolicy):
            window = policy.lower_bound_delta
            for deadline in _ticks(policy.deadline_cron, policy.timezone, first, last):
                assert any(deadline - window <= t < deadline for t in ticks), (name, deadline)
        else:
            warn = policy.warn_window.to_timedelta()
            assert warn < policy.fail_window.to_timedelta()
            gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
            assert gaps and max(gaps) < warn, (name, max(gaps))
