"""The sync engine: resume from a checkpoint, write in batches, checkpoint every N batches."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from atm_assets.core.datasets import TableSpec
from atm_assets.core.errors import AppendConflictError, ConfigError, StateError
from atm_assets.core.locks import Lease
from atm_assets.core.state import StateStore, TaskState, utcnow, validate_task_name
from atm_assets.core.writer import MODES, TableWriter, WriteCounts, format_keys

DEFAULT_BATCH_SIZE = 100
DEFAULT_CHECKPOINT_EVERY = 10
# A batch is also a progress step and a unit held in memory: beyond this it is a typo.
MAX_BATCH_SIZE = 1_000_000
MAX_CHECKPOINT_EVERY = 10_000

# Test hook: SIGKILL this process at a named point ("after_batch:N", "after_commit:N",
# "after_checkpoint:N", "after_partition:N" = the Nth partition of a run written), raise there
# ("raise@after_batch:N") or sleep there ("pause@…", ATM_FAULT_PAUSE_SECONDS), so tests can hit
# the exact window they mean to. Unset in production.
FAULT_ENV = "ATM_FAULT_INJECT"


PROGRESS_LOG = logging.getLogger("atm.progress")


class InjectedFault(RuntimeError):
    """Raised at a fault-injection point (tests only)."""


class Log(Protocol):
    def info(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...
    def warning(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...
    def error(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class SyncOptions:
    """How a task writes: mode, rows per batch, batches per checkpoint, resume or start over."""

    mode: str = "upsert"
    batch_size: int = DEFAULT_BATCH_SIZE
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    resume: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}: expected one of {', '.join(MODES)}")
        for name, value, top in (
            ("batch_size", self.batch_size, MAX_BATCH_SIZE),
            ("checkpoint_every", self.checkpoint_every, MAX_CHECKPOINT_EVERY),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= top:
                raise ConfigError(f"{name} must be an integer in 1..{top:,}, got {value!r}")


def derive_task_name(dataset: str, partition: Mapping[str, str | None]) -> str:
    """`<dataset>_sync_<value or all>_…`, as the original script named its tasks."""
    return "_".join([f"{dataset}_sync", *[(v or "all") for v in partition.values()]])


def encode_key(values: tuple[Any, ...]) -> str:
    return "|".join(str(v) for v in values)


def rows_after(frame: pd.DataFrame, spec: TableSpec, last_key: str | None) -> pd.DataFrame:
    """The rows still to write when resuming after `last_key` (frame sorted by key)."""
    if last_key is None:
        return frame
    if len(spec.key) == 1:
        mask = frame[spec.key[0]].astype(str) > last_key
    else:
        last = tuple(last_key.split("|"))
        mask = pd.Series(
            [tuple(map(str, r)) > last for r in frame[list(spec.key)].itertuples(False, None)],
            index=frame.index,
        )
    return frame[mask]


@dataclass
class TaskStart:
    """A task taken under its lock: the state saved as running and where writing resumes."""

    task_name: str
    dataset: str
    partition: dict[str, str]
    state: TaskState
    start_after: str | None
    resumed_from: str | None
    saved_before: int


@dataclass
class TaskResult:
    task_name: str
    partition: dict[str, str]
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
    extra: dict[str, Any] = field(default_factory=dict)


def _crash_point(point: str, count: int) -> None:
    fault = os.environ.get(FAULT_ENV)
    if not fault:
        return
    if fault == f"{point}:{count}":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == f"raise@{point}:{count}":
        raise InjectedFault(f"injected fault at {point}:{count}")
    if fault == f"pause@{point}:{count}":
        time.sleep(float(os.environ.get("ATM_FAULT_PAUSE_SECONDS", "5")))


def start_task(
    store: StateStore,
    writer: TableWriter,
    task_name: str,
    partition: Mapping[str, str],
    options: SyncOptions,
    run_id: str | None = None,
    holder: Mapping[str, Any] | None = None,
    log: Log | None = None,
    root_run_id: str | None = None,
) -> TaskStart:
    """Read the task's state (under its lock), settle any in-doubt commit, mark it running."""
    log = log or logging.getLogger("atm.sync")
    validate_task_name(task_name)
    previous = store.get(task_name)
    resume_key: str | None = None
    saved_before = 0
    if previous is not None and options.resume and previous.status != "completed":
        previous = _settle_pending(previous, store, writer, log)
        resume_key = previous.last_processed_key
        saved_before = previous.total_saved if resume_key else 0
        if previous.mode and previous.mode != options.mode and resume_key:
            log.warning(
                f"Task {task_name} was checkpointed in {previous.mode} mode; resuming in "
                f"{options.mode} mode"
            )
    if resume_key:
        log.info(
            f"Resuming task {task_name} after last_processed_key={resume_key} "
            f"({saved_before} rows already saved)"
        )
    elif previous is not None and not options.resume:
        log.info(f"Task {task_name}: resume disabled, starting over")
    now = utcnow()
    state = TaskState(
        task_name=task_name,
        status="running",
        dataset=writer.spec.name,
        partition=dict(partition),
        mode=options.mode,
        total_saved=saved_before,
        total_errors=previous.total_errors if (previous and resume_key) else 0,
        last_processed_key=resume_key,
        started_at=previous.started_at if (previous and resume_key) else now,
        updated_at=now,
        run_id=run_id,
        root_run_id=root_run_id or run_id,
        resumed_from=resume_key,
        holder={k: v for k, v in (holder or {}).items() if k != "token"} or None,
    )
    store.save(state)
    return TaskStart(
        task_name=task_name,
        dataset=writer.spec.name,
        partition=dict(partition),
        state=state,
        start_after=resume_key,
        resumed_from=resume_key,
        saved_before=saved_before,
    )


