"""Sensors: record run failures where operators look; refresh reports after stock_basic."""

from typing import Any

from dagster import (
    AssetKey,
    AssetObservation,
    DefaultSensorStatus,
    EventLogEntry,
    RunFailureSensorContext,
    RunRequest,
    SensorEvaluationContext,
    asset_sensor,
    run_failure_sensor,
)

from atm_assets.jobs import stock_basic_summary_job

FAILURE_ASSET = AssetKey("stock_basic")


def user_error_text(error: Any) -> str:
    """`Class: message` of the innermost error: Dagster wraps what the user needs to read."""
    if error is None:
        return ""
    while error.cause is not None and error.cls_name and error.cls_name.startswith("Dagster"):
        error = error.cause
    return f"{error.cls_name}: {error.message.strip()}"


def failure_record(context: RunFailureSensorContext) -> dict[str, str]:
    """What failed and why, from the run's failure event (plain strings, no secrets added)."""
    run = context.dagster_run
    error = context.failure_event.message or ""
    steps = [e.step_key for e in context.get_step_failure_events() if e.step_key]
    step_errors = [
        user_error_text(e.event_specific_data.error if e.event_specific_data else None)
        for e in context.get_step_failure_events()
    ]
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition", ""),
        "task": run.tags.get("atm/task", ""),
        "failed_steps": ", ".join(steps),
        "error": (step_errors[0] if step_errors and step_errors[0] else error)[:2000],
    }


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
    context.instance.report_runless_asset_event(
        AssetObservation(
            asset_key=FAILURE_ASSET,
            partition=record["partition"] or None,
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
def stock_basic_changed_sensor(context: SensorEvaluationContext, asset_event: EventLogEntry):  # type: ignore[no-untyped-def]
    # One request per materialising run, however many partitions it wrote.
    yield RunRequest(run_key=f"after:{asset_event.run_id}")
