"""The sync path of every fetched dataset: lock → resume point → fetch → validate → write."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import importlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
import sqlalchemy as sa

from atm_assets.core import interrupts
from atm_assets.core.datasets import TableSpec
from atm_assets.core.dates import parse_tushare_date, shanghai_today
from atm_assets.core.errors import (
    AppendConflictError,
    ConfigError,
    DatabaseUnavailableError,
    StateError,
    SyncInterrupted,
)
from atm_assets.core.keys import key_text, rows_after
from atm_assets.core.locks import Lease, LockManager
from atm_assets.core.settings import SyncOptions
from atm_assets.core.staging import Staging
from atm_assets.core.state import (
    StateStore,
    Target,
    TaskState,
    Totals,
    utcnow,
    validate_task_name,
)
from atm_assets.core.tables import partition_bounds
from atm_assets.core.validation import validate_rows
from atm_assets.core.writer import Group, TableWriter, WriteCounts

# Per-batch lines go here: a console (the controller, a run's stdout), not the event log,
# where thousands of them per sync would cost more than the writes.
PROGRESS_LOG = logging.getLogger("atm.progress")
MODE_LABELS = {"upsert": "upsert (覆盖更新)", "append": "append (追加)"}


class Source(Protocol):
    """Where rows come from (the Tushare client): a per-task view that counts its calls."""

    calls: int
    # Whether any answer may hold a NUL character (the rows are then searched for one).
    nul_seen: bool
    # Per-call row caps the service showed below what was asked, by API.
    caps: dict[str, int]

    def view(self, log: Any) -> Source: ...


Fetch = Callable[[Any, Mapping[str, str]], pd.DataFrame]


class Log(Protocol):
    def info(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...
    def warning(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...
    def error(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...


class Hooks:
    """Told of each milestone of a sync (counts are per task, partitions per run); subclass it
    to watch a sync — metrics, or the tests' fault injection (setting extensions.sync_hooks)."""

    def after_batch(self, task: str, batches: int) -> None: ...
    def after_commit(self, task: str, commits: int) -> None: ...
    def after_checkpoint(self, task: str, checkpoints: int) -> None: ...
    def after_partition(self, partitions: int) -> None: ...


def load_hooks(spec: str | None) -> Hooks:
    """`module:callable` returning a Hooks; None means none."""
    if not spec:
        return Hooks()
    module, _, name = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"extensions.sync_hooks {spec!r} cannot be imported: {e}") from None
    return factory()


_LIVE = threading.Lock()


class BufferedLog:
    """Messages of work done on another thread, replayed in order on the run's log; routine
    per-task lines (`progress`) may go elsewhere. Warnings and errors (a retry, a wait) go to
    `live` at once when it is given: a user watching a stalled sync must see why now, not
    when (or if) the partition is handed over."""

    def __init__(self, live: Log | None = None, label: str = "") -> None:
        self.messages: list[tuple[str, str]] = []
        self.live = live
        # Several tasks may retry at once: a live line says whose it is.
        self.prefix = f"{label}: " if label else ""

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.messages.append(("info", msg))

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._urgent("warning", msg)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._urgent("error", msg)

    def _urgent(self, level: str, msg: str) -> None:
        if self.live is None:
            self.messages.append((level, msg))
            return
        with _LIVE:  # one writer at a time: the run's log is shared by the worker threads
            getattr(self.live, level)(f"{self.prefix}{msg}")

    def progress(self, msg: str) -> None:
        self.messages.append(("progress", msg))

    def replay(self, log: Log, progress: Log | None = None) -> None:
        for level, message in self.messages:
            if level == "progress":
                (progress or log).info(message)
            else:
                getattr(log, level)(message)
        self.messages.clear()


class RunProgress:
    """A long run's progress on its log every `every` seconds (and at its end), while its
    per-task lines go to the console: hundreds of run-log events would cost more than the
    writes they report."""

    def __init__(self, job: SyncJob, total: int, log: Log, every: float = 15.0) -> None:
        self.job, self.total, self.log, self.every = job, total, log, every
        self.began = self.last = time.perf_counter()
        self.written = self.rows = 0

    def note(self, result: TaskResult) -> None:
        self.written += 1
        self.rows += result.saved_this_run
        if time.perf_counter() - self.last >= self.every:
            self.report()

    def report(self) -> None:
        self.last = time.perf_counter()
        seconds = self.last - self.began
        self.log.info(
            f"{self.job.spec.name}: {self.written}/{self.total} partition(s) written, "
            f"{self.rows} {self.job.spec.noun} saved, in {seconds:.0f}s "
            f"({self.written / max(seconds, 1e-9) * 60:.0f} partitions/min)"
        )


@dataclass(frozen=True)
class Task:
    """One partition of one dataset, synced (locked, checkpointed, resumed) as a unit."""

    name: str
    partition: dict[str, str]


def derive_task_name(dataset: str, partition: Mapping[str, str | None]) -> str:
    """`<dataset>_sync_<value or all>_…`, as the original script named its tasks."""
    return "_".join([f"{dataset}_sync", *[(v or "all") for v in partition.values()]])


