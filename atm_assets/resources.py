"""Dagster resources: thin, typed wrappers that build the core's client, database and stores."""

import logging
import os
from typing import Any

from dagster import ConfigurableResource, EnvVar, InitResourceContext
from pydantic import Field, PrivateAttr
from sqlalchemy.engine import Engine

from atm_assets.core.datasets import TableSpec
from atm_assets.core.db import Database
from atm_assets.core.engine import PartitionStream
from atm_assets.core.governor import Governor
from atm_assets.core.governor.shared import governor_for
from atm_assets.core.locks import LockManager
from atm_assets.core.settings import (
    DatabaseSection,
    RetrySettings,
    Settings,
    SyncOptions,
    TushareSettings,
    effective_lock_kind,
)
from atm_assets.core.state import DbStateStore, FileStateStore, StateStore
from atm_assets.core.tushare_client import TushareClient
from atm_assets.core.writer import TableWriter

# One engine (and connection pool) per target per process: resources are rebuilt per run.
_engines: dict[tuple[str, str], Engine] = {}


class TushareResource(ConfigurableResource):
    """Tushare Pro: the token from TUSHARE_TOKEN, the rest from the `tushare` settings."""

    token: str = Field(description="Tushare Pro token (TUSHARE_TOKEN; never in run config)")
    api_url: str
    timeout_seconds: float
    points: int
    calls_per_minute: int | None
    api_limits: str | None
    rate_window_seconds: float
    max_in_flight: int
    governor_path: str
    max_attempts: int
    base_delay: float
    rate_limit_base_delay: float
    max_delay: float
    budget_seconds: float

    @classmethod
    def from_settings(
        cls, settings: TushareSettings, token: str | None = None
    ) -> "TushareResource":
        """`token` None: read TUSHARE_TOKEN when the resource is used, never stored."""
        return cls(
            token=EnvVar("TUSHARE_TOKEN") if token is None else token,
            **settings.model_dump(exclude={"retry"}),
            **settings.retry.model_dump(),
        )

    def settings(self) -> TushareSettings:
        values = self.model_dump(exclude={"token"})
        retry = {k: values.pop(k) for k in RetrySettings.model_fields}
        return TushareSettings(**values, retry=RetrySettings(**retry))

    def governor(self, database: Database | None = None) -> Governor:
        """The account's shared budgets: in `database` when it is PostgreSQL, else host-wide."""
        return governor_for(self.settings(), database)

    def client(
        self, log: logging.Logger | Any | None = None, database: Database | None = None
    ) -> TushareClient:
        settings = self.settings()
        governor = governor_for(settings, database)
        return TushareClient(self.token, settings, governor=governor, logger=log)


class DatabaseResource(ConfigurableResource):
    """The target database: SQLite file by default, PostgreSQL when `host` or `url` is set."""

    url: str | None = Field(description="SQLAlchemy URL (ATM_DATABASE_URL, secret)")
    password: str | None = Field(description="DB_PASSWORD (secret); never in run config")
    host: str | None
    port: int
    user: str
    name: str
    db_schema: str
    sqlite_path: str
    duckdb_path: str | None = None

    @classmethod
    def from_settings(cls, settings: DatabaseSection) -> "DatabaseResource":
        return cls(
            url=EnvVar("ATM_DATABASE_URL") if os.environ.get("ATM_DATABASE_URL") else None,
            password=EnvVar("DB_PASSWORD") if os.environ.get("DB_PASSWORD") is not None else None,
            **settings.model_dump(),
        )

    def target(self) -> Database:
        fields = self.model_dump(exclude={"url", "password"})
        return Database(DatabaseSection(**fields), password=self.password, url=self.url)

    def engine(self) -> Engine:
        target = self.target()
        key = (target.sqlalchemy_url().render_as_string(), os.getcwd())
        if key not in _engines:
            _engines[key] = target.create_engine()
        return _engines[key]

    @property
    def schema_name(self) -> str | None:
        return self.target().schema

    def check(self) -> None:
        self.target().check(self.engine())

    def writer(self, spec: TableSpec) -> TableWriter:
        return TableWriter(self.engine(), spec, self.schema_name)

    def describe(self) -> str:
        return self.target().describe()


class SyncResource(ConfigurableResource):
    """Everything a sync needs besides its dataset: the source, the target, task state, locks
    and write defaults."""

    tushare: TushareResource
    database: DatabaseResource
    state_dir: str
    use_db_state: bool
    lock_kind: str | None
    lock_dir: str
    lock_timeout_minutes: float
    batch_size: int
    checkpoint_every: int
    mode: str
    sync_hooks: str | None
    staging_dir: str
    _streams: list[PartitionStream] = PrivateAttr(default_factory=list)

    @classmethod
    def from_settings(
        cls, settings: Settings, tushare: TushareResource, database: DatabaseResource
    ) -> "SyncResource":
        return cls(
            tushare=tushare,
            database=database,
            **settings.state.model_dump(),
            lock_kind=settings.lock.kind,
            lock_dir=settings.lock.dir,
            lock_timeout_minutes=settings.lock.timeout_minutes,
            **settings.sync.model_dump(exclude={"resume"}),
            **settings.extensions.model_dump(exclude={"user_assets"}),
        )

    def track(self, stream: PartitionStream) -> None:
        """Close `stream` when the run ends, should the IO manager never get to it."""
        self._streams.append(stream)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        for stream in self._streams:
            stream.close()
        self._streams.clear()

    def check_paths(self, use_db_state: bool | None = None, state_dir: str | None = None) -> None:
        """Every directory and file a sync writes on this host, checked before anything is
        fetched: an error names the setting (ATM_STAGING_DIR, …), not an errno."""
        from atm_assets.core.paths import writable_dir

        db_state = self.use_db_state if use_db_state is None else use_db_state
        writable_dir(self.staging_dir, "extensions.staging_dir")
        if not db_state:
            writable_dir(state_dir or self.state_dir, "state.state_dir")
        if effective_lock_kind(self.lock_kind, db_state) == "file":
            writable_dir(self.lock_dir, "lock.dir")
        self.tushare.governor(self.database.target())

    def options(self) -> SyncOptions:
        return SyncOptions.model_validate(
            {
                "batch_size": self.batch_size,
                "checkpoint_every": self.checkpoint_every,
                "mode": self.mode,
            }
        )

    def state_store(
        self, use_db_state: bool | None = None, state_dir: str | None = None
    ) -> StateStore:
        if self.use_db_state if use_db_state is None else use_db_state:
            return DbStateStore(self.database.engine(), self.database.schema_name)
        return FileStateStore(state_dir or self.state_dir)

    def locks(self, use_db_state: bool | None = None) -> LockManager:
        db_state = self.use_db_state if use_db_state is None else use_db_state
        kind = effective_lock_kind(self.lock_kind, db_state)
        return LockManager(
            kind=kind,
            lock_dir=self.lock_dir,
            engine=self.database.engine() if kind == "db" else None,
            schema=self.database.schema_name,
            timeout_minutes=self.lock_timeout_minutes,
        )
