"""Schedules: the daily stock_basic sync (02:00 Asia/Shanghai unless configured otherwise)."""

import os

from dagster import RunRequest, ScheduleEvaluationContext, schedule

from atm_assets.jobs import stock_basic_job, stock_basic_task_tags
from atm_assets.partitions import stock_basic_partitions

SCHEDULE_CRON = os.environ.get("ATM_SCHEDULE_CRON", "0 2 * * *")
SCHEDULE_TIMEZONE = os.environ.get("ATM_SCHEDULE_TIMEZONE", "Asia/Shanghai")


@schedule(
    job=stock_basic_job,
    cron_schedule=SCHEDULE_CRON,
    execution_timezone=SCHEDULE_TIMEZONE,
    description="Sync every stock_basic partition once a day.",
)
def daily_stock_basic_schedule(context: ScheduleEvaluationContext):  # type: ignore[no-untyped-def]
    """One run per partition; the run queue keeps each task to one run at a time."""
    tick = context.scheduled_execution_time
    stamp = tick.strftime("%Y%m%dT%H%M") if tick else "manual"
    for key in stock_basic_partitions.get_partition_keys():
        yield RunRequest(
            run_key=f"{stamp}:{key}",
            partition_key=key,
            tags=stock_basic_task_tags(key),
        )
