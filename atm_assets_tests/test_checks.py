"""Data checks on every fetched dataset: what they find in the table, how they block, what the
controller says."""

import datetime as dt

import pytest
import sqlalchemy as sa
from dagster import AssetKey, DagsterInstance

from atm_assets.core.catalog import BUILTIN, user_dataset
from atm_assets.core.checks import PartitionChecks, checks_for
from atm_assets.core.datasets import ADJ_FACTOR, DAILY, TRADE_CAL, TableSpec
from atm_assets.core.errors import ConfigError
from atm_assets.core.writer import TableWriter

from .conftest import ALL_TARGETS
from .helpers import controller, failure_message, project_defs, run_job

SPECS = {s.name: s for s in BUILTIN}
WEEK = ("2024-09-30", "2024-10-09")
OPEN_DAYS = ("2024-09-30", "2024-10-08", "2024-10-09")


def evaluations(result, asset: str) -> dict[tuple[str, str | None], object]:
    return {
        (e.check_name, e.partition): e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == AssetKey(asset)
    }


@pytest.mark.pure
def test_each_dataset_gets_the_checks_its_declaration_allows():
    names = {s.name: [c.name for c in checks_for(s)] for s in BUILTIN if s.fetched}
    assert names["daily"] == [
        "rows_complete",
        "unique_keys",
        "key_not_null",
        "covers_listed",
        "no_schema_drift",
    ]
    assert {c.name: c.blocking for c in checks_for(DAILY)}["covers_listed"] is False
    assert names["adj_factor"] == [
        "rows_complete",
        "unique_keys",
        "key_not_null",
        "covers_daily",
        "no_schema_drift",
    ]
    # No natural key: nothing to be unique; events vary by nature: only an empty day fails.
    assert names["top_inst"] == ["rows_complete", "no_schema_drift"]
    assert names["income"] == ["unique_keys", "key_not_null", "no_schema_drift"]
    # Every trade-date dataset gets completeness, but the one whose open days may be empty.
    per_day = [s for s in BUILTIN if s.fetched and s.scheme == "trade_date"]
    assert {s.name for s in per_day if "rows_complete" not in names[s.name]} == {"moneyflow_hsgt"}
    assert not any(
        "rows_complete" in c for n, c in names.items() if SPECS[n].scheme != "trade_date"
    )
    # The day counts compared with the neighbours' where the market's count is steady.
    steady = {s.name for s in per_day if s.min_rows_ratio is not None}
    assert steady == {
        "daily",
        "adj_factor",
        "daily_basic",
        "stk_limit",
        "moneyflow",
        "margin_detail",
        "index_dailybasic",
    }
    described = {
        s.name: checks_for(s)[0].description for s in per_day if s.name != "moneyflow_hsgt"
    }
    assert "90% as many as its neighbouring open days" in described["margin_detail"]
    assert "not compared with other days" in described["block_trade"]
    # A YAML dataset is checked the same, unless it says its open days may be empty.
    body = {"partition": "trade_date", "key": ["ts_code", "trade_date"]}
    body["columns"] = {"ts_code": "str", "trade_date": "date"}
    for extra, expected in (({}, ["rows_complete"]), ({"empty_days": True}, [])):
        declared = user_dataset("d.yaml", "cyq", {**body, **extra}, set())
        assert [c.name for c in checks_for(declared) if c.name == "rows_complete"] == expected
    with pytest.raises(ConfigError, match="empty_days: expected true/false"):
        user_dataset("d.yaml", "cyq", {**body, "empty_days": "yes"}, set())
    blocking = {c.name: c.blocking for c in checks_for(SPECS["daily_basic"])}
    assert blocking == {
        "rows_complete": True,
        "unique_keys": True,
        "key_not_null": True,
        "covers_daily": False,  # a missing valuation does not make derived prices wrong
        "no_schema_drift": False,
    }
    assert {c.blocking for c in checks_for(ADJ_FACTOR) if c.name == "covers_daily"} == {True}


