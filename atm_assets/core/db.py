"""Target database settings and engines: SQLite by default, PostgreSQL for production, DuckDB."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from atm_assets.core.dialects import Dialect, dialect_named
from atm_assets.core.errors import ConfigError, DatabaseUnavailableError
from atm_assets.core.settings import DatabaseSection, validate_identifier

# The original script's DatabaseConfig default password; only used when DB_PASSWORD is unset.
DEFAULT_PASSWORD = "quant123"


@dataclass(frozen=True)
class Database:
    """Where the synced tables live: the `database` settings plus the secrets, which come from
    the environment only. `url` wins; else a host means PostgreSQL; else a DuckDB file if one
    is set; else the SQLite file."""

    settings: DatabaseSection = DatabaseSection()
    password: str | None = None
    url: str | None = None
    connect_timeout: int = 10

    def __post_init__(self) -> None:
        if self.url:
            try:
                make_url(self.url)
            except Exception:
                # The URL may hold a password: never echo it back.
                raise ConfigError("ATM_DATABASE_URL is not a valid SQLAlchemy URL") from None

    @classmethod
    def from_environment(
        cls, settings: DatabaseSection, env: Mapping[str, str] | None = None
    ) -> Database:
        env = os.environ if env is None else env
        return cls(settings, env.get("DB_PASSWORD"), env.get("ATM_DATABASE_URL") or None)

    def sqlalchemy_url(self) -> URL:
        if self.url:
            url = make_url(self.url)
            return self.dialect_of_url(url).driver_url(url)
        s = self.settings
        if s.host and s.duckdb_path:
            raise ConfigError(
                "database.host (DB_HOST) and database.duckdb_path (ATM_DUCKDB_PATH) are both "
                "set: choose PostgreSQL or DuckDB"
            )
        if s.host:
            return dialect_named("postgresql").driver_url(
                URL.create(
                    "postgresql",
                    username=s.user,
                    password=self.password if self.password is not None else DEFAULT_PASSWORD,
                    host=s.host,
                    port=s.port,
                    database=s.name,
                )
            )
        if s.duckdb_path:
            return URL.create("duckdb", database=s.duckdb_path)
        return URL.create("sqlite", database=s.sqlite_path)

    def path_setting(self) -> str:
        """The setting that names the embedded database file, for errors about it."""
        if self.url:
            return "ATM_DATABASE_URL"
        return "database.duckdb_path" if self.settings.duckdb_path else "database.sqlite_path"

    @staticmethod
    def dialect_of_url(url: URL) -> Dialect:
        return dialect_named(url.get_backend_name())

    @property
    def target_dialect(self) -> Dialect:
        return self.dialect_of_url(self.sqlalchemy_url())

    @property
    def dialect(self) -> str:
        return self.target_dialect.name

    @property
    def schema(self) -> str | None:
        """Tables go to the configured schema where the database has schemas."""
        return self.settings.db_schema if self.target_dialect.has_schemas else None

    def describe(self) -> str:
        """Where the data goes, for logs and errors: never the password."""
        return self.target_dialect.describe(self.sqlalchemy_url(), self.schema)

    def create_engine(self) -> Engine:
        url = self.sqlalchemy_url()
        dialect = self.dialect_of_url(url)
        path = dialect.file_of(url)
        if path:
            from atm_assets.core.paths import writable_file

            writable_file(path, self.path_setting())
        return dialect.create_engine(url, self.connect_timeout)

    def check(self, engine: Engine) -> None:
        """Fail early, naming host, port and database (never the password), if it is down."""
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except DatabaseUnavailableError:
            raise  # already one line (an embedded file another process holds)
        except sa.exc.DBAPIError as e:
            reason = str(getattr(e, "orig", e)).strip().splitlines()[0] if str(e) else ""
            password = self.sqlalchemy_url().password
            if password:
                reason = reason.replace(str(password), "***")
            raise DatabaseUnavailableError(
                f"cannot reach the target database ({self.describe()}): "
                f"{reason or type(e).__name__}"
            ) from None


def ensure_schema(engine: Engine, schema: str | None) -> None:
    if schema is None:
        return
    validate_identifier(schema, "database schema")
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))


# One process's threads (tasks in flight, the lock manager, the state store) create tables one
# at a time: DuckDB lets only one uncommitted CREATE of a name exist, so a thread that lost the
# race and retried while the winner had not yet committed conflicted again (seen in CI).
_CREATING = threading.Lock()


def create_tables(
    engine: Engine,
    metadata: sa.MetaData,
    schema: str | None,
    tables: list[sa.Table] | None = None,
) -> None:
    """Create the schema and tables if missing; safe when several processes race to do so."""
    with _CREATING:
        try:
            ensure_schema(engine, schema)
            metadata.create_all(engine, tables=tables, checkfirst=True)
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError):
            # Another process raced on CREATE SCHEMA or TABLE: PostgreSQL says "already exists"
            # (DuplicateTable) or breaks a catalog unique index once the winner commits, even
            # for IF NOT EXISTS; the loser finds the winner's (any other error recurs).
            ensure_schema(engine, schema)
            metadata.create_all(engine, tables=tables, checkfirst=True)
