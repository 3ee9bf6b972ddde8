"""The original script's doors: the Python API (StockIngestorService), sync_stock_basic.sh and
`python -m atm_assets.sync_stock_basic`, and its all-exchange task names."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from atm_assets.api import StockIngestorService
from atm_assets.core.datasets import DAILY
from atm_assets.core.errors import AppendConflictError, ConfigError, TaskLockError
from atm_assets.core.legacy import combine, successors
from atm_assets.core.state import FileStateStore, TaskState
from atm_assets.launch import SyncRunError
from atm_assets_tests.conftest import source_rows
from atm_assets_tests.helpers import (
    CYQ,
    PROJECT_ROOT,
    controller,
    instance_at,
    start_controller,
    wait_for,
)

TASK = "stock_basic_sync_SSE_L"


@pytest.fixture
def home(workdir) -> str:
    """The workdir as the Dagster instance home (the project's dagster.yaml)."""
    shutil.copy(PROJECT_ROOT / "dagster.yaml", Path(workdir) / "dagster.yaml")
    return workdir


def _runs(home: str) -> list:
    old = os.getcwd()
    os.chdir(home)
    try:
        with instance_at(home) as instance:
            return list(instance.get_runs())
    finally:
        os.chdir(old)


# -- pure: names and combined states --


@pytest.mark.pure
def test_old_all_exchange_names_map_to_the_partition_tasks_they_became():
    assert successors("stock_basic_sync_all_L") == [
        "stock_basic_sync_SSE_L",
        "stock_basic_sync_SZSE_L",
        "stock_basic_sync_BSE_L",
    ]
    assert successors("stock_basic_sync_SSE_all") == [
        f"stock_basic_sync_SSE_{s}" for s in ("L", "D", "P", "G")
    ]
    assert len(successors("stock_basic_sync_all_all") or []) == 12
    # Names that already are one task, or not the original's, map to nothing.
    assert successors("stock_basic_sync_SSE_L") is None
    assert successors("stock_basic_sync_NYSE_all") is None
    assert successors("daily_sync_20240102") is None


@pytest.mark.pure
def test_a_combined_state_reads_like_the_original_single_task():
    names = successors("stock_basic_sync_all_L") or []
    done = TaskState(names[0], status="completed", total_fetched=10, total_saved=10)
    failed = TaskState(
        names[1], status="failed", total_fetched=5, total_saved=3, last_processed_key="000003.SZ"
    )
    failed.last_error = "boom"
    both = combine("stock_basic_sync_all_L", names, [done, failed])
    assert both.status == "failed"
    assert (both.total_fetched, both.total_saved) == (15, 13)
    assert both.last_processed_key == "000003.SZ"
    assert both.last_error == f"{names[1]}: boom"
    assert both.missing == [names[2]]
    assert both.to_dict()["became"] == names
    assert combine("x", names[:1], [done]).status == "completed"
    assert combine("x", names, [done]).status == "partial"


@pytest.mark.pure
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"db_config": {"hostname": "x"}}, "db_config: unknown key(s) hostname"),
        ({"state_repo": 42}, "state_repo: expected"),
        ({"log_level": "LOUD"}, "log_level: unknown level"),
        ({"db_config": {"port": 0}}, "database.port: must be an integer in 1..65,535"),
    ],
)
def test_a_bad_service_argument_is_one_clear_error(home, kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        StockIngestorService(**kwargs)


# -- the API against the sandbox and a real database --


@pytest.mark.smoke
def test_ingest_stock_basic_runs_through_dagster_and_returns_the_stats(target, sb, atm_env, home):
    with StockIngestorService() as ingestor:
        stats = ingestor.ingest_stock_basic(exchange="", list_status="L", batch_size=500)
    expected = source_rows(sb, list_status="L")
    assert sorted(target.rows(), key=lambda r: r["ts_code"]) == sorted(
        expected, key=lambda r: r["ts_code"]
    )
    assert set(stats.tasks) == set(successors("stock_basic_sync_all_L") or [])
    assert stats.total_fetched == stats.total_saved == stats["total_saved"] == len(expected)
    assert (stats.inserted, stats.updated, stats.unchanged, stats.total_errors) == (
        len(expected),
        0,
        0,
        0,
    )
    sse = stats.tasks[TASK]
    assert sse.total_saved == len(source_rows(sb, "SSE", "L")) == sse.inserted
    # The run is the instance's, as the UI shows it, tagged as the API's.
    (run,) = _runs(home)
    assert run.run_id == stats.run_id and run.is_success
    assert run.tags["atm/launched_by"] == "python-api"

    # Again, unchanged: upsert is idempotent.
    with StockIngestorService() as ingestor:
        again = ingestor.ingest_stock_basic(list_status="L")
        state = ingestor.get_task_state(TASK)
        assert ingestor.list_task_states() and len(ingestor.list_task_states()) == 3
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(expected))
    assert isinstance(state, TaskState) and state.status == "completed"
    assert state.total_saved == len(source_rows(sb, "SSE", "L"))


