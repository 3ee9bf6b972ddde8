"""How current each dataset is: newest partition held, newest expected now, fresh or stale."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from atm_assets.core.datasets import TRADE_CAL, TableSpec
from atm_assets.core.writer import TableWriter

SHANGHAI = ZoneInfo("Asia/Shanghai")
# The SSE calendar decides A-share trading days (as core/market.py's CALENDAR_EXCHANGE).
CALENDAR_EXCHANGE = "SSE"

# When each publication slot's data is out, Asia/Shanghai: the times the schedules tick
# (schedules.PUBLICATION_CRONS; a test keeps the two equal). next_morning data of a trade date
# is out the next weekday morning.
PUBLICATION_TIMES: dict[str, dt.time] = {
    "after_close": dt.time(17, 45),
    "evening": dt.time(20, 30),
    "next_morning": dt.time(8, 30),
}
# Chinese listed companies must publish Q1 reports by April 30, half-year reports by August
# 31, Q3 reports by October 31 and annual reports by April 30 of the next year: only after
# that is a report period certainly out (month, day of the deadline; +1: the next year).
REPORT_DEADLINES: dict[int, tuple[int, int, int]] = {
    3: (4, 30, 0),
    6: (8, 31, 0),
    9: (10, 31, 0),
    12: (4, 30, 1),
}

State = Literal["fresh", "stale", "never synced"]
FRESH: State = "fresh"
STALE: State = "stale"
NEVER: State = "never synced"
DAY_SCHEMES = ("trade_date", "week", "month", "index_year")


@dataclass(frozen=True)
class Freshness:
    """One dataset's freshness: partition keys as Dagster shows them (index_year: the newest
    trade date), the dates they stand for, and how far behind in `unit`s."""

    dataset: str
    scheme: str
    state: State
    held: str | None = None
    expected: str | None = None
    behind: int = 0
    unit: str = "open days"
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Calendar:
    """Open days per the synced trade_cal (SSE); weekdays where it has no row."""

    def __init__(self, status: Mapping[dt.date, bool], source: str) -> None:
        self.status = dict(status)
        self.source = source

    def is_open(self, day: dt.date) -> bool:
        known = self.status.get(day)
        return day.weekday() < 5 if known is None else known

    def open_after(self, first: dt.date, last: dt.date) -> int:
        """Open days in (first, last]."""
        days = (last - first).days
        return sum(self.is_open(first + dt.timedelta(n)) for n in range(1, days + 1))

    def last_open(self, first: dt.date, last: dt.date) -> dt.date | None:
        """The last open day of [first, last]."""
        day = last
        while day >= first:
            if self.is_open(day):
                return day
            day -= dt.timedelta(1)
        return None


def read_calendar(engine: Engine, schema: str | None) -> Calendar:
    writer = TableWriter(engine, TRADE_CAL, schema)
    if not writer.exists():
        return Calendar({}, "weekdays (trade_cal not synced)")
    table = writer.table
    stmt = sa.select(table.c.cal_date, table.c.is_open).where(table.c.exchange == CALENDAR_EXCHANGE)
    with engine.connect() as conn:
        status = {_as_date(r.cal_date): bool(r.is_open) for r in conn.execute(stmt)}
    if not status:
        return Calendar({}, "weekdays (trade_cal not synced)")
    return Calendar(status, f"trade_cal {CALENDAR_EXCHANGE}")


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def published_at(slot: str, day: dt.date) -> dt.datetime:
    """When the data of trade date `day` is out (Asia/Shanghai)."""
    when = PUBLICATION_TIMES[slot]
    if slot == "next_morning":
        day += dt.timedelta(1)
        while day.weekday() >= 5:
            day += dt.timedelta(1)
    return dt.datetime.combine(day, when, SHANGHAI)


def expected_trade_date(
    calendar: Calendar, slot: str, now: dt.datetime, grace: dt.timedelta
) -> dt.date:
    """The newest open day whose data is out by `now` (its publication time plus `grace`)."""
    day = now.astimezone(SHANGHAI).date()
    while not (calendar.is_open(day) and published_at(slot, day) + grace <= now):
        day -= dt.timedelta(1)
    return day


def period_start(scheme: str, day: dt.date) -> dt.date:
    """The week (Monday) or month (first day) partition key holding `day`."""
    if scheme == "week":
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def period_last(scheme: str, first: dt.date) -> dt.date:
    if scheme == "week":
        return first + dt.timedelta(days=6)
    following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following - dt.timedelta(1)


def expected_period_date(
    calendar: Calendar, scheme: str, slot: str, now: dt.datetime, grace: dt.timedelta
) -> dt.date:
    """The last open day of the newest week or month whose bars are out by `now`: a period's
    bars come on its last open day."""
    day = expected_trade_date(calendar, slot, now, grace)
    while True:
        first = period_start(scheme, day)
        if calendar.last_open(first, period_last(scheme, first)) == day:
            return day
        day = first - dt.timedelta(1)
        while not calendar.is_open(day):
            day -= dt.timedelta(1)


def quarter_end(day: dt.date) -> dt.date:
    month = (day.month - 1) // 3 * 3 + 3
    return period_last("month", dt.date(day.year, month, 1))


def report_deadline(end: dt.date) -> dt.date:
    month, day, years = REPORT_DEADLINES[end.month]
    return dt.date(end.year + years, month, day)


def expected_report_period(today: dt.date, months: Iterable[int]) -> dt.date | None:
    """The newest report period (quarter end) whose statutory deadline has passed, among the
    quarters of the year the dataset holds at all (dividend plans come for half-years)."""
    kinds = set(months)
    end = quarter_end(today)
    for _ in range(12):
        if end.month in kinds and report_deadline(end) < today:
            return end
        end = quarter_end(end.replace(month=end.month - 2, day=1) - dt.timedelta(1))
    return None


def _quarters_between(older: dt.date, newer: dt.date) -> int:
    return max(0, (newer.year - older.year) * 4 + (newer.month - older.month) // 3)


def _date_column(spec: TableSpec) -> str | None:
    """The column a dated partition is told by (None: the scheme has no dates)."""
    if spec.scheme == "period":
        column = next(iter(spec.checked_columns({spec.value_param or "period": ""})), None)
        return column if column in spec.date_columns else None
    if spec.scheme in (*DAY_SCHEMES, "index_month"):
        return "trade_date" if "trade_date" in spec.date_columns else None
    if spec is TRADE_CAL or spec.name == TRADE_CAL.name:
        return "cal_date"
    return None


def _newest(writer: TableWriter, column: str | None) -> tuple[bool, dt.date | None, list[int]]:
    """(the table has rows, the newest date in `column`, the months `column` holds)."""
    table = writer.table
    with writer.engine.connect() as conn:
        if column is None:
            row = conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first()
            return row is not None, None, []
        newest = conn.execute(sa.select(sa.func.max(table.c[column]))).scalar()
        months: list[int] = []
        if newest is not None and writer.spec.scheme == "period":
            values = conn.execute(sa.select(table.c[column]).distinct()).scalars()
            months = sorted({_as_date(v).month for v in values if v is not None})
    return newest is not None, None if newest is None else _as_date(newest), months


def assess(
    spec: TableSpec,
    engine: Engine,
    schema: str | None,
    calendar: Calendar,
    now: dt.datetime,
    grace: dt.timedelta,
) -> Freshness:
    """One dataset's freshness at `now` (an aware datetime)."""
    writer = TableWriter(engine, spec, schema)
    column = _date_column(spec)
    if not writer.exists():
        return Freshness(spec.name, spec.scheme, NEVER, note="no table")
    has_rows, newest, months = _newest(writer, column)
    if not has_rows:
        return Freshness(spec.name, spec.scheme, NEVER, note="table empty")
    today = now.astimezone(SHANGHAI).date()
    if newest is None:
        # Reference data without dates (stock lists, profiles): held is all there is to say.
        return Freshness(spec.name, spec.scheme, FRESH, held="synced", note="not dated")
    if column == "cal_date":
        behind = max(0, (today - newest).days)
        state = STALE if newest < today else FRESH
        note = "the calendar must reach today"
        held, wanted = newest.isoformat(), today.isoformat()
        return Freshness(spec.name, spec.scheme, state, held, wanted, behind, "days", note)
    slot = spec.slot
    if spec.scheme == "period":
        expected = expected_report_period(today, months)
        if expected is None:
            return Freshness(spec.name, spec.scheme, FRESH, newest.isoformat(), None, 0, "quarters")
        behind = _quarters_between(newest, expected)
        note = "report periods by their statutory deadlines"
        state = STALE if newest < expected else FRESH
        return Freshness(
            spec.name,
            spec.scheme,
            state,
            newest.isoformat(),
            expected.isoformat(),
            behind,
            "quarters",
            note,
        )
    if spec.scheme == "index_month":
        # Weights are published monthly: the month before the current one must be held.
        expected = today.replace(day=1) - dt.timedelta(1)
        held_month = newest.replace(day=1)
        months_behind = max(
            0, (expected.year - held_month.year) * 12 + expected.month - held_month.month
        )
        return Freshness(
            spec.name,
            spec.scheme,
            STALE if months_behind else FRESH,
            held_month.isoformat(),
            expected.replace(day=1).isoformat(),
            months_behind,
            "months",
        )
    if spec.scheme in ("week", "month"):
        expected = expected_period_date(calendar, spec.scheme, slot, now, grace)
        held_key = period_start(spec.scheme, newest).isoformat()
        expected_key = period_start(spec.scheme, expected).isoformat()
    else:
        expected = expected_trade_date(calendar, slot, now, grace)
        held_key, expected_key = newest.isoformat(), expected.isoformat()
    behind = calendar.open_after(newest, expected) if newest < expected else 0
    return Freshness(
        spec.name,
        spec.scheme,
        STALE if newest < expected else FRESH,
        held_key,
        expected_key,
        behind,
        note="" if calendar.status else calendar.source,
    )


def assess_all(
    specs: Sequence[TableSpec],
    engine: Engine,
    schema: str | None,
    now: dt.datetime,
    grace: dt.timedelta,
) -> list[Freshness]:
    """Every fetched dataset of `specs`, in order, against one reading of the calendar."""
    calendar = read_calendar(engine, schema)
    return [assess(s, engine, schema, calendar, now, grace) for s in specs if s.fetched]


def parse_as_of(text: str) -> dt.datetime:
    """`2024-01-05T20:00`, `2024-01-05 20:00` or `2024-01-05` (end of day), Asia/Shanghai
    unless an offset is given."""
    from atm_assets.core.errors import ConfigError

    try:
        if len(text) == 10:
            moment = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(23, 59))
        else:
            moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--as-of {text!r}: expected a time like 2024-01-05T20:00 (Asia/Shanghai)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)
