"""Ctrl-C, then the same command again: one line, exit 130, a canceled run, and a rerun that
finishes with every row once (a real SIGINT, upsert and append). The signal goes to the
controller alone (`kill -INT`) or to its whole process group, as a terminal's Ctrl-C does: then
the processes the run started (Dagster's compute-log `tail -F` and its orphan watcher) get it
too, and must neither print nor outlive the controller."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from dagster import DagsterRunStatus

from atm_assets.core.datasets import DAILY
from atm_assets.core.state import FileStateStore
from atm_assets_tests.conftest import source_rows
from atm_assets_tests.helpers import (
    controller,
    group_members,
    instance_at,
    start_controller,
    wait_for,
)

pytestmark = [pytest.mark.cli, pytest.mark.usefixtures("atm_env")]

ROWS = 3_000
# 100 rows per checkpoint interval: 30 intervals.
SYNC = ["sync", "stock-basic", "--exchange", "SSE", "--list-status", "L"]
WRITE = ["--batch-size", "50", "--checkpoint-every", "2"]
TASK = "stock_basic_sync_SSE_L"
INTERRUPTED = "Interrupted: nothing was committed; run the same command to resume"


def interrupt(workdir: str, args: list[str], ready, env: dict[str, str] | None = None, how="pid"):
    """Start the controller in a process group of its own, wait until `ready()` is true, send
    SIGINT to the controller ("pid") or to its group ("group"), and return its exit code,
    stdout and stderr. Nothing it started may be left running once it has exited."""
    proc = start_controller(*args, cwd=workdir, env=env, new_session=True)
    try:
        wait_for(lambda: ready() or proc.poll() is not None, timeout=120, what="the moment")
        assert proc.poll() is None, f"ended before the signal: {proc.communicate()}"
        if how == "group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert group_members(proc.pid) == []
    return proc.returncode, out, err


def run_to_the_end(workdir: str, args: list[str]) -> subprocess.CompletedProcess:
    """The controller run to completion in a process group of its own, which is empty after
    it: what the run started ended with it."""
    proc = start_controller(*args, cwd=workdir, new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert group_members(proc.pid) == []
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_status(workdir: str, run_line: str) -> DagsterRunStatus:
    run_id = run_line.split()[1]
    old = os.getcwd()
    os.chdir(workdir)
    try:
        with instance_at(workdir) as instance:
            run = instance.get_run_by_id(run_id)
            assert run is not None
            return run.status
    finally:
        os.chdir(old)


def last_run_line(out: str) -> str:
    return [line for line in out.splitlines() if line.startswith("Run ")][-1]


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    return lines[0]


def listed(workdir: str) -> dict[str, list[str]]:
    """`state list` as {task: [STATUS, SAVED, FETCHED, ERRORS, …]}."""
    listing = controller("state", "list", cwd=workdir)
    assert listing.returncode == 0, listing.stderr
    rows = listing.stdout.splitlines()
    if rows and rows[0].startswith("No task state"):
        return {}
    assert rows[0].split()[:5] == ["TASK", "STATUS", "SAVED", "FETCHED", "ERRORS"], rows[0]
    return {row.split()[0]: row.split()[1:] for row in rows[1:]}


def state_of(workdir: str, task: str) -> dict:
    shown = controller("state", "show", task, cwd=workdir)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


# How the signal comes: `kill -INT` on the controller ("pid"), or a terminal's Ctrl-C to its
# process group ("group"). With the target and the mode, pairwise: each pair of values meets.
CASES = [
    ("sqlite", "upsert", "group"),
    ("sqlite", "append", "pid"),
    ("postgresql", "upsert", "pid"),
    ("postgresql", "append", "group"),
]


@pytest.mark.parametrize("target,mode,how", CASES, indirect=["target"])
def test_ctrl_c_while_fetching(target, sb, workdir, mode, how):
    sb.set_sizes({"SSE:L": ROWS})
    sb.set_latency(3.0, api="stock_basic")
    called = lambda: any(c["api_name"] == "stock_basic" for c in sb.calls())  # noqa: E731
    began = time.monotonic()
    code, out, err = interrupt(workdir, [*SYNC, *WRITE, "--mode", mode], called, how=how)
    assert code == 130, err
    assert time.monotonic() - began < 30  # the call in flight ends; nothing waits for more
    assert one_line(err) == INTERRUPTED
    assert run_status(workdir, last_run_line(out)) == DagsterRunStatus.CANCELED
    assert target.rows() == []
    # Nothing was written: the task has no state (a stopped run changes none).
    assert FileStateStore(Path(workdir) / "storage/state").get(TASK) is None
    assert TASK not in listed(workdir)

    sb.set_latency(None, api="stock_basic")
    again = run_to_the_end(workdir, [*SYNC, *WRITE, "--mode", mode])
    assert again.returncode == 0, again.stderr
    assert target.rows() == source_rows(sb, "SSE", "L")
    assert listed(workdir)[TASK][:4] == ["completed", str(ROWS), str(ROWS), "0"]


def test_a_second_ctrl_c_exits_at_once_and_leaves_no_process_behind(sqlite_target, sb, workdir):
    """The second Ctrl-C ends the controller without Dagster's cleanup: the compute-log helpers
    it started ignore the terminal's SIGINT, and end on their own once it is gone."""
    sb.set_sizes({"SSE:L": ROWS})
    sb.set_latency(5.0, api="stock_basic")
    proc = start_controller(*SYNC, *WRITE, cwd=workdir, new_session=True)
    try:
        wait_for(lambda: sb.calls() or proc.poll() is not None, timeout=120, what="the call")
        assert proc.poll() is None, f"ended before the signal: {proc.communicate()}"
        # The helpers are there to be left behind.
        assert any("watch_orphans" in m for m in group_members(proc.pid))
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.5)  # two signals at once are one for Python's handler
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert one_line(err) == "Interrupted again: stopping now, without waiting for a checkpoint"
    # watch_orphans.py polls its parent every second, then ends the tail and itself.
    wait_for(lambda: group_members(proc.pid) == [], timeout=10, what="the helpers to end")

    sb.set_latency(None, api="stock_basic")
    again = run_to_the_end(workdir, [*SYNC, *WRITE])
    assert again.returncode == 0, again.stderr
    assert sqlite_target.rows() == source_rows(sb, "SSE", "L")


