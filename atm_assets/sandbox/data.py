"""Compatibility re-exports for code that imported the sandbox's former data module."""

from atm_assets.sandbox.dataset import SandboxDataset
from atm_assets.sandbox.generators.listing import (
    DEFAULT_SIZES,
    EXCHANGES,
    LIST_STATUSES,
    STOCK_BASIC_DEFAULT_FIELDS,
    STOCK_BASIC_FIELDS,
    parse_partition,
    parse_size_spec,
    resolve_sizes,
)
from atm_assets.sandbox.query import (
    API_SPECS,
    MAX_ROWS_PER_CALL,
    ApiSpec,
    ParamError,
    QueryResult,
    UnknownApiError,
    execute,
    register_api,
)
from atm_assets.sandbox.tradecal import CALENDAR_END, CALENDAR_START, calendar

__all__ = [
    "API_SPECS",
    "CALENDAR_END",
    "CALENDAR_START",
    "DEFAULT_SIZES",
    "EXCHANGES",
    "LIST_STATUSES",
    "MAX_ROWS_PER_CALL",
    "STOCK_BASIC_DEFAULT_FIELDS",
    "STOCK_BASIC_FIELDS",
    "ApiSpec",
    "ParamError",
    "QueryResult",
    "SandboxDataset",
    "UnknownApiError",
    "calendar",
    "execute",
    "parse_partition",
    "parse_size_spec",
    "register_api",
    "resolve_sizes",
]
