"""Years of trade-date partitions in one run: SIGKILL, resume by re-execution, the call rate."""

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterRunStatus, ReexecutionOptions, execute_job, reconstructable

from atm_assets.core.datasets import ADJ_FACTOR, DAILY, TRADE_CAL
from atm_assets.core.market import trading_status
from atm_assets.core.staging import FORMATS as STAGED_FORMATS
from atm_assets.partitions import trade_date_partitions

from .helpers import PROJECT_ROOT, failure_message, instance_at, market_data_job_def, run_job
from .test_market_data import as_table_rows, table_rows

# A small stock list keeps hundreds of days quick; every day is still a real query and write.
SMALL = {f"{ex}:{st}": n for ex in ("SSE", "SZSE", "BSE") for st, n in (("L", 6), ("D", 2))} | {
    f"{ex}:{st}": 0 for ex in ("SSE", "SZSE", "BSE") for st in ("P", "G")
}
YEARS = ("2024-01-01", "2025-12-31")


def dates_in(first: str, last: str) -> list[str]:
    keys = trade_date_partitions.get_partition_keys()
    return [k for k in keys if first <= k <= last]


@pytest.mark.cli
def test_two_year_backfill_is_one_run_that_resumes_after_sigkill(pg_target, atm_env, sb, workdir):
    sb.set_sizes(SMALL)
    assert run_job("trade_cal_job", "SSE").success
    keys = dates_in(*YEARS)
    days = trading_status(pg_target.writer(TRADE_CAL), [dt.date.fromisoformat(k) for k in keys])
    open_days = [d.strftime("%Y%m%d") for d, is_open in days.items() if is_open]
    assert len(keys) > 500 and len(open_days) > 450

    # The whole range as one run, through the dagster CLI; killed after its 200th partition.
    shutil.copy(PROJECT_ROOT / "dagster.yaml", os.path.join(workdir, "dagster.yaml"))
    env = {**os.environ, "DAGSTER_HOME": workdir, "ATM_FAULT_INJECT": "after_partition:200"}
    tags = {
        "dagster/asset_partition_range_start": YEARS[0],
        "dagster/asset_partition_range_end": YEARS[1],
    }
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    command = [dagster, "job", "execute", "-m", "atm_assets", "-j", "market_data_job"]
    killed = subprocess.run(
        [*command, "--tags", json.dumps(tags)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    # A request whose body the kill cut short reaches the sandbox without its params (logged
    # under the URL's API name, and refused): it asked for nothing.
    first_calls = [
        c
        for c in sb.calls()
        if c["api_name"] in ("daily", "adj_factor") and "trade_date" in c["params"]
    ]
    written = {
        (spec.name, r["trade_date"].strftime("%Y%m%d"))
        for spec in (DAILY, ADJ_FACTOR)
        for r in table_rows(pg_target, spec)
    }
    assert 0 < len({day for _, day in written}) < len(open_days)
    # Fetched and staged but not written: the re-execution takes these from the staging area.
    staged = {
        p.name.split(".")[0]
        for p in Path(workdir, "storage/staging").iterdir()
        if p.suffix[1:] in STAGED_FORMATS and not p.name.startswith(".")
    }
    # Calls still in flight when the process died: their answers were lost with it, so only
    # these may be fetched again.
    in_flight = {
        (c["api_name"], c["params"]["trade_date"])
        for c in first_calls
        if (c["api_name"], c["params"]["trade_date"]) not in written
        and f"{c['api_name']}_sync_{c['params']['trade_date']}" not in staged
    }

    with instance_at(workdir) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1 and runs[0].status == DagsterRunStatus.STARTED
        # What run monitoring does for a dead run worker; then "Re-execute from failure".
        instance.report_run_failed(runs[0])
        sb.clear_calls()
        with execute_job(
            reconstructable(market_data_job_def),
            instance,
            reexecution_options=ReexecutionOptions.from_failure(runs[0].run_id, instance),
            # The UI copies the parent's partition tags into a re-execution; so do we.
            tags=tags,
            raise_on_error=False,
        ) as resumed:
            assert resumed.success, failure_message(resumed)
            metadata = {
                node: resumed.asset_materializations_for_node(node)[0].metadata
                for node in ("daily", "adj_factor")
            }
        assert len(instance.get_runs()) == 2  # bounded: the run and its one re-execution

    # Exactly the source, every open day of two years, in both tables.
    for spec, source in ((DAILY, sb.dataset.daily), (ADJ_FACTOR, sb.dataset.adj_factor)):
        expected = [r for day in open_days for r in source(trade_date=day)]
        assert table_rows(pg_target, spec) == as_table_rows(spec, expected)
    # The re-execution fetched only what the killed run had not completed: no day twice.
    second_calls = sb.calls()
    fetched = [(c["api_name"], c["params"]["trade_date"]) for c in first_calls + second_calls]
    assert set(fetched) == {(a, d) for a in ("daily", "adj_factor") for d in open_days}
    twice = {f for f in fetched if fetched.count(f) > 1}
    assert twice <= in_flight and len(in_flight) <= 2 * 8, (twice, in_flight)
    skipped = sum(m["skipped_completed"].value for m in metadata.values())
    assert skipped == 200
    assert all(m["closed_days"].value == len(keys) - len(open_days) for m in metadata.values())
    assert len(second_calls) == 2 * len(open_days) - len(first_calls) + len(twice)


def test_backfill_keeps_to_the_configured_call_rate(sqlite_target, atm_env, sb, monkeypatch):
    # The service allows 5 calls per 10 s window per API; so is the governor configured.
    # Without it the 6th call would be refused with 40203.
    sb.set_sizes(SMALL)
    assert run_job("trade_cal_job", "SSE").success
    sb.set_rate_limit(5, window=10)
    monkeypatch.setenv("TUSHARE_CALLS_PER_MINUTE", "5")
    monkeypatch.setenv("TUSHARE_RATE_WINDOW", "10")
    keys = ("2024-10-08", "2024-10-17")  # 8 open days
    sb.clear_calls()
    result = run_job("market_data_job", keys, assets=["daily"])  # one API: one window
    assert result.success, failure_message(result)
    calls = [c for c in sb.calls() if c["api_name"] == "daily"]
    assert len(calls) == 8
    assert all(c["code"] == 0 for c in sb.calls()), "the service had to refuse a call"
    times = [c["time"] for c in calls]
    # Never more than 5 in any window: the 6th waits for the 1st to leave it.
    assert all(times[i + 5] - times[i] >= 9.9 for i in range(len(times) - 5))
    assert times[4] - times[0] < 5  # the first five were not held back
