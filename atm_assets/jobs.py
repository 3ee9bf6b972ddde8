"""Jobs: one per dataset, the market-data pair and its derived tables, publication slots."""

from typing import Any

from dagster import AssetSelection, define_asset_job

from atm_assets.core.datasets import PUBLICATIONS, STOCK_BASIC, TRADE_CAL, TableSpec
from atm_assets.core.engine import derive_task_name
from atm_assets.partitions import stock_basic_partition
from atm_assets.tags import TASK_TAG

# What define_asset_job returns (its class is not part of Dagster's public API).
AssetJob = Any


def stock_basic_task_tags(partition_key: str) -> dict[str, str]:
    """The run queue allows one run per value of TASK_TAG and of dagster/partition
    (dagster.yaml). A PartitionedConfig cannot add it to UI launches (Dagster refuses one next
    to a single-run backfill policy), so schedules, sensors and the doors set it."""
    return {TASK_TAG: derive_task_name("stock_basic", stock_basic_partition(partition_key))}


stock_basic_summary_job = define_asset_job(
    "stock_basic_summary_job",
    selection=AssetSelection.assets("stock_basic_summary"),
    description="Rebuild the reports that read the stock_basic table.",
)

market_data_job = define_asset_job(
    "market_data_job",
    selection=AssetSelection.assets("daily", "adj_factor"),
    description="Sync daily bars and adjustment factors for a range of trade dates in one run.",
)

market_derived_job = define_asset_job(
    "market_derived_job",
    selection=AssetSelection.assets("daily_hfq", "stock_universe"),
    description="Rebuild adjusted bars and the daily universe (with their checks) for trade dates.",
)


def dataset_job_name(name: str) -> str:
    return f"{name}_job"


def dataset_job(spec: TableSpec) -> AssetJob:
    """`<name>_job`: sync one dataset for the selected partitions."""
    return define_asset_job(
        dataset_job_name(spec.name),
        selection=AssetSelection.assets(spec.name),
        description=f"Sync {spec.name} (Tushare {spec.api_name}) for the selected partitions.",
    )


# The two the schedules name; the factory below makes the same for every other dataset.
stock_basic_job = dataset_job(STOCK_BASIC)
trade_cal_job = dataset_job(TRADE_CAL)


def dataset_jobs(specs: list[TableSpec]) -> list[AssetJob]:
    """`<name>_job` for every fetched dataset (stock_basic_job and trade_cal_job included)."""
    named = {stock_basic_job.name: stock_basic_job, trade_cal_job.name: trade_cal_job}
    return [named.get(dataset_job_name(s.name)) or dataset_job(s) for s in specs if s.fetched]


def publication_jobs(specs: list[TableSpec]) -> dict[str, AssetJob]:
    """Per publication time, the trade-date datasets published then (daily and adj_factor
    keep market_data_job; YAML datasets, which declare none, the evening's), for the
    schedules."""
    jobs = {}
    for slot in PUBLICATIONS:
        names = [
            s.name
            for s in specs
            if s.slot == slot and s.scheme == "trade_date" and s.name not in ("daily", "adj_factor")
        ]
        if names:
            jobs[slot] = define_asset_job(
                f"{slot}_job",
                selection=AssetSelection.assets(*names),
                description=f"Trade-date datasets published {slot.replace('_', ' ')}: "
                + ", ".join(names),
            )
    return jobs


def late_refetch_job(specs: list[TableSpec]) -> AssetJob:
    names = [s.name for s in specs if s.late]
    return define_asset_job(
        "late_refetch_job",
        selection=AssetSelection.assets(*names),
        description="Re-sync the last few trade dates of datasets known to arrive late: "
        + ", ".join(names),
    )
