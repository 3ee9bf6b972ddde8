"""Jobs: the stock_basic sync (tagged per task for the run queue) and its downstream report."""

from dagster import AssetSelection, define_asset_job
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from atm_assets.core.datasets import PUBLICATIONS, TableSpec
from atm_assets.core.engine import derive_task_name
from atm_assets.partitions import stock_basic_partition

# The run queue allows one run per value of TASK_TAG and of dagster/partition (dagster.yaml).
# A PartitionedConfig cannot add it to UI launches (Dagster refuses one next to a single-run
# backfill policy), so schedules, sensors and the controller set it and dagster/partition
# covers the rest.
from atm_assets.tags import TASK_TAG

# Datasets with an asset module and a job of their own (the original script's banner and key
# checks); the catalog's factory makes the rest.
OWN_MODULES = ("stock_basic", "trade_cal")


def stock_basic_task_tags(partition_key: str) -> dict[str, str]:
    return {TASK_TAG: derive_task_name("stock_basic", stock_basic_partition(partition_key))}


stock_basic_job = define_asset_job(
    "stock_basic_job",
    selection=AssetSelection.assets("stock_basic"),
    description="Sync Tushare stock_basic into the database, one partition per run.",
)

stock_basic_summary_job = define_asset_job(
    "stock_basic_summary_job",
    selection=AssetSelection.assets("stock_basic_summary"),
    description="Rebuild the reports that read the stock_basic table.",
)

trade_cal_job = define_asset_job(
    "trade_cal_job",
    selection=AssetSelection.assets("trade_cal"),
    description="Sync the trading calendar of each exchange.",
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


def dataset_jobs(specs: list[TableSpec]) -> list[UnresolvedAssetJobDefinition]:
    """`<name>_job` for every fetched dataset without a job of its own above."""
    return [
        define_asset_job(
            dataset_job_name(s.name),
            selection=AssetSelection.assets(s.name),
            description=f"Sync {s.name} (Tushare {s.api_name}) for the selected partitions.",
        )
        for s in specs
        if s.fetched and s.name not in OWN_MODULES
    ]


def publication_jobs(specs: list[TableSpec]) -> dict[str, UnresolvedAssetJobDefinition]:
    """Per publication time, the trade-date datasets published then (daily and adj_factor
    keep market_data_job), for the schedules."""
    jobs = {}
    for slot in PUBLICATIONS:
        names = [
            s.name
            for s in specs
            if s.publication == slot
            and s.scheme == "trade_date"
            and s.name not in ("daily", "adj_factor")
        ]
        if names:
            jobs[slot] = define_asset_job(
                f"{slot}_job",
                selection=AssetSelection.assets(*names),
                description=f"Trade-date datasets published {slot.replace('_', ' ')}: "
                + ", ".join(names),
            )
    return jobs


def late_refetch_job(specs: list[TableSpec]) -> UnresolvedAssetJobDefinition:
    names = [s.name for s in specs if s.late]
    return define_asset_job(
        "late_refetch_job",
        selection=AssetSelection.assets(*names),
        description="Re-sync the last few trade dates of datasets known to arrive late: "
        + ", ".join(names),
    )
