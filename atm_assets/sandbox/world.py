"""World settings: which real-service quirks the sandbox models, and what is published."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

# Each quirk, what it models and the public evidence, is described in README.md (Fidelity).
QUIRKS: tuple[str, ...] = (
    "documented_fields",
    "documented_order",
    "documented_params",
    "corrections_in_place",
    "all_report_types",
    "repeated_rows",
    "funds_and_b_shares",
    "undocumented_caps",
)
FIDELITIES = ("simple", "real")


@dataclass(frozen=True)
class Fidelity:
    """Which quirks are on. "simple" (all off) is the sandbox's former world and today's default;
    "real" (all on) is the faithful model of Tushare, meant to become the default once ATM
    copes with it."""

    # Every documented field can be asked for (unmodelled ones answer null), with the
    # documentation's default set.
    documented_fields: bool = False
    # Financial statements and indicators answer in the documented column order.
    documented_order: bool = False
    # Required parameters exactly as documented (e.g. cyq_perf needs ts_code).
    documented_params: bool = False
    # A corrected report repeats with the same ann_date/f_ann_date, told apart by update_flag.
    corrections_in_place: bool = False
    # report_type 2, 3, 5 … 10 are served when asked for, not only 1 and 4.
    all_report_types: bool = False
    # Rows identical in every key-like column: top_inst seats, block trades, namechange.
    repeated_rows: bool = False
    # stk_limit also lists funds and B shares (~7,800 rows a day).
    funds_and_b_shares: bool = False
    # Undocumented caps below what clients ask (fina_indicator_vip: 2,000 rows a call).
    undocumented_caps: bool = False

    @classmethod
    def named(cls, name: str) -> Fidelity:
        if name == "simple":
            return cls()
        if name == "real":
            return cls(**dict.fromkeys(QUIRKS, True))
        raise ValueError(f"unknown fidelity {name!r}; expected one of {', '.join(FIDELITIES)}")

    @classmethod
    def parse(cls, value: Fidelity | str | Mapping[str, bool] | None) -> Fidelity:
        """A Fidelity, a name ("simple"/"real"), or {quirk: bool} on top of "simple"."""
        if value is None:
            return cls()
        if isinstance(value, Fidelity):
            return value
        if isinstance(value, str):
            return cls.named(value)
        return cls().with_quirks(value)

    def with_quirks(self, toggles: Mapping[str, bool]) -> Fidelity:
        unknown = sorted(set(toggles) - set(QUIRKS))
        if unknown:
            raise ValueError(f"unknown quirk(s) {unknown}; known: {', '.join(QUIRKS)}")
        return replace(self, **{k: bool(v) for k, v in toggles.items()})

    @property
    def name(self) -> str:
        """ "simple", "real", or "custom" for a mix."""
        for name in FIDELITIES:
            if self == Fidelity.named(name):
                return name
        return "custom"

    def quirks(self) -> dict[str, bool]:
        return {f.name: bool(getattr(self, f.name)) for f in fields(self)}


# Publication states of one (API, day): nothing yet, part of it, or all (the default).
UNPUBLISHED, PARTIAL, PUBLISHED = "unpublished", "partial", "published"
STATES = (UNPUBLISHED, PARTIAL, PUBLISHED)


@dataclass(frozen=True)
class Release:
    """How much of one API's rows for one day (its publication key's value) is out."""

    api: str
    day: str
    state: str
    count: int | None = None
    fraction: float | None = None
    # The row column the day is matched on (None: the API's documented publication key).
    column: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "api": self.api,
            "day": self.day,
            "state": self.state,
            "count": self.count,
            "fraction": self.fraction,
            "column": self.column,
        }


def make_release(
    api: str,
    day: str,
    state: str,
    count: int | None = None,
    fraction: float | None = None,
    column: str | None = None,
) -> Release:
    """Check and build one release setting ("partial" needs exactly one of count/fraction)."""
    day = str(day)
    if not (len(day) == 8 and day.isdigit()):
        raise ValueError(f"day must be YYYYMMDD, got {day!r}")
    if state not in STATES:
        raise ValueError(f"unknown publication state {state!r}; expected one of {STATES}")
    if state == PARTIAL:
        if (count is None) == (fraction is None):
            raise ValueError("partial publication needs exactly one of count or fraction")
        if count is not None and int(count) < 0:
            raise ValueError("count must be >= 0")
        if fraction is not None and not 0.0 <= float(fraction) <= 1.0:
            raise ValueError("fraction must be within 0..1")
    else:
        count = fraction = None
    return Release(
        api,
        day,
        state,
        None if count is None else int(count),
        None if fraction is None else float(fraction),
        column,
    )


def _rank(api: str, day: str, row: tuple[Any, ...], n: int) -> str:
    # A stable order within a day, the same whichever query asked: which rows are out first.
    text = repr((api, day, row, n)).encode("utf-8")
    return hashlib.blake2b(text, digest_size=8).hexdigest()


@dataclass(frozen=True)
class Publication:
    """Per (API, day) publication settings; absent means published. Immutable: set() copies."""

    releases: tuple[Release, ...] = ()

    def set(self, release: Release) -> Publication:
        kept = tuple(r for r in self.releases if (r.api, r.day) != (release.api, release.day))
        if release.state == PUBLISHED:
            return Publication(kept)
        return Publication(tuple(sorted((*kept, release), key=lambda r: (r.api, r.day))))

    def clear(self, api: str | None = None) -> Publication:
        return Publication(tuple(r for r in self.releases if api is not None and r.api != api))

    def for_api(self, api: str) -> dict[str, Release]:
        return {r.day: r for r in self.releases if r.api == api}

    def listing(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.releases]

    def filter(
        self,
        api: str,
        key: str | None,
        rows: Iterable[Mapping[str, Any]],
        day_rows: Callable[[str, str], list[Mapping[str, Any]]],
    ) -> Iterator[Mapping[str, Any]]:
        """`rows` less what is not out yet. `day_rows(column, day)` gives the day's full truth,
        from which a partial day's first `count` (or `fraction`) rows by a stable rank are
        chosen, so that every query sees the same subset."""
        releases = self.for_api(api)
        if not releases:
            yield from rows
            return
        allowed: dict[str, Counter[tuple[Any, ...]]] = {}
        seen: dict[str, Counter[tuple[Any, ...]]] = {}
        for row in rows:
            release = None
            for r in releases.values():
                column = r.column or key
                if column is not None and row.get(column) == r.day:
                    release = r
                    break
            if release is None:
                yield row
                continue
            if release.state == UNPUBLISHED:
                continue
            column = release.column or key or ""
            if release.day not in allowed:
                allowed[release.day] = self._chosen(api, release, day_rows(column, release.day))
                seen[release.day] = Counter()
            ident = tuple(row.values())
            seen[release.day][ident] += 1
            if seen[release.day][ident] <= allowed[release.day][ident]:
                yield row

    @staticmethod
    def _chosen(
        api: str, release: Release, truth: list[Mapping[str, Any]]
    ) -> Counter[tuple[Any, ...]]:
        occurrences: Counter[tuple[Any, ...]] = Counter()
        ranked = []
        for row in truth:
            ident = tuple(row.values())
            occurrences[ident] += 1
            ranked.append((_rank(api, release.day, ident, occurrences[ident]), ident))
        ranked.sort()
        if release.count is not None:
            n = min(release.count, len(ranked))
        else:
            n = round((release.fraction or 0.0) * len(ranked))
        return Counter(ident for _, ident in ranked[:n])
