"""Tushare Pro sandbox: deterministic data behind a wire-compatible loopback HTTP server."""

from atm_assets.sandbox.control import RemoteSandbox
from atm_assets.sandbox.dataset import SandboxDataset
from atm_assets.sandbox.faults import FAULT_KINDS
from atm_assets.sandbox.generators.listing import (
    DEFAULT_SIZES,
    EXCHANGES,
    LIST_STATUSES,
    STOCK_BASIC_DEFAULT_FIELDS,
    STOCK_BASIC_FIELDS,
)
from atm_assets.sandbox.protocol import DEFAULT_TOKEN
from atm_assets.sandbox.query import API_SPECS, MAX_ROWS_PER_CALL, ApiSpec, register_api
from atm_assets.sandbox.server import SandboxServer, tushare_client
from atm_assets.sandbox.world import FIDELITIES, QUIRKS, Fidelity, Publication

__all__ = [
    "API_SPECS",
    "DEFAULT_SIZES",
    "DEFAULT_TOKEN",
    "EXCHANGES",
    "FIDELITIES",
    "FAULT_KINDS",
    "LIST_STATUSES",
    "MAX_ROWS_PER_CALL",
    "QUIRKS",
    "STOCK_BASIC_DEFAULT_FIELDS",
    "STOCK_BASIC_FIELDS",
    "ApiSpec",
    "Fidelity",
    "Publication",
    "RemoteSandbox",
    "SandboxDataset",
    "SandboxServer",
    "register_api",
    "tushare_client",
]
