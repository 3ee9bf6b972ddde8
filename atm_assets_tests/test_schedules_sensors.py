"""The daily schedule and the sensors, evaluated with Dagster's test helpers over real runs."""

import datetime as dt
import subprocess
import sys
from zoneinfo import ZoneInfo

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    build_run_status_sensor_context,
    build_schedule_context,
)

from atm_assets.definitions import defs
from atm_assets.schedules import daily_stock_basic_schedule
from atm_assets.sensors import atm_run_failure_sensor
from atm_assets_tests.helpers import ALL_RANGE, failure_message, project_defs, run_stock_basic


def test_the_project_loads_with_its_schedule_and_sensors():
    repo = defs.get_repository_def()
    assert {s.name for s in repo.schedule_defs} == {
        "daily_stock_basic_schedule",
        "market_close_schedule",
        # The catalog's: per publication time, and per week/month/period/index dataset.
        "after_close_schedule",
        "evening_schedule",
        "next_morning_schedule",
        *(
            f"{name}_schedule"
            for name in ("weekly", "monthly", "index_daily", "index_weight", "income")
            + ("balancesheet", "cashflow", "fina_indicator", "forecast", "express", "dividend")
            # Reference data, weekly.
            + ("trade_cal", "index_basic", "namechange", "stock_company")
        ),
    }
    # What is derived is built by declarative automation (one evaluator); no hand-written
    # sensor re-implements it.
    assert {s.name for s in repo.sensor_defs} == {
        "atm_run_failure_sensor",
        "dead_runs_sensor",
        "atm_automation",
        # Alerts (alerting.py): failed runs, failed checks, datasets turning stale.
        "atm_alert_run_failure_sensor",
        "atm_alert_check_sensor",
        "atm_freshness_alert_sensor",
    }
    assert {j.name for j in repo.get_all_jobs()} >= {
        "stock_basic_job",
        "stock_basic_summary_job",
        "trade_cal_job",
        "market_data_job",
        "market_derived_job",
    }


