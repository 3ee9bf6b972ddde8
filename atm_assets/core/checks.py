"""Data checks of synced partitions, read from their tables: completeness, keys, drift, cover."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from atm_assets.core.datasets import TRADE_CAL, TableSpec
from atm_assets.core.market import CALENDAR_EXCHANGE
from atm_assets.core.tables import Bounds, bounds_clause
from atm_assets.core.writer import TableWriter

# How far around the checked days to look for neighbouring open days with rows (calendar
# days: a long holiday is at most ~10 days).
NEIGHBOUR_REACH = dt.timedelta(days=20)
SAMPLE = 5
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


@dataclass(frozen=True)
class Finding:
    """One check's result on one partition (None: the dataset has no partitions)."""

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
    if spec.min_rows_ratio is not None and spec.scheme == "trade_date":
        found.append(
            DataCheck(
                "rows_complete",
                "An open trade date holds rows, and at least "
                f"{spec.min_rows_ratio:.0%} as many as its neighbouring open days "
                "(fewer: published partly)",
            )
        )
    if spec.key:
        found.append(DataCheck("unique_keys", f"No two rows share a key ({', '.join(spec.key)})"))
        found.append(DataCheck("key_not_null", "No key column is NULL"))
    if spec.covers:
        found.append(
            DataCheck(
                f"covers_{spec.covers}",
                f"Every ts_code {spec.covers} has on a trade date is here too",
                # A missing factor makes adjusted prices wrong; a missing valuation does not.
                blocking=spec.name == "adj_factor",
            )
        )
    found.append(
        DataCheck(
            "no_schema_drift",
            f"Tushare's {spec.api_name} answers no field the catalog does not declare",
            blocking=False,
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
        """Every check of the dataset on every partition in `bounds` (None: the whole table)."""
        keys = [k for k in bounds if k not in set(skip)]
        if not keys or not self.writer.exists():
            return []
        findings: list[Finding] = []
        for check in checks_for(self.spec):
            if check.name == "rows_complete":
                found = self._rows_complete(check, {k: bounds[k] for k in keys})
            elif check.name == "no_schema_drift":
                found = {k: self._drift() for k in keys}
            else:
                found = {k: self._per_partition(check, bounds[k]) for k in keys}
            findings += [
                Finding(check.name, key, ok, check.blocking, text, meta)
                for key, (ok, text, meta) in found.items()
            ]
        return findings

    # -- the checks --

    def _per_partition(
        self, check: DataCheck, bounds: Sequence[Bounds] | None
    ) -> tuple[bool, str, dict[str, Any]]:
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
        assert ratio is not None
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


def _one_day(bounds: Sequence[Bounds] | None) -> dt.date | None:
    """The trade date of a one-day partition's bounds."""
    if not bounds or len(bounds) != 1 or set(bounds[0]) != {"trade_date"}:
        return None
    lo, hi = bounds[0]["trade_date"]
    return lo if lo == hi and isinstance(lo, dt.date) else None