@dataclass
class Prepared:
    """A task ready to write: running under its lease, its rows validated. `frame` is None when
    an earlier attempt of the run chain completed the task (nothing to do)."""

    task: Task
    lease: Lease | None
    log: BufferedLog
    state: TaskState | None = None
    frame: pd.DataFrame | None = None
    fetch_seconds: float = 0.0
    api_calls: int = 0
    caps: dict[str, int] = field(default_factory=dict)
    # The day an open trade date answered no rows for, when that may mean "not published
    # yet" (within the dataset's publication lag): nothing is written, the task stays open.
    unpublished: str | None = None
    # The rows as the target scans them in bulk, made by the preparing thread for a partition
    # that may be written in a group (see SyncJob.groupable); None otherwise.
    columns: Any = None

    @property
    def resume_key(self) -> str | None:
        return self.state.last_processed_key if self.state else None


@dataclass
class TaskResult:
    task_name: str
    total_fetched: int
    total_saved: int
    saved_this_run: int
    total_errors: int
    counts: WriteCounts
    last_processed_key: str | None
    resumed_from: str | None
    batches: int
    checkpoints: int
    write_seconds: float
    fetch_seconds: float
    api_calls: int
    # Set when the partition was not written: its open day answered no rows, not yet final.
    unpublished: str | None = None
    # Per-call row caps the service showed below what was asked, by API (see Source.caps).
    caps: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RunChain:
    """The Dagster run, and the first run of its re-execution chain."""

    run_id: str | None = None
    root_run_id: str | None = None

    @property
    def chain(self) -> str:
        return self.root_run_id or self.run_id or "local"


