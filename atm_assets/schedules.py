"""Schedules: the daily stock_basic sync, and market data after the close on trading days."""

import datetime as dt
from zoneinfo import ZoneInfo

from dagster import RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from atm_assets.core.datasets import TRADE_CAL
from atm_assets.core.errors import AtmError
from atm_assets.core.market import trading_status
from atm_assets.core.settings import current
from atm_assets.jobs import market_data_job, stock_basic_job, stock_basic_task_tags
from atm_assets.partitions import stock_basic_partitions
from atm_assets.resources import DatabaseResource

SCHEDULE = current().schedule


@schedule(
    job=stock_basic_job,
    cron_schedule=SCHEDULE.cron,
    execution_timezone=SCHEDULE.timezone,
    description="Sync every stock_basic partition once a day.",
)
def daily_stock_basic_schedule(context: ScheduleEvaluationContext):
    """One run per partition; the run queue keeps each task to one run at a time."""
    tick = context.scheduled_execution_time
    stamp = tick.strftime("%Y%m%dT%H%M") if tick else "manual"
    for key in stock_basic_partitions.get_partition_keys():
        yield RunRequest(
            run_key=f"{stamp}:{key}",
            partition_key=key,
            tags=stock_basic_task_tags(key),
        )


def market_day(context: ScheduleEvaluationContext) -> dt.date:
    tick = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    return tick.astimezone(ZoneInfo("Asia/Shanghai")).date()


@schedule(
    job=market_data_job,
    cron_schedule=SCHEDULE.market_cron,
    execution_timezone="Asia/Shanghai",
    description="After the close on trading days: sync the day's bars and adjustment factors.",
)
def market_close_schedule(context: ScheduleEvaluationContext, database: DatabaseResource):
    """Skips days trade_cal marks closed; runs when the calendar does not know the day, so the
    run fails loudly (and the failure sensor records it) instead of skipping in silence."""
    day = market_day(context)
    if day.weekday() >= 5:
        return SkipReason(f"{day.isoformat()} is a weekend day")
    try:
        is_open = trading_status(database.writer(TRADE_CAL), [day])[day]
    except AtmError as error:
        context.log.warning(f"trade_cal cannot tell whether {day} is a trading day: {error}")
        is_open = True
    if not is_open:
        return SkipReason(f"market closed on {day.isoformat()} (trade_cal SSE)")
    key = day.isoformat()
    return RunRequest(run_key=f"market:{key}", partition_key=key)
