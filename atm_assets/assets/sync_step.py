"""The shared step of every Tushare table asset: lock, resume, fetch, validate, hand off."""

import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from typing import Any, NamedTuple

import pandas as pd
from dagster import AssetExecutionContext, Config, Output
from pydantic import Field

from atm_assets.core.datasets import TRADE_CAL, TableSpec
from atm_assets.core.errors import ConfigError
from atm_assets.core.locks import Lease, LockManager
from atm_assets.core.market import trading_status, tushare_date
from atm_assets.core.state import StateStore
from atm_assets.core.sync import (
    PartitionSync,
    SyncOptions,
    TableSync,
    completed_in_chain,
    derive_task_name,
    mark_failed,
    start_task,
)
from atm_assets.core.tushare_client import TushareClient
from atm_assets.core.validation import validate_rows
from atm_assets.core.writer import TableWriter
from atm_assets.launch import worker_tags
from atm_assets.resources import DatabaseResource, SyncResource, TushareResource

MODE_LABELS = {"upsert": "upsert (覆盖更新)", "append": "append (追加)"}

Fetch = Callable[[TushareClient, Mapping[str, str]], pd.DataFrame]


class SyncConfig(Config):
    """Per-run options (launchpad, CLI). Unset fields fall back to the `sync` resource."""

    mode: str | None = Field(default=None, description="upsert (default) or append")
    batch_size: int | None = Field(default=None, description="Rows per saved batch (default 100)")
    checkpoint_every: int | None = Field(
        default=None, description="Batches per checkpoint, i.e. per transaction (default 10)"
    )
    resume: bool = Field(default=True, description="Continue after the saved checkpoint")
    task_name: str | None = Field(
        default=None, description="Task name (default: derived from the partition)"
    )
    use_db_state: bool | None = Field(
        default=None, description="Keep task state in the ingestion_state table"
    )
    state_dir: str | None = Field(default=None, description="Directory of task state files")


def sync_options(config: SyncConfig, sync: SyncResource) -> SyncOptions:
    return SyncOptions(
        mode=config.mode or sync.mode,
        batch_size=config.batch_size if config.batch_size is not None else sync.batch_size,
        checkpoint_every=(
            config.checkpoint_every
            if config.checkpoint_every is not None
            else sync.checkpoint_every
        ),
        resume=config.resume,
    )


def task_names(
    dataset: str, partitions: Sequence[Mapping[str, str]], given: str | None
) -> list[str]:
    """One task per partition; a given name is used as is for one partition, as a prefix else."""
    if not given:
        return [derive_task_name(dataset, p) for p in partitions]
    if len(partitions) == 1:
        return [given]
    return ["_".join([given, *p.values()]) for p in partitions]


class _Target(NamedTuple):
    options: SyncOptions
    writer: TableWriter
    store: StateStore
    locks: LockManager


def _prepare(
    context: AssetExecutionContext,
    spec: TableSpec,
    config: SyncConfig,
    sync: SyncResource,
    database: DatabaseResource,
) -> _Target:
    """Options, a ready table (the database checked first), the state store and the locks."""
    if not context.partition_keys:
        tags = context.run.tags
        selected = "...".join(
            tags.get(f"dagster/asset_partition_range_{end}", "?") for end in ("start", "end")
        )
        raise ConfigError(
            f"{spec.name}: the partition range {selected} selects no partition (is it "
            "reversed? a range runs from its first partition to its last, in the order "
            "`dagster asset list` and the UI show them)"
        )
    # Who runs this step: a run whose process died can then be marked failed (launch.py).
    context.instance.add_run_tags(context.run.run_id, worker_tags())
    options = sync_options(config, sync)
    database.check()
    writer = database.writer(spec)
    writer.ensure_table()
    store = sync.state_store(config.use_db_state, config.state_dir)
    return _Target(options, writer, store, sync.locks(config.use_db_state))


def _take_partition(
    context: AssetExecutionContext,
    plan: _Target,
    client: TushareClient,
    fetch: Fetch,
    task: str,
    partition: Mapping[str, str],
    lease: Lease,
    noun: str,
    root: str | None = None,
    label: str = "",
) -> PartitionSync:
    """Under the task's lease: mark it running (resume point), fetch and validate its rows."""
    options, writer, store, _ = plan
    start = start_task(
        store,
        writer,
        task,
        partition,
        options,
        context.run.run_id,
        lease.holder,
        context.log,
        root_run_id=root,
    )
    began, calls = time.perf_counter(), client.calls
    try:
        frame = validate_rows(fetch(client, partition), writer.spec, partition)
    except Exception as error:
        mark_failed(store, task, error, context.log)
        raise
    seconds = time.perf_counter() - began
    context.log.info(f"{label}Fetched {len(frame)} {noun} for {task} in {seconds:.2f}s")
    return PartitionSync(start, frame, lease, seconds, client.calls - calls)