def test_append_mode_inserts_new_rows_and_refuses_existing_ones(sqlite_target, sb, atm_env, home):
    with StockIngestorService() as ingestor:
        first = ingestor.ingest_stock_basic(exchange="BSE", list_status="L", mode="append")
        assert first.inserted == len(source_rows(sb, "BSE", "L"))
        with pytest.raises(AppendConflictError, match="append into .*stock_basic refused"):
            ingestor.ingest_stock_basic(exchange="BSE", list_status="L", mode="append")
        state = ingestor.get_task_state("stock_basic_sync_BSE_L")
    # A refused run changes no state: the first sync's stands.
    assert state is not None and state.status == "completed"
    assert state.total_saved == len(source_rows(sb, "BSE", "L"))
    assert sqlite_target.rows() == source_rows(sb, "BSE", "L")  # nothing doubled


def test_resume_after_an_interruption(sqlite_target, sb, atm_env, home, monkeypatch):
    sb.set_sizes({"SSE:L": 3000})
    monkeypatch.setenv("ATM_FAULT_INJECT", "raise@after_checkpoint:2")
    with StockIngestorService() as ingestor:
        with pytest.raises(SyncRunError, match="injected fault at after_checkpoint:2"):
            ingestor.ingest_stock_basic(exchange="SSE", batch_size=100, checkpoint_every=5)
        broken = ingestor.get_task_state(TASK)
        assert broken is not None and broken.status == "failed"
        assert broken.total_saved == 1000 and broken.last_processed_key
        monkeypatch.delenv("ATM_FAULT_INJECT")
        stats = ingestor.ingest_stock_basic(exchange="SSE", batch_size=100, checkpoint_every=5)
    assert stats.tasks[TASK].resumed_from == broken.last_processed_key
    assert stats.tasks[TASK].saved_this_run == 2000  # went on, did not start over
    assert stats.total_saved == 3000
    assert sqlite_target.rows() == source_rows(sb, "SSE", "L")


def test_the_lock_refuses_a_second_concurrent_call(sqlite_target, sb, atm_env, home):
    flags = ["sync", "stock-basic", "--exchange", "SSE", "--list-status", "L"]
    first = start_controller(
        *flags,
        cwd=home,
        env={"ATM_FAULT_INJECT": "pause@after_batch:2", "ATM_FAULT_PAUSE_SECONDS": "8"},
    )
    store = FileStateStore(Path(home) / "storage/state")
    try:
        wait_for(lambda: (s := store.get(TASK)) and s.holder, what="the first run to start")
        with StockIngestorService() as ingestor:
            with pytest.raises(TaskLockError, match=f"Task {TASK} is already running"):
                ingestor.ingest_stock_basic(exchange="SSE", list_status="L")
            with pytest.raises(TaskLockError):
                ingestor.reset_task_state(TASK)
            # The original's FAQ: state shows "running" while it runs.
            running = ingestor.get_task_state(TASK)
            assert running is not None and running.status == "running"
        out, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, err[-2000:]
    assert sqlite_target.rows() == source_rows(sb, "SSE", "L")