@pytest.mark.integration
def test_a_synced_week_passes_every_check_per_open_day(target, atm_env, sb):
    assert run_job("trade_cal_job", "SSE").success
    result = run_job("market_data_job", WEEK)
    assert result.success, failure_message(result)
    for asset, names in (
        ("daily", ("rows_complete", "covers_listed")),
        ("adj_factor", ("rows_complete", "covers_daily")),
    ):
        found = evaluations(result, asset)
        # One result per check and open day; the holiday's partitions hold nothing to check.
        # Schema drift is about the run's answers, the key about the table: one result each.
        assert {p for _, p in found} == {*OPEN_DAYS, None}
        per_run = ["unique_keys", "key_not_null", "no_schema_drift"]
        assert sorted(c for c, p in found if p is None) == sorted(per_run)
        assert {c for c, p in found if p is not None} == set(names)
        assert all(found[(c, None)].passed for c in per_run)
        for name in names:
            for day in OPEN_DAYS:
                assert found[(name, day)].passed, (asset, name, day)
    complete = evaluations(result, "daily")[("rows_complete", "2024-10-08")]
    assert complete.metadata["rows"].value == len(sb.dataset.daily(trade_date="20241008"))
    assert complete.metadata["reference_day"].value in ("20240930", "20241009")


@pytest.mark.integration
def test_a_partly_published_day_fails_its_check_and_blocks_what_is_derived(
    sqlite_target, atm_env, sb
):
    assert run_job("trade_cal_job", "SSE").success
    assert run_job("stock_basic_job", ("SSE|L", "BSE|G")).success
    sb.set_publication("daily", "20241008", "partial", fraction=0.3)
    from dagster import evaluate_automation_conditions

    with DagsterInstance.ephemeral() as instance:
        # The daemon's first evaluation, before anything is synced (a first evaluation takes
        # what exists as handled, as eager() does).
        tick = evaluate_automation_conditions(project_defs(), instance=instance)
        result = run_job("market_data_job", WEEK, instance=instance, assets=["daily", "adj_factor"])
        assert not result.success
        assert "blocking asset check" in failure_message(result)
        found = evaluations(result, "daily")
        failed = found[("rows_complete", "2024-10-08")]
        assert not failed.passed
        held = len(sb.dataset.daily(trade_date="20241008"))
        assert failed.metadata["rows"].value == int(held * 0.3)
        assert "published partly" in failed.description
        assert all(found[("rows_complete", d)].passed for d in ("2024-09-30", "2024-10-09"))
        # The rows that came are written (a rerun tops them up); the run is not retried in a
        # loop, the scheduled re-fetch takes it up.
        run = instance.get_run_by_id(result.run_id)
        assert run.tags["dagster/retry_on_asset_or_op_failure"] == "false"

        # Declarative automation builds the derived days, except the partly published one.
        tick = evaluate_automation_conditions(project_defs(), instance=instance, cursor=tick.cursor)
        for derived in ("daily_hfq", "stock_universe"):
            requested = tick.get_requested_partitions(AssetKey(derived))
            assert "2024-10-08" not in requested, derived
            assert {"2024-09-30", "2024-10-09"} <= requested, derived

        # Published whole: the same command tops the day up, the check passes, and the day
        # is built on the next evaluation.
        sb.clear_publication("daily")
        again = run_job("market_data_job", "2024-10-08", instance=instance, assets=["daily"])
        assert again.success, failure_message(again)
        assert evaluations(again, "daily")[("rows_complete", "2024-10-08")].passed
        tick = evaluate_automation_conditions(project_defs(), instance=instance, cursor=tick.cursor)
        assert "2024-10-08" in tick.get_requested_partitions(AssetKey("daily_hfq"))
        assert "2024-10-08" in tick.get_requested_partitions(AssetKey("stock_universe"))


