"""Tushare call budgets: the points tier, per-API defaults and overrides, and the quota day."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from atm_assets.core.errors import ConfigError

# (minimum points, calls per minute to each API), highest tier first.
POINT_TIERS: tuple[tuple[int, int], ...] = ((5000, 500), (2000, 200), (120, 50))

# China has kept UTC+8 without daylight saving since 1991: a fixed offset is exact and needs no
# time zone database on the host.
SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
_DAY_SECONDS = 86400
_SHANGHAI_OFFSET = 8 * 3600

_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def validate_api_name(name: str) -> str:
    """Tushare API names are plain words (`daily`, `stock_basic`): anything else is a typo."""
    if not isinstance(name, str) or not _API_NAME.match(name):
        raise ConfigError(
            f"Tushare API name {name!r} is invalid: letters, digits and '_', starting with a "
            "letter, at most 64 characters"
        )
    return name


def _check_limit(value: object, what: str) -> None:
    if value is None:
        return
    # bool is an int subclass: `per_day: yes` in YAML must not become a limit of 1.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{what} must be a positive whole number (or null), got {value!r}")


@dataclass(frozen=True)
class Budget:
    """Calls allowed to one API; None means no limit of that kind (in an override: keep)."""

    per_minute: int | None = None
    per_day: int | None = None

    def __post_init__(self) -> None:
        _check_limit(self.per_minute, "per_minute")
        _check_limit(self.per_day, "per_day")

    @classmethod
    def parse(cls, value: Budget | Mapping[str, Any], what: str = "budget") -> Budget:
        """A Budget from itself or a settings mapping such as {"per_minute": 1}."""
        if isinstance(value, Budget):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{what} must be a mapping with per_minute/per_day, got {value!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            raise ConfigError(f"{what} has unknown keys {unknown}: expected per_minute, per_day")
        try:
            return cls(**value)
        except ConfigError as e:
            raise ConfigError(f"{what}: {e}") from None


def per_minute_for_points(points: int) -> int:
    """Calls per minute to each API for an account with `points` (the highest tier reached)."""
    if isinstance(points, bool) or not isinstance(points, int):
        raise ConfigError(f"Tushare points must be a whole number, got {points!r}")
    for floor, per_minute in POINT_TIERS:
        if points >= floor:
            return per_minute
    lowest, rate = POINT_TIERS[-1]
    raise ConfigError(
        f"Tushare points {points} are below the lowest known tier ({lowest} points, "
        f"{rate} calls/min): no budget is known for this account"
    )


class Budgets:
    """Each API's budget: the points tier's per-minute limit, lowered by the catalog's per-API
    default, then the user's per-API override field by field (an override may raise a limit:
    the user may have bought a separate one).

    `points=None` means no account-wide limit (a sandbox); defaults and overrides still apply.
    `per_minute` replaces the tier's limit for every API (a setting, for a known account).
    """

    def __init__(
        self,
        points: int | None,
        defaults: Mapping[str, Budget | Mapping[str, Any]] | None = None,
        overrides: Mapping[str, Budget | Mapping[str, Any]] | None = None,
        per_minute: int | None = None,
    ) -> None:
        _check_limit(per_minute, "per_minute")
        self.points = points
        tier = None if points is None else per_minute_for_points(points)
        self.tier_per_minute = per_minute if per_minute is not None else tier
        self.defaults = _budget_map(defaults, "default")
        self.overrides = _budget_map(overrides, "override")

    def __repr__(self) -> str:
        return (
            f"Budgets(points={self.points}, tier_per_minute={self.tier_per_minute}, "
            f"defaults={len(self.defaults)}, overrides={len(self.overrides)})"
        )

    def for_api(self, api_name: str) -> Budget:
        per_minute = self.tier_per_minute
        per_day = None
        default = self.defaults.get(api_name)
        if default is not None:
            if default.per_minute is not None:
                tier = default.per_minute if per_minute is None else per_minute
                per_minute = min(tier, default.per_minute)
            per_day = default.per_day
        override = self.overrides.get(api_name)
        if override is not None:
            if override.per_minute is not None:
                per_minute = override.per_minute
            if override.per_day is not None:
                per_day = override.per_day
        return Budget(per_minute, per_day)


def _budget_map(
    values: Mapping[str, Budget | Mapping[str, Any]] | None, what: str
) -> dict[str, Budget]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"per-API {what}s must map API names to budgets, got {values!r}")
    return {
        validate_api_name(api): Budget.parse(budget, f"{what} for API {api}")
        for api, budget in values.items()
    }


def shanghai_day(epoch: float) -> str:
    """The Tushare quota day (Asia/Shanghai calendar date, ISO) that `epoch` falls on."""
    return dt.datetime.fromtimestamp(epoch, SHANGHAI).date().isoformat()


def next_day_reset(epoch: float) -> float:
    """The next 00:00 Asia/Shanghai after `epoch`, when daily quotas reset."""
    days = (int(epoch) + _SHANGHAI_OFFSET) // _DAY_SECONDS
    return float((days + 1) * _DAY_SECONDS - _SHANGHAI_OFFSET)


def shanghai_time(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, SHANGHAI)