def test_state_get_list_reset_and_old_task_names(sqlite_target, sb, atm_env, home):
    with StockIngestorService() as ingestor:
        assert ingestor.get_task_state("stock_basic_sync_all_L") is None
        ingestor.ingest_stock_basic(exchange="SSE")
        ingestor.ingest_stock_basic(exchange="SZSE")
        old = ingestor.get_task_state("stock_basic_sync_all_L")
        assert old is not None and old.status == "partial"  # BSE never ran
        assert old.total_saved == len(source_rows(sb, "SSE", "L")) + len(
            source_rows(sb, "SZSE", "L")
        )
        assert [t.task_name for t in ingestor.list_task_states()] == [
            TASK,
            "stock_basic_sync_SZSE_L",
        ]
        assert ingestor.reset_task_state(TASK) is True
        assert ingestor.get_task_state(TASK) is None
        assert ingestor.reset_task_state(TASK) is False
        assert ingestor.reset_task_state("stock_basic_sync_all_L") is True
        assert ingestor.list_task_states() == []
    # The controller answers the old name too, with the tasks it became.
    controller("sync", "stock-basic", "--exchange", "BSE", cwd=home)
    shown = controller("state", "show", "stock_basic_sync_all_L", cwd=home)
    assert shown.returncode == 0, shown.stderr
    assert '"became": [' in shown.stdout and '"stock_basic_sync_BSE_L"' in shown.stdout
    none = controller("state", "show", "stock_basic_sync_all_D", cwd=home)
    assert none.returncode == 1
    assert "ATM syncs it as 3 tasks (stock_basic_sync_SSE_D" in none.stderr


def test_other_datasets_through_the_one_general_method(sqlite_target, sb, atm_env, home):
    with StockIngestorService() as ingestor:
        cal = ingestor.ingest("trade_cal", exchange="SSE")
        bars = ingestor.ingest("daily", start_date="20240102", end_date="20240105")
    assert cal.dataset == "trade_cal" and cal.total_saved > 0
    assert set(bars.tasks) == {f"daily_sync_2024010{d}" for d in (2, 3, 4, 5)}
    assert bars.total_saved == len(sqlite_target.rows(DAILY)) > 0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda i: i.ingest_stock_basic(mode="bogus"), "mode: must be one of upsert, append"),
        (lambda i: i.ingest_stock_basic(exchange="NYSE"), "unknown exchange 'NYSE'"),
        (lambda i: i.ingest_stock_basic(batch_size=0), "batch_size: must be an integer"),
        (lambda i: i.ingest_stock_basic(task_name="a/b"), "must not contain path separators"),
        (lambda i: i.ingest("nope"), "unknown dataset 'nope'"),
        (lambda i: i.ingest("daily"), "daily needs --start-date"),
        (lambda i: i.ingest("daily", start_date="20240105", end_date="20240102"), "is before"),
        (lambda i: i.ingest("trade_cal", start_date="20240102"), "trade_cal takes exchange"),
    ],
)
def test_a_bad_argument_is_refused_before_anything_runs(
    sqlite_target, sb, atm_env, home, call, message
):
    with StockIngestorService() as ingestor, pytest.raises(ConfigError, match=message):
        call(ingestor)
    assert sb.calls() == []
    assert _runs(home) == []
    assert not Path(home, "storage/atm.db").exists()


def test_secrets_given_to_the_service_stay_out_of_the_environment(
    pg_target, sb, atm_env, home, monkeypatch
):
    password = pg_target.env["DB_PASSWORD"]
    monkeypatch.delenv("DB_PASSWORD")
    token = os.environ.pop("TUSHARE_TOKEN")
    config = {
        "host": pg_target.env["DB_HOST"],
        "port": int(pg_target.env["DB_PORT"]),
        "user": pg_target.env["DB_USER"],
        "password": password,
        "database": pg_target.env["DB_NAME"],
        "schema": pg_target.env["DB_SCHEMA"],
    }
    try:
        with StockIngestorService(db_config=config, tushare_token=token) as ingestor:
            assert password not in repr(ingestor) and token not in repr(ingestor)
            stats = ingestor.ingest_stock_basic(exchange="BSE")
        assert "DB_PASSWORD" not in os.environ and "TUSHARE_TOKEN" not in os.environ
    finally:
        os.environ["TUSHARE_TOKEN"] = token
    assert stats.total_saved == len(pg_target.rows()) == len(source_rows(sb, "BSE", "L"))


# -- the scripts --


