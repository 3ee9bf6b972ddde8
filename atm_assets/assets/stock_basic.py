"""`stock_basic`: Tushare's list of A-share stocks, one partition per exchange × list status."""

from collections.abc import Iterator, Mapping

import pandas as pd
from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    Output,
    TableColumn,
    TableSchema,
    asset,
)

from atm_assets.assets.sync_step import SyncConfig, sync_partitions
from atm_assets.core.datasets import EXCHANGES, LIST_STATUSES, STOCK_BASIC, TableSpec
from atm_assets.core.sync import TableSync
from atm_assets.core.tushare_client import TushareClient
from atm_assets.io_managers import DATASET_KEY
from atm_assets.partitions import stock_basic_partition, stock_basic_partitions
from atm_assets.resources import DatabaseResource, SyncResource, TushareResource


def table_metadata(spec: TableSpec) -> dict:
    return {
        DATASET_KEY: spec.name,
        "dagster/table_name": spec.name,
        "dagster/column_schema": TableSchema(
            columns=[
                TableColumn(c.name, {"str": "text", "date": "date"}.get(c.type, c.type))
                for c in spec.columns
            ]
        ),
        "primary_key": ", ".join(spec.key),
        "tushare_api": spec.api_name,
    }


def fetch_stock_basic(client: TushareClient, partition: Mapping[str, str]) -> pd.DataFrame:
    return client.query_all(
        STOCK_BASIC.api_name,
        STOCK_BASIC.fields,
        exchange=partition["exchange"],
        list_status=partition["list_status"],
    )


@asset(
    partitions_def=stock_basic_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    io_manager_key="table_io_manager",
    group_name="tushare",
    kinds={"tushare", "sql"},
    metadata=table_metadata(STOCK_BASIC),
)
def stock_basic(
    context: AssetExecutionContext,
    config: SyncConfig,
    tushare: TushareResource,
    sync: SyncResource,
    database: DatabaseResource,
) -> Iterator[Output[TableSync]]:
    """Tushare stock_basic (all 17 fields), upserted into table stock_basic by partition."""
    tagged = context.run.tags.get("dagster/partition")
    if tagged is not None:
        # Dagster accepts "L|SSE" as a tag and then fails obscurely; name the problem first.
        stock_basic_partition(tagged)
    partitions = sorted(
        (stock_basic_partition(k) for k in context.partition_keys),
        key=lambda p: (EXCHANGES.index(p["exchange"]), LIST_STATUSES.index(p["list_status"])),
    )
    yield from sync_partitions(
        context,
        STOCK_BASIC,
        partitions,
        config,
        tushare,
        sync,
        database,
        fetch_stock_basic,
        title="Stock Basic Information Synchronization Task",
        noun="stocks",
    )