@dataclass
class SyncJob:
    """One dataset synced over some of its partitions in one run: where, how, under which
    locks and state, and who is told of progress."""

    spec: TableSpec
    fetch: Fetch
    writer: TableWriter
    store: StateStore
    locks: LockManager
    options: SyncOptions
    staging: Staging
    # The table written to, which checkpoints must belong to (see Target).
    target: Target
    run: RunChain = RunChain()
    hooks: Hooks = field(default_factory=Hooks)
    # Static partition sets announce each task with the original script's banner; long date
    # ranges log one numbered line per task instead.
    banner: str | None = None
    # Today in Asia/Shanghai (an empty open day within its publication lag is not final).
    today: dt.date | None = None

    def tasks(self, partitions: Sequence[Mapping[str, str]], name: str | None = None) -> list[Task]:
        """One task per partition; a given name is used as is for one partition, as a prefix
        otherwise."""
        if not name:
            names = [derive_task_name(self.spec.name, p) for p in partitions]
        elif len(partitions) == 1:
            names = [name]
        else:
            names = ["_".join([name, *p.values()]) for p in partitions]
        return [
            Task(validate_task_name(n), dict(p)) for n, p in zip(names, partitions, strict=True)
        ]

    # -- 1. lock --

    def lock(self, task: Task) -> Lease:
        """The task's lock, or TaskLockError at once: a second run never waits."""
        return self.locks.acquire(task.name, self.run.run_id)

    # -- 2. resume point, 3. fetch, 4. validate --

    def prepare(
        self, task: Task, client: Source, lease: Lease, number: str = "", live: Log | None = None
    ) -> Prepared:
        """Under the task's lease: find its resume point, then take its rows — staged by an
        earlier attempt of this run chain, or fetched — validated. Nothing is saved for the task
        until its first interval is written: a run refused or stopped before then leaves its
        state as it was."""
        log = BufferedLog(live, task.name)
        previous = self.store.get(task.name)
        skip = self._already_done(previous)
        if skip:
            log.progress(f"{task.name}: {skip}, skipped")
            return Prepared(task, lease, log)
        if self.banner:
            log.info(self.banner)
            log.info(f"Task Name: {task.name}")
            for name, value in task.partition.items():
                log.info(f"{name.replace('_', ' ').title()}: {value or 'All'}")
            log.info(f"Mode: {MODE_LABELS[self.options.mode]}")
        state = self._resume_point(task, previous, lease, log)
        began = time.perf_counter()
        view = client.view(log)
        try:
            staged = self.staging.load(task.name, self.run.chain) if self.options.resume else None
            if staged is None:
                answer = self.fetch(view, task.partition)
                frame = validate_rows(answer, self.spec, task.partition, nul_possible=view.nul_seen)
                self.staging.save(task.name, self.run.chain, answer)
                source = "Fetched"
            else:
                frame = validate_rows(staged, self.spec, task.partition)
                source = "Took the staged"
        except Exception as error:
            self._record_failure(state, 0, error, log)
            raise
        seconds = time.perf_counter() - began
        log.progress(
            f"{number}{source} {len(frame)} {self.spec.noun} for {task.name} in {seconds:.2f}s"
        )
        unpublished = not_published_yet(self.spec, task.partition, len(frame), self.today)
        if unpublished:
            log.warning(
                f"{self.spec.name}: Tushare answered no rows for open trade date {unpublished} "
                f"({task.name}): not published yet? Nothing written; the next run fetches it "
                f"again (an empty answer counts as final {self.spec.publication_lag_days} days "
                "after the date)"
            )
        part = Prepared(
            task, lease, log, state, frame, seconds, view.calls, dict(view.caps), unpublished
        )
        return self.for_group(part)

    def _already_done(self, previous: TaskState | None) -> str | None:
        """Why the task need not be written again, if it need not: an earlier attempt of this
        run chain (a re-execution, or the rerun of an interrupted command) completed it into
        this very table."""
        if not self.options.resume or previous is None or previous.status != "completed":
            return None
        if self.target.holds(previous.target) and previous.root_run_id == self.run.chain:
            return "completed earlier in this run chain"
        return None

    def _resume_point(
        self, task: Task, previous: TaskState | None, lease: Lease, log: BufferedLog
    ) -> TaskState:
        """Settle any in-doubt commit and decide where writing resumes: a checkpoint is used
        only against the table it was saved for, in the mode it was saved in, and while the
        table still holds its last row; otherwise the task starts over, saying why."""
        resume_key: str | None = None
        saved_before = 0
        if self.spec.replaces:
            # Written whole in one transaction: there is no key to resume after.
            previous = None
        if previous is not None and self.options.resume and previous.status != "completed":
            foreign = self._foreign_checkpoint(previous)
            if foreign:
                log.warning(f"Task {task.name}: {foreign}; starting the task over")
            else:
                previous = self._settle_pending(previous, log)
                resume_key = previous.last_processed_key
                saved_before = previous.total_saved if resume_key else 0
                if resume_key and self.writer.has_key(resume_key) is False:
                    log.warning(
                        f"Task {task.name}: its checkpoint's last row ({resume_key}) is not in "
                        f"{self.writer.qualified_name} (emptied or replaced since?); starting "
                        "the task over"
                    )
                    resume_key, saved_before = None, 0
        if resume_key:
            log.info(
                f"Resuming task {task.name} after last_processed_key={resume_key} "
                f"({saved_before} rows already saved)"
            )
        elif previous is not None and not self.options.resume:
            log.info(f"Task {task.name}: resume disabled, starting over")
        now = utcnow()
        resumed = previous if resume_key else None
        return TaskState(
            task_name=task.name,
            status="running",
            dataset=self.spec.name,
            partition=dict(task.partition),
            mode=self.options.mode,
            total_saved=saved_before,
            total_errors=resumed.total_errors if resumed else 0,
            last_processed_key=resume_key,
            started_at=resumed.started_at if resumed else now,
            updated_at=now,
            run_id=self.run.run_id,
            root_run_id=self.run.chain,
            resumed_from=resume_key,
            holder={k: v for k, v in lease.holder.items() if k != "token"} or None,
            target=self.target.as_dict(),
        )

    def _foreign_checkpoint(self, previous: TaskState) -> str | None:
        """Why `previous`'s checkpoint does not belong to this sync (None when it does)."""
        if not (previous.last_processed_key or previous.pending_commit):
            return None
        saved = f"its checkpoint ({previous.total_saved} rows saved)"
        if previous.target is not None and not self.target.holds(previous.target):
            return (
                f"{saved} belongs to {Target.describe(previous.target)}, not to "
                f"{Target.describe(self.target.as_dict())}"
            )
        if previous.mode and previous.mode != self.options.mode:
            return (
                f"{saved} was made in {previous.mode} mode, this run writes in {self.options.mode}"
            )
        return None

    def _settle_pending(self, state: TaskState, log: BufferedLog) -> TaskState:
        """A file-store checkpoint may trail a commit that happened just before a crash: ask the
        table (rows carry their interval's commit id) and move the checkpoint forward if so."""
        pending = state.pending_commit
        if not pending:
            return state
        try:
            commit_id, last_key, rows = pending["id"], pending["last_key"], int(pending["rows"])
        except (KeyError, TypeError, ValueError):
            raise StateError(
                f"task {state.task_name}: pending_commit is malformed: {pending!r}"
            ) from None
        with self.writer.engine.connect() as conn:
            committed = self.writer.exists() and self.writer.commit_exists(conn, commit_id)
        if committed:
            log.info(
                f"Task {state.task_name}: the interval up to {last_key} committed before the "
                "last run stopped; moving the checkpoint forward"
            )
            state = dataclasses.replace(
                state,
                last_processed_key=last_key,
                total_saved=state.total_saved + rows,
                pending_commit=None,
            )
        else:
            state = dataclasses.replace(state, pending_commit=None)
        self.store.save(state)
        return state

    # -- 5. write --

    def write(self, part: Prepared, log: Log) -> TaskResult:
        """Write the rows after the checkpoint, one transaction per checkpoint interval, then
        release the task's lock.

        With a transactional (database) state store the checkpoint is saved in the same
        transaction as its rows. With the file store the interval's commit id is saved first as
        pending and the rows carry it, so a resumed run can tell whether that commit happened.
        A stop request (Ctrl-C) is honoured between intervals; a signal arriving inside one
        waits until its transaction and checkpoint are done.
        """
        assert part.frame is not None and part.state is not None
        try:
            if part.unpublished:
                return self._leave_open(part)
            if self.spec.replaces:
                return self._replace_whole(part, log)
            return self._write(part, log)
        finally:
            if part.lease is not None:
                part.lease.release()

    def _leave_open(self, part: Prepared) -> TaskResult:
        """An open day not published yet: its state says so, and it is not completed, so a
        rerun (or the next scheduled run) fetches it again."""
        assert part.state is not None
        self._save(
            part.state,
            status="unpublished",
            total_fetched=0,
            holder=None,
            last_error=f"Tushare answered no rows for open trade date {part.unpublished}",
        )
        self.staging.drop(part.task.name, self.run.chain)
        return self._result(part, part.state, WriteCounts(), 0, 0, 0, 0.0, part.unpublished)

    def _replace_whole(self, part: Prepared, log: Log) -> TaskResult:
        """A dataset without a natural key: the partition's rows are replaced by the answer in
        one transaction (with its checkpoint, on a database state store). Exactly once however
        often it runs: a resumed or repeated task replaces the partition again."""
        task, frame = part.task, part.frame
        assert frame is not None and part.state is not None
        # Read again by the failure handler: it records the state as it stands then.
        state: TaskState = part.state
        began = time.perf_counter()
        bounds = partition_bounds(self.spec, task.partition)
        commit_id = uuid.uuid4().hex
        with (
            self._whole_or_nothing(
                lambda: [(state, len(frame))],
                f"replacing task {task.name}",
                "nothing of it was written and the next run replaces it again",
                log,
            ),
            interrupts.deferred(),
            self.writer.engine.begin() as conn,
        ):
            counts = self.writer.replace_in(conn, frame, bounds, commit_id)
            PROGRESS_LOG.info(f"Replaced {len(frame)} {self.spec.noun} of {task.name}")
            self.hooks.after_batch(task.name, 1)
            if part.lease is not None:
                part.lease.verify(conn)
            state = dataclasses.replace(
                state, total_saved=len(frame), last_processed_key=None, updated_at=utcnow()
            )
            if self.store.transactional:
                self.store.save(state, conn=conn)
        self.hooks.after_commit(task.name, 1)
        self.console(log).info(
            f"Checkpoint: {len(frame)}/{len(frame)} {self.spec.noun} committed (partition "
            "replaced whole: no natural key)"
        )
        done = self._complete(state, len(frame))
        return self._result(part, done, counts, len(frame), 1, 1, time.perf_counter() - began)

    def _complete(self, state: TaskState, total: int) -> TaskState:
        return self._save(completed(state, total))

    @contextlib.contextmanager
    def _whole_or_nothing(
        self,
        failed: Callable[[], Sequence[tuple[TaskState, int]]],
        writing: str,
        again: str,
        log: Log,
    ) -> Iterator[None]:
        """Around a transaction that commits its tasks whole or not at all: an error marks each
        task (`failed()`: its state and rows) failed, a lost database is said in one line, and
        a stop request ends the run having committed none of it."""
        try:
            yield
        except AppendConflictError:
            # Refused before anything was written: the states stay what they were.
            raise
        except sa.exc.OperationalError as error:
            # The driver's message spans lines and names no task: say what it means.
            reason = str(error.orig or error).strip().splitlines()[0]
            lost = DatabaseUnavailableError(
                f"lost the target database while {writing} ({reason}); {again}"
            )
            for state, rows in failed():
                self._record_failure(state, rows, lost, log)
            raise lost from error
        except Exception as error:
            for state, rows in failed():
                self._record_failure(state, rows, error, log)
            raise
        except BaseException as stop:
            if not is_interrupt(stop):
                raise
            raise SyncInterrupted(0, 0, 0) from stop

    def _result(
        self,
        part: Prepared,
        state: TaskState,
        counts: WriteCounts,
        saved: int,
        batches: int,
        checkpoints: int,
        seconds: float,
        unpublished: str | None = None,
    ) -> TaskResult:
        self.staging.drop(part.task.name, self.run.chain)
        return TaskResult(
            task_name=part.task.name,
            total_fetched=len(part.frame) if part.frame is not None else 0,
            total_saved=state.total_saved,
            saved_this_run=saved,
            total_errors=state.total_errors,
            counts=counts,
            last_processed_key=None,
            resumed_from=state.resumed_from,
            batches=batches,
            checkpoints=checkpoints,
            write_seconds=seconds,
            fetch_seconds=part.fetch_seconds,
            api_calls=part.api_calls,
            unpublished=unpublished,
            caps=part.caps,
        )

    def _write(self, part: Prepared, log: Log) -> TaskResult:
        task, frame, state = part.task, part.frame, part.state
        assert frame is not None and state is not None
        spec, options = self.spec, self.options
        remaining = rows_after(frame, spec.key, part.resume_key)
        total = len(frame)
        # The whole partition is fetched before its first write: every state saved from here
        # (running, a checkpoint, interrupted, failed) says so, and `state list` shows SAVED
        # of FETCHED rather than SAVED next to 0.
        state = dataclasses.replace(state, total_fetched=total)
        counts = WriteCounts()
        batches = checkpoints = saved_this_run = 0
        began = time.perf_counter()
        per_interval = options.batch_size * options.checkpoint_every
        if part.resume_key is not None:
            log.info(f"Skipping {total - len(remaining)} rows up to {part.resume_key}")
        intervals = self.writer.intervals(options.mode)
        # Rows of the interval under way: a failure there counts them as errors.
        in_interval = 0
        try:
            with self.writer.engine.connect() as conn:
                if len(remaining) and options.mode == "append":
                    self._refuse_existing_keys(conn, remaining)
                if len(remaining) and self.store.transactional:
                    # Running from here on (the file store says so with its first pending
                    # commit): `state list` shows who writes it; a run refused or stopped
                    # before this point has changed nothing.
                    state = self._save(state)
                for offset in range(0, len(remaining), per_interval):
                    if offset and interrupts.stop_requested():
                        raise SyncInterrupted(saved_this_run, 1, 0)
                    chunk = remaining.iloc[offset : offset + per_interval]
                    last_key = key_text(chunk[list(spec.key)].iloc[-1])
                    commit_id = uuid.uuid4().hex
                    in_interval = len(chunk)
                    done = total - len(remaining) + offset

                    def batches_of(chunk: pd.DataFrame = chunk, done: int = done) -> None:
                        # Inside the interval's transaction: a kill here loses the interval.
                        nonlocal batches
                        for start in range(0, len(chunk), options.batch_size):
                            rows = min(options.batch_size, len(chunk) - start)
                            done += rows
                            batches += 1
                            PROGRESS_LOG.info(f"Saved batch of {rows} {spec.noun} ({done}/{total})")
                            self.hooks.after_batch(task.name, batches)

                    with interrupts.deferred():
                        state = self._write_interval(
                            conn, intervals, chunk, commit_id, last_key, state, part, counts,
                            batches_of,
                        )  # fmt: skip
                        in_interval = 0
                        checkpoints += 1
                        saved_this_run += len(chunk)
                        self.hooks.after_commit(task.name, checkpoints)
                        if not self.store.transactional:
                            self.store.save(state)
                        self.console(log).info(
                            f"Checkpoint: {state.total_saved}/{total} {spec.noun} committed, "
                            f"last_processed_key={last_key}"
                        )
                        self.hooks.after_checkpoint(task.name, checkpoints)
        except AppendConflictError:
            # Refused before anything was written: the task's state stays what it was.
            raise
        except SyncInterrupted:
            self._record_stop(state, saved_this_run)
            raise
        except Exception as error:
            # Whatever ends the task (a write, a hook, a lease lost after a commit) must not
            # leave it marked running.
            self._record_failure(state, in_interval, error, log)
            raise
        except BaseException as stop:
            if not is_interrupt(stop):
                raise
            # A signal delivered at the end of an interval (or Dagster's interrupt).
            self._record_stop(state, saved_this_run)
            raise SyncInterrupted(saved_this_run, 1, 0) from stop
        final_key = state.last_processed_key
        done_state = self._complete(state, total)
        self.staging.drop(task.name, self.run.chain)
        return TaskResult(
            task_name=task.name,
            total_fetched=total,
            total_saved=done_state.total_saved,
            saved_this_run=saved_this_run,
            total_errors=done_state.total_errors,
            counts=counts,
            last_processed_key=final_key,
            resumed_from=state.resumed_from,
            batches=batches,
            checkpoints=checkpoints,
            write_seconds=time.perf_counter() - began,
            fetch_seconds=part.fetch_seconds,
            api_calls=part.api_calls,
            caps=part.caps,
        )

    def groupable(self, part: Prepared) -> bool:
        """Whether a partition may share one transaction with its neighbours: it starts afresh,
        fits in one checkpoint interval, and its checkpoint is saved with its rows (a
        database state store). Such a transaction commits every task of it or none."""
        return (
            self.store.transactional
            and not self.spec.replaces
            and part.frame is not None
            and part.state is not None
            and not part.unpublished
            and part.resume_key is None
            and len(part.frame) <= self.options.batch_size * self.options.checkpoint_every
        )

    def for_group(self, part: Prepared) -> Prepared:
        """A groupable partition with its rows as the target scans them in bulk, made on the
        thread that prepared it (off the writer's path)."""
        if self.groupable(part):
            part.columns = self.writer.columns_of(part.frame)
        return part

    def fits(self, group: Sequence[Prepared], part: Prepared) -> bool:
        """Whether `part` may join `group` in one checkpoint interval."""
        rows = sum(len(p.frame) for p in (*group, part) if p.frame is not None)
        return rows <= self.options.batch_size * self.options.checkpoint_every

    def write_group(self, parts: Sequence[Prepared], log: Log) -> list[TaskResult]:
        """Groupable partitions (see `groupable`) written in one transaction that also saves
        each one's state as completed, then their locks released. DuckDB and SQLite pay per
        commit (a WAL flush) far more than per row: a range of small partitions (a day of
        `daily` is ~5,400 rows) goes in at the pace of a bulk load, and a kill still leaves
        each task either done or untouched."""
        try:
            return self._write_group(parts, log)
        finally:
            for part in parts:
                if part.lease is not None:
                    part.lease.release()

    def _write_group(self, parts: Sequence[Prepared], log: Log) -> list[TaskResult]:
        frames: list[pd.DataFrame] = []
        states: list[TaskState] = []
        for part in parts:
            assert part.frame is not None and part.state is not None
            frames.append(part.frame)
            states.append(part.state)
        spec, options = self.spec, self.options
        began = time.perf_counter()
        commit_id = uuid.uuid4().hex
        intervals = self.writer.intervals(options.mode)
        with (
            self._whole_or_nothing(
                lambda: [(state, len(frame)) for state, frame in zip(states, frames, strict=True)],
                f"writing tasks {parts[0].task.name} … {parts[-1].task.name}",
                "none of them was written and the next run writes them again",
                log,
            ),
            self.writer.engine.connect() as conn,
        ):
            if options.mode == "append":
                self._refuse_existing_keys(conn, pd.concat(frames, ignore_index=True))
            columns = [p.columns for p in parts]
            group = Group(
                frames,
                columns if all(c is not None for c in columns) else None,
                disjoint=self._disjoint(parts),
            )
            with interrupts.deferred(), conn.begin():
                counts = intervals.write_many(conn, group, commit_id)
                batches = [
                    self._log_batches(p.task.name, len(f))
                    for p, f in zip(parts, frames, strict=True)
                ]
                for part in parts:
                    if part.lease is not None:
                        part.lease.verify(conn)
                now = utcnow()
                done = [
                    dataclasses.replace(completed(state, len(frame), now), total_saved=len(frame))
                    for state, frame in zip(states, frames, strict=True)
                ]
                self.store.save_many(done, conn=conn)
        seconds = (time.perf_counter() - began) / len(parts)
        results = []
        for part, frame, state, count, batch in zip(
            parts, frames, done, counts, batches, strict=True
        ):
            self.hooks.after_commit(part.task.name, 1)
            last_key = key_text([frame[k].iat[-1] for k in spec.key]) if len(frame) else None
            self.console(log).info(
                f"Checkpoint: {len(frame)}/{len(frame)} {spec.noun} committed, "
                f"last_processed_key={last_key}"
            )
            self.hooks.after_checkpoint(part.task.name, 1)
            result = self._result(part, state, count, len(frame), batch, 1, seconds)
            results.append(dataclasses.replace(result, last_processed_key=last_key))
        return results

    def _disjoint(self, parts: Sequence[Prepared]) -> bool:
        """Whether no key can be in two of the partitions: validation pinned each one's rows to
        its own value of a key column (a trade date's rows all hold that date)."""
        for column in self.spec.key:
            values = [self.spec.checked_columns(p.task.partition).get(column) for p in parts]
            if all(values) and len(set(values)) == len(values):
                return True
        return False

    def _log_batches(self, task: str, rows: int) -> int:
        """The original script's line per saved batch of a task written whole; how many."""
        size = self.options.batch_size
        batches = 0
        for start in range(0, rows, size):
            batches += 1
            PROGRESS_LOG.info(
                f"Saved batch of {min(size, rows - start)} {self.spec.noun} "
                f"({min(start + size, rows)}/{rows})"
            )
            self.hooks.after_batch(task, batches)
        return batches

    def _write_interval(
        self,
        conn: Any,
        intervals: Any,
        chunk: pd.DataFrame,
        commit_id: str,
        last_key: str,
        state: TaskState,
        part: Prepared,
        counts: WriteCounts,
        inside: Callable[[], None],
    ) -> TaskState:
        """One checkpoint interval in one transaction (`inside` runs in it once the rows are
        sent); returns the state it checkpoints."""
        if not self.store.transactional:
            state = self._save(
                state,
                pending_commit={"id": commit_id, "last_key": last_key, "rows": len(chunk)},
            )
        try:
            with conn.begin():
                counts += intervals.write(conn, chunk, commit_id)
                inside()
                if part.lease is not None:
                    part.lease.verify(conn)
                state = dataclasses.replace(
                    state,
                    total_saved=state.total_saved + len(chunk),
                    last_processed_key=last_key,
                    pending_commit=None,
                    updated_at=utcnow(),
                )
                if self.store.transactional:
                    self.store.save(state, conn=conn)
        except sa.exc.OperationalError as error:
            # The driver's message spans lines and names no task: say what it means.
            reason = str(error.orig or error).strip().splitlines()[0]
            raise DatabaseUnavailableError(
                f"lost the target database while writing task {part.task.name} ({reason}); "
                f"the checkpoint stands at {state.last_processed_key or 'the start'} "
                "and the next run resumes from it"
            ) from error
        return state

    def _refuse_existing_keys(self, conn: Any, rows: pd.DataFrame) -> None:
        """Append promises all-or-nothing against existing rows: check every key up front."""
        with conn.begin():
            keys = rows[list(self.spec.key)]
            may = self.writer.may_hold_keys_of(conn, keys)
            existing = self.writer.existing_keys(conn, keys) if may else []
        if existing:
            shown = [key_text(k) for k in existing[:20]]
            raise AppendConflictError(self.writer.qualified_name, shown, len(existing))

    def _save(self, state: TaskState, **changes: Any) -> TaskState:
        state = dataclasses.replace(state, **changes, updated_at=utcnow())
        self.store.save(state)
        return state

    def _record_stop(self, state: TaskState, saved_this_run: int) -> None:
        """A task stopped on request at a checkpoint: saved as interrupted, its checkpoint
        kept — unless this run wrote none of it, which leaves its earlier state standing."""
        if not saved_this_run:
            return
        try:
            self._save(
                state,
                status="interrupted",
                holder=None,
                last_error=f"interrupted after {saved_this_run} rows of this run were committed",
            )
        except Exception:  # noqa: BLE001 - the checkpoint was saved with the interval
            PROGRESS_LOG.warning(f"Task {state.task_name}: could not record the interruption")

    def _record_failure(self, state: TaskState, rows: int, error: Exception, log: Log) -> None:
        """Mark the task failed without moving its checkpoint (read back: a commit may have
        landed)."""
        try:
            current = self.store.get(state.task_name) or state
            self._save(
                current,
                status="failed",
                total_errors=current.total_errors + rows,
                last_error=f"{type(error).__name__}: {error}"[:2000],
                holder=None,
                run_id=self.run.run_id,
            )
        except Exception as e:  # noqa: BLE001 - the original error matters more
            log.warning(f"Task {state.task_name}: could not record the failure: {e}")

    # -- every task of a run, in order --

    def stream(
        self,
        tasks: Sequence[Task],
        client: Source,
        leases: Sequence[Lease] | None = None,
        ahead: int | None = None,
        in_flight: int = 1,
        live: Log | None = None,
    ) -> PartitionStream:
        return PartitionStream(self, tasks, client, leases, ahead, in_flight, live)

    def console(self, log: Log) -> Log:
        """Where routine per-task lines go: the run's log for a banner job's few partitions,
        the console (the run's stdout) for a long range."""
        return log if self.banner else PROGRESS_LOG

    def write_all(
        self,
        stream: PartitionStream,
        log: Log,
        on_written: Callable[[TaskResult], None] | None = None,
    ) -> list[TaskResult]:
        """Write every partition the stream hands over, in order; the first failure stops the
        rest (and releases what was prepared ahead). A stop request ends the run at the next
        checkpoint with SyncInterrupted, counting what the run committed."""
        results: list[TaskResult] = []
        progress = None if self.banner else RunProgress(self, len(stream.tasks), log)
        # Groupable partitions waiting to be written together.
        group: list[Prepared] = []

        def written(done: list[TaskResult]) -> None:
            for result in done:
                results.append(result)
                if on_written is not None:
                    on_written(result)
                self.hooks.after_partition(len(results))
                if progress is not None:
                    progress.note(result)

        def flush() -> None:
            if group:
                taken = list(group)
                group.clear()
                written(self.write_group(taken, log))

        try:
            with stream, self.writer.session():
                for part in stream:
                    part.log.replay(log, self.console(log))
                    if part.frame is None:
                        continue
                    if interrupts.stop_requested():
                        group.append(part)  # released below, unwritten
                        raise SyncInterrupted()
                    if not self.groupable(part):
                        flush()
                        written([self.write(part, log)])
                        continue
                    if not self.fits(group, part):
                        flush()
                    group.append(part)
                    # Only what is prepared already joins: a group never waits for a fetch.
                    if not stream.ready():
                        flush()
                flush()
        except SyncInterrupted as stop:
            raise stop.plus(_committed(results), len(results), len(results)) from stop.__cause__
        except BaseException as stop:
            if not is_interrupt(stop):
                raise
            raise SyncInterrupted(_committed(results), len(results), len(results)) from stop
        finally:
            # Partitions taken from the stream but not written: their locks go, their states
            # stay as they were (nothing of them was saved).
            for part in group:
                if part.lease is not None:
                    part.lease.release()
        if progress is not None and results:
            progress.report()
        return results


