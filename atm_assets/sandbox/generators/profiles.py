"""Per-company constants shared by the market, index and financial generators (one digest each)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from atm_assets.sandbox.generators.common import Bits, digest
from atm_assets.sandbox.tradecal import CALENDAR_START, shift_days

if TYPE_CHECKING:
    from atm_assets.sandbox.generators.listing import Listing

_COMP_TYPE_BY_INDUSTRY = {"银行": "2", "保险": "3", "证券": "4"}


class Profile:
    """Shares, valuation anchors and flags of one company; pure function of (seed, ts_code)."""

    __slots__ = (
        "ts_code",
        "row",
        "key",
        "price",
        "total_share",
        "float_ratio",
        "free_ratio",
        "share_growth",
        "eps",
        "bps",
        "sps",
        "payer",
        "margin",
        "margin_from",
        "comp_type",
        "size",
    )

    def __init__(self, seed: int, row: Mapping[str, Any]) -> None:
        self.ts_code: str = row["ts_code"]
        self.row = row
        bits = Bits(digest(seed, self.ts_code, "profile"))
        self.key = bits.take(1 << 64)
        # The price model's base price (same draw as Tradable.base) anchors the valuations.
        px = Bits(digest(seed, self.ts_code, "px"))
        px.take(1 << 64)
        self.price = math.exp(math.log(2.0) + px.unit() * (math.log(150.0) - math.log(2.0)))
        self.total_share = round(10 ** (3.3 + 2.7 * bits.unit()), 4)  # 万股
        self.float_ratio = 0.35 + 0.65 * bits.unit()
        self.free_ratio = 0.45 + 0.5 * bits.unit()
        self.share_growth = 0.06 * bits.unit()
        loss_maker = bits.take(100) < 12
        pe = 8 + 52 * bits.unit()
        self.eps = -self.price / (50 + 150 * bits.unit()) if loss_maker else self.price / pe
        self.bps = self.price / (0.6 + 5.4 * bits.unit())
        self.sps = self.price / (0.3 + 9.7 * bits.unit())
        self.payer = not loss_maker and bits.take(100) < 70
        self.margin = row["exchange"] != "BSE" and bits.take(100) < 72
        self.margin_from = max(shift_days(row["list_date"] or CALENDAR_START, 90), "20100331")
        self.comp_type = _COMP_TYPE_BY_INDUSTRY.get(row["industry"] or "", "1")
        self.size = math.log(self.total_share * self.price) + 0.3 * bits.unit()

    def shares(self, year: int) -> tuple[float, float, float]:
        """(total, float, free) shares in 万股 during `year`; they grow once a year."""
        total = round(self.total_share * (1 + self.share_growth) ** max(0, year - 2010), 4)
        floating = round(total * self.float_ratio, 4)
        return total, floating, round(floating * self.free_ratio, 4)


def profiles(listing: Listing) -> dict[str, Profile]:
    """Profiles of every company that ever listed, by ts_code (built once per listing)."""
    return listing.memo(
        "profiles", lambda: {r["ts_code"]: Profile(listing.seed, r) for r in listing.listed}
    )
