"""The catalog: every dataset from one declaration, synced into SQLite and PostgreSQL equal to
the sandbox; each partition scheme; caps; point-in-time and forward-adjusted reads; datasets
users declare themselves."""

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from atm_assets.api import StockIngestorService
from atm_assets.core.catalog import BUILTIN, build_catalog, load_user_datasets
from atm_assets.core.datasets import ADJ_FACTOR, DAILY, GROUPS, SCHEMES, TableSpec
from atm_assets.core.dates import parse_day
from atm_assets.core.errors import ConfigError, DataValidationError
from atm_assets.core.readers import as_of, forward_adjust, read_as_of, read_forward_adjusted
from atm_assets.partitions import keys_between, request_partitions
from atm_assets_tests.helpers import CYQ, PROJECT_ROOT, controller

FETCHED = [s for s in BUILTIN if s.fetched]
BY_NAME = {s.name: s for s in BUILTIN}
SMALL = {
    f"{e}:{s}": n
    for e in ("SSE", "SZSE", "BSE")
    for s, n in zip("LDPG", (12, 3, 1, 1), strict=True)
}
# Per scheme: what the test asks for, and the Tushare request(s) whose answer the table must
# hold — written out here, not derived from the catalog under test.
DAY = "20240614"
SELECTIONS: dict[str, tuple[dict, list[dict]]] = {
    "snapshot": ({}, [{}]),
    "values": ({"market": "CSI"}, [{"market": "CSI"}]),
    "exchange": ({"exchange": "SSE"}, [{"exchange": "SSE"}]),
    "exchange_list_status": (
        {"exchange": "SSE", "list_status": "L"},
        [{"exchange": "SSE", "list_status": "L"}],
    ),
    "trade_date": ({"start_date": DAY, "end_date": DAY}, [{"trade_date": DAY}]),
    "week": ({"start_date": "20240610", "end_date": "20240614"}, [{"trade_date": DAY}]),
    "month": ({"start_date": "20240601", "end_date": "20240630"}, [{"trade_date": "20240628"}]),
    "period": ({"start_period": "20231231"}, [{"period": "20231231"}]),
    "index_month": (
        {"index_code": "000300.SH", "start_date": "20240101", "end_date": "20240131"},
        [{"index_code": "000300.SH", "start_date": "20240101", "end_date": "20240131"}],
    ),
    "index_year": (
        {"index_code": "000300.SH", "start_date": "20240101"},
        [{"ts_code": "000300.SH", "start_date": "20240101", "end_date": "20241231"}],
    ),
}


def truth_requests(spec: TableSpec) -> list[dict]:
    requests = SELECTIONS[spec.scheme][1]
    if spec.name == "trade_cal":
        return [
            {
                "exchange": "SSE",
                "start_date": "20240101",
                "end_date": f"{dt.date.today().year + 1}1231",
            }
        ]
    if spec.name == "dividend":
        return [{"end_date": "20231231"}]
    if spec.api_name in ("income_vip", "balancesheet_vip", "cashflow_vip"):
        # Doc 33: report types 1-12; Tushare answers type 1 unless another is asked for.
        return [{**r, "report_type": str(t)} for r in requests for t in range(1, 13)]
    return requests


