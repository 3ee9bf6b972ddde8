"""The controller (scripts/controller.sh): the original script's commands and flags, run through
Dagster against the project's instance."""

import json
import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from atm_assets.core.state import DbStateStore, FileStateStore
from atm_assets_tests.conftest import TEST_DB_PASSWORD, source_rows
from atm_assets_tests.helpers import PROJECT_ROOT, controller, instance_at

pytestmark = [pytest.mark.cli, pytest.mark.usefixtures("atm_env")]
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - (INFO|WARNING|ERROR) - (.*)$")


def test_help_for_every_command(workdir):
    wrapper = str(PROJECT_ROOT / "scripts/controller.sh")
    env = {**os.environ, "ATM_VENV": os.sys.prefix}
    for args, expected in [
        ([], ["sync", "storage", "state", "tushare"]),
        (
            ["sync", "stock-basic"],
            [
                "--exchange",
                "--list-status",
                "--batch-size",
                "--task-name",
                "--resume",
                "--no-resume",
                "--state-dir",
                "--use-db-state",
                "--config",
                "--tushare-token",
                "--mode",
            ],
        ),
        (["sync", "trade-cal"], ["--exchange", "--mode", "--no-resume"]),
        (["sync", "daily"], ["--start-date", "--end-date", "--batch-size", "--use-db-state"]),
        (["sync", "adj-factor"], ["--start-date", "--end-date", "--task-name"]),
        (["storage", "status"], ["--config"]),
        (["state", "list"], ["--use-db-state"]),
        (["state", "show"], ["task_name"]),
        (["state", "reset"], ["--force"]),
        (["tushare", "status"], ["--config"]),
        (["tushare", "clear"], ["api"]),
    ]:
        proc = subprocess.run([wrapper, *args, "--help"], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        for word in expected:
            assert word in proc.stdout, (args, word)


@pytest.mark.smoke
def test_sync_all_partitions_through_dagster(target, sb, workdir):
    proc = controller("sync", "stock-basic", "--exchange", "", "--list-status", "", cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert target.rows() == source_rows(sb)
    lines = proc.stdout.splitlines()
    body = [LINE.match(line).group(2) for line in lines if LINE.match(line)]
    assert body[:5] == [
        "Stock Basic Information Synchronization Task",
        "Task Name: stock_basic_sync_SSE_L",
        "Exchange: SSE",
        "List Status: L",
        "Mode: upsert (覆盖更新)",
    ]
    assert sum(1 for b in body if b.startswith("Saved batch of ")) == sum(
        -(-len(source_rows(sb, e, s)) // 100)
        for e in ("SSE", "SZSE", "BSE")
        for s in "LDPG"
        if source_rows(sb, e, s)
    )
    assert body[-4:] == [
        "Synchronization Completed",
        f"Total Fetched: {len(source_rows(sb))}",
        f"Total Saved: {len(source_rows(sb))}",
        "Total Errors: 0",
    ]
    assert lines[-1].startswith("Run ") and "succeeded (12 partition(s)" in lines[-1]

    run_id = lines[-1].split()[1]
    old = os.getcwd()
    os.chdir(workdir)
    try:
        with instance_at(workdir) as instance:
            run = instance.get_run_by_id(run_id)
            assert run.job_name == "stock_basic_job" and run.is_success
            assert run.tags["atm/launched_by"] == "controller"
            events = instance.fetch_materializations(
                __import__("dagster").AssetKey("stock_basic"), limit=100
            ).records
            partitions = {e.partition_key for e in events if e.run_id == run_id}
            assert len(partitions) == 12
            meta = events[0].asset_materialization.metadata
            assert meta["total_saved"].value == len(source_rows(sb))
    finally:
        os.chdir(old)


def test_every_sync_flag_is_honoured(sqlite_target, sb, workdir, monkeypatch):
    config = Path(workdir) / "custom.yaml"
    db_path = Path(workdir) / "elsewhere/atm.db"
    config.write_text(f"sync: {{checkpoint_every: 3}}\ndatabase: {{sqlite_path: {db_path}}}\n")
    monkeypatch.delenv("ATM_SQLITE_PATH")
    token = os.environ.pop("TUSHARE_TOKEN")
    monkeypatch.delenv("TUSHARE_TOKEN", raising=False)
    proc = controller(
        "sync",
        "stock-basic",
        "--exchange",
        "SSE",
        "--list-status",
        "D",
        "--batch-size",
        "7",
        "--task-name",
        "my_task",
        "--mode",
        "append",
        "--state-dir",
        "custom_state",
        "--config",
        str(config),
        "--tushare-token",
        token,
        "--resume",
        cwd=workdir,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Task Name: my_task" in proc.stdout and "Mode: append (追加)" in proc.stdout
    state = FileStateStore(Path(workdir) / "custom_state").get("my_task")
    assert state.status == "completed" and state.mode == "append" and state.total_saved == 200
    assert proc.stdout.count("Checkpoint: ") == -(-200 // (7 * 3))
    assert proc.stdout.count("Saved batch of 7 stocks") == 200 // 7
    assert db_path.exists() and not (Path(workdir) / "storage/atm.db").exists()
    from atm_assets.core.datasets import STOCK_BASIC
    from atm_assets.core.writer import TableWriter
    from atm_assets_tests.conftest import sqlite_db

    rows = (
        TableWriter(sqlite_db(workdir, str(db_path)).create_engine(), STOCK_BASIC)
        .read()
        .to_dict("records")
    )
    assert rows == source_rows(sb, "SSE", "D")
    assert token not in proc.stdout + proc.stderr


def test_use_db_state_keeps_state_in_the_database(pg_target, sb, workdir):
    proc = controller("sync", "stock-basic", "--exchange", "BSE", "--use-db-state", cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = DbStateStore(pg_target.engine(), pg_target.schema).get("stock_basic_sync_BSE_L")
    assert state.status == "completed" and state.total_saved == 280
    assert not (Path(workdir) / "storage/state").exists()
    status = controller("storage", "status", cwd=workdir)
    assert "Table ingestion_state: 1 rows" in status.stdout
    # Without the flag, the state is still found (and said to be in the database).
    assert "Also task state in: table " in status.stdout and "(1 task(s))" in status.stdout
    listing = controller("state", "list", cwd=workdir)
    (row,) = [line for line in listing.stdout.splitlines() if "stock_basic_sync_BSE_L" in line]
    assert " completed " in row and " db " in row
    shown = controller("state", "show", "stock_basic_sync_BSE_L", cwd=workdir)
    assert shown.returncode == 0 and "ingestion_state" in json.loads(shown.stdout)["store"]


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--exchange", "NYSE"], "unknown exchange 'NYSE'"),
        (["--list-status", "X"], "unknown list status 'X'"),
        (["--batch-size", "0"], "batch_size: must be an integer in 1..1,000,000, got 0"),
        (["--batch-size", "5000000"], "batch_size: must be an integer in 1..1,000,000"),
        (["--mode", "merge"], "mode: must be one of upsert, append, got 'merge'"),
        (["--task-name", "../etc/passwd"], "must not contain path separators"),
        (["--task-name", "bad\nname"], "contains control characters"),
        (["--checkpoint-every", "-1"], "checkpoint_every: must be an integer in 1..10,000, got -1"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(target, sb, workdir, flags, message):
    proc = controller("sync", "stock-basic", *flags, cwd=workdir)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sb.calls() == [] and target.rows() == []


def test_storage_status_tells_the_truth(target, sb, workdir, monkeypatch):
    assert controller("sync", "stock-basic", "--exchange", "BSE", cwd=workdir).returncode == 0
    up = controller("storage", "status", cwd=workdir)
    assert up.returncode == 0
    assert "Reachable: yes" in up.stdout and "Table stock_basic: 280 rows" in up.stdout
    if target.kind == "postgresql":
        assert f"Schema {target.schema}: present" in up.stdout
        down = controller("storage", "status", cwd=workdir, env={"DB_PORT": "1"})
        assert down.returncode == 1 and "Reachable: no" in down.stdout
        assert "127.0.0.1:1" in down.stderr and target.db.settings.name in down.stderr
        assert TEST_DB_PASSWORD not in down.stdout + down.stderr
    else:
        assert "SQLite file" in up.stdout


def test_a_malformed_config_file_is_a_clear_error(target, sb, workdir):
    bad = Path(workdir) / "bad.yaml"
    bad.write_text("sync:\n  batchsize: 5\n")
    proc = controller("sync", "stock-basic", "--config", str(bad), cwd=workdir)
    assert proc.returncode == 2
    assert f"config file {bad}: unknown key sync.batchsize" in proc.stderr
    assert sb.calls() == [] and target.rows() == []


def test_state_show_prints_json_through_the_shell_wrapper(target, sb, workdir):
    assert controller("sync", "stock-basic", "--exchange", "BSE", cwd=workdir).returncode == 0
    proc = subprocess.run(
        [
            str(PROJECT_ROOT / "scripts/controller.sh"),
            "state",
            "show",
            "stock_basic_sync_BSE_L",
            "--state-dir",
            str(Path(workdir) / "storage/state"),
        ],
        env={**os.environ, "ATM_VENV": os.sys.prefix},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["total_saved"] == 280


def test_market_data_through_the_controller(sqlite_target, sb, workdir):
    from atm_assets.core.datasets import ADJ_FACTOR, DAILY, TRADE_CAL

    cal = controller("sync", "trade-cal", "--exchange", "SSE", cwd=workdir)
    assert cal.returncode == 0, cal.stderr[-3000:]
    assert "Trading Calendar Synchronization Task" in cal.stdout
    assert {r["exchange"] for r in sqlite_target.rows(TRADE_CAL)} == {"SSE"}

    # 2024-10-07 (closed) .. 2024-10-09: two open days, one run, only daily.
    proc = controller(
        "sync", "daily", "--start-date", "20241007", "--end-date", "20241009",
        "--batch-size", "500", cwd=workdir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "succeeded (3 partition(s): 2024-10-07, 2024-10-08, 2024-10-09)" in proc.stdout
    rows = sqlite_target.rows(DAILY)
    expected = [r for d in ("20241008", "20241009") for r in sb.dataset.daily(trade_date=d)]
    assert len(rows) == len(expected) > 0
    assert {r["trade_date"].strftime("%Y%m%d") for r in rows} == {"20241008", "20241009"}
    assert "Saved batch of 500 bars (500/" in proc.stdout  # --batch-size reached the writer
    assert sqlite_target.rows(ADJ_FACTOR) == []  # the other dataset was not selected

    factor = controller("sync", "adj-factor", "--start-date", "20241008", cwd=workdir)
    assert factor.returncode == 0, factor.stderr[-3000:]
    assert len(sqlite_target.rows(ADJ_FACTOR)) == len(sb.dataset.adj_factor(trade_date="20241008"))
    state = controller("state", "show", "adj_factor_sync_20241008", cwd=workdir)
    assert json.loads(state.stdout)["status"] == "completed"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--start-date", "2024-13-40"], "is not a date"),
        (["--start-date", "20241009", "--end-date", "20241008"], "is before --start-date"),
        (["--start-date", "20100104"], "no trade-date partitions from 2010-01-04"),
        (
            ["--start-date", "20241008", "--mode", "merge"],
            "mode: must be one of upsert, append, got 'merge'",
        ),
    ],
)
def test_bad_market_data_input_is_refused(sqlite_target, sb, workdir, flags, message):
    proc = controller("sync", "daily", *flags, cwd=workdir)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert sb.calls() == []


def _one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr[-3000:]
    return lines[0]


def test_a_missing_or_wrong_token_is_one_line_and_exit_2(sqlite_target, sb, workdir):
    env = {k: v for k, v in os.environ.items() if k != "TUSHARE_TOKEN"}
    missing = subprocess.run(
        [str(PROJECT_ROOT / "scripts/controller.sh"), "sync", "stock-basic"],
        env={**env, "ATM_VENV": os.sys.prefix, "DAGSTER_HOME": workdir},
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2
    assert _one_error_line(missing.stderr).startswith("Error: TUSHARE_TOKEN is not set")
    assert sb.calls() == []

    wrong = controller("sync", "stock-basic", cwd=workdir, env={"TUSHARE_TOKEN": "wrong"})
    assert wrong.returncode == 2
    assert _one_error_line(wrong.stderr) == (
        "Error: Tushare refused the token (40101): 您的token不对，请确认。"
    )
    verbose = controller(
        "sync", "stock-basic", "--verbose", cwd=workdir, env={"TUSHARE_TOKEN": "wrong"}
    )
    assert verbose.returncode == 2
    assert "Stack Trace:" in verbose.stdout and "line 46, in query" in verbose.stdout
    assert verbose.stderr.splitlines()[-1].startswith("Error: Tushare refused the token")
    assert sqlite_target.rows() == []


def test_the_program_calls_itself_by_the_name_it_was_run_as(workdir):
    bin_dir = Path(os.sys.executable).parent
    for command, name in [
        ([str(bin_dir / "atm"), "--help"], "usage: atm "),
        ([str(PROJECT_ROOT / "scripts/controller.sh"), "--help"], "usage: controller.sh "),
        ([os.sys.executable, "-m", "atm_assets.cli", "--help"], "usage: python -m atm_assets.cli"),
    ]:
        env = {k: v for k, v in os.environ.items() if k != "ATM_PROG"}
        proc = subprocess.run(
            command, env={**env, "ATM_VENV": os.sys.prefix}, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(name), proc.stdout[:200]


def test_state_list_into_a_pipe_that_closes_early_is_quiet(workdir):
    from atm_assets.core.state import TaskState

    store = FileStateStore(Path(workdir) / "storage/state")
    for i in range(800):  # more than a pipe buffer of output
        store.save(TaskState(task_name=f"task_{i:04d}", status="completed", total_saved=i))
    proc = subprocess.run(
        ["bash", "-c", f"'{PROJECT_ROOT}/scripts/controller.sh' state list --state-dir "
         f"'{store.dir}' | head -n 2; "
         "echo \"status=${PIPESTATUS[0]}\""],
        env={**os.environ, "ATM_VENV": os.sys.prefix, "DAGSTER_HOME": workdir},
        cwd=workdir,
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert proc.stdout.splitlines()[1].startswith("task_0000 ")
    assert proc.stdout.splitlines()[-1] == "status=0"
    assert proc.stderr == ""


def test_a_killed_controller_run_is_marked_failed_by_the_next_one(sqlite_target, sb, workdir):
    from dagster import DagsterRun, DagsterRunStatus, RunsFilter

    from atm_assets_tests.helpers import start_controller, wait_for

    sb.set_sizes({"SSE:L": 3000})
    first = start_controller(
        "sync", "stock-basic", "--exchange", "SSE", "--batch-size", "100",
        cwd=workdir,
        env={"ATM_FAULT_INJECT": "pause@after_batch:2", "ATM_FAULT_PAUSE_SECONDS": "60"},
    )  # fmt: skip
    state = FileStateStore(Path(workdir) / "storage/state")
    wait_for(lambda: state.get("stock_basic_sync_SSE_L"), what="the first run to start")
    first.kill()
    first.wait()

    def runs(status: DagsterRunStatus) -> Sequence[DagsterRun]:
        old = os.getcwd()
        os.chdir(workdir)
        try:
            with instance_at(workdir) as instance:
                return instance.get_runs(RunsFilter(statuses=[status]))
        finally:
            os.chdir(old)

    (stuck,) = runs(DagsterRunStatus.STARTED)
    assert stuck.tags["atm/pid"] == str(first.pid)
    second = controller("sync", "stock-basic", "--exchange", "SSE", cwd=workdir)
    assert second.returncode == 0, second.stderr[-3000:]
    assert runs(DagsterRunStatus.STARTED) == []
    assert [r.run_id for r in runs(DagsterRunStatus.FAILURE)] == [stuck.run_id]
    assert sqlite_target.rows() == source_rows(sb, "SSE", "L")