def completed(state: TaskState, total: int, when: str | None = None) -> TaskState:
    """The state of a task whose `total` rows are all written: its checkpoint cleared, its
    lock's holder and last error gone."""
    when = when or utcnow()
    return dataclasses.replace(
        state,
        status="completed",
        total_fetched=total,
        last_processed_key=None,
        pending_commit=None,
        finished_at=when,
        updated_at=when,
        holder=None,
        last_error=None,
    )


def not_published_yet(
    spec: TableSpec, partition: Mapping[str, str], rows: int, today: dt.date | None
) -> str | None:
    """The trade date (YYYYMMDD) of a partition that answered no rows although its day is
    open, while that may still mean "not published yet": within the dataset's publication
    lag of `today` (Asia/Shanghai). None when the answer stands."""
    day = partition.get("trade_date")
    if rows or not day or spec.publication_lag_days is None:
        return None
    when = parse_tushare_date(day)
    now = today or shanghai_today()
    if when is None or (now - when).days > spec.publication_lag_days:
        return None
    return day


def is_interrupt(error: BaseException) -> bool:
    """Ctrl-C as Python (KeyboardInterrupt) or an orchestrator (its own BaseException) raises
    it, as opposed to an error or the interpreter's own exits."""
    return not isinstance(error, Exception | SystemExit | GeneratorExit)


