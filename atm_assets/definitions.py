"""The code location: assembles assets, checks, jobs, schedules, sensors and resources."""

from collections.abc import Mapping
from typing import Any

from dagster import (
    Definitions,
    FilesystemIOManager,
    colored_console_logger,
    in_process_executor,
)

from atm_assets.alerting import (
    atm_alert_check_sensor,
    atm_alert_run_failure_sensor,
    freshness_alert_sensor,
)
from atm_assets.assets.derived import daily_hfq, stock_universe
from atm_assets.assets.exports import export_assets
from atm_assets.assets.fetched import catalog_assets
from atm_assets.assets.summary import stock_basic_summary
from atm_assets.automation import automation_sensor
from atm_assets.core.catalog import catalog_for, datasets_file
from atm_assets.core.datasets import TableSpec
from atm_assets.core.settings import Settings, current
from atm_assets.freshness_policies import with_freshness
from atm_assets.io_managers import TableIOManager
from atm_assets.jobs import (
    dataset_jobs,
    late_refetch_job,
    market_data_job,
    market_derived_job,
    publication_jobs,
    stock_basic_summary_job,
)
from atm_assets.loggers import atm_console_logger
from atm_assets.resources import DatabaseResource, SyncResource, TushareResource
from atm_assets.schedules import (
    catalog_schedules,
    daily_stock_basic_schedule,
    market_close_schedule,
)
from atm_assets.sensors import atm_run_failure_sensor, dead_runs_sensor
from atm_assets.user_assets import load_user_assets

# Alerts (alerting.py): failed runs after their last retry, failed checks, datasets gone stale.
ALERT_SENSORS = [atm_alert_run_failure_sensor, atm_alert_check_sensor, freshness_alert_sensor()]


def build_resources(settings: Settings) -> dict[str, Any]:
    """The one place that decides which database, stores and endpoint a deployment uses."""
    tushare = TushareResource.from_settings(settings.tushare)
    database = DatabaseResource.from_settings(settings.database)
    declared = datasets_file(settings)
    tables = TableIOManager(database=database, datasets_file=str(declared) if declared else None)
    return {
        "tushare": tushare,
        "database": database,
        "sync": SyncResource.from_settings(settings, tushare, database),
        "table_io_manager": tables,
        # Users' assets (and the summary report) that return a DataFrame get a table too.
        "io_manager": tables,
        "fs_io_manager": FilesystemIOManager(),
    }


def build_definitions(
    settings: Settings, catalog: Mapping[str, TableSpec] | None = None
) -> Definitions:
    """The code location for `settings`: every catalog dataset (the user's too) as an asset
    with its job and schedule; the Python API builds one for its own overrides. `catalog`:
    the datasets their file declares, when the caller has read it already."""
    specs = list((catalog if catalog is not None else catalog_for(settings)).values())
    per_dataset = dataset_jobs(specs)
    by_dataset = {j.name.removesuffix("_job"): j for j in per_dataset}
    slots = publication_jobs(specs)
    refetch = late_refetch_job(specs)
    fetched = with_freshness(catalog_assets(specs), specs, settings)
    own = [*fetched, stock_basic_summary, daily_hfq, stock_universe]
    own += export_assets(specs, settings.export.dir)
    taken = [k.to_user_string() for a in own for k in a.keys]
    partitions = {s.key: s.partitions_def for a in own for s in a.specs}
    user_assets, user_checks = load_user_assets(settings.extensions.user_assets, taken, partitions)
    return Definitions(
        assets=[*own, *user_assets],
        jobs=[
            stock_basic_summary_job,
            market_data_job,
            market_derived_job,
            *per_dataset,
            *slots.values(),
            refetch,
        ],
        asset_checks=user_checks,
        schedules=[
            daily_stock_basic_schedule,
            market_close_schedule,
            *catalog_schedules(specs, slots, refetch, by_dataset),
        ],
        sensors=[
            atm_run_failure_sensor,
            dead_runs_sensor,
            automation_sensor(),
            *ALERT_SENSORS,
        ],
        resources=build_resources(settings),
        loggers={"console": colored_console_logger, "atm_console": atm_console_logger},
        # One step per partition run: a process per step would cost seconds and buy nothing.
        executor=in_process_executor,
    )


# What `defs` is built from: the settings and the datasets their file declared then.
_BUILT_FROM = (current(), catalog_for(current()))
defs = build_definitions(*_BUILT_FROM)


def definitions_for(settings: Settings) -> Definitions:
    """The code location for `settings`: the module's own when they are the process's settings
    and their datasets file still declares the same datasets (a run then spares rebuilding ~30
    datasets' assets, jobs and schedules, ~0.3 s), else built for them."""
    catalog = catalog_for(settings)
    if (settings, catalog) == _BUILT_FROM:
        return defs
    return build_definitions(settings, catalog)
