"""Partitions of the Tushare assets, and strict parsing of partition keys."""

import calendar
import datetime as dt
from collections.abc import Callable, Sequence

from dagster import (
    MonthlyPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    PartitionsDefinition,
    StaticPartitionsDefinition,
    TimeWindowPartitionsDefinition,
    WeeklyPartitionsDefinition,
)

from atm_assets.core.datasets import EXCHANGES, LIST_STATUSES, TableSpec
from atm_assets.core.errors import AtmError, ConfigError
from atm_assets.core.settings import current
from atm_assets.core.tables import Bounds

# Dagster orders dimensions by name, so keys read "<exchange>|<list_status>", e.g. "SSE|L".
stock_basic_partitions = MultiPartitionsDefinition(
    {
        "exchange": StaticPartitionsDefinition(list(EXCHANGES)),
        "list_status": StaticPartitionsDefinition(list(LIST_STATUSES)),
    }
)


def stock_basic_partition(key: str | MultiPartitionKey) -> dict[str, str]:
    """`{"exchange": …, "list_status": …}` for a key, refusing keys Dagster would let through.

    `get_partition_key_from_str("L|SSE")` does not reject swapped dimensions, so check here.
    """
    text = str(key)
    parts = text.split("|")
    if len(parts) != 2 or parts[0] not in EXCHANGES or parts[1] not in LIST_STATUSES:
        raise ConfigError(
            f"{text!r} is not a stock_basic partition: keys are '<exchange>|<list_status>' with "
            f"exchange in {', '.join(EXCHANGES)} and list_status in {', '.join(LIST_STATUSES)} "
            "(e.g. 'SSE|L')"
        )
    return {"exchange": parts[0], "list_status": parts[1]}


def stock_basic_keys(exchange: str | None = None, list_status: str | None = None) -> list[str]:
    """Partition keys for a selection; empty or None means every value of that dimension."""
    if exchange and exchange not in EXCHANGES:
        raise ConfigError(f"unknown exchange {exchange!r}: expected one of {', '.join(EXCHANGES)}")
    if list_status and list_status not in LIST_STATUSES:
        raise ConfigError(
            f"unknown list status {list_status!r}: expected one of {', '.join(LIST_STATUSES)}"
        )
    exchanges = [exchange] if exchange else list(EXCHANGES)
    statuses = [list_status] if list_status else list(LIST_STATUSES)
    return [f"{e}|{s}" for e in exchanges for s in statuses]


# trade_cal: one partition per exchange, each the exchange's whole calendar.
trade_cal_partitions = StaticPartitionsDefinition(list(EXCHANGES))


def market_start() -> dt.date:
    """First trade date of the daily datasets (setting schedule.market_start)."""
    return current().schedule.market_start


# Weekdays in Shanghai time; exchange holidays are skipped at run time from trade_cal, so a
# holiday partition materialises as "market closed" without calling the API. end_offset=1 makes
# today's date available as soon as the day starts (the post-close schedule runs it).
trade_date_partitions = TimeWindowPartitionsDefinition(
    cron_schedule="0 0 * * 1-5",
    start=market_start().isoformat(),
    timezone="Asia/Shanghai",
    fmt="%Y-%m-%d",
    end_offset=1,
)


def trade_date_of(key: str) -> dt.date:
    """The date of a trade-date partition key ("2024-01-02"), refusing anything else."""
    try:
        day = dt.date.fromisoformat(key)
    except ValueError:
        raise ConfigError(
            f"{key!r} is not a trade-date partition: keys look like 2024-01-02"
        ) from None
    if day.weekday() >= 5:
        raise ConfigError(f"{key!r} is a weekend day: trade-date partitions are weekdays")
    return day


def trade_date_keys(start_date: str, end_date: str | None = None) -> list[str]:
    """The trade-date partition keys from `start_date` to `end_date` (YYYYMMDD, inclusive)."""
    from atm_assets.core.dates import parse_day

    try:
        first = parse_day(start_date)
        last = parse_day(end_date or start_date)
    except AtmError as e:
        raise ConfigError(f"--start-date/--end-date: {e}") from None
    if last < first:
        raise ConfigError(f"--end-date {end_date} is before --start-date {start_date}")
    keys = [
        k
        for k in trade_date_partitions.get_partition_keys()
        if first.isoformat() <= k <= last.isoformat()
    ]
    if not keys:
        raise ConfigError(
            f"no trade-date partitions from {first} to {last}: they are weekdays from "
            f"ATM_MARKET_START={market_start()} to today"
        )
    return keys


