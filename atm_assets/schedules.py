"""Schedules: every fetched dataset after Tushare publishes it, reference data weekly."""

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from dagster import (
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from atm_assets.core.datasets import ADJ_FACTOR, DAILY, TRADE_CAL, TableSpec
from atm_assets.core.errors import AtmError
from atm_assets.core.market import trading_status
from atm_assets.core.settings import current
from atm_assets.jobs import market_data_job, stock_basic_job, stock_basic_task_tags
from atm_assets.partitions import (
    partitions_for,
    period_end,
    recent_keys,
    stock_basic_partitions,
)
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


# The market pair's publication lag: its days answering no rows (or partly published, their
# rows_complete check failed) are asked for again by each tick within it.
MARKET_LAG_DAYS = max(DAILY.publication_lag_days or 0, ADJ_FACTOR.publication_lag_days or 0)


@schedule(
    job=market_data_job,
    cron_schedule=SCHEDULE.market_cron,
    execution_timezone="Asia/Shanghai",
    description="After the close on trading days: sync the day's bars and adjustment factors, "
    "with the open days of their publication lag again.",
)
def market_close_schedule(context: ScheduleEvaluationContext, database: DatabaseResource):
    """The day and the open days of the publication lag before it, in one run; skips days
    trade_cal marks closed; runs the day alone when the calendar does not know it, so the run
    fails loudly (and the failure sensor records it) instead of skipping in silence."""
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
    return day_with_lag("market", day, MARKET_LAG_DAYS, database)


# -- the catalog's schedules: each dataset after Tushare publishes it --

# When each publication slot's data is out (Asia/Shanghai); the day a slot syncs is the tick's
# day, or for next_morning the trade date before it.
PUBLICATION_CRONS = {
    "after_close": "45 17 * * 1-5",
    "evening": "30 20 * * 1-5",
    "next_morning": "30 8 * * 1-5",
}


def _open_days(database: DatabaseResource, first: dt.date, last: dt.date) -> list[dt.date]:
    days = [first + dt.timedelta(n) for n in range((last - first).days + 1)]
    weekdays = [d for d in days if d.weekday() < 5]
    status = trading_status(database.writer(TRADE_CAL), weekdays)
    return [d for d in weekdays if status[d]]


def sync_day(slot: str, tick_day: dt.date, database: DatabaseResource) -> dt.date | None:
    """The trade date a slot syncs at a tick, None when there is none (closed day)."""
    if slot != "next_morning":
        return tick_day if _open_days(database, tick_day, tick_day) else None
    before = _open_days(database, tick_day - dt.timedelta(days=14), tick_day - dt.timedelta(1))
    return before[-1] if before else None


def refetch_range(
    database: DatabaseResource, day: dt.date, count: int
) -> tuple[dt.date, dt.date] | None:
    """The `count` open days before `day`, as a partition range."""
    if count <= 0:
        return None
    before = _open_days(database, day - dt.timedelta(days=7 * count + 14), day - dt.timedelta(1))
    chosen = before[-count:]
    return (chosen[0], chosen[-1]) if chosen else None


def range_tags(first: str, last: str) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }


def day_with_lag(name: str, day: dt.date, lag: int, database: DatabaseResource) -> RunRequest:
    """One run of `day` and the open days of the `lag` days before it: a day that answered no
    rows (not published yet, left open) or came partly (its blocking check failed) is fetched
    again with today's until the lag has passed."""
    try:
        since = day - dt.timedelta(days=lag)
        waiting = _open_days(database, since, day - dt.timedelta(1)) if lag else []
    except AtmError:
        waiting = []
    key = day.isoformat()
    if waiting:
        return RunRequest(run_key=f"{name}:{key}", tags=range_tags(waiting[0].isoformat(), key))
    return RunRequest(run_key=f"{name}:{key}", partition_key=key)


def publication_schedule(
    slot: str, job: Any, refetch_job: Any | None, lag: int = 0, refetch: int = 0
) -> ScheduleDefinition:
    """The slot's trade-date datasets for the day, with the open days of the last `lag` days
    (not published yet when last asked); after the close, also the last `refetch` trade dates
    of the datasets whose values are revised (their revision windows, at least the setting
    catalog.refetch_days)."""

    @schedule(
        name=f"{slot}_schedule",
        job=job,
        cron_schedule=PUBLICATION_CRONS[slot],
        execution_timezone="Asia/Shanghai",
        description=f"Trade-date datasets published {slot.replace('_', ' ')}, on trading days.",
    )
    def _schedule(context: ScheduleEvaluationContext, database: DatabaseResource):
        tick_day = market_day(context)
        try:
            day = sync_day(slot, tick_day, database)
        except AtmError as error:
            return SkipReason(f"trade_cal cannot tell the trade date to sync: {error}")
        if day is None:
            return SkipReason(f"no trade date to sync at {tick_day.isoformat()} (trade_cal SSE)")
        requests = [day_with_lag(slot, day, lag, database)]
        if refetch_job is not None:
            span = refetch_range(database, day, refetch)
            if span is not None:
                first, last = (d.isoformat() for d in span)
                requests.append(
                    RunRequest(
                        run_key=f"refetch:{day.isoformat()}",
                        job_name=refetch_job.name,
                        tags=range_tags(first, last),
                    )
                )
        return requests

    return _schedule


