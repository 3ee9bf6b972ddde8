"""The run tags ATM sets and reads, named once."""

import os

from atm_assets.core.processes import this_host

# One run per task at a time: the run queue's tag concurrency limit (dagster.yaml) keys on it.
TASK_TAG = "atm/task"
# Who launched the run: controller, python-api (schedules and the UI set none).
LAUNCHED_BY = "atm/launched_by"
# Where a run's worker runs: a run whose worker is gone can be told apart from a live one.
HOST_TAG, PID_TAG = "atm/host", "atm/pid"
# On a rerun of an interrupted or failed selection: the chain of the run it continues.
CONTINUES_TAG = "atm/continues"
# The signal that interrupted a run (set on one that had written everything when it came).
INTERRUPTED_TAG = "atm/interrupted"
# Dagster's own partition tags: one partition, or a range in one run.
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
SELECTION_TAGS = (PARTITION_TAG, RANGE_START_TAG, RANGE_END_TAG, TASK_TAG)


# The run that set HOST_TAG and PID_TAG: a retry starts with its parent's tags, whose worker
# is gone, until its own step sets them again.
WORKER_RUN_TAG = "atm/worker_run"


def worker_tags(run_id: str | None = None) -> dict[str, str]:
    """Where this process runs (for `run_id`, when known): a run whose worker is gone can be
    told from a live one."""
    tags = {HOST_TAG: this_host(), PID_TAG: str(os.getpid())}
    if run_id:
        tags[WORKER_RUN_TAG] = run_id
    return tags


# Dagster's run retries (dagster.yaml run_retries): a run that failed on a permanent error (bad
# token, no permission, a failed data check) is tagged so the daemon does not retry it in a
# loop; the controller's runs are never retried behind the user's back (the user reruns them).
RETRY_ON_FAILURE_TAG = "dagster/retry_on_asset_or_op_failure"
MAX_RETRIES_TAG = "dagster/max_retries"
NO_RETRY_TAGS = {RETRY_ON_FAILURE_TAG: "false"}
# The Dagster pool of every step that calls Tushare: the UI shows who waits for the account.
TUSHARE_POOL = "tushare"