# -- the catalog's partition schemes --

week_partitions = WeeklyPartitionsDefinition(
    start_date=market_start().isoformat(),
    day_offset=1,  # weeks start on Monday, as Tushare's weekly bars do
    timezone="Asia/Shanghai",
    fmt="%Y-%m-%d",
    end_offset=1,
)
month_partitions = MonthlyPartitionsDefinition(
    start_date=market_start().replace(day=1).isoformat(),
    timezone="Asia/Shanghai",
    fmt="%Y-%m-%d",
    end_offset=1,
)
year_partitions = TimeWindowPartitionsDefinition(
    cron_schedule="0 0 1 1 *",
    start=market_start().replace(month=1, day=1).isoformat(),
    timezone="Asia/Shanghai",
    fmt="%Y-%m-%d",
    end_offset=1,
)
# Report periods, keyed by the quarter's first day (the period is its last); from a year
# before the market start, so the latest reports known then are there too.
period_partitions = TimeWindowPartitionsDefinition(
    cron_schedule="0 0 1 1,4,7,10 *",
    start=market_start().replace(year=market_start().year - 1, month=1, day=1).isoformat(),
    timezone="Asia/Shanghai",
    fmt="%Y-%m-%d",
    end_offset=1,
)
# Schemes whose partitions are trade dates (or end on one): they need the SSE calendar.
CALENDAR_SCHEMES = ("trade_date", "week", "month")


def _index_codes() -> list[str]:
    return list(current().catalog.index_codes)


def partitions_for(spec: TableSpec) -> PartitionsDefinition | None:
    """The Dagster partitions of a catalog dataset's scheme (None: one snapshot)."""
    scheme = spec.scheme
    if scheme in ("snapshot", "derived"):
        return None if scheme == "snapshot" else trade_date_partitions
    if scheme == "values":
        return StaticPartitionsDefinition(list(spec.values))
    if scheme == "exchange":
        return trade_cal_partitions
    if scheme == "exchange_list_status":
        return stock_basic_partitions
    if scheme == "trade_date":
        return trade_date_partitions
    if scheme == "week":
        return week_partitions
    if scheme == "month":
        return month_partitions
    if scheme == "period":
        return period_partitions
    if scheme == "index_month":
        return MultiPartitionsDefinition(
            {"index": StaticPartitionsDefinition(_index_codes()), "month": month_partitions}
        )
    if scheme == "index_year":
        return MultiPartitionsDefinition(
            {"index": StaticPartitionsDefinition(_index_codes()), "year": year_partitions}
        )
    raise ConfigError(f"{spec.name}: unknown partition scheme {scheme!r}")


def quarter_end(first: dt.date) -> dt.date:
    """The last day of the quarter starting on `first`."""
    month = first.month + 2
    return dt.date(first.year, month, calendar.monthrange(first.year, month)[1])


def month_end(first: dt.date) -> dt.date:
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])


def period_end(scheme: str, first: dt.date) -> dt.date:
    """The last day of the week, month or year partition starting on `first`."""
    if scheme == "week":
        return first + dt.timedelta(days=6)
    if scheme in ("month", "index_month"):
        return month_end(first)
    return first.replace(month=12, day=31)


def _day(key: str) -> dt.date:
    try:
        return dt.date.fromisoformat(key)
    except ValueError:
        raise ConfigError(f"{key!r} is not a partition of this dataset (YYYY-MM-DD)") from None


def period_days(spec: TableSpec, key: str) -> list[dt.date]:
    """The weekdays a week or month partition covers (its trade date is the last open one)."""
    first = _day(key)
    last = period_end(spec.scheme, first)
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    return [d for d in days if d.weekday() < 5]


