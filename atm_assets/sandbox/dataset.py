"""SandboxDataset: one immutable (seed, sizes, revision) world and its ground-truth accessors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atm_assets.sandbox.generators.bars import _adj_factor_rows, _daily_rows, _trade_cal_rows
from atm_assets.sandbox.generators.listing import (
    DEFAULT_SIZES,
    LIST_STATUSES,
    MAX_REVISION,
    Listing,
    build_listing,
    resolve_sizes,
)
from atm_assets.sandbox.query import PAGING_PARAMS, get_spec
from atm_assets.sandbox.tradecal import CALENDAR_END, CALENDAR_START, calendar


class SandboxDataset:
    """Immutable, seeded view of the sandbox data; cheap to construct, generated on first use."""

    def __init__(
        self,
        seed: int = 0,
        sizes: Mapping[str, int] | Mapping[tuple[str, str], int] | None = None,
        revision: int = 1,
    ) -> None:
        if not 1 <= int(revision) <= MAX_REVISION:
            raise ValueError(f"revision must be in 1..{MAX_REVISION}, got {revision}")
        self.seed = int(seed)
        self.revision = int(revision)
        self.sizes = resolve_sizes(sizes)
        self._sizes_key = tuple(sorted(self.sizes.items()))

    def __repr__(self) -> str:
        changed = {
            f"{ex}:{st}": n for (ex, st), n in self.sizes.items() if DEFAULT_SIZES[(ex, st)] != n
        }
        return (
            f"SandboxDataset(seed={self.seed}, sizes={changed or None}, revision={self.revision})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SandboxDataset):
            return NotImplemented
        return (self.seed, self._sizes_key, self.revision) == (
            other.seed,
            other._sizes_key,
            other.revision,
        )

    def __hash__(self) -> int:
        return hash((self.seed, self._sizes_key, self.revision))

    def with_revision(self, revision: int) -> SandboxDataset:
        return SandboxDataset(self.seed, self.sizes, revision)

    def with_sizes(
        self, sizes: Mapping[str, int] | Mapping[tuple[str, str], int] | None
    ) -> SandboxDataset:
        return SandboxDataset(self.seed, sizes, self.revision)

    def listing(self) -> Listing:
        return build_listing(self.seed, self._sizes_key, self.revision)

    # -- ground truth accessors (tests compare API answers with these) --

    def stock_basic(
        self, exchange: str | None = None, list_status: str | None = None
    ) -> list[dict[str, Any]]:
        """Full 17-field rows sorted by ts_code; None means every exchange / status."""
        listing = self.listing()
        statuses = [list_status] if list_status else list(LIST_STATUSES)
        rows = [
            r
            for st in statuses
            for r in listing.by_status.get(st, ())
            if not exchange or r["exchange"] == exchange
        ]
        rows.sort(key=lambda r: r["ts_code"])
        return [dict(r) for r in rows]

    def trade_cal(
        self,
        exchange: str = "SSE",
        start_date: str | None = None,
        end_date: str | None = None,
        is_open: int | str | None = None,
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"exchange": exchange, "start_date": start_date}
        params.update(end_date=end_date, is_open=is_open)
        return list(_trade_cal_rows(self, params))

    def daily(
        self,
        ts_code: str | None = None,
        trade_date: str | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
    ) -> list[dict[str, Any]]:
        params = {
            "ts_code": ts_code,
            "trade_date": trade_date,
            "start_date": start_date,
            "end_date": end_date,
        }
        return list(_daily_rows(self, params))

    def adj_factor(
        self,
        ts_code: str | None = None,
        trade_date: str | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
    ) -> list[dict[str, Any]]:
        params = {
            "ts_code": ts_code,
            "trade_date": trade_date,
            "start_date": start_date,
            "end_date": end_date,
        }
        return list(_adj_factor_rows(self, params))

    def rows(self, api_name: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The full answer of any served API: every field, every row, no cap and no paging.

        Raises ParamError for a missing required parameter, like the service does.
        """
        spec = get_spec(api_name)
        clean = {k: v for k, v in (params or {}).items() if k not in PAGING_PARAMS}
        spec.check_required(clean)
        return [{f: row.get(f) for f in spec.fields} for row in spec.rows(self, clean)]

    def is_open(self, day: str) -> bool:
        return day in calendar().open_index

    def open_dates(self, start: str = CALENDAR_START, end: str = CALENDAR_END) -> list[str]:
        return calendar().open_between(start, end)
