"""`stock_basic`: Tushare's list of A-share stocks, one partition per exchange × list status."""

from dagster import AssetExecutionContext, BackfillPolicy, Output, asset

from atm_assets.assets.metadata import table_metadata
from atm_assets.assets.sync_step import SyncConfig, hand_over, sync_job
from atm_assets.core.datasets import EXCHANGES, LIST_STATUSES, STOCK_BASIC
from atm_assets.core.engine import HandOver
from atm_assets.partitions import stock_basic_partition, stock_basic_partitions
from atm_assets.resources import SyncResource


@asset(
    partitions_def=stock_basic_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    io_manager_key="table_io_manager",
    group_name=STOCK_BASIC.group,
    kinds={"tushare", "sql"},
    metadata=table_metadata(STOCK_BASIC),
)
def stock_basic(
    context: AssetExecutionContext, config: SyncConfig, sync: SyncResource
) -> Output[HandOver]:
    """Tushare stock_basic (all 17 fields), upserted into table stock_basic by partition."""
    tagged = context.run.tags.get("dagster/partition")
    if tagged is not None:
        # Dagster accepts "L|SSE" as a tag and then fails obscurely; name the problem first.
        stock_basic_partition(tagged)
    selected = sorted(
        ((stock_basic_partition(k), k) for k in context.partition_keys),
        key=lambda pk: (
            EXCHANGES.index(pk[0]["exchange"]),
            LIST_STATUSES.index(pk[0]["list_status"]),
        ),
    )
    job = sync_job(context, STOCK_BASIC, config, sync)
    tasks = job.tasks([p for p, _ in selected], config.task_name)
    return hand_over(context, job, tasks, sync, keys=[k for _, k in selected])
