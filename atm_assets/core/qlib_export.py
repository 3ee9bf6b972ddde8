"""qlib's binary provider format for daily bars: a calendar, instruments, a float32 file a field."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from atm_assets.core.datasets import ADJ_FACTOR, DAILY, SYNC_COMMIT, SYNCED_AT, TRADE_CAL
from atm_assets.core.errors import ConfigError
from atm_assets.core.export import MANIFEST
from atm_assets.core.paths import atomic_write_text
from atm_assets.core.readers import read_panel
from atm_assets.core.tables import build_table

# The layout follows qlib's scripts/dump_bin.py (microsoft/qlib, DumpDataBase): calendars/day.txt
# (one %Y-%m-%d a line), instruments/all.txt (CODE<TAB>first<TAB>last), and per instrument
# features/<code lowercased>/<field>.day.bin: little-endian float32 ("<f"), the first value the
# calendar index of the instrument's first day, then one value a calendar day up to its last
# (the bars reindexed onto the calendar: NaN where the stock has no bar).
#
# Prices follow the convention of qlib's Yahoo collector (scripts/data_collector/yahoo/
# collector.py, YahooNormalize1d.adjusted_price): adjusted price = raw price × factor, volume =
# raw volume ÷ factor, so `$close / $factor` is the traded close and `$volume * $factor` the
# traded volume, as qlib's backtest expects. ATM's factor is Tushare's adj_factor itself, so
# the prices are the backward-adjusted (hfq) ones of `read_panel`, rounded as pro_bar rounds;
# qlib's own Yahoo data further divides prices and factor by each stock's first close
# (`_manual_adj_data`), which ATM leaves out: hfq prices do not move when a day is added, so
# an instrument's files stay valid until its own rows change. amount (price × volume) is the
# same adjusted or not; units stay Tushare's (vol in lots of 100 shares, amount in 1,000 yuan).
FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "amount", "factor")
_PRICES = ("open", "high", "low", "close")
# Bumped when the files' meaning changes: every instrument is then written anew.
LAYOUT_VERSION = 1
# Stocks per read of the bars: memory stays a batch's bars (500 stocks × 10 years ≈ 1.2M rows).
CODES_PER_READ = 500
FREQ = "day"


def qlib_code(ts_code: str) -> str:
    """qlib's instrument name for a Tushare code: exchange then symbol, 600000.SH → SH600000."""
    symbol, _, exchange = ts_code.partition(".")
    return f"{exchange}{symbol}".upper()


def read_bin(path: str | os.PathLike[str]) -> tuple[int, np.ndarray]:
    """A feature file as qlib reads it: the calendar index of its first day and the values."""
    data = np.fromfile(path, dtype="<f4")
    return int(data[0]), data[1:]


@dataclass
class QlibSummary:
    """What one qlib export did: instruments written anew, left as they were, removed."""

    out: Path
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    days: int = 0
    first: dt.date | None = None
    last: dt.date | None = None

    def line(self) -> str:
        return (
            f"Exported daily to {self.out} as qlib: {self.written} instrument(s) written, "
            f"{self.unchanged} unchanged, {self.removed} removed; {self.days} day(s) "
            f"{self.first} … {self.last}, fields {','.join(FIELDS)}"
        )


