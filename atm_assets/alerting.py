"""Alert sensors: a failed run after its last retry, failed data checks, a dataset gone stale."""

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence, Set

from dagster import (
    AssetCheckEvaluation,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusChangeRecordsFilter,
    RunStatusSensorContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from atm_assets.core.alerts import (
    CHECK_FAILED,
    DATASET_STALE,
    RUN_FAILED,
    Alert,
    Alerter,
    run_link,
)
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


def check_evaluations(instance: DagsterInstance, run_id: str) -> list[AssetCheckEvaluation]:
    """Every asset-check evaluation the run recorded, passed or failed."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    found = []
    for record in records:
        event = record.event_log_entry.dagster_event
        evaluation = event.event_specific_data if event else None
        if isinstance(evaluation, AssetCheckEvaluation):
            found.append(evaluation)
    return found


def check_id(evaluation: AssetCheckEvaluation) -> str:
    """The (dataset, check) an alert is about: `daily:no_schema_drift`."""
    return f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"


def check_transitions(
    failing: Set[str], evaluations: Sequence[AssetCheckEvaluation]
) -> tuple[dict[str, list[AssetCheckEvaluation]], set[str]]:
    """The (dataset, check)s one ended run turned failing — their failed evaluations — and the
    ones failing after it. A check failing in the run alerts unless it was failing already; one
    that only passed in the run is failing no more, so its next failure alerts again."""
    by_check: dict[str, list[AssetCheckEvaluation]] = {}
    for evaluation in evaluations:
        by_check.setdefault(check_id(evaluation), []).append(evaluation)
    now = set(failing)
    turned = {}
    for key, found in by_check.items():
        failed = [e for e in found if not e.passed]
        if not failed:
            now.discard(key)
        elif key not in now:
            turned[key] = failed
            now.add(key)
    return turned, now


def check_alert(run: DagsterRun, failed: Sequence[AssetCheckEvaluation], ui_url: str) -> Alert:
    """One alert for a check that failed in a run, on one or more partitions."""
    first = failed[0]
    dataset = first.asset_key.to_user_string()
    partitions = sorted({e.partition for e in failed if e.partition})
    where = f" for {', '.join(partitions[:5])}" if partitions else ""
    if len(partitions) > 5:
        where += f" and {len(partitions) - 5} more partition(s)"
    detail = f": {first.description}" if first.description else ""
    return Alert(
        event=CHECK_FAILED,
        dataset=dataset,
        message=f"Check {first.check_name} of {dataset} failed{where}{detail}",
        partitions=partitions or run_partitions(run),
        run_id=run.run_id,
        link=run_link(ui_url, run.run_id),
    )


@run_failure_sensor(
    name="atm_alert_run_failure_sensor",
    default_status=DefaultSensorStatus.RUNNING,
    description="Alerts (ATM_ALERT_WEBHOOK_URL, ATM_ALERT_APPRISE_URLS) on a failed run after its "
    "last retry, and on a run whose worker died.",
)
def atm_alert_run_failure_sensor(context: RunFailureSensorContext) -> None:
    send = alerter(context)
    if not send.configured:
        return
    run = context.dagster_run
    # Its failed checks are atm_alert_check_sensor's, as every ended run's.
    alerts: list[Alert] = []
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


# Ended runs read per tick, of each kind (success, failure); the rest on the next tick.
ENDED_BATCH = 100
_ENDED = (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE)


def ended_runs(instance: DagsterInstance, after: int | None) -> list[tuple[int, str]]:
    """(event storage id, run id) of the runs that ended (succeeded or failed) after the event
    `after`, oldest first; None: the newest such event alone, where a first tick starts."""
    if after is None:
        newest = [
            instance.fetch_run_status_changes(kind, limit=1, ascending=False).records
            for kind in _ENDED
        ]
        return sorted((r[0].storage_id, "") for r in newest if r)[-1:]
    streams = [
        instance.fetch_run_status_changes(
            RunStatusChangeRecordsFilter(kind, after_storage_id=after),  # type: ignore[arg-type]
            limit=ENDED_BATCH,
            ascending=True,
        ).records
        for kind in _ENDED
    ]
    # A stream cut at the batch limit bounds what is taken of the others this tick.
    horizon = min((s[-1].storage_id for s in streams if len(s) == ENDED_BATCH), default=None)
    found = [
        (r.storage_id, r.run_id)
        for stream in streams
        for r in stream
        if horizon is None or r.storage_id <= horizon
    ]
    return sorted(found)


@sensor(
    name="atm_alert_check_sensor",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Alerts on failed data checks of every ended run, once per dataset and check "
    "while it keeps failing (again after it passed in between).",
)
def atm_alert_check_sensor(context: SensorEvaluationContext) -> SkipReason:
    """Reads the runs ended since the last tick, in order; the cursor holds the last run
    event read and the (dataset, check)s failing, so a persistent warning (schema drift on
    every day's run) alerts once, not on every run."""
    state = json.loads(context.cursor) if context.cursor else {}
    after: int | None = state.get("after")
    failing: set[str] = set(state.get("failing", []))
    send = alerter(context)
    alerts: list[Alert] = []
    ended = ended_runs(context.instance, after)
    for storage_id, run_id in ended:
        after = storage_id
        run = context.instance.get_run_by_id(run_id) if run_id else None
        if run is None:
            continue
        turned, failing = check_transitions(
            failing, check_evaluations(context.instance, run.run_id)
        )
        alerts += [check_alert(run, found, send.settings.ui_url) for found in turned.values()]
    if send.configured:
        send.send_all(alerts)
    context.update_cursor(json.dumps({"after": after, "failing": sorted(failing)}))
    return SkipReason(
        f"{len(ended)} ended run(s) read; alerted {len(alerts)} check(s) turned failing; "
        f"{len(failing)} failing"
    )


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