def test_daily_schedule_runs_at_two_in_shanghai_with_one_request_per_partition():
    schedule = daily_stock_basic_schedule
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Asia/Shanghai"
    tick = dt.datetime(2026, 11, 29, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    requests = list(
        schedule.evaluate_tick(
            build_schedule_context(
                scheduled_execution_time=tick, repository_def=defs.get_repository_def()
            )
        ).run_requests
    )
    keys = [r.partition_key for r in requests]
    assert len(keys) == 12 and len(set(keys)) == 12
    assert {"SSE|L", "SZSE|D", "BSE|G"} <= set(keys)
    by_key = {r.partition_key: r for r in requests}
    assert by_key["SZSE|P"].tags["atm/task"] == "stock_basic_sync_SZSE_P"
    assert len({r.run_key for r in requests}) == 12
    assert all(r.run_key.startswith("20261129T0200:") for r in requests)
    # 02:00 in Shanghai is 18:00 UTC the day before.
    assert tick.astimezone(dt.UTC).hour == 18


@pytest.mark.cli
def test_cron_and_timezone_are_configurable():
    code = (
        "from atm_assets.schedules import daily_stock_basic_schedule as s;"
        "print(s.cron_schedule, s.execution_timezone)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={
            "ATM_SCHEDULE_CRON": "30 17 * * 1-5",
            "ATM_SCHEDULE_TIMEZONE": "UTC",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["30", "17", "*", "*", "1-5", "UTC"]


def test_failure_sensor_records_what_failed_and_why(sqlite_target, atm_env, sb, monkeypatch):
    monkeypatch.setenv("TUSHARE_TOKEN", "wrong-token")
    with DagsterInstance.ephemeral() as instance:
        result = run_stock_basic("SZSE|P", instance=instance)
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        failure = instance.all_logs(result.run_id, of_type=DagsterEventType.RUN_FAILURE)[0]
        failure = failure.dagster_event
        context = build_run_status_sensor_context(
            sensor_name="atm_run_failure_sensor",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=run,
        ).for_run_failure()
        atm_run_failure_sensor(context)
        records = instance.fetch_observations(AssetKey("stock_basic"), limit=1).records
        assert records, "no observation recorded"
        observation = records[0].asset_observation
        meta = {k: v.value for k, v in observation.metadata.items()}
        assert observation.partition == "SZSE|P"
        assert meta["failure_run_id"] == result.run_id
        assert meta["failure_failed_steps"] == "stock_basic"
        assert "TushareAuthError" in meta["failure_error"] or "40101" in meta["failure_error"]
        assert "wrong-token" not in str(meta)


def automation(instance, cursor=None):
    """One evaluation of every automation condition, as the daemon's sensor would run it."""
    from dagster import evaluate_automation_conditions

    return evaluate_automation_conditions(project_defs(), instance=instance, cursor=cursor)


def test_summary_is_built_after_stock_basic_by_automation(sqlite_target, atm_env, sb):
    with DagsterInstance.ephemeral() as instance:
        first = automation(instance)
        assert first.get_num_requested(AssetKey("stock_basic_summary")) == 0  # nothing synced
        result = run_stock_basic(("SSE|L", "SSE|D"), instance=instance)
        assert result.success
        after = automation(instance, first.cursor)
        assert after.get_requested_partitions(AssetKey("stock_basic_summary")) == {None}
        # The requested asset rebuilds the report from the table (two exchanges' stocks of
        # the twelve partitions are enough: it reports what is synced).
        summary = (
            project_defs()
            .resolve_job_def("stock_basic_summary_job")
            .execute_in_process(instance=instance)
        )
        assert summary.success
        table = summary.output_for_node("stock_basic_summary")
        assert int(table["stocks"].sum()) == 2300 + 200
        assert (
            automation(instance, after.cursor).get_num_requested(AssetKey("stock_basic_summary"))
            == 0
        )


def _market_tick(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T17:30:00").replace(tzinfo=ZoneInfo("Asia/Shanghai"))


def test_market_schedule_runs_after_the_close_on_trading_days_only(sqlite_target, atm_env, sb):
    from atm_assets.core.settings import load_settings
    from atm_assets.definitions import build_resources
    from atm_assets.schedules import market_close_schedule
    from atm_assets_tests.helpers import run_job

    assert market_close_schedule.cron_schedule == "30 17 * * 1-5"
    assert market_close_schedule.execution_timezone == "Asia/Shanghai"
    assert run_job("trade_cal_job", "SSE").success
    database = build_resources(load_settings())["database"]

    def evaluate(day: str):
        context = build_schedule_context(
            scheduled_execution_time=_market_tick(day),
            resources={"database": database},
            repository_def=project_defs().get_repository_def(),
        )
        return market_close_schedule.evaluate_tick(context)

    open_day = evaluate("2024-10-08")  # the four days before are National Day's
    assert [r.partition_key for r in open_day.run_requests] == ["2024-10-08"]
    # The open days of the publication lag (4 days) again, with the day's: one range run.
    for day, first in (("2024-10-10", "2024-10-08"), ("2024-10-14", "2024-10-10")):
        (request,) = evaluate(day).run_requests
        assert request.partition_key is None
        assert request.tags["dagster/asset_partition_range_start"] == first
        assert request.tags["dagster/asset_partition_range_end"] == day
        assert request.run_key == f"market:{day}"
    holiday = evaluate("2024-10-03")  # National Day, a Thursday
    assert not holiday.run_requests
    assert "market closed on 2024-10-03" in holiday.skip_message
    weekend = evaluate("2024-10-12")  # a Saturday the schedule's cron never hits
    assert not weekend.run_requests and "weekend" in weekend.skip_message


def test_a_partly_published_day_is_fetched_again_by_the_next_market_tick(
    sqlite_target, atm_env, sb
):
    """The tick after a day came partly (its rows_complete check failed) asks for it again;
    once Tushare has it whole, that run writes every row and the check passes."""
    from atm_assets.core.settings import load_settings
    from atm_assets.definitions import build_resources
    from atm_assets.schedules import market_close_schedule
    from atm_assets_tests.helpers import run_job

    assert run_job("trade_cal_job", "SSE").success
    database = build_resources(load_settings())["database"]

    def tick(day: str) -> str | tuple[str, str]:
        """The partition or range the schedule asks for at `day`'s tick."""
        context = build_schedule_context(
            scheduled_execution_time=_market_tick(day),
            resources={"database": database},
            repository_def=project_defs().get_repository_def(),
        )
        (request,) = market_close_schedule.evaluate_tick(context).run_requests or []
        if request.partition_key:
            return request.partition_key
        tags = request.tags
        return tags["dagster/asset_partition_range_start"], tags[
            "dagster/asset_partition_range_end"
        ]

    # The open day before, whole: the neighbour the completeness check compares with.
    assert run_job("market_data_job", "2024-09-30", assets=["daily"]).success
    sb.set_publication("daily", "20241008", "partial", fraction=0.3)
    assert tick("2024-10-08") == "2024-10-08"
    first = run_job("market_data_job", "2024-10-08", assets=["daily"])
    assert not first.success
    assert "blocking asset check" in failure_message(first)
    sb.clear_publication("daily")
    span = tick("2024-10-09")
    assert span == ("2024-10-08", "2024-10-09")
    again = run_job("market_data_job", span, assets=["daily"])
    assert again.success, failure_message(again)
    checks = {
        (e.check_name, e.partition): e.passed
        for e in again.get_asset_check_evaluations()
        if e.asset_key == AssetKey("daily")
    }
    assert checks[("rows_complete", "2024-10-08")] and checks[("rows_complete", "2024-10-09")]
    with sqlite_target.engine().connect() as conn:
        held = conn.exec_driver_sql(
            "SELECT COUNT(*) FROM daily WHERE trade_date = '2024-10-08'"
        ).scalar_one()
    assert held == len(sb.dataset.daily(trade_date="20241008"))


def test_reference_data_is_synced_whole_every_saturday(sqlite_target, atm_env, sb):
    """trade_cal's weekly tick asks for every exchange in one run, which syncs the calendar of
    each through the end of next year; a snapshot's asks for the table."""
    from atm_assets_tests.helpers import run_job

    repo = defs.get_repository_def()
    saturday = dt.datetime(2024, 12, 7, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))

    def request(name: str):
        schedule = repo.get_schedule_def(f"{name}_schedule")
        assert (schedule.cron_schedule, schedule.execution_timezone) == (
            "0 9 * * 6",
            "Asia/Shanghai",
        )
        context = build_schedule_context(scheduled_execution_time=saturday, repository_def=repo)
        (only,) = schedule.evaluate_tick(context).run_requests or []
        assert only.run_key == f"{name}:2024-12-07"
        return only

    tags = request("trade_cal").tags
    span = (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"])
    assert span == ("SSE", "BSE")
    synced = run_job("trade_cal_job", span)
    assert synced.success, failure_message(synced)
    with sqlite_target.engine().connect() as conn:
        reach = conn.exec_driver_sql(
            "SELECT exchange, MAX(cal_date) FROM trade_cal GROUP BY exchange"
        ).all()
    assert {e: str(d)[:10] for e, d in reach} == {
        e: f"{dt.date.today().year + 1}-12-31" for e in ("SSE", "SZSE", "BSE")
    }
    snapshot = request("namechange")
    assert snapshot.partition_key is None
    assert not {t for t in snapshot.tags if "partition" in t}
    assert request("index_basic").tags["dagster/asset_partition_range_end"] == "OTH"


def test_derived_days_are_built_by_automation_after_their_inputs(sqlite_target, atm_env, sb):
    from atm_assets_tests.helpers import run_job

    hfq, universe = AssetKey("daily_hfq"), AssetKey("stock_universe")
    with DagsterInstance.ephemeral() as instance:
        assert run_job("trade_cal_job", "SSE", instance=instance).success
        assert run_stock_basic(ALL_RANGE, instance=instance).success
        tick = automation(instance)
        assert tick.get_num_requested(hfq) == tick.get_num_requested(universe) == 0
        week = ("2024-09-30", "2024-10-09")
        assert run_job("market_data_job", week, instance=instance).success
        tick = automation(instance, tick.cursor)
        # Every weekday partition of the range (the holiday's are partitions too, with no
        # rows), not only the latest as eager() would.
        days = {"2024-09-30", "2024-10-07", "2024-10-08", "2024-10-09"}
        days |= {f"2024-10-0{d}" for d in (1, 2, 3, 4)}
        assert tick.get_requested_partitions(hfq) == days
        assert tick.get_requested_partitions(universe) == days
        built = run_job("market_derived_job", week, instance=instance)
        assert built.success, failure_message(built)
        tick = automation(instance, tick.cursor)
        assert tick.total_requested == 0  # nothing new since
        # One day re-fetched: only that day is rebuilt; stock_basic synced again rebuilds none
        # of the days (it is read whole).
        assert run_job("market_data_job", "2024-10-08", instance=instance).success
        assert run_stock_basic("SSE|L", instance=instance).success
        tick = automation(instance, tick.cursor)
        assert tick.get_requested_partitions(hfq) == {"2024-10-08"}
        assert tick.get_requested_partitions(universe) == {"2024-10-08"}


def test_failure_sensor_records_a_market_run_on_its_own_asset(sqlite_target, atm_env, sb):
    from atm_assets_tests.helpers import run_job

    with DagsterInstance.ephemeral() as instance:
        result = run_job("market_data_job", "2024-10-08", instance=instance)  # no calendar yet
        assert not result.success
        failure = instance.all_logs(result.run_id, of_type=DagsterEventType.RUN_FAILURE)[0]
        context = build_run_status_sensor_context(
            sensor_name="atm_run_failure_sensor",
            dagster_event=failure.dagster_event,
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),
        ).for_run_failure()
        atm_run_failure_sensor(context)
        assert instance.fetch_observations(AssetKey("stock_basic"), limit=1).records == []
        records = instance.fetch_observations(AssetKey("adj_factor"), limit=1).records
        observation = records[0].asset_observation
        meta = {k: v.value for k, v in observation.metadata.items()}
        assert observation.partition == "2024-10-08"
        assert "materialise trade_cal partition SSE first" in meta["failure_error"]