@pytest.mark.cli
@pytest.mark.parametrize("door", ["sync_stock_basic.sh", "python-m"])
def test_the_original_sync_scripts(sqlite_target, sb, atm_env, home, door):
    if door == "sync_stock_basic.sh":
        # The script runs from its project root: here, a root holding only the script.
        script = Path(home, "scripts/sync_stock_basic.sh")
        script.parent.mkdir()
        shutil.copy2(PROJECT_ROOT / "scripts/sync_stock_basic.sh", script)
        command = [str(script)]
    else:
        command = [sys.executable, "-m", "atm_assets.sync_stock_basic"]
    env = {**os.environ, "ATM_VENV": sys.prefix, "DAGSTER_HOME": home}
    helped = subprocess.run([*command, "--help"], env=env, capture_output=True, text=True)
    assert helped.returncode == 0, helped.stderr
    for flag in ("--exchange", "--list-status", "--batch-size", "--task-name", "--no-resume"):
        assert flag in helped.stdout
    flags = ["--exchange", "SSE", "--list-status", "L", "--batch-size", "100"]
    flags += ["--task-name", "stock_basic_sse_listed"]
    proc = subprocess.run([*command, *flags], cwd=home, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Task Name: stock_basic_sse_listed" in proc.stdout
    assert "Total Saved: 2300" in proc.stdout
    assert sqlite_target.rows() == source_rows(sb, "SSE", "L")
    state = FileStateStore(f"{home}/storage/state").get("stock_basic_sse_listed")
    assert state is not None and state.status == "completed"
    (run,) = _runs(home)
    assert run.is_success
    bad = subprocess.run([*command, "--exchange", "NYSE"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "Error: unknown exchange 'NYSE': expected one of SSE, SZSE, BSE"


def test_the_readme_python_example_runs_as_written(sqlite_target, sb, atm_env, home):
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text[text.index("## Python API and the original scripts") :]
    start = section.index("```python\n") + len("```python\n")
    code = section[start : section.index("```\n", start)]
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=home, env=dict(os.environ), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    ssel = len(source_rows(sb, "SSE", "L"))
    assert lines[0] == f"{ssel} {ssel} 0 {ssel}"
    assert lines[1] == f"{TASK} {ssel} 0 0"
    assert lines[2] == f"completed: {ssel}/{ssel}, None"
    assert sorted(lines[3:]) == sorted(
        [f"{TASK}: completed", "trade_cal_sync_SSE: completed"]
        + [f"daily_sync_2024010{d}: completed" for d in (2, 3, 4, 5)]
    )
    assert FileStateStore(f"{home}/storage/state").get(TASK) is None  # reset at the end


def test_a_sync_builds_definitions_only_for_other_settings(
    sqlite_target, sb, atm_env, home, monkeypatch
):
    """The module's definitions serve a sync given the settings they were built from (the
    controller's case); other settings, or a datasets file that changed, get their own."""
    import atm_assets.definitions as definitions
    from atm_assets import launch
    from atm_assets.core.catalog import catalog_for
    from atm_assets.core.settings import load_settings

    monkeypatch.setenv("DAGSTER_HOME", home)
    monkeypatch.chdir(home)
    declared = Path(home, "datasets.yaml")
    declared.write_text(CYQ)
    monkeypatch.setenv("ATM_DATASETS", str(declared))
    settings = load_settings()
    real = definitions.build_definitions
    monkeypatch.setattr(definitions, "defs", real(settings))
    monkeypatch.setattr(definitions, "_BUILT_FROM", (settings, catalog_for(settings)))
    built: list = []
    monkeypatch.setattr(
        definitions, "build_definitions", lambda s, *rest: built.append(s) or real(s, *rest)
    )

    def sync(settings) -> None:
        _, run = launch.sync(
            "stock_basic", {"exchange": "BSE", "list_status": "L"}, {}, launched_by="test",
            settings=settings,
        )  # fmt: skip
        assert run.success, run.error

    sync(load_settings())
    assert built == []
    other = settings.model_copy(
        update={"schedule": settings.schedule.model_copy(update={"cron": "5 19 * * 1-5"})}
    )
    sync(other)
    assert built == [other]
    declared.write_text(CYQ.replace("Chip distribution", "Chips"))
    sync(load_settings())
    assert len(built) == 2 and built[1] == settings  # same settings, other datasets
    assert sqlite_target.rows() == source_rows(sb, "BSE", "L")