def _committed(results: Sequence[TaskResult]) -> int:
    return sum(r.saved_this_run for r in results)


@dataclass
class HandOver:
    """What a fetched asset's step hands the writer (its IO manager): the job, and the stream
    of its partitions, prepared on worker threads while earlier ones are written."""

    job: SyncJob
    stream: PartitionStream
    notes: dict[str, Any] = field(default_factory=dict)
    # Each task's partition key, so its materialisation carries its own stats.
    keys: dict[str, str] = field(default_factory=dict)
    # What the writer did, task by task, once it has written.
    results: list[TaskResult] = field(default_factory=list)

    def write(
        self, log: Log, on_written: Callable[[TaskResult], None] | None = None
    ) -> list[TaskResult]:
        self.results = self.job.write_all(self.stream, log, on_written)
        return self.results

    def unpublished(self, keys: Sequence[str]) -> list[str]:
        """The partition keys (of `keys`, the run's, in task order) whose day was not
        published yet: nothing of them is complete, so there is nothing to check."""
        waiting = [r.task_name for r in self.results if r.unpublished]
        if not self.keys and len(keys) == 1:
            return list(keys) if waiting else []
        return [self.keys[t] for t in waiting if t in self.keys]


@dataclass
class SyncSummary(Totals):
    """Totals of a run's tasks, for metadata and the closing log lines."""

    table: str
    options: SyncOptions
    results: list[TaskResult]

    @property
    def counts(self) -> WriteCounts:
        total = WriteCounts()
        for r in self.results:
            total += r.counts
        return total

    def _parts(self) -> list[TaskResult]:
        return self.results

    @property
    def last_processed_key(self) -> str | None:
        keys = [r.last_processed_key for r in self.results if r.last_processed_key]
        return max(keys) if keys else None

    @property
    def resumed_from(self) -> dict[str, str]:
        return {r.task_name: r.resumed_from for r in self.results if r.resumed_from}

    @property
    def observed_caps(self) -> dict[str, int]:
        """The per-call row caps the service showed this run, by API (the lowest seen)."""
        caps: dict[str, int] = {}
        for r in self.results:
            for api, cap in r.caps.items():
                caps[api] = min(cap, caps.get(api, cap))
        return dict(sorted(caps.items()))

    def closing_lines(self) -> list[str]:
        """The original script's closing block."""
        return [
            "Synchronization Completed",
            f"Total Fetched: {self.total('total_fetched')}",
            f"Total Saved: {self.total('total_saved')}",
            f"Total Errors: {self.total('total_errors')}",
        ]