@pytest.mark.integration
def test_the_key_checks_answer_once_per_run_and_a_failure_holds_back_every_derived_day(
    sqlite_target, atm_env, sb
):
    from dagster import evaluate_automation_conditions

    def tick_after(previous):
        return evaluate_automation_conditions(
            project_defs(), instance=instance, cursor=previous.cursor
        )

    def sync_daily(day: str):
        return run_job("market_data_job", day, instance=instance, assets=["daily"])

    def requested(tick) -> set[str]:
        return tick.get_requested_partitions(AssetKey("daily_hfq"))

    assert run_job("trade_cal_job", "SSE").success
    assert run_job("stock_basic_job", ("SSE|L", "BSE|G")).success
    # A table made without ATM's key (an older copy): unique (ts_code, trade_date), which the
    # upsert needs, but no primary key and nullable columns, so the checks scan it.
    engine = sqlite_target.engine()
    own = TableWriter(engine, DAILY).table
    loose = sa.Table(
        "daily",
        sa.MetaData(),
        *[sa.Column(c.name, c.type) for c in own.columns],
        sa.UniqueConstraint("ts_code", "trade_date"),
    )
    loose.create(engine)

    def null_key_row(day: dt.date) -> None:
        with engine.begin() as conn:
            conn.execute(loose.insert(), [{"ts_code": None, "trade_date": day}])

    with DagsterInstance.ephemeral() as instance:
        tick = evaluate_automation_conditions(project_defs(), instance=instance)
        result = run_job("market_data_job", WEEK, instance=instance, assets=["daily", "adj_factor"])
        assert result.success, failure_message(result)
        found = evaluations(result, "daily")
        # The key is the table's: one answer for the run's three days.
        for name in ("unique_keys", "key_not_null"):
            assert [p for c, p in found if c == name] == [None]
            assert found[(name, None)].passed
        tick = tick_after(tick)
        assert set(OPEN_DAYS) <= requested(tick)
        tick = tick_after(tick)  # (an update on the heels of a request waits a tick)

        # A NULL key on a day outside the run is not the run's to judge: the day it synced
        # again is rebuilt.
        null_key_row(dt.date(2024, 10, 8))
        assert sync_daily("2024-10-09").success
        tick = tick_after(tick)
        assert requested(tick) == {"2024-10-09"}
        tick = tick_after(tick)

        # One in the run's day fails the run's one key_not_null result, which holds back what
        # is derived from every day, 2024-09-30 too (synced again, its own checks passed).
        null_key_row(dt.date(2024, 10, 9))
        assert sync_daily("2024-09-30").success
        failed = sync_daily("2024-10-09")
        assert not failed.success
        assert not evaluations(failed, "daily")[("key_not_null", None)].passed
        tick = tick_after(tick)
        assert requested(tick) == set()
        assert tick.get_requested_partitions(AssetKey("stock_universe")) == set()

        # Mended and synced again, the result passes and both days are built.
        with engine.begin() as conn:
            conn.execute(sa.delete(loose).where(loose.c.ts_code.is_(None)))
        assert sync_daily("2024-10-09").success
        tick = tick_after(tick)
        assert {"2024-09-30", "2024-10-09"} <= requested(tick)


@pytest.mark.integration
def test_an_empty_open_day_after_the_lag_fails_every_trade_date_dataset(sqlite_target, atm_env, sb):
    assert run_job("trade_cal_job", "SSE").success
    day = "20241008"
    # Counts that vary by nature (top_list) and steady ones (index_dailybasic) alike: a day
    # long past its four-day publication lag that answers nothing is final, and incomplete.
    for name in ("top_list", "index_dailybasic"):
        sb.set_publication(name, day, "unpublished")
        result = run_job(f"{name}_job", ("2024-10-08", "2024-10-09"))
        assert not result.success, name
        assert "blocking asset check" in failure_message(result)
        found = evaluations(result, name)
        empty = found[("rows_complete", "2024-10-08")]
        assert not empty.passed and empty.description == "an open trade date with no rows"
        assert empty.metadata["rows"].value == 0
        assert found[("rows_complete", "2024-10-09")].passed, name
    # index_dailybasic's steady dozen is compared with its neighbours too.
    sb.clear_publication("index_dailybasic")
    again = run_job("index_dailybasic_job", "2024-10-08")
    assert again.success, failure_message(again)
    whole = evaluations(again, "index_dailybasic")[("rows_complete", "2024-10-08")]
    assert whole.metadata["reference_rows"].value == len(
        sb.dataset.rows("index_dailybasic", {"trade_date": "20241009"})
    )
    # Stock Connect has days without flows (Hong Kong closed): no completeness to fail.
    sb.set_publication("moneyflow_hsgt", day, "unpublished")
    hsgt = run_job("moneyflow_hsgt_job", "2024-10-08")
    assert hsgt.success, failure_message(hsgt)
    assert ("rows_complete", "2024-10-08") not in evaluations(hsgt, "moneyflow_hsgt")