@pytest.mark.parametrize(
    "target,mode,state,how",
    [("sqlite", "upsert", "file", "pid"), ("sqlite", "append", "db", "group"),
     ("postgresql", "upsert", "db", "group"), ("postgresql", "append", "file", "pid")],
    indirect=["target"],
)  # fmt: skip
def test_ctrl_c_mid_write_then_the_same_command_resumes(target, sb, workdir, mode, state, how):
    sb.set_sizes({"SSE:L": ROWS})
    mark = Path(workdir) / "in-batch"
    flags = [*SYNC, *WRITE, "--mode", mode] + (["--use-db-state"] if state == "db" else [])
    # Paused inside the 4th interval's transaction (its 7th batch) when the signal comes.
    env = {"ATM_FAULT_INJECT": "pause@after_batch:7", "ATM_FAULT_MARK": str(mark),
           "ATM_FAULT_PAUSE_SECONDS": "3"}  # fmt: skip
    code, out, err = interrupt(workdir, flags, mark.exists, env, how=how)
    assert code == 130, err
    assert one_line(err) == (
        "Interrupted: 400 rows committed in 1 partition(s); run the same command to resume"
    )
    assert run_status(workdir, last_run_line(out)) == DagsterRunStatus.CANCELED
    # The interval under way when the signal came was finished, checkpointed, then it stopped.
    assert len(target.rows()) == 400
    shown = state_of(workdir, TASK)
    assert (shown["status"], shown["total_saved"]) == ("interrupted", 400)
    assert shown["last_processed_key"] == target.rows()[-1]["ts_code"]
    # SAVED of FETCHED: the whole partition was fetched before its first write.
    assert listed(workdir)[TASK][:4] == ["interrupted", "400", str(ROWS), "0"]

    again = run_to_the_end(workdir, flags)
    assert again.returncode == 0, again.stderr
    assert f"Resuming task {TASK} after last_processed_key=" in again.stdout
    assert "Skipping 400 rows" in again.stdout
    assert target.rows() == source_rows(sb, "SSE", "L")  # every row, once
    shown = state_of(workdir, TASK)
    assert (shown["status"], shown["total_saved"]) == ("completed", ROWS)
    assert listed(workdir)[TASK][:4] == ["completed", str(ROWS), str(ROWS), "0"]