class PartitionStream:
    """Tasks prepared concurrently — locked, resumed, fetched, validated — by up to `in_flight`
    worker threads, and handed out in partition order while earlier ones are written. At most
    `in_flight + ahead` (default twice in_flight) partitions are prepared or waiting at any time
    (bounded memory: a full-market day is ~2 MB); after a failure no new task is started.
    Closing it stops the workers and releases what they hold."""

    def __init__(
        self,
        job: SyncJob,
        tasks: Sequence[Task],
        client: Source,
        leases: Sequence[Lease] | None = None,
        ahead: int | None = None,
        in_flight: int = 1,
        live: Log | None = None,
    ) -> None:
        self.job = job
        self.tasks = list(tasks)
        self.live = live
        self.leases = list(leases) if leases is not None else None
        self.skipped = 0
        self.in_flight = max(1, in_flight)
        self._stop = threading.Event()
        # Closing must not wait for workers sleeping on the rate budget: they stop with us.
        stopping = getattr(client, "stopping", None)
        self.client = stopping(self._stop) if callable(stopping) else client
        # Prepared partitions may wait for the writer as many as are fetched at once: the rate
        # budget of a window is then spent in a burst, not at the writer's pace (which would
        # also pace the next window, as slots free one window after their calls).
        self._window = self.in_flight + max(0, self.in_flight if ahead is None else ahead)
        self._pool = ThreadPoolExecutor(self.in_flight, thread_name_prefix="atm-prepare")
        self._futures: collections.deque[Future[Prepared | None]] = collections.deque()
        self._submitted = 0
        self._failed = threading.Event()
        self._skipped_lock = threading.Lock()
        self._closed = False
        self._top_up()

    def _top_up(self) -> None:
        """Start tasks in order until `in_flight + ahead` are prepared, under way or waiting."""
        while (
            self._submitted < len(self.tasks)
            and len(self._futures) < self._window
            and not (self._stop.is_set() or self._failed.is_set())
        ):
            future = self._pool.submit(self._prepare, self._submitted)
            future.add_done_callback(self._note_failure)
            self._futures.append(future)
            self._submitted += 1

    def _note_failure(self, future: Future[Prepared | None]) -> None:
        # The run stops at its first failure: later tasks would only be fetched to be dropped.
        if not future.cancelled() and future.exception() is not None:
            self._failed.set()

    def _prepare(self, index: int) -> Prepared | None:
        if self._stop.is_set() or interrupts.stop_requested():
            return None
        task = self.tasks[index]
        lease = self.leases[index] if self.leases else self.job.lock(task)
        number = "" if self.job.banner else f"[{index + 1}/{len(self.tasks)}] "
        try:
            part = self.job.prepare(task, self.client, lease, number, self.live)
        except BaseException:
            lease.release()
            raise
        if part.frame is None:
            lease.release()
            with self._skipped_lock:
                self.skipped += 1
        return part

    def __iter__(self) -> Iterator[Prepared]:
        while self._futures:
            future = self._futures.popleft()
            # Keep the workers busy while this partition is awaited and written.
            self._top_up()
            part = self._await(future)
            if part is None:  # closed meanwhile
                if interrupts.stop_requested():
                    raise SyncInterrupted()
                return
            yield part

    def ready(self) -> bool:
        """Whether the next partition is prepared (or failed) already: handing it out would not
        wait."""
        return bool(self._futures) and self._futures[0].done()

    @staticmethod
    def _await(future: Future[Prepared | None]) -> Prepared | None:
        """The future's result; a stop request ends the wait (a fetch may take minutes)."""
        while True:
            try:
                return future.result(timeout=0.2)
            except TimeoutError:
                if interrupts.stop_requested():
                    raise SyncInterrupted() from None

    def close(self) -> None:
        """Stop preparing; release the locks of tasks prepared but not written (their state
        keeps them resumable) and of leases never used."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        while self._futures:
            future = self._futures.popleft()
            if future.cancelled() or future.exception() is not None:
                continue
            item = future.result()
            if item is not None and item.lease is not None:
                item.lease.release()
        for lease in self.leases or ():
            lease.release()

    def __enter__(self) -> PartitionStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
