"""Table specifications of the Tushare datasets ATM syncs: fields, types, keys, partitions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from atm_assets.core.dates import tushare_date
from atm_assets.core.settings import current

ColumnType = Literal["str", "date", "float", "int"]
COLUMN_TYPES: tuple[str, ...] = ("str", "date", "float", "int")
# How a dataset is split into partitions, and which request parameters each one fills in.
Scheme = Literal[
    "snapshot",  # one call returns everything (no partitions)
    "values",  # one partition per declared value of one parameter (index_basic's market)
    "exchange",  # per exchange
    "exchange_list_status",  # per exchange × list status
    "trade_date",  # per trade date; closed days (trade_cal) cost no call
    "week",  # per ISO week: its last trade date
    "month",  # per calendar month: its last trade date
    "period",  # per report period (quarter end)
    "index_month",  # per index code × month
    "index_year",  # per index code × year
    "derived",  # computed from other tables, never fetched
]
SCHEMES: tuple[str, ...] = tuple(a for a in Scheme.__args__ if a != "derived")  # type: ignore[attr-defined]
# When a dataset's data for a day is out (Asia/Shanghai), for its schedule.
Publication = Literal["after_close", "evening", "next_morning"]
PUBLICATIONS: tuple[str, ...] = ("after_close", "evening", "next_morning")
GROUPS: tuple[str, ...] = ("reference", "market", "indices", "financials", "derived", "user")
# The tushare client's page limit; an API's own cap may be lower (then it is the page size).
PAGE_ROWS = 6000

EXCHANGES: tuple[str, ...] = ("SSE", "SZSE", "BSE")
# G (过会未交易) is listed by Tushare's current docs next to L/D/P.
LIST_STATUSES: tuple[str, ...] = ("L", "D", "P", "G")


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType = "str"
    nullable: bool = True


@dataclass(frozen=True)
class TableSpec:
    """One Tushare API mapped onto one table, declared once: fields and types, key, partition
    scheme and the request parameters it fills in, group, publication time and limits. The
    columns are the API's fields, by name."""

    name: str
    api_name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    description: str = ""
    # Columns every row of a partition must carry with the partition's value.
    partition_columns: tuple[str, ...] = field(default_factory=tuple)
    # Request parameters besides the partition's own (e.g. trade_cal's date range).
    extra_params: Callable[[], dict[str, str]] | None = field(default=None, compare=False)
    # Log wording: what a row is ("stocks"), and the banner announcing each task (if any).
    noun: str = "rows"
    title: str | None = None
    scheme: Scheme = "snapshot"
    group: str = "reference"
    publication: Publication | None = None
    # Tushare account points the API needs, and its own per-minute limit if it has one.
    # None where Tushare's documentation states none.
    points: int | None = 120
    per_minute: int | None = None
    # Rows one call returns at most; whether the API pages with offset beyond that.
    max_rows: int = PAGE_ROWS
    offset_paging: bool = True
    # Fixed request parameters, and parameter sets each fetched in turn for one partition
    # (income's report_type 1 and 4: Tushare answers only type 1 unless asked).
    params: tuple[tuple[str, str], ...] = ()
    variants: tuple[tuple[tuple[str, str], ...], ...] = ()
    # A request parameter checked against a differently named column (period → end_date).
    param_columns: tuple[tuple[str, str], ...] = ()
    # The "values" scheme: the parameter and its values.
    value_param: str = ""
    values: tuple[str, ...] = ()
    # Point in time: the announcement column, and the key of one fact across its versions.
    known_from: str | None = None
    fact_key: tuple[str, ...] = ()
    # Data known to arrive late: the post-close schedule re-fetches the last few trade dates.
    late: bool = False
    user: bool = False
    # Tushare's documentation page (https://tushare.pro/document/2?doc_id=N).
    doc_id: int | None = None
    # How long after its date a partition may still change (restatements a year on, factors
    # and valuations revised over the next days): the partitions a revision sync re-fetches,
    # in the scheme's own unit (trade dates, weeks, months, report periods; 0: none).
    revision_window: int = 0
    # Days after its date until an empty answer for an open day is taken as final: before,
    # an empty day is "not published yet", flagged and fetched again (None: never empty).
    publication_lag_days: int | None = None
    # Data checks. A trade date holding fewer rows than this share of its neighbouring open
    # days' is incomplete (partly published); None where a day's count varies by nature
    # (events, suspensions). Whatever it is, an open trade date holding no rows once its
    # publication lag has passed fails completeness, unless `empty_days`: an open day may
    # truly have no rows (Stock Connect is closed on Hong Kong holidays).
    min_rows_ratio: float | None = None
    empty_days: bool = False
    # A dataset whose every ts_code of a trade date this one must hold too (adj_factor covers
    # daily's: an adjusted bar needs its factor).
    covers: str | None = None
    # Every stock listed on a trade date (the synced stock_basic) and not suspended that day
    # (the synced suspend_d) has a row here: daily's bars.
    covers_listed: bool = False

    @property
    def slot(self) -> Publication:
        """When its data is out: the declared publication time, else the evening (a dataset
        declared in YAML names none)."""
        return self.publication or "evening"

    @property
    def replaces(self) -> bool:
        """A dataset without a natural key: its partitions are replaced whole, in one
        transaction (repeated rows are data, not duplicates)."""
        return not self.key

    @property
    def fetched(self) -> bool:
        """Fetched from Tushare (as opposed to derived from other tables)."""
        return bool(self.api_name)

    def request(self, partition: Mapping[str, str]) -> dict[str, str]:
        params = {**dict(self.params), **partition}
        if self.extra_params:
            params.update(self.extra_params())
        return params

    def checked_columns(self, partition: Mapping[str, str | None]) -> dict[str, str | None]:
        """The columns every row of `partition` must hold, with their values."""
        renamed = dict(self.param_columns)
        names = set(self.fields)
        return {renamed.get(p, p): v for p, v in partition.items() if renamed.get(p, p) in names}

    def fetch(self, client: Any, partition: Mapping[str, str]) -> Any:
        """Every row of one partition: each variant of the request, paged with offset where the
        API allows it; a result at the row cap of an API that cannot page fails loudly."""
        import pandas as pd

        frames = []
        for variant in self.variants or ((),):
            params = {**self.request(partition), **dict(variant)}
            if self.offset_paging:
                page = min(self.max_rows, PAGE_ROWS)
                frames.append(client.query_all(self.api_name, self.fields, page, **params))
                continue
            page = client.query_page(self.api_name, self.fields, limit=self.max_rows, **params)
            frame = page.frame
            if page.has_more or len(frame) >= self.max_rows:
                from atm_assets.core.errors import DataValidationError

                shown = ", ".join(f"{k}={v}" for k, v in params.items())
                raise DataValidationError(
                    f"{self.name}: {self.api_name}({shown}) returned {len(frame)} rows and more "
                    f"remain (its row cap is {self.max_rows}), and {self.api_name} cannot page "
                    "with offset: the result would be cut short; split the request (a narrower "
                    "partition)"
                )
            frames.append(frame)
        if len(frames) == 1:
            return frames[0]
        return pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)

    @property
    def fields(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def date_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.type == "date"]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


