"""Partitions of the Tushare assets, and strict parsing of partition keys."""

import datetime as dt

from dagster import (
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    TimeWindowPartitionsDefinition,
)

from atm_assets.core.datasets import EXCHANGES, LIST_STATUSES
from atm_assets.core.errors import ConfigError
from atm_assets.core.settings import current

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
    from atm_assets.core.errors import AtmError

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