class QlibExporter:
    """daily (and adj_factor) into a qlib provider directory `out`, replaced whole: the new
    directory is built beside it (unchanged instruments' files hard-linked from the old one),
    then swapped in, so a reader never sees half an export."""

    def __init__(
        self,
        engine: Engine,
        out: str | os.PathLike[str],
        schema: str | None = None,
        codes_per_read: int = CODES_PER_READ,
    ) -> None:
        self.engine = engine
        self.schema = schema
        self.out = Path(out)
        where = Path(os.path.abspath(self.out))
        self.staging = where.parent / f".{where.name}.qlib-staging"
        self.previous = where.parent / f".{where.name}.qlib-previous"
        self.codes_per_read = codes_per_read
        metadata = sa.MetaData()
        self.daily = build_table(DAILY, schema, metadata)
        self.factors = build_table(ADJ_FACTOR, schema, metadata)
        self.trade_cal = build_table(TRADE_CAL, schema, metadata)

    @property
    def signature(self) -> dict[str, Any]:
        return {"layout_version": LAYOUT_VERSION, "fields": list(FIELDS), "adjust": "hfq"}

    # -- the database side --

    def _has(self, table: sa.Table) -> bool:
        return sa.inspect(self.engine).has_table(table.name, schema=table.schema)

    def window(self, start: dt.date | None, end: dt.date | None) -> tuple[dt.date, dt.date]:
        """[start, end] narrowed to the days daily has bars on."""
        day = self.daily.c.trade_date
        stmt = sa.select(sa.func.min(day), sa.func.max(day))
        if start is not None:
            stmt = stmt.where(day >= start)
        if end is not None:
            stmt = stmt.where(day <= end)
        with self.engine.connect() as conn:
            lo, hi = conn.execute(stmt).one()
        if lo is None:
            within = f" from {start or 'the first'} to {end or 'the last'}" if start or end else ""
            raise ConfigError(f"daily has no bars{within}: nothing to export")
        return _as_date(lo), _as_date(hi)

    def calendar(self, lo: dt.date, hi: dt.date) -> list[dt.date]:
        """The open days of trade_cal in the window, and any day daily has a bar on (trade_cal
        may not be synced, or not that far)."""
        days = self.daily.c.trade_date
        stmts = [sa.select(days).where(days.between(lo, hi)).distinct()]
        if self._has(self.trade_cal):
            cal = self.trade_cal.c
            stmts.append(
                sa.select(cal.cal_date).where(cal.is_open == 1, cal.cal_date.between(lo, hi))
            )
        found: set[dt.date] = set()
        with self.engine.connect() as conn:
            for stmt in stmts:
                found.update(_as_date(d) for d in conn.execute(stmt).scalars())
        return sorted(found)

    def fingerprints(self, lo: dt.date, hi: dt.date) -> dict[str, dict[str, Any]]:
        """Per stock with a bar in the window: its first and last day, and the count and write
        stamps of its bars and factors there (ATM stamps every row it writes and never rewrites
        an unchanged one), so a stock whose stamps are the same has the same files."""
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for table in (self.daily, self.factors):
                c = table.c
                stmt = (
                    sa.select(
                        c.ts_code,
                        sa.func.min(c.trade_date),
                        sa.func.max(c.trade_date),
                        sa.func.count(),
                        sa.func.min(c[SYNCED_AT]),
                        sa.func.max(c[SYNCED_AT]),
                        sa.func.max(c[SYNC_COMMIT]),
                    )
                    .where(c.trade_date.between(lo, hi))
                    .group_by(c.ts_code)
                )
                for code, first, last, *stamps in conn.execute(stmt):
                    stamp = "|".join(map(str, stamps))
                    if table is self.daily:
                        out[code] = {
                            "first": _as_date(first).isoformat(),
                            "last": _as_date(last).isoformat(),
                            "fingerprint": stamp,
                        }
                    elif code in out:
                        out[code]["fingerprint"] += "/" + stamp
        return out

    def bars(self, codes: list[str], lo: dt.date, hi: dt.date) -> pd.DataFrame:
        """The stocks' bars, backward-adjusted in the database by ATM's panel reader, with the
        factor applied; volume in qlib's convention (÷ factor)."""
        columns = ["open", "high", "low", "close", "vol", "amount"]
        frame = read_panel(
            self.engine, columns, lo, hi, "hfq", codes, self.schema, with_factor=True
        )
        frame["volume"] = frame["vol"] / frame["factor"]
        return frame

    # -- the files --

    def read_manifest(self) -> dict[str, Any]:
        path = self.out / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            # No manifest, or one that cannot be read: every instrument is written anew.
            return {}
        if not isinstance(data, dict) or data.get("signature") != self.signature:
            return {}
        return data

    def _recover(self) -> None:
        """Finish or undo what a killed export left: the old directory put back if it was
        moved aside and the new one not yet in place; a half-built new one removed."""
        if self.previous.exists():
            if self.out.exists():
                shutil.rmtree(self.previous)
            else:
                os.replace(self.previous, self.out)
        if self.staging.exists():
            shutil.rmtree(self.staging)

    def _check_out(self) -> None:
        if not self.out.exists():
            return
        if not self.out.is_dir():
            raise ConfigError(f"--out {self.out} is a file, not a directory")
        ours = (self.out / MANIFEST).is_file() and _format_of(self.out / MANIFEST) == "qlib"
        if any(self.out.iterdir()) and not ours:
            # The directory is replaced whole: never anything that is not an export of ours.
            raise ConfigError(
                f"--out {self.out} is not empty and holds no qlib export of ATM: name a new "
                "or empty directory"
            )

    def _write_instrument(self, name: str, bars: pd.DataFrame, calendar: pd.Index) -> int:
        """One stock's field files; returns the calendar index of its first day."""
        where = self.staging / "features" / name.lower()
        where.mkdir(parents=True)
        index = calendar.get_indexer(pd.Index(bars["trade_date"]))
        if (index < 0).any():
            raise ValueError(f"{name}: a bar's day is not in the calendar")
        first = int(index.min())
        span = int(index.max()) - first + 1
        for field in FIELDS:
            values = np.full(span, np.nan, dtype="<f4")
            values[index - first] = bars[field].to_numpy(dtype="float64")
            header = np.array([first], dtype="<f4")
            with open(where / f"{field}.{FREQ}.bin", "wb") as f:
                f.write(header.tobytes())
                f.write(values.tobytes())
        return first

    def _link_instrument(self, name: str) -> bool:
        """An unchanged stock's files hard-linked from the current export (never modified in
        place, so sharing them is safe); False when any is missing."""
        old = self.out / "features" / name.lower()
        files = [old / f"{field}.{FREQ}.bin" for field in FIELDS]
        if not all(f.is_file() for f in files):
            return False
        new = self.staging / "features" / name.lower()
        new.mkdir(parents=True)
        for file in files:
            try:
                os.link(file, new / file.name)
            except OSError:
                # A filesystem without hard links: a copy does the same.
                shutil.copy2(file, new / file.name)
        return True

    def export(
        self, start: dt.date | None = None, end: dt.date | None = None, full: bool = False
    ) -> QlibSummary:
        """Write the provider directory for [start, end] (default: every bar daily has)."""
        if start and end and start > end:
            raise ConfigError(f"start date {start} is after end date {end}")
        for table, spec in ((self.daily, DAILY), (self.factors, ADJ_FACTOR)):
            if not self._has(table):
                raise ConfigError(f"table {spec.name} does not exist: sync {spec.name} first")
        self._recover()
        self._check_out()
        lo, hi = self.window(start, end)
        calendar = self.calendar(lo, hi)
        stocks = self.fingerprints(lo, hi)
        old_stocks: dict[str, Any] = self.read_manifest().get("instruments") or {}
        old_calendar = [] if full else _read_calendar(self.out)
        # Files of an unchanged stock stay valid while the calendar up to its last day is the
        # same (its first value indexes that calendar): a calendar grown at the end keeps them.
        same = 0
        for a, b in zip(old_calendar, calendar, strict=False):
            if a != b:
                break
            same += 1
        day_index = {d.isoformat(): i for i, d in enumerate(calendar)}
        summary = QlibSummary(self.out, days=len(calendar), first=calendar[0], last=calendar[-1])
        self.staging.mkdir(parents=True)
        try:
            todo = []
            for code, now in sorted(stocks.items()):
                before = old_stocks.get(code)
                if (
                    before == now
                    and day_index[now["last"]] < same
                    and self._link_instrument(qlib_code(code))
                ):
                    summary.unchanged += 1
                else:
                    todo.append(code)
            cal_index = pd.Index(calendar)
            for i in range(0, len(todo), self.codes_per_read):
                batch = todo[i : i + self.codes_per_read]
                frame = self.bars(batch, lo, hi)
                for code, bars in frame.groupby("ts_code", sort=True):
                    self._write_instrument(qlib_code(str(code)), bars, cal_index)
                    summary.written += 1
            summary.removed = len(set(old_stocks) - set(stocks))
            self._write_text_files(calendar, stocks, lo, hi)
            # One flush of everything written before the swap, not a sync per file (a whole
            # market is tens of thousands of files).
            os.sync()
            if self.out.exists():
                os.replace(self.out, self.previous)
            os.replace(self.staging, self.out)
        except BaseException:
            # The old directory back in place (if it was moved aside), the new one removed.
            self._recover()
            raise
        if self.previous.exists():
            shutil.rmtree(self.previous)
        return summary

    def _write_text_files(
        self, calendar: list[dt.date], stocks: dict[str, dict[str, Any]], lo: dt.date, hi: dt.date
    ) -> None:
        (self.staging / "calendars").mkdir()
        (self.staging / "instruments").mkdir()
        (self.staging / "calendars" / f"{FREQ}.txt").write_text(
            "".join(f"{d.isoformat()}\n" for d in calendar), encoding="utf-8"
        )
        lines = sorted(f"{qlib_code(c)}\t{s['first']}\t{s['last']}\n" for c, s in stocks.items())
        (self.staging / "instruments" / "all.txt").write_text("".join(lines), encoding="utf-8")
        body = {
            "dataset": "daily",
            "format": "qlib",
            "signature": self.signature,
            "window": [lo.isoformat(), hi.isoformat()],
            "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "instruments": stocks,
        }
        atomic_write_text(self.staging / MANIFEST, json.dumps(body, indent=1) + "\n")


def _as_date(value: Any) -> dt.date:
    # DuckDB may answer timestamps, SQLite and PostgreSQL dates.
    return value.date() if isinstance(value, dt.datetime) else value


def _format_of(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError, AttributeError):
        return None


def _read_calendar(out: Path) -> list[dt.date]:
    try:
        text = (out / "calendars" / f"{FREQ}.txt").read_text(encoding="utf-8")
    except OSError:
        return []
    return [dt.date.fromisoformat(line) for line in text.split()]


def export_qlib(
    engine: Engine,
    out: str | os.PathLike[str],
    schema: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    full: bool = False,
    codes_per_read: int = CODES_PER_READ,
) -> QlibSummary:
    """daily and adj_factor as a qlib provider directory `out` (calendars/, instruments/,
    features/): instruments whose bars and factors did not change are not rewritten."""
    return QlibExporter(engine, out, schema, codes_per_read).export(start, end, full)