STOCK_BASIC = TableSpec(
    name="stock_basic",
    api_name="stock_basic",
    description="Tushare stock_basic: the list of A-share stocks with their listing facts.",
    columns=(
        Column("ts_code", nullable=False),
        Column("symbol"),
        Column("name"),
        Column("area"),
        Column("industry"),
        Column("fullname"),
        Column("enname"),
        Column("cnspell"),
        Column("market"),
        Column("exchange", nullable=False),
        Column("curr_type"),
        Column("list_status", nullable=False),
        Column("list_date", "date"),
        Column("delist_date", "date"),
        Column("is_hs"),
        Column("act_name"),
        Column("act_ent_type"),
    ),
    key=("ts_code",),
    partition_columns=("exchange", "list_status"),
    noun="stocks",
    scheme="exchange_list_status",
    points=2000,
    doc_id=25,
    # Tushare documents 50 calls a minute for stock_basic whatever the tier.
    per_minute=50,
    title="Stock Basic Information Synchronization Task",
)

# Bookkeeping columns ATM adds to every table it writes.
SYNCED_AT = "synced_at"
# Id of the checkpoint interval (one transaction) that last wrote the row; lets a resumed run
# tell whether an interval committed just before a crash when the state lives outside the table.
SYNC_COMMIT = "sync_commit"


