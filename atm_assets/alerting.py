"""Alert sensors: a failed run after its last retry, failed data checks, a dataset gone stale."""

import datetime as dt
import json
from collections.abc import Iterator, Mapping

from dagster import (
    AssetCheckEvaluation,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusSensorContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from atm_assets.core.alerts import CHECK_FAILED, DATASET_STALE, RUN_FAILED, Alert, Alerter
from atm_assets.core.catalog import catalog
from atm_assets.core.freshness import FRESH, NEVER, STALE, assess_all
from atm_assets.core.settings import current, load_settings
from atm_assets.resources import DatabaseResource
from atm_assets.sensors import failure_record, worker_died
from atm_assets.tags import TASK_TAG

# Set by Dagster on a failed run when run retries are on: "true" when the daemon retries it.
WILL_RETRY_TAG = "dagster/will_retry"
RETRY_NUMBER_TAG = "dagster/retry_number"


def alerter(context: SensorEvaluationContext | RunStatusSensorContext) -> Alerter:
    # Read at each tick: a fixed webhook is live without reloading the code location.
    return Alerter(load_settings().alerts, context.log.warning)


def will_be_retried(run: DagsterRun) -> bool:
    """Dagster's run retries will launch another attempt: the failure is not final yet."""
    return run.tags.get(WILL_RETRY_TAG, "false").lower() == "true"


def run_dataset(run: DagsterRun, steps: list[str]) -> str:
    """The dataset a run was about: its failed step's asset, else its selection, else its job."""
    if steps:
        return sorted(steps)[0]
    selected = sorted(k.to_user_string() for k in run.asset_selection or [])
    return ", ".join(selected) if selected else run.job_name


def run_partitions(run: DagsterRun) -> list[str]:
    tags = run.tags
    if tags.get("dagster/partition"):
        return [tags["dagster/partition"]]
    first = tags.get("dagster/asset_partition_range_start")
    last = tags.get("dagster/asset_partition_range_end")
    return [f"{first}...{last}"] if first and last else []


def failed_checks(instance: DagsterInstance, run: DagsterRun, ui_url: str) -> list[Alert]:
    """An alert per failed asset-check evaluation of the run."""
    alerts = []
    records = instance.get_records_for_run(
        run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        evaluation = event.event_specific_data if event else None
        if not isinstance(evaluation, AssetCheckEvaluation) or evaluation.passed:
            continue
        dataset = evaluation.asset_key.to_user_string()
        partition = evaluation.partition
        detail = f": {evaluation.description}" if evaluation.description else ""
        alerts.append(
            Alert(
                event=CHECK_FAILED,
                dataset=dataset,
                message=f"Check {evaluation.check_name} of {dataset} failed"
                f"{' for ' + partition if partition else ''}{detail}",
                partitions=[partition] if partition else run_partitions(run),
                run_id=run.run_id,
                link=f"{ui_url.rstrip('/')}/runs/{run.run_id}",
            )
        )
    return alerts


@run_failure_sensor(
    name="atm_alert_run_failure_sensor",
    default_status=DefaultSensorStatus.RUNNING,
    description="Alerts (ATM_ALERT_WEBHOOK_URL, ATM_ALERT_APPRISE_URLS) on a failed run after its "
    "last retry, and on the failed data checks of a failed run.",
)
def atm_alert_run_failure_sensor(context: RunFailureSensorContext) -> None:
    send = alerter(context)
    if not send.configured:
        return
    run = context.dagster_run
    alerts = failed_checks(context.instance, run, send.settings.ui_url)
    record = failure_record(context)
    steps = [s for s in record["failed_steps"].split(", ") if s]
    if will_be_retried(run) and not steps:
        # No step failed: the run's worker died (killed, out of memory, a restart). Said once
        # for this run even though a retry takes over: a dying worker is worth knowing about.
        alerts.insert(0, worker_died(run, send.link(run.run_id, "")))
    elif will_be_retried(run):
        context.log.info(f"Run {run.run_id} failed and will be retried: no alert yet")
    else:
        attempt = int(run.tags.get(RETRY_NUMBER_TAG, "0")) + 1
        task = f" (task {run.tags[TASK_TAG]})" if run.tags.get(TASK_TAG) else ""
        alerts.insert(
            0,
            Alert(
                event=RUN_FAILED,
                dataset=run_dataset(run, steps),
                message=f"Run of {run.job_name}{task} failed on attempt {attempt}, the last: "
                f"{record['error']}",
                partitions=run_partitions(run),
                run_id=run.run_id,
                link=send.link(run.run_id, ""),
            ),
        )
    send.send_all(alerts)


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    name="atm_alert_check_sensor",
    default_status=DefaultSensorStatus.RUNNING,
    description="Alerts on the failed (non-blocking) data checks of a successful run.",
)
def atm_alert_check_sensor(context: RunStatusSensorContext) -> None:
    send = alerter(context)
    if send.configured:
        send.send_all(failed_checks(context.instance, context.dagster_run, send.settings.ui_url))


def stale_transitions(
    previous: Mapping[str, str], now: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """Datasets that turned stale since the last tick (not those stale then too)."""
    turned = [d for d, s in now.items() if s == STALE and previous.get(d) != STALE]
    return sorted(turned), dict(now)


def freshness_alert_sensor(minimum_interval_seconds: int = 300) -> SensorDefinition:
    """Judges every dataset's freshness each tick; alerts when one turns stale. The states of
    the last tick are the cursor, so a dataset stale for days alerts once."""

    @sensor(
        name="atm_freshness_alert_sensor",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Alerts when a synced dataset turns stale (controller.sh freshness).",
    )
    def _sensor(context: SensorEvaluationContext, database: DatabaseResource) -> Iterator:
        settings = current()
        grace = dt.timedelta(minutes=settings.freshness.grace_minutes)
        found = assess_all(
            list(catalog().values()),
            database.engine(),
            database.schema_name,
            dt.datetime.now(dt.UTC),
            grace,
        )
        states = {f.dataset: f.state for f in found if f.state != NEVER}
        previous = json.loads(context.cursor) if context.cursor else {}
        turned, cursor = stale_transitions(previous, states)
        send = alerter(context)
        by_name = {f.dataset: f for f in found}
        for name in turned:
            f = by_name[name]
            send.send(
                Alert(
                    event=DATASET_STALE,
                    dataset=name,
                    message=f"{name} is stale: newest held {f.held}, expected {f.expected} "
                    f"({f.behind} {f.unit} behind)",
                    partitions=[p for p in (f.expected,) if p],
                    link=send.link(None, name),
                )
            )
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        fresh = sum(s == FRESH for s in states.values())
        yield SkipReason(
            f"{fresh} fresh, {len(states) - fresh} stale; alerted {len(turned)} turned stale"
        )

    return _sensor
