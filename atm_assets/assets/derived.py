"""Derived market tables with data-quality checks: adjusted bars and the daily listed universe."""

from collections.abc import Iterator

import pandas as pd
from dagster import (
    AllPartitionMapping,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    BackfillPolicy,
    MetadataValue,
    Output,
    asset,
)

from atm_assets.assets.metadata import table_metadata
from atm_assets.automation import after_inputs
from atm_assets.core.datasets import DAILY_HFQ, STOCK_UNIVERSE
from atm_assets.core.market import (
    CheckOutcome,
    adjust_bars,
    check_codes_known,
    check_high_not_below_low,
    check_no_null_prices,
    check_unique_keys,
    listed_universe,
)
from atm_assets.partitions import trade_date_partitions

HFQ_CHECKS = ("unique_keys", "no_null_prices", "high_not_below_low")
UNIVERSE_CHECKS = ("unique_keys", "ts_code_in_stock_basic")


def check_result(outcome: CheckOutcome) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=outcome.name,
        passed=outcome.passed,
        severity=AssetCheckSeverity.ERROR,
        description=outcome.description,
        metadata={
            "failed_rows": outcome.failed_rows,
            "sample_keys": MetadataValue.json(outcome.sample),
        },
    )


def _specs(asset_name: str, names: tuple[str, ...]) -> list[AssetCheckSpec]:
    return [AssetCheckSpec(name, asset=asset_name) for name in names]


def _day_counts(frame: pd.DataFrame) -> dict:
    return {
        "rows": len(frame),
        "trade_dates": int(frame["trade_date"].nunique()) if len(frame) else 0,
        "dagster/row_count": len(frame),
    }


@asset(
    partitions_def=trade_date_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    io_manager_key="table_io_manager",
    group_name="derived",
    kinds={"pandas", "sql"},
    metadata=table_metadata(DAILY_HFQ),
    ins={"daily": AssetIn(), "adj_factor": AssetIn()},
    check_specs=_specs("daily_hfq", HFQ_CHECKS),
    automation_condition=after_inputs(),
)
def daily_hfq(
    context: AssetExecutionContext, daily: pd.DataFrame, adj_factor: pd.DataFrame
) -> Iterator[Output[pd.DataFrame] | AssetCheckResult]:
    """Backward-adjusted (后复权) daily bars: prices × adj_factor, per trade date."""
    frame = adjust_bars(daily, adj_factor)
    yield Output(frame, metadata=_day_counts(frame))
    key = list(DAILY_HFQ.key)
    for outcome in (
        check_unique_keys(frame, key),
        check_no_null_prices(frame, key),
        check_high_not_below_low(frame, key),
    ):
        yield check_result(outcome)


@asset(
    partitions_def=trade_date_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    io_manager_key="table_io_manager",
    group_name="derived",
    kinds={"pandas", "sql"},
    metadata=table_metadata(STOCK_UNIVERSE),
    ins={"stock_basic": AssetIn(partition_mapping=AllPartitionMapping()), "daily": AssetIn()},
    check_specs=_specs("stock_universe", UNIVERSE_CHECKS),
    # The whole stock list is read for every day: its updates do not rebuild every day.
    automation_condition=after_inputs(ignore=["stock_basic"]),
)
def stock_universe(
    context: AssetExecutionContext, stock_basic: pd.DataFrame, daily: pd.DataFrame
) -> Iterator[Output[pd.DataFrame] | AssetCheckResult]:
    """The stocks that traded each day, with their listing facts from stock_basic."""
    frame = listed_universe(stock_basic, daily)
    yield Output(frame, metadata=_day_counts(frame))
    key = list(STOCK_UNIVERSE.key)
    yield check_result(check_unique_keys(frame, key))
    yield check_result(check_codes_known(frame, stock_basic["ts_code"], key))
