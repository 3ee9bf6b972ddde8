"""Market data from Tushare: trading calendar per exchange, daily bars, adjustment factors."""

from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    Output,
    SpecificPartitionsPartitionMapping,
    asset,
)

from atm_assets.assets.metadata import table_metadata
from atm_assets.assets.sync_step import SyncConfig, SyncHandOver, hand_over, sync_job
from atm_assets.core.datasets import ADJ_FACTOR, DAILY, EXCHANGES, TRADE_CAL, TableSpec
from atm_assets.core.dates import tushare_date
from atm_assets.core.market import CALENDAR_EXCHANGE, trading_status
from atm_assets.partitions import trade_cal_partitions, trade_date_of, trade_date_partitions
from atm_assets.resources import SyncResource

# Daily bars need the calendar that says which days are open: the SSE one.
CALENDAR_DEP = AssetDep(
    "trade_cal", partition_mapping=SpecificPartitionsPartitionMapping([CALENDAR_EXCHANGE])
)


@asset(
    partitions_def=trade_cal_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    io_manager_key="table_io_manager",
    group_name="tushare",
    kinds={"tushare", "sql"},
    metadata=table_metadata(TRADE_CAL),
)
def trade_cal(
    context: AssetExecutionContext, config: SyncConfig, sync: SyncResource
) -> Output[SyncHandOver]:
    """Tushare trade_cal: every calendar day of an exchange, open or closed."""
    partitions = [{"exchange": k} for k in sorted(context.partition_keys, key=EXCHANGES.index)]
    job = sync_job(context, TRADE_CAL, config, sync)
    return hand_over(context, job, job.tasks(partitions, config.task_name), sync)


def trade_date_asset(spec: TableSpec, description: str) -> AssetsDefinition:
    """A Tushare API queried with `trade_date=…`, one trade date per partition. Closed days
    (per the trade_cal table) cost no API call."""

    @asset(
        name=spec.name,
        description=description,
        partitions_def=trade_date_partitions,
        backfill_policy=BackfillPolicy.single_run(),
        io_manager_key="table_io_manager",
        group_name="tushare",
        kinds={"tushare", "sql"},
        metadata=table_metadata(spec),
        deps=[CALENDAR_DEP],
    )
    def sync_trade_date_table(
        context: AssetExecutionContext, config: SyncConfig, sync: SyncResource
    ) -> Output[SyncHandOver]:
        days = sorted(trade_date_of(k) for k in context.partition_keys)
        job = sync_job(context, spec, config, sync)
        status = trading_status(sync.database.writer(TRADE_CAL), days)
        closed = [d.isoformat() for d in days if not status[d]]
        if closed:
            context.log.info(
                f"Market closed on {len(closed)} day(s) per trade_cal ({', '.join(closed[:5])}"
                f"{', …' if len(closed) > 5 else ''}): nothing to fetch for them"
            )
        partitions = [{"trade_date": tushare_date(d)} for d in days if status[d]]
        context.log.info(
            f"{spec.name}: {len(days)} trade date(s), {len(partitions)} open, "
            f"mode {job.options.mode}"
        )
        tasks = job.tasks(partitions, config.task_name)
        return hand_over(context, job, tasks, sync, notes={"closed_days": len(closed)})

    return sync_trade_date_table


daily = trade_date_asset(
    DAILY, "Tushare daily bars (unadjusted) of every stock, one trade date per partition."
)
adj_factor = trade_date_asset(
    ADJ_FACTOR, "Tushare adj_factor: cumulative adjustment factors, one trade date per partition."
)