def ordered_keys(spec: TableSpec, keys: Sequence[str]) -> list[str]:
    """`keys` in the scheme's own order (Dagster hands a range's keys over in no particular
    order): exchanges as listed, then list statuses; dates (and index|date) ascending. A key
    of the wrong shape is refused here, naming the dataset's key format."""
    if spec.scheme == "exchange_list_status":
        parsed = {k: stock_basic_partition(k) for k in keys}
        return sorted(
            keys,
            key=lambda k: (
                EXCHANGES.index(parsed[k]["exchange"]),
                LIST_STATUSES.index(parsed[k]["list_status"]),
            ),
        )
    if spec.scheme == "exchange":
        return sorted(keys, key=EXCHANGES.index)
    if spec.scheme == "values":
        return sorted(keys, key=spec.values.index)
    return sorted(keys)


def row_bounds(spec: TableSpec, keys: Sequence[str]) -> list[Bounds]:
    """The rows each partition key holds in the dataset's table, by the scheme's meaning rather
    than the key's text: a week (keyed by its Monday) is every trade date of that week, a
    report period (keyed by its first day) its quarter end, an index month that index's rows
    of the month, an exchange its rows."""
    scheme = spec.scheme
    out: list[Bounds] = []
    for key in keys:
        if scheme in ("trade_date", "derived"):
            day = trade_date_of(key)
            out.append({"trade_date": (day, day)})
        elif scheme in ("week", "month"):
            first = _day(key)
            out.append({"trade_date": (first, period_end(scheme, first))})
        elif scheme == "period":
            end = quarter_end(_day(key))
            out.append({"end_date": (end, end)})
        elif scheme in ("index_month", "index_year"):
            code, _, start = str(key).partition("|")
            first = _day(start)
            param = "index_code" if scheme == "index_month" else "ts_code"
            (column,) = spec.checked_columns({param: code})
            out.append({column: (code, code), "trade_date": (first, period_end(scheme, first))})
        elif scheme == "exchange_list_status":
            dims = stock_basic_partition(key)
            out.append({c: (v, v) for c, v in dims.items()})
        elif scheme in ("exchange", "values"):
            param = spec.value_param or "exchange"
            out.append({c: (key, key) for c in spec.checked_columns({param: key})})
        else:
            raise ConfigError(f"{spec.name}: {scheme} partitions hold no rows of their own")
    return out


def request_partitions(
    spec: TableSpec, keys: Sequence[str], is_open: Callable[[Sequence[dt.date]], dict]
) -> tuple[list[dict[str, str]], list[str]]:
    """The request parameters of each partition key, in key order, and the keys that need no
    call (closed trade dates, weeks or months without one). `is_open` reads trade_cal."""
    from atm_assets.core.dates import tushare_date

    scheme = spec.scheme
    if scheme == "snapshot":
        return [{}], []
    if scheme == "exchange_list_status":
        return [stock_basic_partition(k) for k in keys], []
    if scheme in ("values", "exchange"):
        param = spec.value_param or "exchange"
        return [{param: k} for k in keys], []
    if scheme == "trade_date":
        days = [trade_date_of(k) for k in keys]
        status = is_open(days)
        return (
            [{"trade_date": tushare_date(d)} for d in days if status[d]],
            [d.isoformat() for d in days if not status[d]],
        )
    if scheme in ("week", "month"):
        spans = {k: period_days(spec, k) for k in keys}
        status = is_open([d for span in spans.values() for d in span])
        out, closed = [], []
        for key, span in spans.items():
            open_days = [d for d in span if status[d]]
            if open_days:
                out.append({"trade_date": tushare_date(open_days[-1])})
            else:
                closed.append(key)
        return out, closed
    if scheme == "period":
        param = spec.value_param or "period"
        return [{param: tushare_date(quarter_end(_day(k)))} for k in keys], []
    if scheme in ("index_month", "index_year"):
        out = []
        for key in keys:
            code, _, start = str(key).partition("|")
            first = _day(start)
            if scheme == "index_month":
                out.append(
                    {
                        "index_code": code,
                        "start_date": tushare_date(first),
                        "end_date": tushare_date(month_end(first)),
                    }
                )
            else:
                out.append(
                    {
                        "ts_code": code,
                        "start_date": tushare_date(first),
                        "end_date": f"{first.year}1231",
                    }
                )
        return out, []
    raise ConfigError(f"{spec.name}: scheme {scheme} has no request partitions")