def dataset_schedule(spec: TableSpec, job: Any) -> ScheduleDefinition:
    """A week, month, report-period or index dataset: its newest partitions each evening
    (weeks and months on their last trade date; the last two report periods, as reports and
    their revisions arrive for months; the indices' current month or year)."""

    @schedule(
        name=f"{spec.name}_schedule",
        job=job,
        cron_schedule=PUBLICATION_CRONS[spec.slot],
        execution_timezone="Asia/Shanghai",
        description=f"Sync the newest partitions of {spec.name} after Tushare publishes them.",
    )
    def _schedule(context: ScheduleEvaluationContext, database: DatabaseResource):
        day = market_day(context)
        keys = newest_partitions(spec, day, database)
        if not keys:
            return SkipReason(f"{spec.name}: nothing newly published on {day.isoformat()}")
        first, last = keys[0], keys[-1]
        tags = {"dagster/partition": first} if first == last else range_tags(first, last)
        return RunRequest(run_key=f"{spec.name}:{day.isoformat()}", tags=tags)

    return _schedule


# Reference data (calendars, index lists, profiles, name changes) changes rarely but without
# notice (next year's holidays come in December): every partition weekly, on Saturday morning
# when no trade-date dataset competes for the account.
REFERENCE_CRON = "0 9 * * 6"
REFERENCE_SCHEMES = ("snapshot", "exchange", "values")


def reference_schedule(spec: TableSpec, job: Any) -> ScheduleDefinition:
    """A dataset without dates: all of it (every exchange or value) in one run each week."""
    partitions = partitions_for(spec)
    keys = partitions.get_partition_keys() if partitions is not None else []

    @schedule(
        name=f"{spec.name}_schedule",
        job=job,
        cron_schedule=REFERENCE_CRON,
        execution_timezone="Asia/Shanghai",
        description=f"Sync every partition of {spec.name} once a week.",
    )
    def _schedule(context: ScheduleEvaluationContext):
        run_key = f"{spec.name}:{market_day(context).isoformat()}"
        if not keys:
            return RunRequest(run_key=run_key)
        first, last = keys[0], keys[-1]
        tags = {"dagster/partition": first} if first == last else range_tags(first, last)
        return RunRequest(run_key=run_key, tags=tags)

    return _schedule


def newest_partitions(spec: TableSpec, day: dt.date, database: DatabaseResource) -> list[str]:
    """The partition keys (first..last) a dataset's schedule requests on `day`."""
    if spec.scheme in ("week", "month"):
        first = (
            day - dt.timedelta(days=day.weekday()) if spec.scheme == "week" else day.replace(day=1)
        )
        last = period_end(spec.scheme, first)
        try:
            open_days = _open_days(database, first, last)
        except AtmError:
            return []
        return [first.isoformat()] if open_days and open_days[-1] == day else []
    if spec.scheme == "period":
        # The report periods of its revision window before the current one (restatements a
        # year on, corrections, dividend stages): keys are a quarter's first day.
        return recent_keys(spec, day)
    codes = current().catalog.index_codes
    start = day.replace(day=1) if spec.scheme == "index_month" else day.replace(month=1, day=1)
    return [f"{codes[0]}|{start.isoformat()}", f"{codes[-1]}|{start.isoformat()}"]


def catalog_schedules(
    specs: list[TableSpec], slot_jobs: dict[str, Any], refetch_job: Any, jobs: dict[str, Any]
) -> list[ScheduleDefinition]:
    def slot_specs(slot: str) -> list[TableSpec]:
        return [s for s in specs if s.slot == slot and s.scheme == "trade_date"]

    revised = [s.revision_window for s in specs if s.late]
    refetch = max([current().catalog.refetch_days, *revised])
    schedules = [
        publication_schedule(
            slot,
            job,
            refetch_job if slot == "after_close" else None,
            lag=max((s.publication_lag_days or 0 for s in slot_specs(slot)), default=0),
            refetch=refetch,
        )
        for slot, job in slot_jobs.items()
    ]
    schedules += [
        dataset_schedule(s, jobs[s.name])
        for s in specs
        if s.fetched and s.scheme in ("week", "month", "period", "index_month", "index_year")
    ]
    schedules += [
        reference_schedule(s, jobs[s.name])
        for s in specs
        if s.fetched and s.scheme in REFERENCE_SCHEMES
    ]
    return schedules
