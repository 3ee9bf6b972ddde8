"""Task locks: one run per task on every in-process path; dead holders never block."""

import json
import multiprocessing
import socket
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from atm_assets.core.errors import TaskLockError
from atm_assets.core.locks import LockLostError, LockManager
from atm_assets.core.state import DbStateStore, FileStateStore
from atm_assets_tests.conftest import source_rows
from atm_assets_tests.helpers import controller, start_controller, wait_for

TASK = "stock_basic_sync_SSE_L"
SYNC = ["sync", "stock-basic", "--exchange", "SSE", "--list-status", "L", "--batch-size", "100"]
PAUSE = {"ATM_FAULT_INJECT": "pause@after_batch:2", "ATM_FAULT_PAUSE_SECONDS": "8"}
# The first run must outlast a second controller's cold start, which on a loaded two-core
# machine (the suite's workers) took more than 8 s.
HOLD = {**PAUSE, "ATM_FAULT_PAUSE_SECONDS": "30"}
# (target, lock): flock on a file; PostgreSQL session advisory lock; SQLite lock row.
LOCKS = [("sqlite", "file"), ("postgresql", "db"), ("sqlite", "db")]
IDS = ["file-lock", "pg-advisory", "sqlite-lock-row"]


def _store(target, lock: str, workdir: str):
    if lock == "db":
        return DbStateStore(target.engine(), target.schema)
    return FileStateStore(Path(workdir) / "storage/state")


def _running_as(store, pid: int):
    def check():
        try:
            state = store.get(TASK)
        except sa.exc.OperationalError:
            return None
        return state if state and state.holder and state.holder.get("pid") == pid else None

    return check


def _api_calls(sb) -> int:
    return len([c for c in sb.calls() if c["api_name"] == "stock_basic"])


@pytest.mark.cli
@pytest.mark.parametrize("target,lock", LOCKS, indirect=["target"], ids=IDS)
def test_a_second_run_of_the_same_task_fails_fast_and_writes_nothing(
    target, lock, sb, atm_env, workdir
):
    flags = [*SYNC, *(["--use-db-state"] if lock == "db" else [])]
    first = start_controller(*flags, cwd=workdir, env=HOLD)
    try:
        wait_for(_running_as(_store(target, lock, workdir), first.pid), what="first run to start")
        wait_for(lambda: _api_calls(sb) == 1, what="first run to fetch")
        calls = _api_calls(sb)
        second = controller(*flags, cwd=workdir)
        assert first.poll() is None, "the second run waited for the first one"
        assert second.returncode == 1
        # One line, as the original script printed it: no traceback, no Dagster wrapping.
        (line,) = second.stderr.splitlines()
        assert line.startswith(f"Error: Task {TASK} is already running (held by ")
        assert f"pid={first.pid}" in line and f"host={socket.gethostname()}" in line
        assert _api_calls(sb) == calls  # the second run fetched nothing
        out, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, err[-2000:]
    assert target.rows() == source_rows(sb, "SSE", "L")
    state = _store(target, lock, workdir).get(TASK)
    assert state.status == "completed" and state.total_saved == 2300


@pytest.mark.cli
@pytest.mark.parametrize("target,lock", LOCKS, indirect=["target"], ids=IDS)
def test_a_killed_holder_frees_the_lock_at_once(target, lock, sb, atm_env, workdir):
    flags = [*SYNC, *(["--use-db-state"] if lock == "db" else [])]
    first = start_controller(*flags, cwd=workdir, env=PAUSE)
    wait_for(_running_as(_store(target, lock, workdir), first.pid), what="first run to start")
    first.kill()
    first.wait(timeout=30)
    began = time.monotonic()
    second = controller(*flags, cwd=workdir)
    assert second.returncode == 0, second.stderr[-2000:]
    assert time.monotonic() - began < 60
    assert target.rows() == source_rows(sb, "SSE", "L")