def recent_keys(spec: TableSpec, today: dt.date) -> list[str]:
    """The partitions a dataset may still change in (its revision window) or may not have
    published yet (its publication lag), ending today: what `sync <name> --recent` and the
    schedules re-fetch. Trade dates: the last revision_window + 1 weekdays and every weekday
    within the lag (closed ones cost no call); weeks and months: the last revision_window + 1;
    report periods: the revision_window quarters before the current one."""
    definition = partitions_for(spec)
    if definition is None or spec.scheme in ("values", "exchange", "exchange_list_status"):
        raise ConfigError(f"{spec.name} has no dated partitions: --recent does not apply")
    if spec.scheme == "period":
        index = today.year * 4 + (today.month - 1) // 3
        quarters = range(index - max(spec.revision_window, 1), index)
        return [dt.date(q // 4, 3 * (q % 4) + 1, 1).isoformat() for q in quarters]
    keys = [str(k) for k in definition.get_partition_keys() if str(k)[-10:] <= today.isoformat()]
    if spec.scheme in ("index_month", "index_year"):
        latest = max(k.split("|")[1] for k in keys)
        return [k for k in keys if k.endswith(latest)]
    count = spec.revision_window + 1
    chosen = keys[-count:]
    if spec.scheme == "trade_date" and spec.publication_lag_days:
        since = (today - dt.timedelta(days=spec.publication_lag_days)).isoformat()
        chosen = [k for k in keys if k >= min(since, chosen[0])]
    return chosen


def keys_between(spec: TableSpec, selection: dict[str, str | None]) -> list[str]:
    """The partition keys a selection covers, in order: dates (YYYYMMDD) bound trade dates,
    weeks, months and years by overlap, report periods by their quarter end; an index code
    or a value narrows its dimension ("" or None: all). Every bad value is a ConfigError."""
    from atm_assets.core.dates import parse_day

    scheme = spec.scheme
    definition = partitions_for(spec)
    if scheme == "snapshot" or definition is None:
        return []
    if scheme == "values":
        chosen = selection.get(spec.value_param)
        if chosen and chosen not in spec.values:
            raise ConfigError(
                f"unknown {spec.value_param} {chosen!r}: expected one of {', '.join(spec.values)}"
            )
        return [chosen] if chosen else list(spec.values)
    if scheme == "exchange":
        exchange = selection.get("exchange")
        if exchange and exchange not in EXCHANGES:
            raise ConfigError(
                f"unknown exchange {exchange!r}: expected one of {', '.join(EXCHANGES)}"
            )
        return [exchange] if exchange else list(EXCHANGES)
    begin, end = (
        ("start_period", "end_period") if scheme == "period" else ("start_date", "end_date")
    )
    flag = f"--{begin.replace('_', '-')}"
    if not selection.get(begin):
        raise ConfigError(f"{spec.name} needs {flag} (YYYYMMDD) or --recent")
    if scheme == "trade_date":
        return trade_date_keys(str(selection[begin]), selection.get(end))
    try:
        first = parse_day(str(selection[begin]))
        last = parse_day(str(selection.get(end) or selection[begin]))
    except AtmError as e:
        raise ConfigError(f"{flag}: {e}") from None
    if last < first:
        raise ConfigError(
            f"--{end.replace('_', '-')} {selection.get(end)} is before {flag} {selection[begin]}"
        )
    if scheme == "period":
        base = period_partitions.get_partition_keys()
        keys = [k for k in base if first <= quarter_end(_day(k)) <= last]
    else:
        base = (
            definition.get_partition_keys()
            if scheme in ("week", "month")
            else (
                month_partitions if scheme == "index_month" else year_partitions
            ).get_partition_keys()
        )
        keys = [k for k in base if _span_overlaps(scheme, _day(k), first, last)]
    if scheme in ("index_month", "index_year"):
        codes = _index_codes()
        code = selection.get("index_code")
        if code and code not in codes:
            raise ConfigError(
                f"index code {code!r} is not configured (catalog.index_codes / "
                f"ATM_INDEX_CODES: {', '.join(codes)})"
            )
        keys = [f"{c}|{k}" for c in ([code] if code else codes) for k in keys]
    if not keys:
        raise ConfigError(
            f"no {spec.name} partitions from {first} to {last}: they start at "
            f"{base[0] if base else market_start()}"
        )
    return keys


def _span_overlaps(scheme: str, start: dt.date, first: dt.date, last: dt.date) -> bool:
    return start <= last and period_end(scheme, start) >= first
