"""Faithful to what the real service answers: tables without a natural key, every version of a
report, columns by name, caps found and paged past, days not published yet. The sandbox runs
with fidelity "real" (its quirks are transcribed from Tushare's docs and issue tracker)."""

import datetime as dt
import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest

from atm_assets.api import StockIngestorService
from atm_assets.core.catalog import BUILTIN
from atm_assets.core.contract import sample_day
from atm_assets.core.datasets import TableSpec
from atm_assets.core.dates import parse_day, shanghai_today
from atm_assets.core.engine import not_published_yet
from atm_assets.core.errors import TushareProtocolError
from atm_assets.core.readers import read_as_of
from atm_assets.core.settings import TushareSettings
from atm_assets.core.tushare_client import OBSERVED_CAPS, TushareClient
from atm_assets_tests.helpers import PROJECT_ROOT, controller, latest_materialization_metadata

SPECS = {s.name: s for s in BUILTIN}
DAY = "20240614"


def as_table(spec: TableSpec, rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        row = {f: row.get(f) for f in spec.fields}
        for col in spec.date_columns:
            row[col] = parse_day(row[col]) if row[col] else None
        out.append(row)
    return sorted(out, key=lambda r: tuple(str(r[k]) for k in (spec.key or spec.fields)))


def table(target, spec: TableSpec) -> list[dict]:
    return sorted(
        target.rows(spec), key=lambda r: tuple(str(r[k]) for k in (spec.key or spec.fields))
    )


@pytest.fixture
def ingest(sb, atm_env, workdir):
    """The Python API on the sandbox, the SSE calendar synced."""
    shutil.copy(PROJECT_ROOT / "dagster.yaml", f"{workdir}/dagster.yaml")
    with StockIngestorService(log_level="WARNING", dagster_home=workdir) as ingestor:
        ingestor.ingest("trade_cal", exchange="SSE")
        yield ingestor


@pytest.mark.parametrize("name", ["top_inst", "block_trade"])
def test_a_day_without_a_natural_key_is_stored_as_answered(target, sb, ingest, name):
    """Several identical 机构专用 seats, NULL fields, repeated trades: every row, and a second
    sync of the day replaces it rather than doubling it."""
    spec = SPECS[name]
    truth = sb.dataset.rows(name, {"trade_date": DAY})
    assert truth
    ingest.ingest(name, start_date=DAY)
    assert table(target, spec) == as_table(spec, truth)
    again = ingest.ingest(name, start_date=DAY)
    assert again.total_saved == len(truth)
    assert table(target, spec) == as_table(spec, truth)


def test_top_inst_rows_that_share_every_key_like_column_are_all_kept(target, sb, ingest):
    spec = SPECS["top_inst"]
    truth = sb.dataset.rows("top_inst", {"trade_date": DAY})
    seat = ["trade_date", "ts_code", "reason", "side", "exalter"]
    assert pd.DataFrame(truth).duplicated(seat).any(), "the sandbox repeats no seat here"
    ingest.ingest("top_inst", start_date=DAY)
    stored = pd.DataFrame(table(target, spec))
    assert len(stored) == len(truth)
    assert stored.duplicated(seat).sum() == pd.DataFrame(truth).duplicated(seat).sum()


def test_namechange_keeps_its_repeated_open_ended_names(target, sb, ingest):
    spec = SPECS["namechange"]
    truth = sb.dataset.rows("namechange", {})
    ingest.ingest("namechange")
    assert table(target, spec) == as_table(spec, truth)


def test_a_dividend_period_with_repeated_rows_is_stored_as_answered(target, sb, ingest):
    """The same 实施 row two or three times (#1133, #1271, #1900) does not fail the period:
    the table holds the answer row for row, a rerun replaces rather than doubles it, and what
    was known on a day still has one row per company and period."""
    spec = SPECS["dividend"]
    truth = sb.dataset.rows("dividend", {"end_date": "20231231"})
    assert pd.DataFrame(truth).duplicated().any(), "the sandbox repeats no dividend here"
    ingest.ingest("dividend", start_period="20231231")
    assert table(target, spec) == as_table(spec, truth)
    again = ingest.ingest("dividend", start_period="20231231")
    assert again.total_saved == len(truth)
    assert table(target, spec) == as_table(spec, truth)
    day = dt.date(2024, 12, 31)
    known = read_as_of(target.engine(), "dividend", day, target.schema)
    assert len(known) == len({r["ts_code"] for r in truth})
    assert all(d <= day for d in known["ann_date"])


def test_stk_limit_with_funds_and_b_shares_is_paged_whole(target, sb, ingest):
    truth = sb.dataset.rows("stk_limit", {"trade_date": DAY})
    assert len(truth) > 5800  # more than one page
    ingest.ingest("stk_limit", start_date=DAY)
    assert table(target, SPECS["stk_limit"]) == as_table(SPECS["stk_limit"], truth)
    offsets = [c["params"].get("offset") for c in sb.calls() if c["api_name"] == "stk_limit"]
    assert sorted(offsets)[:2] == [0, 5800]


def test_an_undocumented_cap_below_the_page_is_found_and_paged_past(target, sb, ingest, workdir):
    """fina_indicator_vip answers at most 2,000 rows a call while saying more remain: nothing
    is lost, the cap is recorded, and the run's materialisation names it."""
    truth = sb.dataset.rows("fina_indicator_vip", {"period": "20231231"})
    assert len(truth) > 4000
    OBSERVED_CAPS.pop("fina_indicator_vip", None)
    stats = ingest.ingest("fina_indicator", start_period="20231231")
    spec = SPECS["fina_indicator"]
    assert table(target, spec) == as_table(spec, truth)
    assert stats.total_saved == len(truth)
    assert OBSERVED_CAPS["fina_indicator_vip"] == 2000
    meta = latest_materialization_metadata(workdir, "fina_indicator")
    assert meta["observed_caps"] == {"fina_indicator_vip": 2000}
    calls = [c for c in sb.calls() if c["api_name"] == "fina_indicator_vip"]
    assert sorted(c["params"]["offset"] for c in calls)[:3] == [0, 2000, 4000]


# -- columns by name --


class _Frames:
    """Stands in for the tushare package's DataApi: answers a given frame."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def query(self, api_name: str, fields: str = "", **params: object) -> pd.DataFrame:
        return self.frame.copy()


def _client(frame: pd.DataFrame) -> TushareClient:
    client = TushareClient("t", TushareSettings(api_url="http://127.0.0.1:9/none"))
    client._api = _Frames(frame)
    return client


@pytest.mark.pure
def test_columns_are_taken_by_name_whatever_order_they_come_in(caplog):
    answer = pd.DataFrame({"b": [2], "extra": [9], "a": [1]})
    caplog.set_level(logging.INFO, "atm.tushare")
    got = _client(answer).query("some_api", ["a", "b"])
    assert got.columns.tolist() == ["a", "b"] and got.iloc[0].tolist() == [1, 2]
    _client(answer).query("some_api", ["a", "b"])
    said = [r.message for r in caplog.records if "also answered extra" in r.message]
    assert len(said) == 1  # once per API, not per call


@pytest.mark.pure
def test_a_requested_column_missing_from_the_answer_is_named():
    with pytest.raises(TushareProtocolError, match="did not return the requested field"):
        _client(pd.DataFrame({"a": [1]})).query("some_api", ["a", "b"])


# -- days not published yet --


@pytest.mark.pure
def test_an_empty_open_day_is_final_only_after_the_publication_lag():
    spec = SPECS["top_inst"]
    today = dt.date(2024, 6, 17)  # a Monday: Friday's list may still be missing
    assert not_published_yet(spec, {"trade_date": "20240614"}, 0, today) == "20240614"
    assert not_published_yet(spec, {"trade_date": "20240614"}, 5, today) is None
    assert not_published_yet(spec, {"trade_date": "20240612"}, 0, today) is None  # 5 days on
    assert not_published_yet(SPECS["income"], {"period": "20240331"}, 0, today) is None


def _recent_open_day(sb) -> str:
    """The newest open trade date on or before today (Asia/Shanghai): within any lag."""
    today = shanghai_today()
    days = sb.dataset.rows(
        "trade_cal",
        {
            "exchange": "SSE",
            "start_date": (today - dt.timedelta(days=10)).strftime("%Y%m%d"),
            "end_date": today.strftime("%Y%m%d"),
        },
    )
    return max(d["cal_date"] for d in days if int(d["is_open"]) == 1)


@pytest.mark.cli
def test_a_day_not_published_yet_is_named_and_filled_by_a_rerun(
    sqlite_target, sb, atm_env, workdir
):
    day = _recent_open_day(sb)
    flags = ["sync", "top-inst", "--start-date", day]
    assert controller("sync", "trade-cal", "--exchange", "SSE", cwd=workdir).returncode == 0
    sb.set_publication("top_inst", day, "unpublished")
    early = controller(*flags, cwd=workdir)
    assert early.returncode == 4, early.stderr
    assert f"Not published yet: top_inst {day} answered no rows" in early.stderr
    assert "Traceback" not in early.stderr
    assert table(sqlite_target, SPECS["top_inst"]) == []
    shown = controller("state", "show", f"top_inst_sync_{day}", cwd=workdir)
    assert '"status": "unpublished"' in shown.stdout

    sb.clear_publication("top_inst")
    later = controller(*flags, cwd=workdir)
    assert later.returncode == 0, later.stderr
    truth = sb.dataset.rows("top_inst", {"trade_date": day})
    assert truth and table(sqlite_target, SPECS["top_inst"]) == as_table(SPECS["top_inst"], truth)


# -- tushare check: the catalog against the service --


@pytest.mark.cli
def test_tushare_check_reports_each_dataset_against_the_service(
    sqlite_target, sb, atm_env, workdir
):
    checked = controller("tushare", "check", "income", "fina_indicator", "top_inst", cwd=workdir)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = {line.split()[0]: line for line in checked.stdout.splitlines()[1:]}
    assert set(lines) == {"income", "fina_indicator", "top_inst"}
    assert " ok " in lines["income"]
    assert "answered in another column order (mapped by name)" in lines["income"]
    assert "answers at most 2000 rows a call" in lines["fina_indicator"]
    assert "no natural key" in lines["top_inst"]

    sb.deny("top_inst")
    denied = controller("tushare", "check", "top_inst", "--json", cwd=workdir)
    assert denied.returncode == 1
    (found,) = json.loads(denied.stdout)
    assert not found["ok"] and found["access"].startswith("no permission (5000 points")


@pytest.mark.cli
def test_tushare_check_samples_partitions_that_have_rows(sqlite_target, sb, atm_env, workdir):
    """Weekly and monthly bars are dated on their period's last open day and index_weight
    answers only for indices with constituents: each sample asks for one that answers."""
    checked = controller(
        "tushare", "check", "monthly", "weekly", "index_weight", "--json", cwd=workdir
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    found = {r["dataset"]: r for r in json.loads(checked.stdout)}
    assert set(found) == {"monthly", "weekly", "index_weight"}
    for name, result in found.items():
        assert result["rows"] > 0, (name, result["request"])
    # The last completed month's and week's last open day, not merely the last open day.
    today = shanghai_today()
    assert found["monthly"]["request"]["trade_date"] < today.strftime("%Y%m01")
    monday = today - dt.timedelta(days=today.weekday())
    assert found["weekly"]["request"]["trade_date"] < monday.strftime("%Y%m%d")


@pytest.mark.pure
def test_a_sample_of_weeks_and_months_takes_the_last_completed_ones_last_open_day():
    # Golden Week 2024: October 1-7 closed, so September 30 ends both its week and its month.
    open_days = [
        d
        for d in (dt.date(2024, 9, 1) + dt.timedelta(n) for n in range(45))
        if d.weekday() < 5 and not dt.date(2024, 10, 1) <= d <= dt.date(2024, 10, 7)
    ]
    wednesday = dt.date(2024, 10, 9)
    before = [d for d in open_days if d < wednesday]
    assert sample_day("week", before, wednesday) == dt.date(2024, 9, 30)
    assert sample_day("month", before, dt.date(2024, 10, 15)) == dt.date(2024, 9, 30)
    assert sample_day("trade_date", before, wednesday) == dt.date(2024, 10, 8)
    assert sample_day("week", before, dt.date(2024, 9, 23)) == dt.date(2024, 9, 20)


@pytest.mark.cli
def test_tushare_check_names_a_declared_field_the_service_does_not_have(
    sqlite_target, sb, atm_env, workdir
):
    (Path(workdir) / "config").mkdir()
    (Path(workdir) / "config/datasets.yaml").write_text(
        "datasets:\n  chips:\n    api: cyq_perf\n    partition: trade_date\n"
        "    params: {ts_code: 600000.SH}\n    key: [ts_code, trade_date]\n"
        "    columns: {ts_code: str, trade_date: date, winner_rate: float, no_such: float}\n"
    )
    checked = controller("tushare", "check", "chips", cwd=workdir)
    assert checked.returncode == 1
    assert "FAIL" in checked.stdout and "fields missing from the answer: no_such" in checked.stdout
