"""Sensors: record run failures where operators look; notice runs whose worker died."""

from typing import Any

from dagster import (
    AssetKey,
    AssetObservation,
    DagsterRun,
    DefaultSensorStatus,
    RunFailureSensorContext,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from atm_assets.core.alerts import WORKER_DIED, Alert
from atm_assets.core.errors import ConfigError
from atm_assets.outcomes import user_error
from atm_assets.partitions import stock_basic_partition
from atm_assets.runs import fail_dead_runs
from atm_assets.tags import HOST_TAG, PID_TAG, RANGE_END_TAG, RANGE_START_TAG, TASK_TAG

FAILURE_ASSET = AssetKey("stock_basic")
# A killed run is noticed within this, and retried by the daemon on its next pass.
DEAD_RUN_INTERVAL_SECONDS = 30


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


@sensor(
    name="dead_runs_sensor",
    minimum_interval_seconds=DEAD_RUN_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Marks failed the runs whose worker process died (SIGKILL, OOM, a restart), "
    "so that run retries take them over; frees their Tushare pool slots.",
)
def dead_runs_sensor(context: SensorEvaluationContext) -> SkipReason:
    # The failure it records is what the alert sensor tells (worker_died, or run_failed when
    # no retry follows).
    dead = fail_dead_runs(context.instance)
    for run_id in dead:
        context.log.warning(f"Run {run_id}'s worker is gone: marked failed")
    return SkipReason(f"{len(dead)} dead run(s) marked failed" if dead else "no dead run")


def worker_died(run: DagsterRun, link: str) -> Alert:
    """The alert of a run whose worker died: once per run, whatever becomes of its retries."""
    selected = sorted(k.to_user_string() for k in run.asset_selection or [])
    tags = run.tags
    partition = tags.get("dagster/partition")
    first, last = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    partitions = [partition] if partition else [f"{first}...{last}"] if first and last else []
    return Alert(
        event=WORKER_DIED,
        dataset=", ".join(selected) or run.job_name,
        message=f"The worker of run {run.run_id} ({run.job_name}) died (pid "
        f"{tags.get(PID_TAG)} on {tags.get(HOST_TAG)}): the run failed; a retry takes it over and "
        "resumes from the checkpoint",
        partitions=partitions,
        run_id=run.run_id,
        link=link,
    )