def _settle_pending(
    state: TaskState, store: StateStore, writer: TableWriter, log: Log
) -> TaskState:
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
    with writer.engine.connect() as conn:
        committed = writer.exists() and writer.commit_exists(conn, commit_id)
    if committed:
        log.info(
            f"Task {state.task_name}: the interval up to {last_key} committed before the last "
            "run stopped; moving the checkpoint forward"
        )
        state = dataclasses.replace(
            state,
            last_processed_key=last_key,
            total_saved=state.total_saved + rows,
            pending_commit=None,
        )
    else:
        state = dataclasses.replace(state, pending_commit=None)
    store.save(state)
    return state


def write_task(
    writer: TableWriter,
    store: StateStore,
    start: TaskStart,
    frame: pd.DataFrame,
    options: SyncOptions,
    lease: Lease | None = None,
    log: Log | None = None,
    noun: str = "rows",
    progress: Log | None = None,
) -> TaskResult:
    """Write the rows after the checkpoint, one transaction per checkpoint interval.

    `log` gets the task's milestones (skip, checkpoints); `progress` the line per saved batch,
    which is chatter for an event log (thousands per large sync) and belongs on a console.

    With a transactional (database) state store the checkpoint is saved in the same transaction
    as its rows. With the file store the interval's commit id is saved first as pending and the
    rows carry it, so a resumed run can tell whether that commit happened.
    """
    log = log or logging.getLogger("atm.sync")
    progress = progress or PROGRESS_LOG
    spec = writer.spec
    remaining = rows_after(frame, spec, start.start_after)
    state = start.state
    total = len(frame)
    counts = WriteCounts()
    batches = checkpoints = 0
    saved_this_run = 0
    began = time.perf_counter()
    per_interval = options.batch_size * options.checkpoint_every
    if start.start_after is not None:
        log.info(f"Skipping {total - len(remaining)} rows up to {start.start_after}")
    with writer.engine.connect() as conn:
        try_direct = True
        if len(remaining) and options.mode == "append":
            # Append promises all-or-nothing against existing rows: check every key up front.
            with conn.begin():
                keys = remaining[list(spec.key)]
                may = writer.may_hold_keys_of(conn, keys)
                existing = writer.existing_keys(conn, keys) if may else []
            if options.mode == "append" and existing:
                error = AppendConflictError(
                    writer.qualified_name, format_keys(existing[:20]), len(existing)
                )
                _record_failure(store, start.task_name, state, 0, error, log)
                raise error
        for offset in range(0, len(remaining), per_interval):
            chunk = remaining.iloc[offset : offset + per_interval]
            last_key = encode_key(tuple(chunk[list(spec.key)].iloc[-1]))
            commit_id = uuid.uuid4().hex
            if not store.transactional:
                state = dataclasses.replace(
                    state,
                    pending_commit={"id": commit_id, "last_key": last_key, "rows": len(chunk)},
                    updated_at=utcnow(),
                )
                store.save(state)
            done_before = total - len(remaining) + offset

            def on_batch(rows: int) -> None:
                nonlocal batches, done_before
                batches += 1
                done_before += rows
                progress.info(f"Saved batch of {rows} {noun} ({done_before}/{total})")
                _crash_point("after_batch", batches)

            try:
                with conn.begin():
                    written, try_direct = writer.write_interval(
                        conn,
                        chunk,
                        options.mode,
                        commit_id,
                        options.batch_size,
                        on_batch,
                        try_direct,
                    )
                    counts += written
                    if lease is not None:
                        lease.verify(conn)
                    state = dataclasses.replace(
                        state,
                        total_saved=state.total_saved + len(chunk),
                        last_processed_key=last_key,
                        pending_commit=None,
                        updated_at=utcnow(),
                    )
                    if store.transactional:
                        store.save(state, conn=conn)
            except Exception as error:
                _record_failure(store, start.task_name, state, len(chunk), error, log)
                raise
            checkpoints += 1
            saved_this_run += len(chunk)
            _crash_point("after_commit", checkpoints)
            if not store.transactional:
                store.save(state)
            log.info(
                f"Checkpoint: {state.total_saved}/{total} {noun} committed, "
                f"last_processed_key={last_key}"
            )
            _crash_point("after_checkpoint", checkpoints)
    elapsed = time.perf_counter() - began
    final_key = state.last_processed_key
    done = dataclasses.replace(
        state,
        status="completed",
        total_fetched=total,
        last_processed_key=None,
        pending_commit=None,
        finished_at=utcnow(),
        updated_at=utcnow(),
        holder=None,
        last_error=None,
    )
    store.save(done)
    return TaskResult(
        task_name=start.task_name,
        partition=start.partition,
        total_fetched=total,
        total_saved=done.total_saved,
        saved_this_run=saved_this_run,
        total_errors=done.total_errors,
        counts=counts,
        last_processed_key=final_key,
        resumed_from=start.resumed_from,
        batches=batches,
        checkpoints=checkpoints,
        write_seconds=elapsed,
    )


