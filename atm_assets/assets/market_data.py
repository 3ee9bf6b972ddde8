"""Market data from Tushare: trading calendar per exchange, daily bars, adjustment factors."""

import datetime as dt
from collections.abc import Iterator, Mapping

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    Output,
    SpecificPartitionsPartitionMapping,
    asset,
)

from atm_assets.assets.stock_basic import table_metadata
from atm_assets.assets.sync_step import SyncConfig, sync_partitions, sync_trade_dates
from atm_assets.core.datasets import ADJ_FACTOR, DAILY, EXCHANGES, TRADE_CAL, TableSpec
from atm_assets.core.market import CALENDAR_EXCHANGE
from atm_assets.core.sync import TableSync
from atm_assets.core.tushare_client import TushareClient
from atm_assets.partitions import (
    market_start,
    trade_cal_partitions,
    trade_date_of,
    trade_date_partitions,
)
from atm_assets.resources import DatabaseResource, SyncResource, TushareResource

# Daily bars need the calendar that says which days are open: the SSE one.
CALENDAR_DEP = AssetDep(
    "trade_cal", partition_mapping=SpecificPartitionsPartitionMapping([CALENDAR_EXCHANGE])
)


def calendar_range(today: dt.date | None = None) -> tuple[str, str]:
    """From January 1st of the market start year to the end of next year (Tushare publishes the
    coming holidays ahead), as Tushare dates."""
    today = today or dt.date.today()
    first = dt.date.fromisoformat(market_start()).replace(month=1, day=1)
    return first.strftime("%Y%m%d"), f"{today.year + 1}1231"


def fetch_trade_cal(client: TushareClient, partition: Mapping[str, str]) -> pd.DataFrame:
    start, end = calendar_range()
    return client.query_all(
        TRADE_CAL.api_name,
        TRADE_CAL.fields,
        exchange=partition["exchange"],
        start_date=start,
        end_date=end,
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
    context: AssetExecutionContext,
    config: SyncConfig,
    tushare: TushareResource,
    sync: SyncResource,
    database: DatabaseResource,
) -> Iterator[Output[TableSync]]:
    """Tushare trade_cal: every calendar day of an exchange, open or closed."""
    partitions = [{"exchange": k} for k in sorted(context.partition_keys, key=EXCHANGES.index)]
    yield from sync_partitions(
        context,
        TRADE_CAL,
        partitions,
        config,
        tushare,
        sync,
        database,
        fetch_trade_cal,
        title="Trading Calendar Synchronization Task",
        noun="days",
    )


def trade_date_asset(spec: TableSpec, noun: str, description: str) -> AssetsDefinition:
    """A Tushare API queried with `trade_date=…`, one trade date per partition."""

    def fetch(client: TushareClient, partition: Mapping[str, str]) -> pd.DataFrame:
        return client.query_all(spec.api_name, spec.fields, trade_date=partition["trade_date"])

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
        context: AssetExecutionContext,
        config: SyncConfig,
        tushare: TushareResource,
        sync: SyncResource,
        database: DatabaseResource,
    ) -> Iterator[Output[TableSync]]:
        days = sorted(trade_date_of(k) for k in context.partition_keys)
        yield from sync_trade_dates(
            context, spec, days, config, tushare, sync, database, fetch, noun=noun
        )

    return sync_trade_date_table


daily = trade_date_asset(
    DAILY, "bars", "Tushare daily bars (unadjusted) of every stock, one trade date per partition."
)
adj_factor = trade_date_asset(
    ADJ_FACTOR,
    "factors",
    "Tushare adj_factor: cumulative adjustment factors, one trade date per partition.",
)