@pytest.mark.integration
def test_missing_factors_fail_the_cover_check(sqlite_target, atm_env, sb):
    assert run_job("trade_cal_job", "SSE").success
    assert run_job("market_data_job", "2024-10-08", assets=["daily"]).success
    sb.set_publication("adj_factor", "20241008", "partial", count=100)
    result = run_job("market_data_job", "2024-10-08", assets=["adj_factor"])
    assert not result.success
    cover = evaluations(result, "adj_factor")[("covers_daily", "2024-10-08")]
    assert not cover.passed
    assert (
        cover.metadata["missing_codes"].value == len(sb.dataset.daily(trade_date="20241008")) - 100
    )


def _listed_unsuspended(sb, day: str) -> set[str]:
    """The sandbox's truth: stocks listed on `day` (not paused) less those suspended."""
    listed = {
        r["ts_code"]
        for exchange in ("SSE", "SZSE", "BSE")
        for status in ("L", "D", "P", "G")
        for r in sb.dataset.rows("stock_basic", {"exchange": exchange, "list_status": status})
        if r["list_status"] in ("L", "D")
        and r["list_date"] <= day
        and (r["delist_date"] is None or r["delist_date"] > day)
    }
    suspended = {
        r["ts_code"]
        for r in sb.dataset.rows("suspend_d", {"trade_date": day})
        if r["suspend_type"] == "S"
    }
    return listed - suspended


@pytest.mark.integration
def test_every_listed_unsuspended_stock_has_a_bar(sqlite_target, atm_env, sb):
    day, compact = "2024-10-08", "20241008"
    assert run_job("trade_cal_job", "SSE").success
    # Neither stock_basic nor suspend_d synced: the check cannot judge and says so.
    alone = run_job("market_data_job", day, assets=["daily"])
    assert alone.success, failure_message(alone)
    unjudged = evaluations(alone, "daily")[("covers_listed", day)]
    assert unjudged.passed and "stock_basic is not synced: could not judge" in (
        unjudged.description or ""
    )
    assert run_job("stock_basic_job", ("SSE|L", "BSE|G")).success
    # stock_basic synced, the day's suspensions not yet: still no judgement.
    again = run_job("market_data_job", day, assets=["daily"])
    assert "suspend_d holds nothing for 20241008" in (
        evaluations(again, "daily")[("covers_listed", day)].description or ""
    )

    # A normal synced day: every listed, unsuspended stock has its bar (paused listings and
    # suspended stocks have none, in the sandbox as in Tushare).
    assert run_job("suspend_d_job", day).success
    expected = _listed_unsuspended(sb, compact)
    normal = run_job("market_data_job", day, assets=["daily"])
    assert normal.success, failure_message(normal)
    passed = evaluations(normal, "daily")[("covers_listed", day)]
    assert passed.passed, passed.description
    assert passed.metadata["expected_stocks"].value == len(expected)

    # Tushare publishes all but 4 bars: few enough for rows_complete, named by this check, a
    # warning that lets the run succeed.
    held = len(sb.dataset.daily(trade_date=compact))
    sb.set_publication("daily", compact, "partial", count=held - 4)
    with sqlite_target.engine().begin() as conn:
        conn.execute(sa.text("DELETE FROM daily WHERE trade_date = :d"), {"d": day})
    partly = run_job("market_data_job", day, assets=["daily"])
    assert partly.success, failure_message(partly)
    found = evaluations(partly, "daily")
    assert found[("rows_complete", day)].passed
    gap = found[("covers_listed", day)]
    assert not gap.passed and gap.severity.value == "WARN"
    table = {r["ts_code"] for r in sqlite_target.rows(DAILY)}
    missing = sorted(expected - table)
    assert len(missing) == 4
    assert gap.metadata["missing_codes"].value == 4
    assert gap.metadata["sample"].value == missing
    assert f"4 of {len(expected)} listed, unsuspended stock(s) have no row" in gap.description
    assert all(code in gap.description for code in missing)

    # Read from the table: a bar deleted by hand is found too, without any run.
    victim = sorted(table & expected)[0]
    engine = sqlite_target.engine()
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM daily WHERE ts_code = :c"), {"c": victim})
    checks = PartitionChecks(
        TableWriter(engine, DAILY),
        lambda spec: TableWriter(engine, spec if isinstance(spec, TableSpec) else SPECS[spec]),
    )
    bounds = {day: [{"trade_date": (dt.date(2024, 10, 8), dt.date(2024, 10, 8))}]}
    (listed,) = [f for f in checks.evaluate(bounds) if f.check == "covers_listed"]
    assert not listed.passed and listed.metadata["missing_codes"] == 5
    assert listed.metadata["sample"] == sorted([*missing, victim])[:5]


