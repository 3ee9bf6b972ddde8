"""Runs whose worker died: told apart from live ones, marked failed, their pool slots freed."""

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from atm_assets.core.errors import is_permanent
from atm_assets.core.processes import gone
from atm_assets.tags import HOST_TAG, NO_RETRY_TAGS, PID_TAG, WORKER_RUN_TAG


def worker_is_gone(run: DagsterRun) -> bool:
    """The run's worker (the process that ran its step, per its tags) is gone from this host.
    Tags a retry inherited from its parent say nothing about the retry's own worker."""
    if run.tags.get(WORKER_RUN_TAG, run.run_id) != run.run_id:
        return False
    return gone(run.tags.get(HOST_TAG), run.tags.get(PID_TAG))


def fail_dead_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed the runs whose worker died on this host (SIGKILL, OOM, power loss): Dagster's
    default run launcher cannot tell, and would show them started forever. Their Tushare pool
    slots are freed, and the daemon's run retries take them from there (the retry resumes from
    the checkpoint). Returns their run ids."""
    dead = []
    for run in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        if worker_is_gone(run):
            instance.report_run_failed(
                run,
                message=f"the run's process (pid {run.tags[PID_TAG]} on {run.tags[HOST_TAG]}) "
                "is gone: it was killed or the machine stopped; ATM marked the run failed",
            )
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            dead.append(run.run_id)
    return dead


def no_retry_if_permanent(instance: DagsterInstance, run_id: str, error: BaseException) -> None:
    """Tag the run so that Dagster's run retries leave it alone when `error` is permanent."""
    if is_permanent(error):
        instance.add_run_tags(run_id, NO_RETRY_TAGS)
