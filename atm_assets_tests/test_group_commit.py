"""Small partitions share a transaction: each task is committed whole with its state, or not at
all, on every target; a killed grouped run resumes to a table equal to the source."""

import time
import uuid
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from atm_assets.core.datasets import DAILY, SYNC_COMMIT
from atm_assets.core.engine import Hooks, RunChain, SyncJob
from atm_assets.core.locks import LockManager
from atm_assets.core.settings import SyncOptions
from atm_assets.core.staging import Staging
from atm_assets.core.state import DbStateStore, FileStateStore, Target
from atm_assets.core.writer import TableWriter

from .conftest import ALL_TARGETS
from .helpers import controller
from .test_market_data import OPEN_DAYS, as_table_rows, table_rows

pytestmark = pytest.mark.integration


class Answers:
    """The sandbox's daily answers by trade date, handed over as the client would."""

    calls = 0
    nul_seen = True
    caps: dict[str, int] = {}

    def __init__(self, sb) -> None:
        self.sb = sb

    def view(self, log):
        return self

    def fetch(self, _client, partition):
        return pd.DataFrame(self.sb.dataset.daily(trade_date=partition["trade_date"]))


class Quiet:
    def info(self, *a, **k): ...  # noqa: E704
    def warning(self, *a, **k): ...  # noqa: E704
    def error(self, *a, **k): ...  # noqa: E704


class FailAt(Hooks):
    """An error inside the transaction, at the first batch of one task."""

    def __init__(self, task: str) -> None:
        self.task = task

    def after_batch(self, task: str, batches: int) -> None:
        if task == self.task:
            raise RuntimeError("disk full")


