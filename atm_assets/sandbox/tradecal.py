"""The trading calendar: open days 2010..2027 and the weekdays before it used as listing days."""

from __future__ import annotations

import bisect
from datetime import date, timedelta
from functools import lru_cache

CALENDAR_START = "20100101"
CALENDAR_END = "20271231"
# Rows listed before the calendar starts still need a pretrade_date for the first day.
_PRE_CALENDAR_OPEN = "20091231"
FIRST_LISTING = "19901219"


# Lunar holidays as (month, day) of the festival itself, 2010..2027; approximate is fine.
_SPRING_FESTIVAL = {
    2010: (2, 14), 2011: (2, 3), 2012: (1, 23), 2013: (2, 10), 2014: (1, 31), 2015: (2, 19),
    2016: (2, 8), 2017: (1, 28), 2018: (2, 16), 2019: (2, 5), 2020: (1, 25), 2021: (2, 12),
    2022: (2, 1), 2023: (1, 22), 2024: (2, 10), 2025: (1, 29), 2026: (2, 17), 2027: (2, 6),
}  # fmt: skip
_DRAGON_BOAT = {
    2010: (6, 16), 2011: (6, 6), 2012: (6, 23), 2013: (6, 12), 2014: (6, 2), 2015: (6, 20),
    2016: (6, 9), 2017: (5, 30), 2018: (6, 18), 2019: (6, 7), 2020: (6, 25), 2021: (6, 14),
    2022: (6, 3), 2023: (6, 22), 2024: (6, 10), 2025: (5, 31), 2026: (6, 19), 2027: (6, 9),
}  # fmt: skip
_MID_AUTUMN = {
    2010: (9, 22), 2011: (9, 12), 2012: (9, 30), 2013: (9, 19), 2014: (9, 8), 2015: (9, 27),
    2016: (9, 15), 2017: (10, 4), 2018: (9, 24), 2019: (9, 13), 2020: (10, 1), 2021: (9, 21),
    2022: (9, 10), 2023: (9, 29), 2024: (9, 17), 2025: (10, 6), 2026: (9, 25), 2027: (9, 15),
}  # fmt: skip


def fmt_date(d: date) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def parse_date(s: str) -> date:
    return date(int(s[:4]), int(s[4:6]), int(s[6:8]))


def _holidays() -> set[date]:
    out: set[date] = set()
    for year in range(2010, 2028):
        out.add(date(year, 1, 1))
        spring = date(year, *_SPRING_FESTIVAL[year])
        out.update(spring + timedelta(days=k) for k in range(-1, 6))
        out.add(date(year, 4, 4 if year % 4 in (0, 1) else 5))
        out.update(date(year, 5, day) for day in range(1, 6 if year >= 2020 else 4))
        out.add(date(year, *_DRAGON_BOAT[year]))
        mid_autumn = date(year, *_MID_AUTUMN[year])
        out.add(mid_autumn)
        out.update(date(year, 10, day) for day in range(1, 8))
        if mid_autumn.month == 10:
            out.add(date(year, 10, 8))
    return out


class TradeCalendar:
    """SSE calendar; the sandbox uses it for every exchange."""

    def __init__(self) -> None:
        holidays = _holidays()
        self.dates: list[str] = []
        self.is_open: list[int] = []
        self.pretrade: list[str] = []
        self.open_dates: list[str] = []
        prev = _PRE_CALENDAR_OPEN
        d, end = parse_date(CALENDAR_START), parse_date(CALENDAR_END)
        while d <= end:
            s = fmt_date(d)
            is_open = d.weekday() < 5 and d not in holidays
            self.dates.append(s)
            self.is_open.append(int(is_open))
            self.pretrade.append(prev)
            if is_open:
                self.open_dates.append(s)
                prev = s
            d += timedelta(days=1)
        self.open_index = {s: i for i, s in enumerate(self.open_dates)}
        early, d = [], parse_date(FIRST_LISTING)
        while fmt_date(d) < CALENDAR_START:
            if d.weekday() < 5:
                early.append(fmt_date(d))
            d += timedelta(days=1)
        self.listing_days: list[str] = early + self.open_dates

    def next_open(self, s: str) -> str:
        """First open date on or after s (the last open date when s is past the end)."""
        if s < CALENDAR_START:
            return s
        i = bisect.bisect_left(self.open_dates, s)
        return self.open_dates[min(i, len(self.open_dates) - 1)]

    def open_between(self, start: str, end: str) -> list[str]:
        lo = bisect.bisect_left(self.open_dates, start)
        hi = bisect.bisect_right(self.open_dates, end)
        return self.open_dates[lo:hi]

    def index_on_or_after(self, s: str) -> int:
        return bisect.bisect_left(self.open_dates, s)


@lru_cache(maxsize=1)
def calendar() -> TradeCalendar:
    return TradeCalendar()


def shift_days(s: str, days: int) -> str:
    return fmt_date(parse_date(s) + timedelta(days=days))
