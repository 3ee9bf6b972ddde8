"""SandboxDataset: one immutable world (seed, sizes, revision, settings) and its ground truth."""

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
from atm_assets.sandbox.query import PAGING_PARAMS, get_spec, published_rows, truth_rows
from atm_assets.sandbox.tradecal import CALENDAR_END, CALENDAR_START, calendar
from atm_assets.sandbox.world import Fidelity, Publication


class SandboxDataset:
    """Immutable, seeded view of the sandbox data; cheap to construct, generated on first use.

    `fidelity` ("simple", "real", a Fidelity or {quirk: bool}) picks which of the real
    service's behaviours the data and answers follow; `publication` says which days are not
    (fully) out yet. Both are part of the world: a new setting is a new dataset."""

    def __init__(
        self,
        seed: int = 0,
        sizes: Mapping[str, int] | Mapping[tuple[str, str], int] | None = None,
        revision: int = 1,
        fidelity: Fidelity | str | Mapping[str, bool] | None = None,
        publication: Publication | None = None,
    ) -> None:
        if not 1 <= int(revision) <= MAX_REVISION:
            raise ValueError(f"revision must be in 1..{MAX_REVISION}, got {revision}")
        self.seed = int(seed)
        self.revision = int(revision)
        self.sizes = resolve_sizes(sizes)
        self.fidelity = Fidelity.parse(fidelity)
        self.publication = publication or Publication()
        self._sizes_key = tuple(sorted(self.sizes.items()))

    def __repr__(self) -> str:
        changed = {
            f"{ex}:{st}": n for (ex, st), n in self.sizes.items() if DEFAULT_SIZES[(ex, st)] != n
        }
        extra = ""
        if self.fidelity.name != "simple":
            extra += f", fidelity={self.fidelity.name!r}"
        if self.publication.releases:
            extra += f", publication={len(self.publication.releases)} settings"
        return (
            f"SandboxDataset(seed={self.seed}, sizes={changed or None}, "
            f"revision={self.revision}{extra})"
        )

    def _key(self) -> tuple[object, ...]:
        return (self.seed, self._sizes_key, self.revision, self.fidelity, self.publication)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SandboxDataset):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _with(self, **changes: object) -> SandboxDataset:
        args: dict[str, object] = {
            "seed": self.seed,
            "sizes": self.sizes,
            "revision": self.revision,
            "fidelity": self.fidelity,
            "publication": self.publication,
        }
        args.update(changes)
        return SandboxDataset(**args)  # type: ignore[arg-type]

    def with_revision(self, revision: int) -> SandboxDataset:
        return self._with(revision=revision)

    def with_sizes(
        self, sizes: Mapping[str, int] | Mapping[tuple[str, str], int] | None
    ) -> SandboxDataset:
        return self._with(sizes=sizes)

    def with_fidelity(self, fidelity: Fidelity | str | Mapping[str, bool] | None) -> SandboxDataset:
        return self._with(fidelity=Fidelity.parse(fidelity))

    def with_publication(self, publication: Publication | None) -> SandboxDataset:
        return self._with(publication=publication or Publication())

    def truth(self) -> SandboxDataset:
        """The same world with everything published (what the answer caches are keyed on)."""
        return self if not self.publication.releases else self._with(publication=None)

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
        """The full truth of any served API in this world: every field it serves (in answer
        order), every row (duplicates and corrections included), nothing held back by the
        publication settings, no cap and no paging.

        Raises ParamError for a missing required parameter, like the service does.
        """
        spec = get_spec(api_name)
        clean = {k: v for k, v in (params or {}).items() if k not in PAGING_PARAMS}
        spec.check_required(clean, self.fidelity)
        served = spec.served_fields(self.fidelity)
        return [{f: row.get(f) for f in served} for row in truth_rows(self, spec, clean)]

    def published_rows(
        self, api_name: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """What the service gives out now over all pages: rows() less unpublished days and
        the part of a partial day not yet out."""
        spec = get_spec(api_name)
        clean = {k: v for k, v in (params or {}).items() if k not in PAGING_PARAMS}
        spec.check_required(clean, self.fidelity)
        served = spec.served_fields(self.fidelity)
        return [{f: row.get(f) for f in served} for row in published_rows(self, spec, clean)]

    def is_open(self, day: str) -> bool:
        return day in calendar().open_index

    def open_dates(self, start: str = CALENDAR_START, end: str = CALENDAR_END) -> list[str]:
        return calendar().open_between(start, end)
