"""The process's governors, built from settings: one store per location, shared by all clients."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from atm_assets.core.db import Database
from atm_assets.core.governor.budgets import Budget, Budgets
from atm_assets.core.governor.governor import Governor
from atm_assets.core.governor.stores import GovernorStore, SqliteStore
from atm_assets.core.settings import TushareSettings

# A call in flight longer than this belongs to a dead process (the window may be longer).
_IN_FLIGHT_TIMEOUT = 600.0

_stores: dict[tuple[Any, ...], GovernorStore] = {}
_governors: dict[tuple[Any, ...], Governor] = {}
_lock = threading.Lock()


def budgets_from(settings: TushareSettings) -> Budgets:
    """The points tier, `calls_per_minute` instead of it if set, lowered per API by the
    catalog's own limits, then `api_limits` per API."""
    from atm_assets.core.catalog import BUILTIN

    defaults = {s.api_name: Budget(s.per_minute, None) for s in BUILTIN if s.per_minute}
    overrides = {
        api: Budget(per_minute, per_day)
        for api, (per_minute, per_day) in settings.api_budgets().items()
    }
    return Budgets(
        settings.points,
        defaults=defaults,
        overrides=overrides,
        per_minute=settings.calls_per_minute,
    )


def governor_for(settings: TushareSettings, database: Database | None = None) -> Governor:
    """This process's governor for the account: in the target database when it is a server
    (PostgreSQL: every host shares it; the store is its dialect's), else in the host's SQLite
    file `tushare.governor_path`."""
    server = database if database is not None and database.target_dialect.server else None
    if server is not None:
        # Kept in memory only, as a key: the URL may carry the password.
        where: tuple[Any, ...] = (
            server.dialect,
            server.sqlalchemy_url().render_as_string(hide_password=False),
            server.schema,
        )
    else:
        where = ("sqlite-file", str(Path(settings.governor_path).absolute()))
    key = (
        *where,
        settings.points,
        settings.calls_per_minute,
        settings.api_limits,
        settings.rate_window_seconds,
    )
    with _lock:
        governor = _governors.get(key)
        if governor is not None:
            return governor
        store = _stores.get(where)
        if store is None:
            if server is not None:
                # Its own small pool: admissions must never wait behind the writer's connection.
                store = server.target_dialect.governor_store(server.create_engine(), server.schema)
            else:
                from atm_assets.core.paths import writable_file

                writable_file(where[1], "tushare.governor_path")
                store = SqliteStore(where[1])
            _stores[where] = store
        window = settings.rate_window_seconds
        governor = Governor(
            store,
            budgets_from(settings),
            window=window,
            in_flight_timeout=max(_IN_FLIGHT_TIMEOUT, window),
        )
        _governors[key] = governor
        return governor
