"""The SQL dialect of a target database, chosen once: one module per database ATM writes to.

A dialect module (`atm_assets.core.dialects.<SQLAlchemy backend name>`) defines a subclass of
`Dialect` as `DIALECT`; nothing else in ATM asks which database it talks to. Adding a target is
adding such a module."""

from __future__ import annotations

import importlib
from typing import Any

from atm_assets.core.dialects.base import Dialect, Group, Intervals
from atm_assets.core.errors import ConfigError

_loaded: dict[str, Dialect] = {}


def dialect_named(backend: str) -> Dialect:
    """The dialect of a SQLAlchemy backend name ("sqlite", "postgresql", "duckdb")."""
    found = _loaded.get(backend)
    if found is not None:
        return found
    try:
        module = importlib.import_module(f"{__name__}.{backend}")
    except ModuleNotFoundError:
        raise ConfigError(
            f"ATM cannot write to {backend} databases (it writes to SQLite, PostgreSQL and DuckDB)"
        ) from None
    dialect: Dialect = module.DIALECT
    _loaded[backend] = dialect
    return dialect


def dialect_of(bind: Any) -> Dialect:
    """The dialect of an Engine or Connection."""
    return dialect_named(bind.dialect.name)


__all__ = ["Dialect", "Group", "Intervals", "dialect_named", "dialect_of"]