def as_table(spec: TableSpec, rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        row = {f: row[f] for f in spec.fields}
        for col in spec.date_columns:
            row[col] = parse_day(row[col]) if row[col] else None
        out.append(row)
    return sorted(out, key=lambda r: _order(spec, r))


def _order(spec: TableSpec, row: dict) -> tuple[str, ...]:
    # A dataset without a natural key: every column orders its (possibly repeated) rows.
    return tuple(str(row[k]) for k in (spec.key or spec.fields))


def table(target, spec: TableSpec) -> list[dict]:
    return sorted(target.rows(spec), key=lambda r: _order(spec, r))


@pytest.fixture
def home(workdir) -> str:
    shutil.copy(PROJECT_ROOT / "dagster.yaml", Path(workdir) / "dagster.yaml")
    return workdir


# -- the declarations --


@pytest.mark.pure
def test_the_catalog_ships_the_datasets_quant_teams_sync():
    names = {s.name for s in FETCHED}
    assert len(FETCHED) >= 25
    assert {
        "stock_basic",
        "trade_cal",
        "namechange",
        "stock_company",
        "index_basic",
        "daily",
        "adj_factor",
        "daily_basic",
        "stk_limit",
        "suspend_d",
        "moneyflow",
        "margin_detail",
        "top_list",
        "top_inst",
        "block_trade",
        "moneyflow_hsgt",
        "weekly",
        "monthly",
        "index_daily",
        "index_weight",
        "index_dailybasic",
        "income",
        "balancesheet",
        "cashflow",
        "fina_indicator",
        "forecast",
        "express",
        "dividend",
    } <= names
    assert len({s.name for s in BUILTIN}) == len(BUILTIN)
    for spec in FETCHED:
        assert set(spec.key) <= set(spec.fields), spec.name
        assert spec.scheme in SCHEMES and spec.group in GROUPS, spec.name
        assert all(not spec.column(k).nullable for k in spec.key), spec.name
    # Point in time: every version is kept, so the key holds the announcement column.
    for name in ("income", "balancesheet", "cashflow", "fina_indicator", "forecast", "express"):
        assert BY_NAME[name].known_from in BY_NAME[name].key


def _open(days):
    # A calendar for pure tests: weekdays open except 2024-06-10 (Dragon Boat Festival).
    return {d: d.weekday() < 5 and d != dt.date(2024, 6, 10) for d in days}


@pytest.mark.pure
@pytest.mark.parametrize(
    "name, keys, expected, closed",
    [
        ("namechange", [], [{}], []),
        ("index_basic", ["SSE", "CSI"], [{"market": "SSE"}, {"market": "CSI"}], []),
        (
            "daily_basic",
            ["2024-06-07", "2024-06-10", "2024-06-11"],
            [{"trade_date": "20240607"}, {"trade_date": "20240611"}],
            ["2024-06-10"],
        ),
        ("weekly", ["2024-06-10"], [{"trade_date": "20240614"}], []),
        ("monthly", ["2024-06-01"], [{"trade_date": "20240628"}], []),
        (
            "income",
            ["2023-10-01", "2024-01-01"],
            [{"period": "20231231"}, {"period": "20240331"}],
            [],
        ),
        ("dividend", ["2023-10-01"], [{"end_date": "20231231"}], []),
        (
            "index_weight",
            ["000300.SH|2024-02-01"],
            [{"index_code": "000300.SH", "start_date": "20240201", "end_date": "20240229"}],
            [],
        ),
        (
            "index_daily",
            ["399006.SZ|2024-01-01"],
            [{"ts_code": "399006.SZ", "start_date": "20240101", "end_date": "20241231"}],
            [],
        ),
    ],
)
def test_each_scheme_fills_in_its_request(name, keys, expected, closed):
    assert request_partitions(BY_NAME[name], keys, _open) == (expected, closed)


@pytest.mark.pure
def test_a_week_without_an_open_day_costs_no_call():
    closed = {d: False for d in [dt.date(2024, 9, 30) + dt.timedelta(n) for n in range(7)]}
    assert request_partitions(
        BY_NAME["weekly"], ["2024-09-30"], lambda days: {d: closed.get(d, True) for d in days}
    ) == ([], ["2024-09-30"])


@pytest.mark.pure
@pytest.mark.parametrize(
    "name, selection, expected",
    [
        (
            "weekly",
            {"start_date": "20240612", "end_date": "20240619"},
            ["2024-06-10", "2024-06-17"],
        ),
        (
            "monthly",
            {"start_date": "20240215", "end_date": "20240301"},
            ["2024-02-01", "2024-03-01"],
        ),
        (
            "income",
            {"start_period": "20230601", "end_period": "20231231"},
            ["2023-04-01", "2023-07-01", "2023-10-01"],
        ),
        ("index_basic", {"market": "SW"}, ["SW"]),
        (
            "index_weight",
            {"index_code": "000905.SH", "start_date": "20240131", "end_date": "20240201"},
            ["000905.SH|2024-01-01", "000905.SH|2024-02-01"],
        ),
        (
            "index_daily",
            {"start_date": "20240601"},
            [
                f"{c}|2024-01-01"
                for c in (
                    "000001.SH",
                    "000300.SH",
                    "000905.SH",
                    "000852.SH",
                    "399001.SZ",
                    "399006.SZ",
                )
            ],
        ),
    ],
)
def test_a_selection_covers_the_partitions_it_overlaps(name, selection, expected):
    assert keys_between(BY_NAME[name], selection) == expected


@pytest.mark.pure
@pytest.mark.parametrize(
    "name, selection, message",
    [
        ("weekly", {}, "weekly needs --start-date"),
        ("income", {"start_period": "2023-13-01"}, "--start-period"),
        ("monthly", {"start_date": "20240301", "end_date": "20240201"}, "is before --start-date"),
        ("index_basic", {"market": "NYSE"}, "unknown market 'NYSE'"),
        ("index_weight", {"index_code": "000999.SH", "start_date": "20240101"}, "not configured"),
        ("weekly", {"start_date": "20000101", "end_date": "20000201"}, "no weekly partitions"),
    ],
)
def test_a_bad_selection_is_one_clear_error(name, selection, message):
    with pytest.raises(ConfigError, match=message):
        keys_between(BY_NAME[name], selection)


# -- every dataset, synced through Dagster, equals the source --


@pytest.mark.parametrize("spec", FETCHED, ids=[s.name for s in FETCHED])
def test_every_dataset_syncs_equal_to_the_source(spec, target, sb, atm_env, home):
    sb.set_sizes(SMALL)
    selection, _ = SELECTIONS[spec.scheme]
    with StockIngestorService(log_level="WARNING") as ingestor:
        if spec.name != "trade_cal":
            ingestor.ingest("trade_cal", exchange="SSE")
        stats = ingestor.ingest(spec.name, **selection)
    expected = []
    for request in truth_requests(spec):
        expected += sb.dataset.rows(spec.api_name, request)
    assert expected, f"the sandbox has no {spec.api_name} rows for {truth_requests(spec)}"
    assert table(target, spec) == as_table(spec, expected)
    assert stats.total_saved == len(expected) and stats.total_errors == 0


def test_a_result_at_the_row_cap_of_an_api_without_offset_paging_fails_loudly(
    sqlite_target, sb, atm_env, home
):
    sb.set_sizes({"SSE:L": 6500})
    with StockIngestorService(log_level="WARNING") as ingestor:
        ingestor.ingest("trade_cal", exchange="SSE")
        with pytest.raises(
            DataValidationError,
            match="more remain \\(its row cap is 6000\\), and daily cannot page",
        ):
            ingestor.ingest("daily", start_date=DAY)
    assert sqlite_target.rows(DAILY) == []  # nothing half-written


def test_a_result_past_the_cap_of_a_paging_api_is_paged(sqlite_target, sb, atm_env, home):
    sb.set_sizes({"SSE:L": 6500})
    with StockIngestorService(log_level="WARNING") as ingestor:
        ingestor.ingest("trade_cal", exchange="SSE")
        ingestor.ingest("adj_factor", start_date=DAY)
    expected = sb.dataset.rows("adj_factor", {"trade_date": DAY})
    assert len(expected) > 6000
    assert table(sqlite_target, ADJ_FACTOR) == as_table(ADJ_FACTOR, expected)
    offsets = [c["params"].get("offset") for c in sb.calls() if c["api_name"] == "adj_factor"]
    # The first page, then further pages fetched side by side until one comes back short.
    assert offsets[0] == 0 and sorted(offsets)[:2] == [0, 6000] and len(offsets) <= 5


# -- reads: point in time, forward adjusted --


def test_as_of_answers_what_was_known_on_a_day(sqlite_target, sb, atm_env, home):
    """Every published version is stored (a correction repeats its report's dates and differs
    in update_flag alone); as of a day, the newest version known then."""
    sb.set_sizes(SMALL)
    with StockIngestorService(log_level="WARNING") as ingestor:
        ingestor.ingest("income", start_period="20231231")
    spec = BY_NAME["income"]
    rows = as_table(spec, sb.dataset.rows("income_vip", {"period": "20231231", "report_type": "1"}))
    stored = table(sqlite_target, spec)
    assert [r for r in stored if r["report_type"] == "1"] == rows  # both versions kept
    fact = ("ts_code", "end_date", "report_type", "f_ann_date")
    old = next(
        r
        for r in rows
        if r["update_flag"] == "0"
        and any(o["update_flag"] == "1" and all(o[k] == r[k] for k in fact) for o in rows)
    )
    new = next(r for r in rows if r["update_flag"] == "1" and all(r[k] == old[k] for k in fact))
    engine = sqlite_target.engine()
    after = read_as_of(engine, "income", old["f_ann_date"])
    before = read_as_of(engine, "income", old["f_ann_date"] - dt.timedelta(days=1))
    mine = lambda frame: frame[  # noqa: E731
        (frame.ts_code == old["ts_code"]) & (frame.report_type == "1")
    ].to_dict("records")
    assert mine(after) == [new]  # the corrected version, not the one it replaced
    assert mine(before) == []  # nothing announced yet
    # Nothing announced after the day is known; one row per company × period × type.
    assert all(d <= old["f_ann_date"] for d in after["f_ann_date"])
    assert not after.duplicated(["ts_code", "end_date", "report_type"]).any()


@pytest.mark.pure
def test_as_of_refuses_a_dataset_without_versions():
    with pytest.raises(ConfigError, match="daily is not a point-in-time dataset"):
        as_of(None, DAILY, dt.date(2024, 1, 1))


def test_forward_adjusted_bars_match_tushare_qfq(sqlite_target, sb, atm_env, home):
    sb.set_sizes(SMALL)
    with StockIngestorService(log_level="WARNING") as ingestor:
        ingestor.ingest("trade_cal", exchange="SSE")
        # January's bars and factors, and the anchor day's: a year of days adds nothing.
        ingestor.ingest("daily", start_date="20240101", end_date="20240131")
        ingestor.ingest("adj_factor", start_date="20240101", end_date="20240131")
        ingestor.ingest("daily", start_date="20241231", end_date="20241231")
        ingestor.ingest("adj_factor", start_date="20241231", end_date="20241231")
    factors = {
        (r["ts_code"], r["trade_date"]): r["adj_factor"]
        for r in sb.dataset.rows("adj_factor", {"start_date": "20240101", "end_date": "20241231"})
    }
    bars = sb.dataset.rows("daily", {"start_date": "20240101", "end_date": "20240131"})
    # Stocks whose factor changed between January and the anchor: their prices move.
    changed = [
        c
        for c in {c for c, _ in factors}
        if (c, "20240131") in factors
        and (c, "20241231") in factors
        and factors[(c, "20240131")] != factors[(c, "20241231")]
    ]
    assert changed, "no factor change in 2024 to adjust for"
    code = sorted(changed)[0]
    anchor = dt.date(2024, 12, 31)
    last = max(d for (c, d) in factors if c == code)
    frame = read_forward_adjusted(
        sqlite_target.engine(), dt.date(2024, 1, 1), dt.date(2024, 1, 31), anchor, [code]
    )
    expected = {
        r["trade_date"]: round(
            r["close"] * factors[(code, r["trade_date"])] / factors[(code, last)], 2
        )
        for r in bars
        if r["ts_code"] == code
    }
    got = {d.strftime("%Y%m%d"): c for d, c in zip(frame.trade_date, frame.close, strict=True)}
    assert got == pytest.approx(expected)
    # On the anchor date the adjusted price is the traded one.
    at_anchor = read_forward_adjusted(sqlite_target.engine(), anchor, anchor, anchor, [code])
    traded = sb.dataset.rows("daily", {"trade_date": "20241231", "ts_code": code})
    assert list(at_anchor.close) == pytest.approx([traded[0]["close"]])


@pytest.mark.pure
def test_forward_adjust_without_a_factor_keeps_prices_null():
    import pandas as pd

    day = dt.date(2024, 1, 2)
    daily = pd.DataFrame(
        [
            {
                "ts_code": "X",
                "trade_date": day,
                "open": 1.0,
                "high": 1.0,
                "low": 1.0,
                "close": 1.0,
                "pre_close": 1.0,
            }
        ]
    )
    factors = pd.DataFrame(columns=["ts_code", "trade_date", "adj_factor"])
    out = forward_adjust(daily, factors, day)
    assert out["close"].isna().all()


# -- the user's own datasets --


@pytest.mark.pure
def test_a_user_declaration_becomes_a_dataset(tmp_path):
    path = tmp_path / "datasets.yaml"
    path.write_text(CYQ)
    catalog = build_catalog(path)
    spec = catalog["cyq_perf"]
    assert spec.fields == ["ts_code", "trade_date", "his_low", "winner_rate"]
    assert spec.key == ("ts_code", "trade_date") and spec.scheme == "trade_date"
    assert spec.group == "user" and spec.user and spec.description == "Chip distribution statistics"
    assert spec.column("trade_date").type == "date" and not spec.column("ts_code").nullable


@pytest.mark.pure
@pytest.mark.parametrize(
    "text, message",
    [
        (
            CYQ.replace("partition: trade_date", "partition: hourly"),
            "dataset cyq_perf: partition: unknown scheme 'hourly'",
        ),
        (
            CYQ.replace("his_low: float", "his_low: decimal"),
            "dataset cyq_perf: columns.his_low: unknown type 'decimal'",
        ),
        (
            CYQ.replace("key: [ts_code, trade_date]", "key: [ts_code, day]"),
            "dataset cyq_perf: key: day not among the columns",
        ),
        (CYQ.replace("  cyq_perf:", "  daily:"), "dataset daily: the name clashes with a built-in"),
        (
            CYQ.replace("    api: cyq_perf", "    api: cyq_perf\n    apii: x"),
            "dataset cyq_perf: unknown field\\(s\\) apii",
        ),
        (CYQ + "  broken: [", "not valid YAML"),
        (CYQ.replace("  cyq_perf:", "  Cyq-Perf:"), "dataset name 'Cyq-Perf' must be lower-case"),
        (
            CYQ.replace("      trade_date: date\n", "").replace(
                "[ts_code, trade_date]", "[ts_code]"
            ),
            "partition trade_date fills in trade_date: declare that column",
        ),
    ],
)
def test_a_bad_user_declaration_is_one_error_naming_file_dataset_and_field(tmp_path, text, message):
    path = tmp_path / "datasets.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_user_datasets(path, {s.name for s in BUILTIN})
    assert str(caught.value).startswith(str(path))
    assert "\n" not in str(caught.value)


@pytest.mark.cli
def test_a_user_dataset_behaves_like_a_built_in(sqlite_target, sb, atm_env, home, monkeypatch):
    declared = Path(home, "my-datasets.yaml")
    declared.write_text(CYQ)
    monkeypatch.setenv("ATM_DATASETS", str(declared))
    env = {**os.environ, "DAGSTER_HOME": home}
    listed = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "list", "-m", "atm_assets"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "cyq_perf" in listed.stdout.split()
    assert controller("sync", "trade-cal", "--exchange", "SSE", cwd=home).returncode == 0
    materialized = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "atm_assets",
            "--select",
            "cyq_perf",
            "--partition",
            "2024-01-03",
        ],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
    )
    assert materialized.returncode == 0, materialized.stderr[-3000:]
    spec = build_catalog(declared)["cyq_perf"]
    day3 = sb.dataset.rows("cyq_perf", {"trade_date": "20240103", "ts_code": "600000.SH"})
    assert table(sqlite_target, spec) == as_table(spec, day3)

    synced = controller(
        "sync", "cyq-perf", "--start-date", "20240101", "--end-date", "20240105", cwd=home
    )
    assert synced.returncode == 0, synced.stderr[-3000:]
    # 2024-01-01 is a holiday: part of the run, but no call.
    assert "Market closed for 1 partition(s) per trade_cal (2024-01-01)" in synced.stdout
    expected = []
    for day in ("20240102", "20240103", "20240104", "20240105"):
        expected += sb.dataset.rows("cyq_perf", {"trade_date": day, "ts_code": "600000.SH"})
    assert table(sqlite_target, spec) == as_table(spec, expected)
    calls = {c["params"].get("trade_date") for c in sb.calls() if c["api_name"] == "cyq_perf"}
    assert "20240101" not in calls


