"""The step of every fetched asset: build the sync job, start its stream, hand it to the IO
manager (which writes it)."""

from collections.abc import Sequence
from typing import Any

from dagster import AssetExecutionContext, Config, Output
from pydantic import Field

from atm_assets.core.datasets import TableSpec
from atm_assets.core.engine import HandOver, RunChain, SyncJob, Task, load_hooks
from atm_assets.core.errors import ConfigError
from atm_assets.core.settings import check_sync_options
from atm_assets.core.staging import Staging
from atm_assets.core.state import Target
from atm_assets.resources import SyncResource
from atm_assets.tags import CONTINUES_TAG, worker_tags


class SyncConfig(Config):
    """Per-run options (launchpad, CLI). Unset fields fall back to the settings."""

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


def root_run_id(context: AssetExecutionContext) -> str:
    """The first run of this run's chain: of its re-execution chain, or the chain a rerun of an
    interrupted command continues (itself otherwise)."""
    run = context.run
    return (
        run.root_run_id
        or run.tags.get("dagster/root_run_id")
        or run.tags.get(CONTINUES_TAG)
        or run.run_id
    )


def sync_job(
    context: AssetExecutionContext, spec: TableSpec, config: SyncConfig, sync: SyncResource
) -> SyncJob:
    """Options checked, the database checked and the table ready, state store and locks."""
    if context.assets_def.partitions_def is not None and not context.partition_keys:
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
    context.instance.add_run_tags(context.run.run_id, worker_tags(context.run.run_id))
    options = check_sync_options(
        sync.options(),
        mode=config.mode,
        batch_size=config.batch_size,
        checkpoint_every=config.checkpoint_every,
        resume=config.resume,
    )
    if spec.replaces and options.mode == "append":
        raise ConfigError(
            f"{spec.name} has no natural key: each partition is replaced whole, so mode append "
            "does not apply (run it in upsert mode)"
        )
    sync.check_paths(config.use_db_state, config.state_dir)
    sync.database.check()
    writer = sync.database.writer(spec)
    writer.ensure_table()
    if spec.fetch is None:
        raise TypeError(f"{spec.name} is derived, not fetched")
    chain = root_run_id(context)
    if chain != context.run.run_id and context.run.tags.get(CONTINUES_TAG) == chain:
        context.log.info(
            f"Continuing the unfinished run {chain}: partitions it completed into this table are "
            "skipped, the one it was writing resumes from its checkpoint"
        )
    return SyncJob(
        spec=spec,
        fetch=spec.fetch,
        writer=writer,
        store=sync.state_store(config.use_db_state, config.state_dir),
        locks=sync.locks(config.use_db_state),
        options=options,
        staging=Staging(sync.staging_dir),
        target=Target(writer.table_id, writer.qualified_name, sync.database.describe()),
        run=RunChain(context.run.run_id, chain),
        hooks=load_hooks(sync.sync_hooks),
        banner=spec.title,
    )


def hand_over(
    context: AssetExecutionContext,
    job: SyncJob,
    tasks: Sequence[Task],
    sync: SyncResource,
    notes: dict[str, Any] | None = None,
    keys: Sequence[str] = (),
) -> Output[HandOver]:
    """Start preparing the partitions (up to tushare.max_in_flight at once) and hand the
    stream over; `keys` are the tasks' partition keys, in task order. A banner job (a small
    static set of partitions) takes every task's lock first, so a conflicting run fails before
    anything is fetched; long date ranges take each lock in turn."""
    leases = _lock_all(job, tasks) if job.banner else None
    client = sync.tushare.client(context.log, sync.database.target())
    stream = job.stream(
        tasks, client, leases, in_flight=sync.tushare.max_in_flight, live=context.log
    )
    sync.track(stream)
    return Output(
        HandOver(job, stream, notes or {}, task_keys(tasks, keys)),
        metadata={
            "database": sync.database.describe(),
            "state_store": job.store.describe(),
            "lock": job.locks.describe(),
        },
    )


def task_keys(tasks: Sequence[Task], keys: Sequence[str]) -> dict[str, str]:
    """Task name → partition key, when there is one key per task."""
    if len(keys) != len(tasks):
        return {}
    return {task.name: key for task, key in zip(tasks, keys, strict=True)}


def _lock_all(job: SyncJob, tasks: Sequence[Task]) -> list[Any]:
    leases = []
    try:
        for task in tasks:
            leases.append(job.lock(task))
    except BaseException:
        for lease in leases:
            lease.release()
        raise
    return leases
