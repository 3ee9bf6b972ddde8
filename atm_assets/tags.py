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


def worker_tags() -> dict[str, str]:
    """Where this process runs: a run whose worker is gone can be told from a live one."""
    return {HOST_TAG: this_host(), PID_TAG: str(os.getpid())}
