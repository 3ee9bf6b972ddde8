"""The shared step of every Tushare table asset: lock, resume, fetch, validate, hand off."""

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack

import pandas as pd
from dagster import AssetExecutionContext, Config, Output
from pydantic import Field

from atm_assets.core.datasets import TableSpec
from atm_assets.core.sync import (
    PartitionSync,
    SyncOptions,
    TableSync,
    derive_task_name,
    mark_failed,
    start_task,
)
from atm_assets.core.tushare_client import TushareClient
from atm_assets.core.validation import validate_rows
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
    options = sync_options(config, sync)
    tasks = task_names(spec.name, partitions, config.task_name)
    database.check()
    writer = database.writer(spec)
    writer.ensure_table()
    store = sync.state_store(config.use_db_state, config.state_dir)
    locks = sync.locks(config.use_db_state)
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
            start = start_task(
                store,
                writer,
                task,
                partition,
                options,
                context.run.run_id,
                lease.holder,
                context.log,
            )
            began, calls = time.perf_counter(), client.calls
            try:
                frame = validate_rows(fetch(client, partition), spec, partition)
            except Exception as error:
                mark_failed(store, task, error, context.log)
                raise
            seconds = time.perf_counter() - began
            context.log.info(f"Fetched {len(frame)} {noun} for {task} in {seconds:.2f}s")
            parts.append(PartitionSync(start, frame, lease, seconds, client.calls - calls))
        yield Output(
            TableSync(writer, store, options, parts, noun),
            metadata={
                "database": database.describe(),
                "state_store": store.describe(),
                "lock": locks.describe(),
            },
        )