@pytest.mark.integration
def test_schema_drift_is_a_warning_that_names_the_field(sqlite_target, atm_env, sb):
    assert run_job("trade_cal_job", "SSE").success
    sb.inject("wrong_fields", api="daily", times=1, mode="extra", field="limit_status")
    result = run_job("market_data_job", "2024-10-08", assets=["daily"])
    assert result.success, failure_message(result)  # drift does not block
    drift = evaluations(result, "daily")[("no_schema_drift", None)]
    assert not drift.passed and drift.severity.value == "WARN"
    assert drift.metadata["extra_fields"].value == ["limit_status"]


@pytest.mark.integration
def test_key_checks_find_duplicates_and_nulls_a_keyless_table_let_in(sqlite_target):
    """A table created without ATM's key (an older copy, a hand-made one) is read as it is."""
    engine = sqlite_target.engine()
    writer = TableWriter(engine, DAILY)
    loose = sa.Table(
        "daily",
        sa.MetaData(),
        *[sa.Column(c.name, sa.Date if c.type == "date" else sa.Text) for c in DAILY.columns],
    )
    loose.create(engine)
    day = dt.date(2024, 10, 8)
    with engine.begin() as conn:
        conn.execute(
            loose.insert(),
            [
                {"ts_code": "000001.SZ", "trade_date": day},
                {"ts_code": "000001.SZ", "trade_date": day},
                {"ts_code": None, "trade_date": day},
            ],
        )
    assert writer.key_constraints() == (False, False)
    checks = PartitionChecks(writer, lambda spec: TableWriter(engine, TRADE_CAL))
    found = {f.check: f for f in checks.evaluate({"2024-10-08": [{"trade_date": (day, day)}]})}
    assert not found["unique_keys"].passed
    assert found["unique_keys"].metadata["repeated_keys"] == 1
    assert found["unique_keys"].metadata["sample"] == ["000001.SZ|2024-10-08"]
    assert not found["key_not_null"].passed
    assert found["key_not_null"].metadata["null_key_rows"] == 1
    # No neighbouring day and no calendar: three rows are all it can say.
    assert found["rows_complete"].passed and found["rows_complete"].metadata["rows"] == 3


@pytest.mark.integration
@pytest.mark.parametrize("target", ALL_TARGETS, indirect=True)
def test_key_checks_pass_without_a_scan_where_the_table_enforces_the_key(target):
    """ATM's own table refuses a repeated or NULL key: its checks say so instead of scanning
    the partition (a table without those constraints is scanned: the test above)."""
    writer = target.writer(DAILY)
    writer.ensure_table()
    assert writer.key_constraints() == (True, True)
    day = dt.date(2024, 10, 8)
    checks = PartitionChecks(writer, lambda spec: target.writer(TRADE_CAL))
    found = {f.check: f for f in checks.evaluate({"2024-10-08": [{"trade_date": (day, day)}]})}
    for name in ("unique_keys", "key_not_null"):
        assert found[name].passed and found[name].metadata == {"enforced_by": "table"}
    assert "primary key (ts_code, trade_date)" in found["unique_keys"].description


@pytest.mark.cli
def test_controller_names_each_failed_check_and_exits_5(sqlite_target, atm_env, sb, workdir):
    assert controller("sync", "trade-cal", "--exchange", "SSE", cwd=workdir).returncode == 0
    sb.set_publication("daily", "20241008", "partial", fraction=0.3)
    ran = controller(
        "sync", "daily", "--start-date", "20240930", "--end-date", "20241009", cwd=workdir
    )
    assert ran.returncode == 5, ran.stderr
    assert "Check failed: daily rows_complete 2024-10-08:" in ran.stderr
    assert "published partly" in ran.stderr
    assert "Traceback" not in ran.stderr
    # The other days passed: named nowhere.
    assert "2024-10-09" not in ran.stderr.split("Check failed")[1]
    sb.clear_publication("daily")
    again = controller("sync", "daily", "--start-date", "20241008", cwd=workdir)
    assert again.returncode == 0, again.stderr
