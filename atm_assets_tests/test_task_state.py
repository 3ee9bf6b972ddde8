"""Task state: stores, names, and the controller's state list/show/reset and --no-resume."""

import json
from pathlib import Path

import pytest

from atm_assets.core.errors import ConfigError, StateError
from atm_assets.core.locks import LockManager
from atm_assets.core.state import DbStateStore, FileStateStore, TaskState, validate_task_name
from atm_assets_tests.conftest import source_rows
from atm_assets_tests.helpers import controller, latest_materialization_metadata

TASK = "stock_basic_sync_SZSE_L"
SYNC = ["sync", "stock-basic", "--exchange", "SZSE", "--list-status", "L", "--batch-size", "50"]


@pytest.mark.parametrize(
    "name", ["", "../etc", "a/b", "a\\b", "tab\there", "new\nline", "nul\x00", "-lead", "x" * 200]
)
def test_bad_task_names_are_refused(name):
    with pytest.raises(ConfigError):
        validate_task_name(name)


def test_good_task_names_pass():
    for name in ["stock_basic_sync_SSE_L", "nightly.v2", "a-b_c"]:
        assert validate_task_name(name) == name


def test_file_store_round_trip_is_atomic(tmp_path):
    store = FileStateStore(tmp_path / "state")
    state = TaskState(task_name="t1", total_saved=5, last_processed_key="600000.SH")
    store.save(state)
    store.save(TaskState(task_name="t1", total_saved=7, last_processed_key="600001.SH"))
    assert store.get("t1").total_saved == 7
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["t1.json"]  # no temp files left
    assert [s.task_name for s in store.list()] == ["t1"]
    assert store.reset("t1") is True and store.get("t1") is None and store.reset("t1") is False


def test_db_store_round_trip(target):
    store = DbStateStore(target.engine(), target.schema)
    store.save(TaskState(task_name="t1", status="failed", total_errors=3, last_error="boom"))
    got = store.get("t1")
    assert (got.status, got.total_errors, got.last_error) == ("failed", 3, "boom")
    assert [s.task_name for s in store.list()] == ["t1"]
    assert store.reset("t1") and store.get("t1") is None


@pytest.mark.parametrize(
    "content,expected",
    [
        ("{not json", "is corrupt"),
        ('{"foo": 1}', "is not an ATM task state"),
        ('{"format": "atm.task_state/v1", "task_name": "x", "bogus": 1}', "unexpected"),
    ],
)
def test_a_corrupt_or_foreign_state_file_is_a_clear_error(tmp_path, content, expected):
    store = FileStateStore(tmp_path)
    (tmp_path / "x.json").write_text(content)
    with pytest.raises(StateError, match=expected) as info:
        store.get("x")
    assert str(tmp_path / "x.json") in str(info.value)


@pytest.mark.cli
def test_controller_names_a_corrupt_state_file_and_writes_nothing(target, sb, atm_env, workdir):
    state_dir = Path(workdir) / "storage/state"
    state_dir.mkdir(parents=True)
    (state_dir / f"{TASK}.json").write_text('{"format": "atm.task_state/v1", "task_na')
    proc = controller(*SYNC, cwd=workdir)
    assert proc.returncode == 1
    assert f"state file {state_dir / TASK}.json is corrupt" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert target.rows() == []
    listing = controller("state", "list", cwd=workdir)
    assert listing.returncode == 1 and "is corrupt" in listing.stderr


@pytest.mark.cli
@pytest.mark.parametrize(
    "target,store_kind", [("sqlite", "file"), ("postgresql", "db")], indirect=["target"]
)
def test_list_show_reset_and_no_resume(target, store_kind, sb, atm_env, workdir):
    db_flag = ["--use-db-state"] if store_kind == "db" else []
    assert controller(*SYNC, "--list-status", "D", *db_flag, cwd=workdir).returncode == 0
    killed = controller(
        *SYNC, *db_flag, cwd=workdir, env={"ATM_FAULT_INJECT": "after_checkpoint:3"}
    )
    assert killed.returncode == -9

    listing = controller("state", "list", *db_flag, cwd=workdir)
    assert listing.returncode == 0, listing.stderr
    lines = {line.split()[0]: line.split() for line in listing.stdout.splitlines()[1:]}
    assert lines["stock_basic_sync_SZSE_D"][1:3] == ["completed", "150"]
    # Saved "running" by a process that is gone: listed as what it is.
    assert lines[TASK][1:3] == ["interrupted", "1500"]
    assert lines[TASK][8] == "free"  # the killed holder's lock died with it
    assert "process gone" in listing.stdout

    show = controller("state", "show", TASK, *db_flag, cwd=workdir)
    body = json.loads(show.stdout)
    assert body["status"] == "running" and body["total_saved"] == 1500
    assert body["status_now"] == "interrupted"
    assert body["last_processed_key"] == source_rows(sb, "SZSE", "L")[1499]["ts_code"]
    assert body["holder"]["pid"] and body["lock_holder"] is None

    fresh = controller(*SYNC, "--no-resume", *db_flag, cwd=workdir)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert "resume disabled, starting over" in fresh.stdout
    meta = latest_materialization_metadata(workdir)
    assert meta["saved_this_run"] == 2900 and meta["resumed_from"] == {}
    assert meta["inserted"] == 2900 - 1500 and meta["unchanged"] == 1500
    listed = [r for r in target.rows() if r["list_status"] == "L"]
    assert listed == source_rows(sb, "SZSE", "L")

    reset = controller("state", "reset", TASK, *db_flag, cwd=workdir)
    assert reset.returncode == 0 and f"Reset task {TASK}" in reset.stdout
    gone = controller("state", "show", TASK, *db_flag, cwd=workdir)
    assert gone.returncode == 1 and "No state for task" in gone.stderr


@pytest.mark.cli
def test_reset_refuses_a_running_task(sb, atm_env, workdir, target):
    store = FileStateStore(Path(workdir) / "storage/state")
    store.save(TaskState(task_name=TASK, total_saved=10, last_processed_key="000010.SZ"))
    with LockManager("file", Path(workdir) / "storage/locks").acquire(TASK, "run-x"):
        refused = controller("state", "reset", TASK, cwd=workdir)
        assert refused.returncode == 1
        assert f"Task {TASK} is already running" in refused.stderr and "run-x" in refused.stderr
        assert store.get(TASK) is not None
    assert controller("state", "reset", TASK, cwd=workdir).returncode == 0
    assert store.get(TASK) is None