@pytest.mark.cli
@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_duckdb_one_writing_process_a_second_fails_fast_and_a_killed_one_frees_the_file(
    target, sb, atm_env, workdir
):
    # DuckDB lets one process open a file: a second sync (any task) is refused in one line
    # naming the file and the holder, before any call; the first finishes; a killed holder's
    # file lock dies with it.
    first = start_controller(*SYNC, cwd=workdir, env=HOLD)
    try:
        wait_for(_running_as(_store(target, "file", workdir), first.pid), what="first run")
        wait_for(lambda: _api_calls(sb) == 1, what="first run to fetch")
        second = controller(*SYNC, "--exchange", "SZSE", cwd=workdir)
        assert first.poll() is None
        assert second.returncode == 1
        (line,) = second.stderr.splitlines()
        assert line == (
            f"Error: DuckDB file {target.db.settings.duckdb_path} is in use by another process "
            f"(pid {first.pid}): DuckDB lets one process at a time open a file; wait for it to "
            "finish (or use PostgreSQL for several writing processes)"
        )
        assert _api_calls(sb) == 1
        out, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, err[-2000:]
    assert target.rows() == source_rows(sb, "SSE", "L")
    killed = start_controller(*SYNC, "--no-resume", cwd=workdir, env=PAUSE)
    wait_for(_running_as(_store(target, "file", workdir), killed.pid), what="run to start")
    killed.kill()
    killed.wait(timeout=30)
    after = controller(*SYNC, "--exchange", "SZSE", cwd=workdir)
    assert after.returncode == 0, after.stderr[-2000:]
    assert [r for r in target.rows() if r["exchange"] == "SZSE"] == source_rows(sb, "SZSE", "L")
    assert [r for r in target.rows() if r["exchange"] == "SSE"] == source_rows(sb, "SSE", "L")


def _plant_foreign_lock(target, heartbeat_at: float) -> None:
    manager = LockManager("db", engine=target.engine(), schema=target.schema)
    manager._ensure()
    holder = {"host": "other-host", "pid": 4242, "run_id": "run-elsewhere", "since": "earlier"}
    with manager.db().begin() as conn:
        conn.execute(
            sa.insert(manager.table).values(
                task_name=TASK,
                token="foreign",
                holder=json.dumps(holder),
                heartbeat_at=heartbeat_at,
            )
        )


@pytest.mark.cli
def test_a_lock_row_from_another_host_is_free_after_the_timeout(
    sb, atm_env, workdir, sqlite_target
):
    # Lock rows decide only where no session lock exists: SQLite.
    target = sqlite_target
    flags = [*SYNC, "--use-db-state"]
    # 60 s: a controller starting on a loaded machine must still meet a live lock.
    env = {"ATM_LOCK_TIMEOUT_MINUTES": "1"}
    _plant_foreign_lock(target, time.time())
    blocked = controller(*flags, cwd=workdir, env=env)
    assert blocked.returncode == 1
    assert "held by host=other-host, pid=4242, run_id=run-elsewhere" in blocked.stderr
    # The holder falls silent: its last heartbeat is now older than the timeout.
    manager = LockManager("db", engine=target.engine(), schema=target.schema)
    with manager.db().begin() as conn:
        conn.execute(sa.update(manager.table).values(heartbeat_at=time.time() - 61))
    proceeds = controller(*flags, cwd=workdir, env=env)
    assert proceeds.returncode == 0, proceeds.stderr[-2000:]
    assert target.rows() == source_rows(sb, "SSE", "L")


@pytest.mark.cli
@pytest.mark.parametrize("target,lock", LOCKS, indirect=["target"], ids=IDS)
def test_different_partitions_run_side_by_side(target, lock, sb, atm_env, workdir):
    db_flag = ["--use-db-state"] if lock == "db" else []
    # Pause between transactions: SQLite has a single writer, so a pause inside one would hold
    # back any other writer at the database, whatever the task locks allow.
    pause = {"ATM_FAULT_INJECT": "pause@after_checkpoint:1", "ATM_FAULT_PAUSE_SECONDS": "60"}
    first = start_controller(*SYNC, *db_flag, cwd=workdir, env=pause)
    try:
        wait_for(_running_as(_store(target, lock, workdir), first.pid), what="first run to start")
        other = controller(*SYNC, "--exchange", "SZSE", *db_flag, cwd=workdir)
        assert other.returncode == 0, other.stderr[-2000:]
        assert first.poll() is None  # finished while the first one still held its task
    finally:
        first.kill()  # its own completion is covered above; no need to sit out the pause
        first.wait(timeout=30)
    szse = [r for r in target.rows() if r["exchange"] == "SZSE"]
    assert szse == source_rows(sb, "SZSE", "L")


