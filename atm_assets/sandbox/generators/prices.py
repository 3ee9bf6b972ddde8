"""Per-stock price model: every bar and adjustment factor is a pure function of (stock, day)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from atm_assets.sandbox.generators.common import Bits, digest, mix
from atm_assets.sandbox.tradecal import calendar, fmt_date


class Tradable:
    """Per-stock price parameters; every bar is a pure function of (stock, day index)."""

    __slots__ = (
        "ts_code",
        "list_date",
        "delist_date",
        "key",
        "base",
        "amp",
        "w1",
        "ph1",
        "w2",
        "ph2",
        "vol_base",
        "row",
        "_adj",
    )

    def __init__(self, seed: int, row: Mapping[str, Any]) -> None:
        self.ts_code: str = row["ts_code"]
        self.list_date: str = row["list_date"]
        self.delist_date: str | None = row["delist_date"]
        # The stock_basic row itself (shared, never modified): name, market, industry, ...
        self.row = row
        bits = Bits(digest(seed, self.ts_code, "px"))
        self.key = bits.take(1 << 64)
        self.base = math.exp(math.log(2.0) + bits.unit() * (math.log(150.0) - math.log(2.0)))
        self.amp = 0.15 + 0.25 * bits.unit()
        self.w1 = 0.01 + 0.04 * bits.unit()
        self.ph1 = 2 * math.pi * bits.unit()
        self.w2 = 0.05 + 0.2 * bits.unit()
        self.ph2 = 2 * math.pi * bits.unit()
        self.vol_base = 10 ** (3 + 2.5 * bits.unit())
        self._adj: tuple[list[int], list[float]] | None = None

    def trades_on(self, day: str) -> bool:
        return self.list_date <= day and (self.delist_date is None or day < self.delist_date)

    def suspended(self, i: int) -> bool:
        return mix(self.key ^ 0x5E5, i) % 1000 < 12

    def close(self, i: int) -> float:
        noise = mix(self.key, i) / 2.0**64
        x = (
            self.amp * math.sin(self.w1 * i + self.ph1)
            + 0.08 * math.sin(self.w2 * i + self.ph2)
            + 0.015 * (2 * noise - 1)
        )
        return round(self.base * math.exp(x), 2)

    def closes(self, lo: int, hi: int) -> list[float]:
        """close(i) for i in lo..hi, computed exactly as close() does but in one loop."""
        key, base, amp, w1, ph1, w2, ph2 = (
            self.key,
            self.base,
            self.amp,
            self.w1,
            self.ph1,
            self.w2,
            self.ph2,
        )
        exp, sin = math.exp, math.sin
        out = []
        for i in range(lo, hi + 1):
            noise = mix(key, i) / 2.0**64
            x = amp * sin(w1 * i + ph1) + 0.08 * sin(w2 * i + ph2) + 0.015 * (2 * noise - 1)
            out.append(round(base * exp(x), 2))
        return out

    def bar(self, i: int) -> tuple[float, ...]:
        return self.bar_with(i, self.close(i), self.close(i - 1))

    def bar_with(self, i: int, close: float, pre_close: float) -> tuple[float, ...]:
        """The daily bar of day i given its close and the formula close of day i - 1."""
        z = mix(self.key ^ 0xBA5, i)
        u1, u2, u3, u4 = (((z >> s) & 0xFFFF) / 65536 for s in (0, 16, 32, 48))
        open_ = round(pre_close * (1 + 0.02 * (u1 - 0.5)), 2)
        high = max(round(max(open_, close) * (1 + 0.02 * u2), 2), open_, close)
        low = min(round(min(open_, close) * (1 - 0.02 * u3), 2), open_, close)
        vol = round(self.vol_base * (0.4 + 1.2 * u4), 2)
        amount = round(vol * (open_ + high + low + close) / 4 / 10, 3)
        change = round(close - pre_close, 2)
        pct_chg = round(change / pre_close * 100, 4)
        return open_, high, low, close, pre_close, change, pct_chg, vol, amount

    def vol(self, i: int) -> float:
        """The bar's vol alone (hands), without the price arithmetic."""
        u4 = ((mix(self.key ^ 0xBA5, i) >> 48) & 0xFFFF) / 65536
        return round(self.vol_base * (0.4 + 1.2 * u4), 2)

    def traded(self, i: int, day: str) -> bool:
        """Whether day i (its date string is `day`) has a daily bar for this stock."""
        return self.trades_on(day) and not self.suspended(i)

    def last_traded_before(self, i: int) -> int | None:
        """The newest day index before i with a bar (None before the listing)."""
        days = calendar().open_dates
        j = i - 1
        while j >= 0 and days[j] >= self.list_date:
            if not self.suspended(j):
                return j
            j -= 1
        return None

    def adj_factor(self, i: int) -> float:
        if self._adj is None:
            self._adj = self._adj_events()
        idx, cum = self._adj
        return cum[bisect.bisect_right(idx, i)]

    def _adj_events(self) -> tuple[list[int], list[float]]:
        cal = calendar()
        listed = cal.index_on_or_after(self.list_date)
        idx: list[int] = []
        cum = [1.0]
        for year in range(2010, 2028):
            z = mix(self.key ^ 0xAD7, year)
            if z % 10 >= 6:
                continue
            day = date(year, 6, 1) + timedelta(days=(z >> 8) % 61)
            i = cal.index_on_or_after(fmt_date(day))
            if i <= listed or i >= len(cal.open_dates):
                continue
            idx.append(i)
            cum.append(round(cum[-1] * (1.005 + 0.06 * ((z >> 20) % 1000) / 1000), 3))
        return idx, cum