@pytest.mark.cli
def test_a_bad_user_file_stops_the_definitions_and_the_controller(home, sb, atm_env, monkeypatch):
    declared = Path(home, "datasets.yaml")
    declared.write_text(CYQ.replace("his_low: float", "his_low: decimal"))
    monkeypatch.setenv("ATM_DATASETS", str(declared))
    env = {**os.environ, "DAGSTER_HOME": home}
    listed = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "list", "-m", "atm_assets"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
    )
    assert listed.returncode != 0
    assert f"{declared}: dataset cyq_perf: columns.his_low: unknown type 'decimal'" in (
        listed.stderr + listed.stdout
    )
    synced = controller("sync", "daily", "--start-date", "20240102", cwd=home)
    assert synced.returncode == 2
    assert synced.stderr.strip() == (
        f"Error: {declared}: dataset cyq_perf: columns.his_low: unknown type 'decimal' "
        "(one of str, date, float, int)"
    )
    assert sb.calls() == []  # nothing ran


# -- schedules after publication --


def _tick(day: str, time: str) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=ZoneInfo("Asia/Shanghai"))


def test_schedules_follow_publication_and_refetch_late_data(sqlite_target, sb, atm_env, home):
    from dagster import build_schedule_context

    from atm_assets.core.settings import load_settings
    from atm_assets.definitions import build_definitions, build_resources

    sb.set_sizes(SMALL)
    with StockIngestorService(log_level="WARNING") as ingestor:
        ingestor.ingest("trade_cal", exchange="SSE")
    repo = build_definitions(load_settings()).get_repository_def()
    database = build_resources(load_settings())["database"]

    def evaluate(name: str, day: str, time: str):
        context = build_schedule_context(
            scheduled_execution_time=_tick(day, time),
            resources={"database": database},
            repository_def=repo,
        )
        return repo.get_schedule_def(name).evaluate_tick(context)

    after = evaluate("after_close_schedule", "2024-10-08", "17:45:00").run_requests
    # The four days before were the holiday: nothing of them to ask for again.
    assert [r.partition_key for r in after if r.job_name is None] == ["2024-10-08"]
    friday = evaluate("after_close_schedule", "2024-06-14", "17:45:00").run_requests
    (day,) = [r for r in friday if r.job_name is None]
    # The week's earlier days again, within the datasets' publication lag (4 days).
    assert (
        day.tags["dagster/asset_partition_range_start"],
        day.tags["dagster/asset_partition_range_end"],
    ) == ("2024-06-11", "2024-06-14")
    (refetch,) = [r for r in after if r.job_name == "late_refetch_job"]
    # The three trade dates before 2024-10-08: National Day closed October 1st to 7th.
    assert refetch.tags["dagster/asset_partition_range_start"] == "2024-09-26"
    assert refetch.tags["dagster/asset_partition_range_end"] == "2024-09-30"
    holiday = evaluate("after_close_schedule", "2024-10-03", "17:45:00")
    assert not holiday.run_requests and "no trade date to sync" in holiday.skip_message
    morning = evaluate("next_morning_schedule", "2024-10-08", "08:30:00").run_requests
    # The trade date before (2024-09-30), with the open days of its publication lag.
    assert [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in morning
    ] == [("2024-09-26", "2024-09-30")]
    friday = evaluate("weekly_schedule", "2024-06-14", "20:30:00").run_requests
    assert [r.tags["dagster/partition"] for r in friday] == ["2024-06-10"]
    assert not evaluate("weekly_schedule", "2024-06-13", "20:30:00").run_requests
    income = evaluate("income_schedule", "2024-04-15", "20:30:00").run_requests
    assert [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in income
    ] == [("2023-01-01", "2024-01-01")]  # the revision window: five report periods
