"""ATM: keep a local database in sync with Tushare Pro, as Dagster assets."""

from typing import Any

# `defs` is resolved lazily so that `atm_assets.core` and `atm_assets.sandbox` stay importable
# without paying for (or depending on) Dagster; Dagster's loader finds it through dir()/getattr.
__all__ = ["StockIngestorService", "defs"]


def __getattr__(name: str) -> Any:
    if name == "defs":
        from atm_assets.definitions import defs

        return defs
    if name == "StockIngestorService":
        from atm_assets.api import StockIngestorService

        return StockIngestorService
    raise AttributeError(f"module 'atm_assets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
