"""The trading calendar from Tushare, one partition per exchange."""

from dagster import AssetExecutionContext, BackfillPolicy, Output, asset

from atm_assets.assets.metadata import table_metadata
from atm_assets.assets.sync_step import SyncConfig, hand_over, sync_job
from atm_assets.core.datasets import EXCHANGES, TRADE_CAL
from atm_assets.core.engine import HandOver
from atm_assets.partitions import trade_cal_partitions
from atm_assets.resources import SyncResource


@asset(
    partitions_def=trade_cal_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    io_manager_key="table_io_manager",
    group_name=TRADE_CAL.group,
    kinds={"tushare", "sql"},
    metadata=table_metadata(TRADE_CAL),
)
def trade_cal(
    context: AssetExecutionContext, config: SyncConfig, sync: SyncResource
) -> Output[HandOver]:
    """Tushare trade_cal: every calendar day of an exchange, open or closed."""
    keys = sorted(context.partition_keys, key=EXCHANGES.index)
    job = sync_job(context, TRADE_CAL, config, sync)
    tasks = job.tasks([{"exchange": k} for k in keys], config.task_name)
    return hand_over(context, job, tasks, sync, keys=keys)
