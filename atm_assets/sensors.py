"""Sensors: record run failures where operators look; refresh what reads fresher upstream data."""

from collections.abc import Sequence
from typing import Any

from dagster import (
    AssetKey,
    AssetObservation,
    AssetRecordsFilter,
    DagsterInstance,
    DefaultSensorStatus,
    EventLogEntry,
    RunFailureSensorContext,
    RunRequest,
    SensorEvaluationContext,
    asset_sensor,
    run_failure_sensor,
    sensor,
)

from atm_assets.core.errors import ConfigError
from atm_assets.jobs import market_derived_job, stock_basic_summary_job
from atm_assets.outcomes import user_error
from atm_assets.partitions import stock_basic_partition, trade_date_partitions
from atm_assets.tags import TASK_TAG

FAILURE_ASSET = AssetKey("stock_basic")


def user_error_text(error: Any) -> str:
    """`Class: message` of the innermost error: Dagster wraps what the user needs to read."""
    found = user_error(error)
    return f"{found.cls_name}: {found.message}" if found else ""


def failure_record(context: RunFailureSensorContext) -> dict[str, str]:
    """What failed and why, from the run's failure event (plain strings, no secrets added)."""
    run = context.dagster_run
    error = context.failure_event.message or ""
    steps = [e.step_key for e in context.get_step_failure_events() if e.step_key]
    step_errors = [
        user_error_text(e.step_failure_data.error) for e in context.get_step_failure_events()
    ]
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition", ""),
        "task": run.tags.get(TASK_TAG, ""),
        "failed_steps": ", ".join(steps),
        "error": (step_errors[0] if step_errors and step_errors[0] else error)[:2000],
    }


def failure_target(context: RunFailureSensorContext, partition: str) -> tuple[AssetKey, str | None]:
    """The asset to record a failure on: the first failed step's asset (steps are named after
    their assets), else the run's selection; stock_basic only as the last resort, and then
    only with a partition key that is one of its own."""
    steps = sorted(e.step_key for e in context.get_step_failure_events() if e.step_key)
    if steps:
        return AssetKey(steps[0]), partition or None
    selected = sorted(context.dagster_run.asset_selection or [], key=lambda k: k.to_user_string())
    if selected:
        return selected[0], partition or None
    try:
        stock_basic_partition(partition)
    except ConfigError:
        return FAILURE_ASSET, None
    return FAILURE_ASSET, partition


@run_failure_sensor(
    name="atm_run_failure_sensor",
    default_status=DefaultSensorStatus.RUNNING,
    description="Logs every failed run and records it as an observation of stock_basic.",
)
def atm_run_failure_sensor(context: RunFailureSensorContext) -> None:
    record = failure_record(context)
    context.log.error(
        f"Run {record['run_id']} of {record['job']} failed"
        f"{' for ' + record['partition'] if record['partition'] else ''}: {record['error']}"
    )
    asset, partition = failure_target(context, record["partition"])
    context.instance.report_runless_asset_event(
        AssetObservation(
            asset_key=asset,
            partition=partition,
            metadata={f"failure_{k}": v for k, v in record.items()},
        )
    )


@asset_sensor(
    asset_key=AssetKey("stock_basic"),
    job=stock_basic_summary_job,
    name="stock_basic_changed_sensor",
    default_status=DefaultSensorStatus.RUNNING,
    description="After stock_basic is materialised, rebuild what reads it.",
)
def stock_basic_changed_sensor(context: SensorEvaluationContext, asset_event: EventLogEntry):
    # One request per materialising run, however many partitions it wrote.
    yield RunRequest(run_key=f"after:{asset_event.run_id}")


UPSTREAM = (AssetKey("daily"), AssetKey("adj_factor"))
DERIVED = (AssetKey("daily_hfq"), AssetKey("stock_universe"))
PAGE = 1000


def _latest_by_partition(
    instance: DagsterInstance,
    keys: Sequence[AssetKey],
    after: int | None = None,
    partitions: Sequence[str] | None = None,
) -> tuple[dict[str, int], int]:
    """Newest materialisation storage id per partition over `keys`, and the newest id seen."""
    latest: dict[str, int] = {}
    newest = after or 0
    for key in keys:
        cursor = None
        while True:
            result = instance.fetch_materializations(
                AssetRecordsFilter(key, asset_partitions=partitions, after_storage_id=after),
                limit=PAGE,
                cursor=cursor,
                ascending=True,
            )
            for record in result.records:
                partition = record.partition_key
                newest = max(newest, record.storage_id)
                if partition is not None:
                    latest[partition] = max(latest.get(partition, 0), record.storage_id)
            if not result.has_more:
                break
            cursor = result.cursor
    return latest, newest


def stale_partitions(instance: DagsterInstance, after: int | None) -> tuple[list[str], int]:
    """Trade dates whose daily or adj_factor changed after `after` and whose derived tables are
    older than that change (or missing); and the newest upstream storage id seen."""
    changed, newest = _latest_by_partition(instance, UPSTREAM, after)
    if not changed:
        return [], newest
    fresh: dict[str, int] = {}
    for key in DERIVED:
        done, _ = _latest_by_partition(instance, [key], min(changed.values()) - 1, list(changed))
        for partition in changed:
            # Stale if any derived asset is older than the upstream change.
            fresh[partition] = min(fresh.get(partition, 1 << 62), done.get(partition, 0))
    stale = [p for p, upstream in changed.items() if fresh.get(p, 0) < upstream]
    return sorted(stale), newest


def contiguous_ranges(keys: Sequence[str]) -> list[tuple[str, str]]:
    """Runs of consecutive trade-date partition keys, so each range is one run."""
    order = {k: i for i, k in enumerate(trade_date_partitions.get_partition_keys())}
    ranges: list[tuple[str, str]] = []
    previous = None
    for key in sorted(k for k in keys if k in order):
        if ranges and previous is not None and order[key] == order[previous] + 1:
            ranges[-1] = (ranges[-1][0], key)
        else:
            ranges.append((key, key))
        previous = key
    return ranges


@sensor(
    job=market_derived_job,
    name="market_data_stale_sensor",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Rebuilds adjusted bars and the universe for trade dates whose inputs changed.",
)
def market_data_stale_sensor(context: SensorEvaluationContext):
    after = int(context.cursor) if context.cursor else None
    stale, newest = stale_partitions(context.instance, after)
    for start, end in contiguous_ranges(stale):
        tags = {
            "dagster/asset_partition_range_start": start,
            "dagster/asset_partition_range_end": end,
        }
        yield RunRequest(run_key=f"stale:{start}:{end}:{newest}", tags=tags)
    if newest != (after or 0):
        context.update_cursor(str(newest))