def _plan_output(
    plan: _Target,
    database: DatabaseResource,
    parts: Iterable[PartitionSync],
    noun: str,
    notes: dict[str, Any] | None = None,
) -> Output[TableSync]:
    options, writer, store, locks = plan
    return Output(
        TableSync(writer, store, options, parts, noun, notes or {}),
        metadata={
            "database": database.describe(),
            "state_store": store.describe(),
            "lock": locks.describe(),
        },
    )


def sync_partitions(
    context: AssetExecutionContext,
    spec: TableSpec,
    partitions: Sequence[Mapping[str, str]],
    config: SyncConfig,
    tushare: TushareResource,
    sync: SyncResource,
    database: DatabaseResource,
    fetch: Fetch,
    title: str,
    noun: str = "rows",
) -> Iterator[Output[TableSync]]:
    """Take every task's lock (failing fast), then resume point and rows, and yield the plan.

    The locks are held until the generator resumes, i.e. until the IO manager has written the
    plan: Dagster stores an output while the step's generator is suspended at its `yield`.
    """
    plan = _prepare(context, spec, config, sync, database)
    options, _, _, locks = plan
    tasks = task_names(spec.name, partitions, config.task_name)
    with ExitStack() as held:
        leases = [held.enter_context(locks.acquire(task, context.run.run_id)) for task in tasks]
        client = tushare.client(context.log)
        parts: list[PartitionSync] = []
        for task, partition, lease in zip(tasks, partitions, leases, strict=True):
            context.log.info(title)
            context.log.info(f"Task Name: {task}")
            for name, value in partition.items():
                context.log.info(f"{name.replace('_', ' ').title()}: {value or 'All'}")
            context.log.info(f"Mode: {MODE_LABELS[options.mode]}")
            parts.append(
                _take_partition(context, plan, client, fetch, task, partition, lease, noun)
            )
        yield _plan_output(plan, database, parts, noun)


def root_run_id(context: AssetExecutionContext) -> str:
    """The first run of this run's re-execution chain (itself when it is not a re-execution)."""
    run = context.run
    return run.root_run_id or run.tags.get("dagster/root_run_id") or run.run_id


def sync_trade_dates(
    context: AssetExecutionContext,
    spec: TableSpec,
    days: Sequence[dt.date],
    config: SyncConfig,
    tushare: TushareResource,
    sync: SyncResource,
    database: DatabaseResource,
    fetch: Fetch,
    noun: str = "rows",
) -> Iterator[Output[TableSync]]:
    """Hand the IO manager a lazy plan over trade dates, for backfills of years in one run.

    Closed days (per the trade_cal table) cost no API call. Each open day is locked, resumed,
    fetched and validated only when its turn comes, and its lock is released once it is written,
    so memory, locks and connections stay those of one partition. Days an earlier attempt of
    this run chain completed are skipped, so a re-executed backfill continues where it stopped.
    """
    plan = _prepare(context, spec, config, sync, database)
    options, _, store, locks = plan
    status = trading_status(database.writer(TRADE_CAL), days)
    open_days = [d for d in days if status[d]]
    partitions = [{"trade_date": tushare_date(d)} for d in open_days]
    tasks = task_names(spec.name, partitions, config.task_name)
    run_id, root = context.run.run_id, root_run_id(context)
    client = tushare.client(context.log)
    closed = [d.isoformat() for d in days if not status[d]]
    if closed:
        context.log.info(
            f"Market closed on {len(closed)} day(s) per trade_cal ({', '.join(closed[:5])}"
            f"{', …' if len(closed) > 5 else ''}): nothing to fetch for them"
        )
    notes: dict[str, Any] = {"closed_days": len(closed), "skipped_completed": 0}

    def parts() -> Iterator[PartitionSync]:
        for number, (task, partition) in enumerate(zip(tasks, partitions, strict=True), 1):
            with locks.acquire(task, run_id) as lease:
                if config.resume and completed_in_chain(store.get(task), root):
                    notes["skipped_completed"] += 1
                    context.log.info(f"{task}: completed earlier in this run chain, skipped")
                    continue
                yield _take_partition(
                    context, plan, client, fetch, task, partition, lease, noun,
                    root=root, label=f"[{number}/{len(tasks)}] ",
                )  # fmt: skip

    context.log.info(
        f"{spec.name}: {len(days)} trade date(s), {len(open_days)} open, mode {options.mode}"
    )
    yield _plan_output(plan, database, parts(), noun, notes)