TRADE_CAL = TableSpec(
    name="trade_cal",
    api_name="trade_cal",
    description="Tushare trade_cal: every calendar day of an exchange, open or closed.",
    columns=(
        Column("exchange", nullable=False),
        Column("cal_date", "date", nullable=False),
        Column("is_open", "int"),
        Column("pretrade_date", "date"),
    ),
    key=("exchange", "cal_date"),
    partition_columns=("exchange",),
    extra_params=lambda: calendar_range(),
    noun="days",
    scheme="exchange",
    points=2000,
    doc_id=26,
    title="Trading Calendar Synchronization Task",
)


def calendar_range(today: dt.date | None = None) -> dict[str, str]:
    """From January 1st of the market start year to the end of next year (Tushare publishes the
    coming holidays ahead), as trade_cal's start_date and end_date."""
    today = today or dt.date.today()
    first = current().schedule.market_start.replace(month=1, day=1)
    return {"start_date": tushare_date(first), "end_date": f"{today.year + 1}1231"}


_PRICES = ("open", "high", "low", "close", "pre_close")

DAILY = TableSpec(
    name="daily",
    api_name="daily",
    description="Tushare daily: unadjusted daily bars of every A-share stock, one trade date "
    "per partition.",
    columns=(
        Column("ts_code", nullable=False),
        Column("trade_date", "date", nullable=False),
        *(Column(p, "float") for p in _PRICES),
        Column("change", "float"),
        Column("pct_chg", "float"),
        Column("vol", "float"),
        Column("amount", "float"),
    ),
    key=("ts_code", "trade_date"),
    partition_columns=("trade_date",),
    noun="bars",
    scheme="trade_date",
    group="market",
    publication="after_close",
    # A whole market's bars: suspensions and new listings move a day's count by a few rows.
    min_rows_ratio=0.9,
    covers_listed=True,
    # Tushare's maintainers: daily does not page with offset (one call per trade date).
    offset_paging=False,
    points=None,
    doc_id=27,
    publication_lag_days=4,
)

ADJ_FACTOR = TableSpec(
    name="adj_factor",
    api_name="adj_factor",
    description="Tushare adj_factor: the cumulative adjustment factor of every stock per trade "
    "date.",
    columns=(
        Column("ts_code", nullable=False),
        Column("trade_date", "date", nullable=False),
        Column("adj_factor", "float"),
    ),
    key=("ts_code", "trade_date"),
    partition_columns=("trade_date",),
    noun="factors",
    scheme="trade_date",
    group="market",
    publication="after_close",
    points=2000,
    late=True,
    doc_id=28,
    # Factors of a day are revised over the next trade dates.
    revision_window=3,
    publication_lag_days=4,
    min_rows_ratio=0.9,
    covers="daily",
)

# Derived tables: computed from the tables above, never fetched.
DAILY_HFQ = TableSpec(
    name="daily_hfq",
    api_name="",
    description="Backward-adjusted (后复权) daily bars as pro_bar(adj='hfq') makes them: "
    "prices × adj_factor to 2 decimals, change and pct_chg recomputed.",
    columns=(
        Column("ts_code", nullable=False),
        Column("trade_date", "date", nullable=False),
        *(Column(p, "float") for p in _PRICES),
        Column("change", "float"),
        Column("pct_chg", "float"),
        Column("vol", "float"),
        Column("amount", "float"),
        Column("adj_factor", "float"),
    ),
    key=("ts_code", "trade_date"),
    partition_columns=("trade_date",),
    scheme="derived",
    group="derived",
)

STOCK_UNIVERSE = TableSpec(
    name="stock_universe",
    api_name="",
    description="The stocks that traded each day, with their listing facts from stock_basic.",
    columns=(
        Column("trade_date", "date", nullable=False),
        Column("ts_code", nullable=False),
        Column("name"),
        Column("exchange"),
        Column("market"),
        Column("industry"),
        Column("list_status"),
        Column("close", "float"),
        Column("amount", "float"),
    ),
    key=("trade_date", "ts_code"),
    partition_columns=("trade_date",),
    scheme="derived",
    group="derived",
)

PRICE_COLUMNS: tuple[str, ...] = _PRICES