def _record_failure(
    store: StateStore, task_name: str, state: TaskState, rows: int, error: Exception, log: Log
) -> None:
    """Mark the task failed without moving its checkpoint (read back: a commit may have landed)."""
    try:
        current = store.get(task_name) or state
        store.save(
            dataclasses.replace(
                current,
                status="failed",
                total_errors=current.total_errors + rows,
                last_error=f"{type(error).__name__}: {error}"[:2000],
                updated_at=utcnow(),
            )
        )
    except Exception as e:  # noqa: BLE001 - the original error matters more
        log.warning(f"Task {task_name}: could not record the failure in the state store: {e}")


def mark_failed(store: StateStore, task_name: str, error: Exception, log: Log) -> None:
    """Record a failure that happened before any write (fetch or validation)."""
    state = store.get(task_name)
    if state is None:
        return
    _record_failure(store, task_name, state, 0, error, log)


@dataclass
class PartitionSync:
    """One partition ready to write: its task (taken under `lease`) and its validated rows."""

    start: TaskStart
    frame: pd.DataFrame
    lease: Lease | None
    fetch_seconds: float = 0.0
    api_calls: int = 0


def completed_in_chain(state: TaskState | None, root_run_id: str) -> bool:
    """Whether a task was completed by an earlier attempt of the same run chain (the original
    run or a re-execution of it), so a resumed backfill need not fetch it again."""
    return (
        state is not None
        and state.status == "completed"
        and state.root_run_id is not None
        and state.root_run_id == root_run_id
    )


@dataclass
class TableSync:
    """A write plan handed from an asset to the IO manager: rows, target, store and options."""

    writer: TableWriter
    store: StateStore
    options: SyncOptions
    # A list (fetched up front) or an iterator that fetches each partition when its turn comes
    # and releases its lock when the next is asked for (long backfills: one in memory at a time).
    parts: Iterable[PartitionSync]
    noun: str = "rows"
    # Filled while the parts are produced (closed days, partitions skipped): for metadata.
    notes: dict[str, Any] = field(default_factory=dict)


def run_table_sync(
    plan: TableSync, log: Log | None = None, progress: Log | None = None
) -> list[TaskResult]:
    """Write every partition of a plan, in order; the first failure stops the rest."""
    results = []
    parts = iter(plan.parts)
    try:
        for part in parts:
            result = _write_part(plan, part, log)
            results.append(result)
            _crash_point("after_partition", len(results))
    finally:
        close = getattr(parts, "close", None)
        if close is not None:
            close()  # a lazy plan releases the lock it holds
    return results


def _write_part(plan: TableSync, part: PartitionSync, log: Log | None) -> TaskResult:
    result = write_task(
        plan.writer,
        plan.store,
        part.start,
        part.frame,
        plan.options,
        part.lease,
        log,
        noun=plan.noun,
    )
    result.extra.update(fetch_seconds=part.fetch_seconds, api_calls=part.api_calls)
    return result


def summarize(results: list[TaskResult], options: SyncOptions, table: str) -> dict[str, Any]:
    """Plain-value totals for metadata and the closing log lines."""
    counts = WriteCounts()
    for r in results:
        counts += r.counts
    resumed = {r.task_name: r.resumed_from for r in results if r.resumed_from}
    last_keys = [r.last_processed_key for r in results if r.last_processed_key]
    return {
        "table": table,
        "mode": options.mode,
        "batch_size": options.batch_size,
        "checkpoint_every": options.checkpoint_every,
        "tasks": [r.task_name for r in results],
        "total_fetched": sum(r.total_fetched for r in results),
        "total_saved": sum(r.total_saved for r in results),
        "saved_this_run": sum(r.saved_this_run for r in results),
        "total_errors": sum(r.total_errors for r in results),
        "inserted": counts.inserted,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
        "last_processed_key": max(last_keys) if last_keys else None,
        "resumed_from": resumed or None,
        "batches": sum(r.batches for r in results),
        "checkpoints": sum(r.checkpoints for r in results),
        "api_calls": sum(int(r.extra.get("api_calls", 0)) for r in results),
        "fetch_seconds": round(sum(float(r.extra.get("fetch_seconds", 0)) for r in results), 3),
        "write_seconds": round(sum(r.write_seconds for r in results), 3),
    }
