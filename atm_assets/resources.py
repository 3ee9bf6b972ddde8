"""Dagster resources: thin, typed wrappers that build the core's client, database and stores."""

import logging
import os
from typing import Any

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from atm_assets.core.datasets import TableSpec
from atm_assets.core.db import DatabaseSettings, check_connection
from atm_assets.core.locks import LockManager
from atm_assets.core.settings import Settings, load_settings
from atm_assets.core.state import DbStateStore, FileStateStore, StateStore
from atm_assets.core.tushare_client import (
    RetryPolicy,
    TushareClient,
    shared_rate_limiter,
)
from atm_assets.core.writer import TableWriter

_engines: dict[Any, Any] = {}


class TushareResource(ConfigurableResource):
    """Tushare Pro API: token from TUSHARE_TOKEN, endpoint from TUSHARE_API_URL."""

    token: str = Field(description="Tushare Pro token (set TUSHARE_TOKEN; never in run config)")
    api_url: str = Field(description="Base URL; the client posts to <api_url>/<api_name>")
    timeout_seconds: float = 30.0
    calls_per_minute: int | None = Field(
        default=50, description="Client-side limit per API, shared by every partition of a run"
    )
    max_attempts: int = 5
    base_delay: float = 1.0
    rate_limit_base_delay: float = 10.0
    max_delay: float = 60.0
    budget_seconds: float = 300.0

    def client(self, log: logging.Logger | Any | None = None) -> TushareClient:
        return TushareClient(
            token=self.token,
            api_url=self.api_url,
            timeout=self.timeout_seconds,
            retry=RetryPolicy(
                max_attempts=self.max_attempts,
                base_delay=self.base_delay,
                rate_limit_base_delay=self.rate_limit_base_delay,
                max_delay=self.max_delay,
                budget_seconds=self.budget_seconds,
            ),
            limiter=shared_rate_limiter(self.api_url, self.calls_per_minute),
            logger=log,
        )


class DatabaseResource(ConfigurableResource):
    """The target database: SQLite file by default, PostgreSQL when `host` or `url` is set."""

    url: str | None = Field(default=None, description="SQLAlchemy URL (ATM_DATABASE_URL)")
    host: str | None = Field(default=None, description="PostgreSQL host (DB_HOST)")
    port: int = 5432
    user: str = "quant"
    password: str | None = Field(default=None, description="DB_PASSWORD; never in run config")
    database: str = "quant_db"
    db_schema: str = Field(default="quant", description="PostgreSQL schema (DB_SCHEMA)")
    sqlite_path: str = "storage/atm.db"

    def settings(self) -> DatabaseSettings:
        return DatabaseSettings(
            url=self.url,
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            name=self.database,
            schema=self.db_schema,
            sqlite_path=self.sqlite_path,
        )

    def engine(self):  # type: ignore[no-untyped-def]
        """One engine (and pool) per target per process."""
        settings = self.settings()
        key = (str(settings.sqlalchemy_url()), os.getcwd())
        if key not in _engines:
            _engines[key] = settings.create_engine()
        return _engines[key]

    @property
    def schema_name(self) -> str | None:
        return self.settings().effective_schema

    def check(self) -> None:
        check_connection(self.engine(), self.settings())

    def writer(self, spec: TableSpec) -> TableWriter:
        return TableWriter(self.engine(), spec, self.schema_name)

    def describe(self) -> str:
        return self.settings().describe()


class SyncResource(ConfigurableResource):
    """Task state, locks and write defaults shared by every sync."""

    database: DatabaseResource
    state_dir: str = "storage/state"
    use_db_state: bool = False
    lock_kind: str | None = Field(default=None, description="file | db (default: db with DB state)")
    lock_dir: str = "storage/locks"
    lock_timeout_minutes: float = 30.0
    batch_size: int = 100
    checkpoint_every: int = 10
    mode: str = "upsert"

    def state_store(
        self, use_db_state: bool | None = None, state_dir: str | None = None
    ) -> StateStore:
        if self.use_db_state if use_db_state is None else use_db_state:
            return DbStateStore(self.database.engine(), self.database.schema_name)
        return FileStateStore(state_dir or self.state_dir)

    def locks(self, use_db_state: bool | None = None) -> LockManager:
        db_state = self.use_db_state if use_db_state is None else use_db_state
        kind = self.lock_kind or ("db" if db_state else "file")
        return LockManager(
            kind=kind,
            lock_dir=self.lock_dir,
            engine=self.database.engine() if kind == "db" else None,
            schema=self.database.schema_name,
            timeout_minutes=self.lock_timeout_minutes,
        )


def build_resources(settings: Settings | None = None) -> dict[str, Any]:
    """The one place that decides which database, stores and endpoint a deployment uses."""
    s = settings or load_settings()
    database = DatabaseResource(
        url=EnvVar("ATM_DATABASE_URL") if os.environ.get("ATM_DATABASE_URL") else None,
        host=s.db_host,
        port=s.db_port,
        user=s.db_user,
        password=EnvVar("DB_PASSWORD") if os.environ.get("DB_PASSWORD") is not None else None,
        database=s.db_name,
        db_schema=s.db_schema,
        sqlite_path=s.sqlite_path,
    )
    from atm_assets.io_managers import TableIOManager

    return {
        "tushare": TushareResource(
            token=EnvVar("TUSHARE_TOKEN"),
            api_url=s.api_url,
            timeout_seconds=s.timeout_seconds,
            calls_per_minute=s.calls_per_minute,
            max_attempts=s.retry.max_attempts,
            base_delay=s.retry.base_delay,
            rate_limit_base_delay=s.retry.rate_limit_base_delay,
            max_delay=s.retry.max_delay,
            budget_seconds=s.retry.budget_seconds,
        ),
        "database": database,
        "sync": SyncResource(
            database=database,
            state_dir=s.state_dir,
            use_db_state=s.use_db_state,
            lock_kind=s.lock_kind,
            lock_dir=s.lock_dir,
            lock_timeout_minutes=s.lock_timeout_minutes,
            batch_size=s.batch_size,
            checkpoint_every=s.checkpoint_every,
            mode=s.mode,
        ),
        "table_io_manager": TableIOManager(database=database),
    }