def daily_job(target, sb, tmp: Path, rows_per_interval: int, hooks=None, store=None) -> SyncJob:
    writer = TableWriter(target.engine(), DAILY, target.schema)
    writer.ensure_table()
    store = store or DbStateStore(target.engine(), target.schema)
    return SyncJob(
        spec=DAILY,
        fetch=Answers(sb).fetch,
        writer=writer,
        store=store,
        locks=LockManager(lock_dir=tmp / "locks"),
        options=SyncOptions(batch_size=1000, checkpoint_every=rows_per_interval // 1000),
        staging=Staging(tmp / "staging"),
        target=Target(writer.table_id, writer.qualified_name, target.kind),
        hooks=hooks or Hooks(),
        # A run of its own: a task completed by an earlier one is written again.
        run=RunChain(run_id=uuid.uuid4().hex),
    )


def commits_by_day(target) -> dict[str, str]:
    table = target.writer(DAILY).table
    with target.engine().connect() as conn:
        found = conn.execute(
            sa.select(table.c.trade_date, table.c[SYNC_COMMIT]).distinct()
        ).fetchall()
    days = Counter(str(day) for day, _ in found)
    assert set(days.values()) == {1}, days  # one commit per trade date
    return {str(day).replace("-", ""): commit for day, commit in found}


def prepared_stream(job: SyncJob, sb):
    """A stream whose every partition is prepared before the writer takes the first."""
    tasks = job.tasks([{"trade_date": d} for d in OPEN_DAYS])
    stream = job.stream(tasks, Answers(sb), ahead=len(tasks))
    deadline = time.monotonic() + 60
    while not all(f.done() for f in stream._futures):
        assert time.monotonic() < deadline, "partitions were not prepared in time"
        time.sleep(0.05)
    return stream


@pytest.mark.parametrize("target", ALL_TARGETS, indirect=True)
def test_prepared_days_share_one_transaction_up_to_the_checkpoint_interval(target, sb, workdir):
    sizes = [len(sb.dataset.daily(trade_date=d)) for d in OPEN_DAYS]
    # Room for the first two days, not for the third.
    job = daily_job(target, sb, Path(workdir), (sizes[0] + sizes[1] + 999) // 1000 * 1000)
    assert sizes[0] + sizes[1] + sizes[2] > job.options.batch_size * job.options.checkpoint_every

    results = job.write_all(prepared_stream(job, sb), Quiet())

    expected = [r for d in OPEN_DAYS for r in sb.dataset.daily(trade_date=d)]
    assert table_rows(target, DAILY) == as_table_rows(DAILY, expected)
    commits = commits_by_day(target)
    assert commits[OPEN_DAYS[0]] == commits[OPEN_DAYS[1]] != commits[OPEN_DAYS[2]]
    # Each task's own counts and state, as if it had been written alone.
    assert [r.counts.inserted for r in results] == sizes
    assert [r.saved_this_run for r in results] == sizes
    for day, size in zip(OPEN_DAYS, sizes, strict=True):
        state = job.store.get(f"daily_sync_{day}")
        assert state.status == "completed" and state.total_saved == size
        assert state.total_fetched == size and state.holder is None
    # Their locks are free again.
    for day in OPEN_DAYS:
        job.locks.acquire(f"daily_sync_{day}", None).release()

    # Upserted again as a group: every row unchanged, nothing doubled.
    again = daily_job(target, sb, Path(workdir), 100_000)
    results = again.write_all(prepared_stream(again, sb), Quiet())
    assert [r.counts.unchanged for r in results] == sizes
    assert table_rows(target, DAILY) == as_table_rows(DAILY, expected)


@pytest.mark.parametrize("target", ALL_TARGETS, indirect=True)
def test_a_failure_inside_a_group_writes_none_of_it(target, sb, workdir):
    job = daily_job(target, sb, Path(workdir), 100_000, hooks=FailAt(f"daily_sync_{OPEN_DAYS[2]}"))
    with pytest.raises(RuntimeError, match="disk full"):
        job.write_all(prepared_stream(job, sb), Quiet())

    assert table_rows(target, DAILY) == []
    for day in OPEN_DAYS:
        state = job.store.get(f"daily_sync_{day}")
        assert state.status == "failed" and state.total_saved == 0
        assert "disk full" in state.last_error
        job.locks.acquire(f"daily_sync_{day}", None).release()


def test_a_file_state_store_never_groups(sqlite_target, sb, workdir):
    # Its checkpoint cannot commit with the rows: each task keeps its own transaction.
    store = FileStateStore(Path(workdir) / "state")
    job = daily_job(sqlite_target, sb, Path(workdir), 100_000, store=store)
    job.write_all(prepared_stream(job, sb), Quiet())
    assert len(set(commits_by_day(sqlite_target).values())) == len(OPEN_DAYS)


@pytest.mark.cli
@pytest.mark.parametrize("target", ALL_TARGETS, indirect=True)
def test_sigkill_inside_a_grouped_write_then_resume(target, atm_env, sb, workdir):
    env = {**atm_env, **target.env}
    cal = controller("sync", "trade-cal", "--exchange", "SSE", cwd=workdir, env=env)
    assert cal.returncode == 0, cal.stderr[-2000:]
    flags = [
        "sync", "daily", "--start-date", "20240930", "--end-date", "20241009",
        "--use-db-state", "--batch-size", "1000", "--checkpoint-every", "100",
    ]  # fmt: skip
    # Killed inside the last task's transaction: in whatever group it falls (the days ready
    # when it was written), that group's tasks were not committed and earlier groups were.
    fault = {"ATM_FAULT_INJECT": "after_batch:1", "ATM_FAULT_TASK": f"daily_sync_{OPEN_DAYS[-1]}"}
    killed = controller(*flags, cwd=workdir, env={**env, **fault})
    assert killed.returncode == -9, killed.stderr[-2000:]
    store = DbStateStore(target.engine(), target.schema)
    stored = {str(r["trade_date"]).replace("-", "") for r in table_rows(target, DAILY)}
    assert OPEN_DAYS[-1] not in stored
    for day in OPEN_DAYS:
        state = store.get(f"daily_sync_{day}")
        done = state is not None and state.status == "completed"
        # A task is complete exactly when its rows are in the table: never one without the other.
        assert done == (day in stored), (day, state)

    resumed = controller(*flags, cwd=workdir, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected = [r for d in OPEN_DAYS for r in sb.dataset.daily(trade_date=d)]
    assert table_rows(target, DAILY) == as_table_rows(DAILY, expected)
    assert all(store.get(f"daily_sync_{d}").status == "completed" for d in OPEN_DAYS)
