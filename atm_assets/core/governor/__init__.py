"""Rate governor: one budget per Tushare API, shared by every ATM process on a host or cluster."""

from atm_assets.core.governor.budgets import (
    POINT_TIERS,
    SHANGHAI,
    Budget,
    Budgets,
    next_day_reset,
    per_minute_for_points,
    shanghai_day,
    validate_api_name,
)
from atm_assets.core.governor.governor import (
    ApiPermissionDeniedError,
    ApiStatus,
    CallCancelledError,
    DailyQuotaExhaustedError,
    Governor,
    classify_refusal,
)
from atm_assets.core.governor.stores import (
    APIS_TABLE,
    CALLS_TABLE,
    DAY,
    DAYS_TABLE,
    MINUTE,
    PERMISSION,
    REFUSAL_KINDS,
    GovernorStore,
    Policy,
    SqliteStore,
)

__all__ = [
    "APIS_TABLE",
    "CALLS_TABLE",
    "DAY",
    "DAYS_TABLE",
    "MINUTE",
    "PERMISSION",
    "POINT_TIERS",
    "REFUSAL_KINDS",
    "SHANGHAI",
    "ApiPermissionDeniedError",
    "ApiStatus",
    "Budget",
    "CallCancelledError",
    "Budgets",
    "DailyQuotaExhaustedError",
    "Governor",
    "GovernorStore",
    "Policy",
    "SqliteStore",
    "classify_refusal",
    "next_day_reset",
    "per_minute_for_points",
    "shanghai_day",
    "validate_api_name",
]
