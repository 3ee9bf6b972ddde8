"""Target database settings and engines: embedded SQLite by default, PostgreSQL for production."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

from atm_assets.core.errors import ConfigError, DatabaseUnavailableError
from atm_assets.core.settings import DatabaseSection, validate_identifier

# The original script's DatabaseConfig default password; only used when DB_PASSWORD is unset.
DEFAULT_PASSWORD = "quant123"


@dataclass(frozen=True)
class Database:
    """Where the synced tables live: the `database` settings plus the secrets, which come from
    the environment only. `url` wins; else a host means PostgreSQL; else the SQLite file."""

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
            # ATM writes through psycopg 3 (binary COPY), whatever driver the URL names.
            if url.get_backend_name() == "postgresql":
                url = url.set(drivername="postgresql+psycopg")
            return url
        s = self.settings
        if s.host:
            return URL.create(
                "postgresql+psycopg",
                username=s.user,
                password=self.password if self.password is not None else DEFAULT_PASSWORD,
                host=s.host,
                port=s.port,
                database=s.name,
            )
        return URL.create("sqlite", database=s.sqlite_path)

    @property
    def dialect(self) -> str:
        return self.sqlalchemy_url().get_backend_name()

    @property
    def schema(self) -> str | None:
        """SQLite has no schemas; on PostgreSQL tables go to the configured schema."""
        return self.settings.db_schema if self.dialect == "postgresql" else None

    def describe(self) -> str:
        """Where the data goes, for logs and errors: never the password."""
        url = self.sqlalchemy_url()
        if url.get_backend_name() == "sqlite":
            return f"SQLite file {Path(url.database or ':memory:').resolve()}"
        return (
            f"PostgreSQL {url.host}:{url.port or 5432}, database {url.database}, "
            f"user {url.username}, schema {self.settings.db_schema}"
        )

    def create_engine(self) -> Engine:
        url = self.sqlalchemy_url()
        if url.get_backend_name() == "sqlite":
            path = url.database
            if path and path != ":memory:" and not self.url:
                from atm_assets.core.paths import writable_file

                writable_file(path, "database.sqlite_path")
            engine = sa.create_engine(url, connect_args={"timeout": 60})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return sa.create_engine(
            url,
            pool_pre_ping=True,
            connect_args={"connect_timeout": self.connect_timeout, "application_name": "atm"},
        )

    def check(self, engine: Engine) -> None:
        """Fail early, naming host, port and database (never the password), if it is down."""
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.DBAPIError as e:
            reason = str(getattr(e, "orig", e)).strip().splitlines()[0] if str(e) else ""
            password = self.sqlalchemy_url().password
            if password:
                reason = reason.replace(str(password), "***")
            raise DatabaseUnavailableError(
                f"cannot reach the target database ({self.describe()}): "
                f"{reason or type(e).__name__}"
            ) from None


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers (state list, downstream assets) work while a sync writes;
    # synchronous=NORMAL in WAL mode is still safe against a killed process.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def ensure_schema(engine: Engine, schema: str | None) -> None:
    if schema is None:
        return
    validate_identifier(schema, "database schema")
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))


def insert_for(conn: Connection) -> Any:
    """The dialect's INSERT (with ON CONFLICT) for `conn`: PostgreSQL's or SQLite's."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def create_tables(
    engine: Engine,
    metadata: sa.MetaData,
    schema: str | None,
    tables: list[sa.Table] | None = None,
) -> None:
    """Create the schema and tables if missing; safe when several processes race to do so."""
    ensure_schema(engine, schema)
    try:
        metadata.create_all(engine, tables=tables, checkfirst=True)
    except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
        # Two processes (or threads) raced on CREATE TABLE: PostgreSQL says "already exists"
        # (DuplicateTable) or breaks a catalog unique index; the loser finds the winner's table.
        metadata.create_all(engine, tables=tables, checkfirst=True)