@pytest.mark.parametrize("target,mode,how", CASES, indirect=["target"])
def test_ctrl_c_after_the_last_write(target, sb, workdir, mode, how):
    mark = Path(workdir) / "written"
    # SSE's L, D, P and G: the signal comes while the run pauses after writing the 4th.
    env = {"ATM_FAULT_INJECT": "pause@after_partition:4", "ATM_FAULT_MARK": str(mark),
           "ATM_FAULT_PAUSE_SECONDS": "2"}  # fmt: skip
    flags = ["sync", "stock-basic", "--exchange", "SSE", "--list-status", "", "--mode", mode]
    code, out, err = interrupt(workdir, flags, mark.exists, env, how=how)
    assert code == 130, err
    assert one_line(err) == "Interrupted: every partition was already written"
    # The run did everything it was asked: Dagster records it as what it is.
    assert run_status(workdir, last_run_line(out)) == DagsterRunStatus.SUCCESS
    expected = source_rows(sb, "SSE")
    assert target.rows() == expected
    # Every partition's task says so, with what it saved.
    sizes = {s: str(len(source_rows(sb, "SSE", s))) for s in "LDPG"}
    completed = {f"stock_basic_sync_SSE_{s}": ["completed", n, n, "0"] for s, n in sizes.items()}
    assert {task: row[:4] for task, row in listed(workdir).items()} == completed
    again = run_to_the_end(workdir, flags)
    assert again.returncode == 0, again.stderr
    assert target.rows() == expected
    # The rerun continues the interrupted run: what it completed is not written again (in
    # append mode, writing it again could only be refused).
    assert again.stdout.count("completed earlier in this run chain, skipped") == 4
    assert {task: row[:4] for task, row in listed(workdir).items()} == completed


def test_ctrl_c_in_a_long_range_continues_where_it_stopped(sqlite_target, sb, workdir):
    """The issue's sequence on daily: days completed before Ctrl-C are not fetched again, the
    interrupted one resumes from its checkpoint, the rest follow; append never refuses."""
    assert controller("sync", "trade-cal", "--exchange", "SSE", cwd=workdir).returncode == 0
    sb.set_sizes({"SSE:L": 300, "SZSE:L": 300, "BSE:L": 0, "SSE:D": 0, "SZSE:D": 0})
    mark = Path(workdir) / "third-day"
    flags = ["sync", "daily", "--start-date", "20240102", "--end-date", "20240109",
             "--batch-size", "5", "--checkpoint-every", "2", "--mode", "append"]  # fmt: skip
    env = {"ATM_FAULT_INJECT": "pause@after_partition:2", "ATM_FAULT_MARK": str(mark),
           "ATM_FAULT_PAUSE_SECONDS": "3"}  # fmt: skip
    code, _, err = interrupt(workdir, flags, mark.exists, env)
    assert code == 130 and "partition(s)" in one_line(err), err
    assert controller("state", "show", "daily_sync_20240103", cwd=workdir).returncode == 0
    again = controller(*flags, cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert "Continuing the unfinished run" in again.stdout
    assert again.stdout.count("completed earlier in this run chain, skipped") == 2
    # Across both runs every open day was fetched exactly once: what the first run had
    # fetched but not written was staged, and the rerun took it from there.
    days = ["20240102", "20240103", "20240104", "20240105", "20240108", "20240109"]
    fetched = [c["params"]["trade_date"] for c in sb.calls() if c["api_name"] == "daily"]
    assert sorted(fetched) == days
    expected = [r for d in days for r in sb.dataset.rows("daily", {"trade_date": d})]
    rows = sqlite_target.rows(DAILY)
    assert len(rows) == len(expected)
    assert len({(r["ts_code"], r["trade_date"]) for r in rows}) == len(expected)
