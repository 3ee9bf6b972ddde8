"""Data checks of synced partitions, read from their tables: completeness, keys, drift, cover."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from atm_assets.core.datasets import STOCK_BASIC, TRADE_CAL, TableSpec
from atm_assets.core.market import CALENDAR_EXCHANGE
from atm_assets.core.tables import Bounds, bounds_clause
from atm_assets.core.writer import TableWriter

# How far around the checked days to look for neighbouring open days with rows (calendar
# days: a long holiday is at most ~10 days).
NEIGHBOUR_REACH = dt.timedelta(days=20)
SAMPLE = 5
# stock_basic's statuses that trade: listed, and delisted (on the days before delist_date).
# Paused listings (P, 暂停上市) have no bars in Tushare's daily whatever their dates; G never
# listed.
TRADING_STATUSES = ("L", "D")
SUSPENDED = "S"
SUSPEND_D = "suspend_d"
# A day may hold this many rows fewer than its neighbour whatever the ratio (a few suspensions
# or delistings): the ratio judges a market of thousands, the slack a table of a few dozen.
ROWS_SLACK = 10


@dataclass(frozen=True)
class DataCheck:
    """One check a dataset gets: its name, what it asserts, and whether a failure blocks what
    is derived from the partition (else it is a warning)."""

    name: str
    description: str
    blocking: bool = True
    # One result per run, not one per partition it wrote: a fact about the run (what the API
    # answered in this process) or about the table as a whole (its key), not about a day's rows.
    per_run: bool = False


@dataclass(frozen=True)
class Finding:
    """One check's result on one partition (None: on the run as a whole, or a dataset without
    partitions)."""

    check: str
    partition: str | None
    passed: bool
    blocking: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def line(self, dataset: str) -> str:
        """The finding as one line for a person: `daily rows_complete 20240105: …`."""
        where = f" {self.partition}" if self.partition else ""
        return f"{dataset} {self.check}{where}: {self.description}"


def checks_for(spec: TableSpec) -> list[DataCheck]:
    """The checks of a fetched dataset, from its declaration."""
    found = []
    if spec.scheme == "trade_date" and not spec.empty_days:
        ratio = spec.min_rows_ratio
        found.append(
            DataCheck(
                "rows_complete",
                "An open trade date holds rows once its publication lag has passed"
                + (
                    f", and at least {ratio:.0%} as many as its neighbouring open days "
                    "(fewer: published partly)"
                    if ratio is not None
                    else " (its count varies by nature: not compared with other days)"
                ),
            )
        )
    if spec.key:
        # The key is the table's (its primary key where ATM made it): one result per run, over
        # every partition the run wrote, rather than the same answer once per day.
        key = ", ".join(spec.key)
        found.append(DataCheck("unique_keys", f"No two rows share a key ({key})", per_run=True))
        found.append(DataCheck("key_not_null", "No key column is NULL", per_run=True))
    if spec.covers:
        found.append(
            DataCheck(
                f"covers_{spec.covers}",
                f"Every ts_code {spec.covers} has on a trade date is here too",
                # A missing factor makes adjusted prices wrong; a missing valuation does not.
                blocking=spec.name == "adj_factor",
            )
        )
    if spec.covers_listed and spec.scheme == "trade_date":
        found.append(
            DataCheck(
                "covers_listed",
                "Every stock listed on the trade date (stock_basic: list_date on or before it, "
                "delist_date after it or none; paused listings excepted) and not suspended that "
                "day (suspend_d, suspend_type S) has a row",
                # Judged from two other datasets' copies, which may lag this one's (a stock
                # delisted since stock_basic was synced): a warning, not a block.
                blocking=False,
            )
        )
    found.append(
        DataCheck(
            "no_schema_drift",
            f"Tushare's {spec.api_name} answers no field the catalog does not declare",
            blocking=False,
            per_run=True,
        )
    )
    return found


@dataclass
class PartitionChecks:
    """Evaluates a dataset's checks over the partitions a run wrote, from the table.

    `bounds` maps each partition key to the rows it holds; `table_of` gives the table of
    another dataset (the calendar, the covered one); `extra_fields` what the API answered
    unasked in this process; `skip` partitions the run reported as not published yet."""

    writer: TableWriter
    table_of: Callable[[TableSpec | str], TableWriter]
    extra_fields: Sequence[str] = ()

    @property
    def spec(self) -> TableSpec:
        return self.writer.spec

    def evaluate(
        self, bounds: Mapping[str | None, Sequence[Bounds] | None], skip: Sequence[str] = ()
    ) -> list[Finding]:
        """Every check of the dataset on every partition in `bounds` (None: the whole table);
        a check about the run itself once, under None."""
        keys = [k for k in bounds if k not in set(skip)]
        if not keys or not self.writer.exists():
            return []
        findings: list[Finding] = []
        enforced = self._enforced()
        for check in checks_for(self.spec):
            if check.name in enforced:
                # The database refuses a row that would fail it: nothing needs a scan.
                held = (True, enforced[check.name], {"enforced_by": "table"})
                found = {k: held for k in ([None] if check.per_run else keys)}
            elif check.name == "rows_complete":
                found = self._rows_complete(check, {k: bounds[k] for k in keys})
            elif check.name == "no_schema_drift":
                found = {None: self._drift()}
            elif check.per_run:
                found = {None: self._scan(check, _union([bounds[k] for k in keys]))}
            else:
                found = {k: self._scan(check, bounds[k]) for k in keys}
            findings += [
                Finding(check.name, key, ok, check.blocking, text, meta)
                for key, (ok, text, meta) in found.items()
            ]
        return findings

    def _enforced(self) -> dict[str, str]:
        """The key checks the table's own constraints make true, with what says so."""
        unique, not_null = self.writer.key_constraints()
        key = ", ".join(self.spec.key)
        enforced = {}
        if unique:
            enforced["unique_keys"] = f"every key is unique (the table's primary key ({key}))"
        if not_null:
            enforced["key_not_null"] = f"no key column is NULL (declared NOT NULL: {key})"
        return enforced

    # -- the checks --

    def _scan(
        self, check: DataCheck, bounds: Sequence[Bounds] | None
    ) -> tuple[bool, str, dict[str, Any]]:
        """The check over the rows in `bounds` (None: the whole table)."""
        table = self.writer.table
        where = bounds_clause(table, bounds) if bounds is not None else sa.true()
        key = [table.c[k] for k in self.spec.key]
        with self.writer.engine.connect() as conn:
            if check.name == "unique_keys":
                repeated = (
                    sa.select(*key, sa.func.count().label("n"))
                    .where(where)
                    .group_by(*key)
                    .having(sa.func.count() > 1)
                )
                rows = conn.execute(repeated.limit(SAMPLE)).all()
                if not rows:
                    return True, "every key is unique", {}
                total = conn.execute(
                    sa.select(sa.func.count()).select_from(repeated.subquery())
                ).scalar_one()
                sample = ["|".join(str(v) for v in r[:-1]) for r in rows]
                return (
                    False,
                    f"{total} key(s) held more than once (e.g. {sample[0]})",
                    {"repeated_keys": int(total), "sample": sample},
                )
            if check.name == "key_not_null":
                nulls = conn.execute(
                    sa.select(sa.func.count()).where(where, sa.or_(*[c.is_(None) for c in key]))
                ).scalar_one()
                if not nulls:
                    return True, "no key column is NULL", {}
                return False, f"{nulls} row(s) with a NULL key column", {"null_key_rows": nulls}
            if check.name == "covers_listed":
                return self._covers_listed(conn, bounds)
            if check.name.startswith("covers_"):
                return self._covers(conn, bounds)
        raise ValueError(f"unknown check {check.name}")

    def _covers(
        self, conn: sa.Connection, bounds: Sequence[Bounds] | None
    ) -> tuple[bool, str, dict[str, Any]]:
        assert self.spec.covers is not None
        other = self.table_of(self.spec.covers)
        if not other.exists():
            return True, f"{self.spec.covers} is not synced: nothing to cover", {}
        mine, theirs = self.writer.table, other.table
        where = bounds_clause(theirs, bounds) if bounds is not None else sa.true()
        held = sa.select(sa.literal(1)).where(
            mine.c.ts_code == theirs.c.ts_code, mine.c.trade_date == theirs.c.trade_date
        )
        missing = sa.select(theirs.c.ts_code).where(where, ~held.exists())
        codes = [r[0] for r in conn.execute(missing.limit(SAMPLE))]
        if not codes:
            return True, f"every {self.spec.covers} ts_code is here", {}
        total = conn.execute(
            sa.select(sa.func.count()).select_from(missing.subquery())
        ).scalar_one()
        return (
            False,
            f"{total} ts_code(s) of {self.spec.covers} missing (e.g. {', '.join(codes)})",
            {"missing_codes": int(total), "sample": codes},
        )

    def _covers_listed(
        self, conn: sa.Connection, bounds: Sequence[Bounds] | None
    ) -> tuple[bool, str, dict[str, Any]]:
        """Listed stocks less the suspended ones, against the day's rows. Passes, saying it
        could not judge, while stock_basic holds nothing or suspend_d nothing for the day
        (the schedule re-fetches the day with its publication lag: judged then)."""
        day = _one_day(bounds)
        if day is None:
            return True, "not one trade date: nothing to judge", {}
        basic, suspend = self.table_of(STOCK_BASIC), self.table_of(SUSPEND_D)
        if not basic.exists() or not _holds(conn, basic.table, sa.true()):
            return True, "stock_basic is not synced: could not judge which stocks were listed", {}
        if not suspend.exists() or not _holds(
            conn, suspend.table, suspend.table.c.trade_date == day
        ):
            return (
                True,
                f"suspend_d holds nothing for {day:%Y%m%d} (not synced yet): could not judge "
                "which stocks were suspended",
                {},
            )
        mine, stocks, halts = self.writer.table, basic.table, suspend.table
        suspended = sa.select(sa.literal(1)).where(
            halts.c.ts_code == stocks.c.ts_code,
            halts.c.trade_date == day,
            halts.c.suspend_type == SUSPENDED,
        )
        held = sa.select(sa.literal(1)).where(
            mine.c.ts_code == stocks.c.ts_code, mine.c.trade_date == day
        )
        expected = sa.select(stocks.c.ts_code).where(
            stocks.c.list_status.in_(TRADING_STATUSES),
            stocks.c.list_date <= day,
            sa.or_(stocks.c.delist_date.is_(None), stocks.c.delist_date > day),
            ~suspended.exists(),
        )
        count = sa.select(sa.func.count()).select_from
        listed = conn.execute(count(expected.subquery())).scalar_one()
        missing = expected.where(~held.exists())
        codes = [r[0] for r in conn.execute(missing.order_by(stocks.c.ts_code).limit(SAMPLE))]
        meta: dict[str, Any] = {"expected_stocks": int(listed)}
        if not codes:
            return True, f"each of the {listed} listed, unsuspended stocks has a row", meta
        total = conn.execute(count(missing.subquery())).scalar_one()
        meta.update(missing_codes=int(total), sample=codes)
        return (
            False,
            f"{total} of {listed} listed, unsuspended stock(s) have no row "
            f"(e.g. {', '.join(codes)})",
            meta,
        )

    def _drift(self) -> tuple[bool, str, dict[str, Any]]:
        if not self.extra_fields:
            return True, "no field beyond the catalog's", {}
        fields = ", ".join(self.extra_fields)
        return (
            False,
            f"Tushare answered field(s) the catalog does not declare: {fields} (not stored)",
            {"extra_fields": list(self.extra_fields)},
        )

    def _rows_complete(
        self, check: DataCheck, bounds: Mapping[str | None, Sequence[Bounds] | None]
    ) -> dict[str | None, tuple[bool, str, dict[str, Any]]]:
        ratio = self.spec.min_rows_ratio
        days = {k: _one_day(b) for k, b in bounds.items()}
        dated = [d for d in days.values() if d is not None]
        if not dated:
            return {}
        lo, hi = min(dated) - NEIGHBOUR_REACH, max(dated) + NEIGHBOUR_REACH
        table = self.writer.table
        with self.writer.engine.connect() as conn:
            counts: dict[dt.date, int] = dict(
                conn.execute(
                    sa.select(table.c.trade_date, sa.func.count())
                    .where(table.c.trade_date.between(lo, hi))
                    .group_by(table.c.trade_date)
                ).all()
            )
        open_days = self._open_days(lo, hi)
        out: dict[str | None, tuple[bool, str, dict[str, Any]]] = {}
        for key, day in days.items():
            if day is None:
                continue
            rows = int(counts.get(day, 0))
            before = [d for d in open_days if d < day and counts.get(d)]
            after = [d for d in open_days if d > day and counts.get(d)]
            neighbours = ([before[-1]] if before else []) + ([after[0]] if after else [])
            meta: dict[str, Any] = {"rows": rows}
            if rows == 0:
                out[key] = (False, "an open trade date with no rows", meta)
                continue
            if ratio is None:
                out[key] = (True, f"{rows} rows", meta)
                continue
            if not neighbours:
                out[key] = (True, f"{rows} rows (no neighbouring day held to compare)", meta)
                continue
            best = max(neighbours, key=lambda d: counts[d])
            reference = int(counts[best])
            meta.update(reference_day=best.strftime("%Y%m%d"), reference_rows=reference)
            if rows < ratio * reference and reference - rows > ROWS_SLACK:
                out[key] = (
                    False,
                    f"{rows} rows where {best:%Y%m%d} holds {reference} "
                    f"({rows / reference:.0%}, below {ratio:.0%}): published partly?",
                    meta,
                )
            else:
                out[key] = (True, f"{rows} rows ({best:%Y%m%d}: {reference})", meta)
        return out

    def _open_days(self, lo: dt.date, hi: dt.date) -> list[dt.date]:
        """Open days of the calendar in [lo, hi]; every day when the calendar is not synced."""
        calendar = self.table_of(TRADE_CAL)
        if calendar.exists():
            cal = calendar.table
            with calendar.engine.connect() as conn:
                return sorted(
                    r[0]
                    for r in conn.execute(
                        sa.select(cal.c.cal_date).where(
                            cal.c.exchange == CALENDAR_EXCHANGE,
                            cal.c.is_open == 1,
                            cal.c.cal_date.between(lo, hi),
                        )
                    )
                )
        return [lo + dt.timedelta(days=i) for i in range((hi - lo).days + 1)]


def _holds(conn: sa.Connection, table: sa.Table, where: sa.ColumnElement[bool]) -> bool:
    return conn.execute(sa.select(sa.literal(1)).where(where).limit(1)).first() is not None


def _one_day(bounds: Sequence[Bounds] | None) -> dt.date | None:
    """The trade date of a one-day partition's bounds."""
    if not bounds or len(bounds) != 1 or set(bounds[0]) != {"trade_date"}:
        return None
    lo, hi = bounds[0]["trade_date"]
    return lo if lo == hi and isinstance(lo, dt.date) else None


def _union(bounds: Sequence[Sequence[Bounds] | None]) -> list[Bounds] | None:
    """The rows of several partitions together; None (the whole table) if any is whole."""
    if any(b is None for b in bounds):
        return None
    return [one for b in bounds if b is not None for one in b]
