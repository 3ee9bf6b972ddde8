"""Run a sync job in this process against the instance, for the controller and the Python API."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from atm_assets.core import interrupts
from atm_assets.core.errors import AtmError, ConfigError
from atm_assets.core.settings import Settings
from atm_assets.outcomes import UserError, user_error
from atm_assets.runs import fail_dead_runs, worker_is_gone
from atm_assets.tags import (
    CONTINUES_TAG,
    INTERRUPTED_TAG,
    LAUNCHED_BY,
    MAX_RETRIES_TAG,
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    SELECTION_TAGS,
    TASK_TAG,
    worker_tags,
)


@dataclass
class SyncRun:
    """What a sync job run did: its id, success, the user's error and per-asset metadata;
    `interrupted` is the signal that stopped it (or arrived after it had written everything),
    `continued` the run whose chain it continued."""

    run_id: str
    success: bool
    error: UserError | None = None
    metadata: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    interrupted: int | None = None
    continued: str | None = None
    # Data checks that failed: `dataset check partition: what` lines, blocking ones first.
    failed_checks: list[str] = field(default_factory=list)
    check_warnings: list[str] = field(default_factory=list)


@contextmanager
def open_instance() -> Iterator[DagsterInstance]:
    """The instance of DAGSTER_HOME. Created one process at a time: two processes creating a
    new instance's SQLite storage at once race in Dagster's schema stamping ("UNIQUE
    constraint failed: alembic_version"), so two first controllers started together failed."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        with DagsterInstance.get() as instance:
            yield instance
        return
    # Beside Dagster's own files (.dagster/ under the project, ignored by git).
    guard_dir = Path(home) / ".dagster"
    guard_dir.mkdir(parents=True, exist_ok=True)
    with open(guard_dir / "atm-instance.lock", "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        try:
            instance = DagsterInstance.get()
        finally:
            fcntl.flock(guard, fcntl.LOCK_UN)
    with instance:
        yield instance


_LIVE_STATUSES = (
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
)


def run_outcomes(run_ids: Sequence[str]) -> dict[str, str]:
    """What became of each run the instance knows: "live", "gone" (its worker died on this
    host), or its final status in lower case ("success", "failure", "canceled")."""
    outcomes: dict[str, str] = {}
    if not run_ids:
        return outcomes
    with open_instance() as instance:
        for run_id in dict.fromkeys(run_ids):
            run = instance.get_run_by_id(run_id)
            if run is None:
                continue
            if run.status in _LIVE_STATUSES:
                outcomes[run_id] = "gone" if worker_is_gone(run) else "live"
            else:
                outcomes[run_id] = run.status.value.lower()
    return outcomes


def require_token() -> None:
    if not os.environ.get("TUSHARE_TOKEN"):
        raise ConfigError(
            "TUSHARE_TOKEN is not set: export your Tushare Pro token, or start the offline "
            "sandbox with scripts/sandbox.sh start and export what it prints"
        )


def partition_tags(keys: Sequence[str]) -> dict[str, str]:
    """One partition as dagster/partition, several as a range (one run, single-run backfill);
    none for an unpartitioned snapshot."""
    if not keys:
        return {}
    if len(keys) == 1:
        return {PARTITION_TAG: keys[0]}
    return {RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]}


def continued_chain(
    instance: DagsterInstance, job_name: str, assets: Sequence[str], tags: Mapping[str, str]
) -> str | None:
    """The chain to continue when the last run of the same selection (job, assets, partitions,
    task name) ended canceled or failed, or was interrupted after writing everything:
    rerunning the command then skips the partitions that run completed and resumes the one it
    was writing, as a re-execution would."""
    selection = {k: tags[k] for k in SELECTION_TAGS if k in tags}
    for run in instance.get_runs(RunsFilter(job_name=job_name, tags=selection or None), limit=20):
        if {k: run.tags[k] for k in SELECTION_TAGS if k in run.tags} != selection:
            continue
        if run.asset_selection is not None and {
            k.to_user_string() for k in run.asset_selection
        } != set(assets):
            continue
        unfinished = run.status in (DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE)
        if not (unfinished or run.tags.get(INTERRUPTED_TAG)):
            return None
        return run.tags.get(CONTINUES_TAG) or run.root_run_id or run.run_id
    return None


@dataclass(frozen=True)
class Selection:
    """What one sync command selects: the job, the asset and its partition keys, in order."""

    job: str
    asset: str
    keys: list[str]


# What a selection may name besides a scheme's value parameter (index_basic's market).
SELECTORS: tuple[str, ...] = (
    "exchange",
    "list_status",
    "start_date",
    "end_date",
    "start_period",
    "end_period",
    "index_code",
)
_TAKES = {
    "snapshot": (),
    "exchange": ("exchange",),
    "exchange_list_status": ("exchange", "list_status"),
    "trade_date": ("start_date", "end_date"),
    "week": ("start_date", "end_date"),
    "month": ("start_date", "end_date"),
    "period": ("start_period", "end_period"),
    "index_month": ("index_code", "start_date", "end_date"),
    "index_year": ("index_code", "start_date", "end_date"),
}


def takes(spec: Any) -> tuple[str, ...]:
    """The selection arguments a dataset's scheme takes."""
    if spec.scheme == "values":
        return (spec.value_param,)
    return _TAKES[spec.scheme]


def select(dataset: str, **selection: str | None) -> Selection:
    """The partitions a sync of `dataset` covers (any catalog dataset, `-` for `_`); "" or None
    selects every value. Every bad value is a ConfigError naming it, before anything runs."""
    from atm_assets.core.catalog import find

    spec = find(dataset)
    recent = bool(selection.pop("recent", None))
    allowed = takes(spec)
    extra = [k for k, v in selection.items() if v and k not in allowed]
    if extra:
        wanted = ", ".join(allowed) or "no selection (one snapshot)"
        raise ConfigError(f"{spec.name} takes {wanted}, not {', '.join(extra)}")
    # Imported here: partitions read the settings, which argument errors should not need.
    from atm_assets.partitions import keys_between, recent_keys, stock_basic_keys

    if recent:
        dated = [
            k for k in ("start_date", "end_date", "start_period", "end_period") if selection.get(k)
        ]
        if dated:
            raise ConfigError(
                f"--recent chooses the dates itself: drop --{dated[0].replace('_', '-')}"
            )
        from atm_assets.core.dates import shanghai_today

        keys = recent_keys(spec, shanghai_today())
        code = selection.get("index_code")
        if code:
            keys = [k for k in keys if k.startswith(f"{code}|")]
        return Selection(f"{spec.name}_job", spec.name, keys)
    if spec.scheme == "exchange_list_status":
        keys = stock_basic_keys(selection.get("exchange"), selection.get("list_status"))
    else:
        keys = keys_between(spec, dict(selection))
    return Selection(f"{spec.name}_job", spec.name, keys)


# Per-run options a door may pass (the asset's SyncConfig), besides the selection.
RUN_OPTIONS = (
    "mode",
    "batch_size",
    "checkpoint_every",
    "resume",
    "task_name",
    "use_db_state",
    "state_dir",
)


class _BelowLevel(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


def sync(
    dataset: str,
    selection: Mapping[str, str | None],
    options: Mapping[str, Any],
    *,
    launched_by: str,
    settings: Settings,
    log_level: str = "INFO",
    verbose: bool = False,
    interruptible: bool = False,
) -> tuple[Selection, SyncRun]:
    """The one way ATM's doors (controller, Python API, the original script's entry points)
    run a sync: the selection and the options checked (a ConfigError before anything runs),
    the run's config, tags and loggers built, the run executed in this process."""
    from atm_assets.core.engine import PROGRESS_LOG
    from atm_assets.core.settings import check_sync_options
    from atm_assets.core.state import validate_task_name

    unknown = sorted(set(options) - set(RUN_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown run options: {', '.join(unknown)}")
    chosen = select(dataset, **selection)
    check_sync_options(
        settings.sync,
        mode=options.get("mode"),
        batch_size=options.get("batch_size"),
        checkpoint_every=options.get("checkpoint_every"),
    )
    task_name = options.get("task_name")
    if task_name is not None:
        validate_task_name(task_name)
    resume = options.get("resume", True)
    if not isinstance(resume, bool):
        raise ConfigError(f"resume: expected True or False, got {resume!r}")
    config = {k: v for k, v in options.items() if v is not None}
    # The user reruns what the controller or the API started: the daemon does not retry it.
    tags = {LAUNCHED_BY: launched_by, MAX_RETRIES_TAG: "0"}
    if chosen.asset == "stock_basic" and len(chosen.keys) == 1:
        from atm_assets.jobs import stock_basic_task_tags

        tags.update(stock_basic_task_tags(chosen.keys[0]))
    if task_name and len(chosen.keys) == 1:
        tags[TASK_TAG] = task_name
    loggers = {
        "atm_console": {"config": {"log_level": log_level, "verbose": verbose}},
        "console": {"config": {"log_level": "CRITICAL"}},
    }
    # Per-batch lines go to stdout outside Dagster's loggers; they are INFO lines. (A filter,
    # not `disabled`: Dagster's logging setup re-enables existing loggers.)
    quiet = _BelowLevel(logging.getLevelName(log_level))
    PROGRESS_LOG.addFilter(quiet)
    try:
        run = run_sync(
            chosen.job,
            [chosen.asset],
            chosen.keys,
            config,
            tags,
            loggers,
            settings=settings,
            interruptible=interruptible,
        )
    finally:
        PROGRESS_LOG.removeFilter(quiet)
    return chosen, run


def open_resources(settings: Settings) -> Any:
    """The database and sync resources of `settings`, outside any run (state, storage)."""
    from dagster import build_resources

    from atm_assets.resources import DatabaseResource, SyncResource, TushareResource

    database = DatabaseResource.from_settings(settings.database)
    # Task state and storage need no Tushare token: none is asked for.
    tushare = TushareResource.from_settings(settings.tushare, token="")
    sync = SyncResource.from_settings(settings, tushare, database)
    return build_resources({"database": database, "sync": sync})


def state_stores(sync: Any, use_db_state: bool | None, state_dir: str | None) -> list[Any]:
    """(store, locks) pairs: the configured store first, then the other one if it holds tasks,
    so a task synced with --use-db-state is found without repeating the flag."""
    from atm_assets.core.errors import DatabaseUnavailableError

    db_first = sync.use_db_state if use_db_state is None else use_db_state
    pairs = [
        (sync.state_store(flag, state_dir), sync.locks(flag)) for flag in (db_first, not db_first)
    ]
    try:
        other_used = pairs[1][0].in_use()
    except DatabaseUnavailableError:
        other_used = False
    return pairs if other_used else pairs[:1]


def run_sync(
    job_name: str,
    assets: Sequence[str],
    keys: Sequence[str],
    config: Mapping[str, Any],
    tags: Mapping[str, str] | None = None,
    loggers: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    interruptible: bool = False,
) -> SyncRun:
    """Execute `job_name` for `assets` over the partition `keys`, in this process, recorded in
    the instance of DAGSTER_HOME (so the run shows in the UI). `config` is each asset's
    SyncConfig; `settings`, when given, replace the process's for the resources. Runs whose
    worker died on this host are marked failed first; a rerun of a selection whose last run was
    interrupted or failed continues that run's chain (unless `resume` is False).
    `interruptible`: Ctrl-C (SIGINT, SIGTERM) stops the run at its next checkpoint instead of
    raising wherever it lands; a second one ends the process at once."""
    require_token()
    # Imported here: loading the definitions costs seconds that argument errors should not pay.
    from atm_assets.definitions import definitions_for, defs

    if settings is not None:
        defs = definitions_for(settings)

    run_config: dict[str, Any] = {"ops": {a: {"config": dict(config)} for a in assets}}
    if loggers:
        run_config["loggers"] = dict(loggers)
    all_tags = {**partition_tags(keys), **worker_tags(), **(tags or {})}
    continued: list[str] = []

    def execute() -> Any:
        with open_instance() as instance:
            fail_dead_runs(instance)
            chain = continued_chain(instance, job_name, assets, all_tags)
            if chain and config.get("resume", True) is not False:
                all_tags[CONTINUES_TAG] = chain
                continued.append(chain)
            return defs.resolve_job_def(job_name).execute_in_process(
                run_config=run_config,
                instance=instance,
                tags=all_tags,
                asset_selection=[AssetKey(a) for a in assets],
                raise_on_error=False,
            )

    result, signum = interruptibly(execute) if interruptible else (execute(), None)
    if signum and result.success:
        # Every partition was written before the signal: the run succeeded, and a rerun of the
        # same command continues it (nothing left) rather than starting over.
        with open_instance() as instance:
            instance.add_run_tags(result.run_id, {INTERRUPTED_TAG: signal.Signals(signum).name})
    outcome = SyncRun(result.run_id, result.success, interrupted=signum)
    outcome.continued = continued[0] if continued else None
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE" and outcome.error is None:
            outcome.error = user_error(event.step_failure_data.error)
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            check = event.event_specific_data
            if not check.passed:
                where = f" {check.partition}" if check.partition else ""
                line = f"{check.asset_key.to_user_string()} {check.check_name}{where}: "
                line += check.description or "failed"
                (outcome.failed_checks if check.blocking else outcome.check_warnings).append(line)
    for asset in assets:
        outcome.metadata[asset] = [
            {k: getattr(v, "value", v) for k, v in m.metadata.items()}
            for m in result.asset_materializations_for_node(asset)
        ]
    if not result.success and outcome.error is None:
        outcome.error = UserError("RunFailure", "the run failed; see its event log")
    return outcome


def interruptibly(execute: Callable[[], Any]) -> tuple[Any, int | None]:
    """Run `execute` on a worker thread while this (main) thread turns SIGINT and SIGTERM into
    a stop request the sync honours at its next safe point (interrupts.request_stop): every
    committed interval stays committed and checkpointed, and Dagster records the run as
    canceled. A second signal exits at once (the next sync marks the run failed and resumes
    from the checkpoint). Returns what `execute` returned and the first signal, if any."""
    if threading.current_thread() is not threading.main_thread():
        return execute(), None
    interrupts.clear_stop()
    received: list[int] = []
    box: dict[str, Any] = {}

    def on_signal(signum: int, _frame: Any) -> None:
        if received:
            os.write(2, b"Interrupted again: stopping now, without waiting for a checkpoint\n")
            os._exit(128 + signum)
        received.append(signum)
        interrupts.request_stop()

    def work() -> None:
        # A terminal's Ctrl-C goes to the whole process group: to the processes the run starts
        # too (Dagster's compute-log `tail -F` and its watch_orphans.py, each of which would
        # print a KeyboardInterrupt traceback above the controller's one line). Blocked here,
        # SIGINT stays blocked in every process started from this thread (the mask is
        # inherited across fork and exec); this process still gets it on the main thread,
        # which stops the run. Those helpers still end with the run: Dagster terminates them
        # (SIGTERM) when the step ends, and the watcher ends the tail if this process exits
        # first. SIGTERM stays deliverable: that is how they are stopped.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            box["result"] = execute()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            box["error"] = e

    previous = {s: signal.getsignal(s) for s in interrupts.STOP_SIGNALS}
    worker = threading.Thread(target=work, name="atm-run")
    for s in interrupts.STOP_SIGNALS:
        signal.signal(s, on_signal)
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        interrupts.clear_stop()
    if "error" in box:
        raise box["error"]
    return box["result"], (received[0] if received else None)


class SyncRunError(AtmError):
    """A sync run failed for a reason that is not one of ATM's own error classes."""


def as_exception(error: UserError, run_id: str) -> AtmError:
    """The run's error as the exception class the core raised (TaskLockError, …), so a Python
    caller catches what the original script raised; its message is the user's line."""
    from atm_assets.core import errors

    cls = getattr(errors, error.cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, AtmError)):
        cls = SyncRunError
    # The classes' own constructors take structured arguments the event log no longer has.
    exc = cls.__new__(cls)
    Exception.__init__(exc, error.message)
    exc.run_id = run_id  # type: ignore[attr-defined]
    return exc