# -- the lock kinds on their own, in one process --


def test_file_lock_is_exclusive_and_names_its_holder(tmp_path):
    locks = LockManager("file", tmp_path)
    with locks.acquire("t", "run-1") as lease:
        with pytest.raises(TaskLockError, match=r"Task t is already running \(held by .*run-1"):
            locks.acquire("t", "run-2")
        assert locks.probe("t")["run_id"] == "run-1"
        lease.verify()
    assert locks.probe("t") is None
    locks.acquire("t", "run-3").release()


def test_advisory_lock_is_exclusive_across_sessions_and_freed_with_the_session(pg_target):
    one = LockManager("db", engine=pg_target.engine(), schema=pg_target.schema)
    two = LockManager("db", engine=pg_target.engine(), schema=pg_target.schema)
    lease = one.acquire("t", "run-1")
    with pytest.raises(TaskLockError, match="run-1"):
        two.acquire("t", "run-2")
    lease.verify()
    lease.conn.invalidate()  # the session dies, as with a killed holder or a lost connection
    with pytest.raises(LockLostError):
        lease.verify()
    two.acquire("t", "run-2").release()


def test_a_lock_row_taken_over_after_the_timeout_is_noticed_by_its_old_holder(workdir):
    from atm_assets_tests.conftest import sqlite_db

    engine = sqlite_db(workdir, "l.db").create_engine()
    slow = LockManager("db", engine=engine, timeout_minutes=0.01)
    old = slow.acquire("t", "run-old")
    with pytest.raises(TaskLockError):
        slow.acquire("t", "run-new")
    with slow.engine.begin() as conn:  # the old holder has been silent for a while
        conn.execute(sa.update(slow.table).values(heartbeat_at=time.time() - 60))
    new = slow.acquire("t", "run-new")
    with pytest.raises(LockLostError, match="taken over"):
        old.verify()
    new.verify()
    new.release()


@pytest.mark.integration
@pytest.mark.parametrize("target", ["sqlite", "postgresql", "duckdb"], indirect=True)
def test_threads_that_first_take_locks_at_once_all_get_them(target):
    # Tasks in flight in one process each open their lock manager on a fresh database: every
    # one of them creates the lock table. On DuckDB two uncommitted CREATEs of one name
    # conflict, and a loser that retried before the winner committed failed the run (CI).
    engine = target.engine()
    managers = [LockManager("db", engine=engine, schema=target.schema) for _ in range(8)]
    barrier = threading.Barrier(len(managers))

    def take(i: int):
        barrier.wait()
        return managers[i].acquire(f"daily_sync_2024093{i % 10}_{i}")

    with ThreadPoolExecutor(len(managers)) as pool:
        leases = list(pool.map(take, range(len(managers))))
    assert len({lease.task_name for lease in leases}) == len(managers)
    for lease in leases:
        lease.release()


def _take_lock_in_a_new_process(db, schema: str | None, task: str, start: float) -> str:
    manager = LockManager("db", engine=db.create_engine(), schema=schema)
    with manager.db().connect():
        pass  # imports and dialect set-up done before the start line
    time.sleep(max(0.0, start - time.time()))
    lease = manager.acquire(task)
    lease.release()
    return lease.task_name


@pytest.mark.integration
@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_processes_that_first_take_locks_at_once_all_get_them(target):
    # Several hosts' first runs on a fresh schema race on CREATE SCHEMA and CREATE TABLE;
    # PostgreSQL rejects the losers even for IF NOT EXISTS, and they must find the winner's.
    tasks = [f"stock_basic_sync_SSE_{i}" for i in range(6)]
    start = time.time() + 1.5  # after every child has imported and connected
    with ProcessPoolExecutor(len(tasks), mp_context=multiprocessing.get_context("fork")) as pool:
        done = list(
            pool.map(
                _take_lock_in_a_new_process,
                *zip(*[(target.db, target.schema, t, start) for t in tasks], strict=True),
            )
        )
    assert done == tasks
