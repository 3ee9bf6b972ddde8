"""Tushare Pro sandbox: deterministic data behind a wire-compatible loopback HTTP server."""

from atm_assets.sandbox.data import (
    API_SPECS,
    DEFAULT_SIZES,
    EXCHANGES,
    LIST_STATUSES,
    MAX_ROWS_PER_CALL,
    STOCK_BASIC_DEFAULT_FIELDS,
    STOCK_BASIC_FIELDS,
    ApiSpec,
    SandboxDataset,
    register_api,
)
from atm_assets.sandbox.server import (
    DEFAULT_TOKEN,
    FAULT_KINDS,
    RemoteSandbox,
    SandboxServer,
    tushare_client,
)

__all__ = [
    "API_SPECS",
    "DEFAULT_SIZES",
    "DEFAULT_TOKEN",
    "EXCHANGES",
    "FAULT_KINDS",
    "LIST_STATUSES",
    "MAX_ROWS_PER_CALL",
    "STOCK_BASIC_DEFAULT_FIELDS",
    "STOCK_BASIC_FIELDS",
    "ApiSpec",
    "RemoteSandbox",
    "SandboxDataset",
    "SandboxServer",
    "register_api",
    "tushare_client",
]
