"""Target database settings and engines: embedded SQLite by default, PostgreSQL for production."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from atm_assets.core.errors import ConfigError, DatabaseUnavailableError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

DEFAULT_SQLITE_PATH = "storage/atm.db"
# Defaults of the original script's DatabaseConfig.
PG_DEFAULTS = {
    "host": "localhost",
    "port": 5432,
    "user": "quant",
    "password": "quant123",
    "name": "quant_db",
    "schema": "quant",
}


def validate_identifier(value: str, what: str) -> str:
    """A schema/table name must be a plain identifier: ATM quotes nothing it did not check."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ConfigError(
            f"{what} {value!r} is not a plain identifier (letters, digits, underscore; "
            "must not start with a digit; at most 63 characters)"
        )
    return value


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the synced tables live. `url` wins; else `host` means PostgreSQL; else SQLite."""

    url: str | None = None
    host: str | None = None
    port: int = PG_DEFAULTS["port"]
    user: str = PG_DEFAULTS["user"]
    password: str | None = None
    name: str = PG_DEFAULTS["name"]
    schema: str | None = PG_DEFAULTS["schema"]
    sqlite_path: str = DEFAULT_SQLITE_PATH
    connect_timeout: int = 10

    def __post_init__(self) -> None:
        if self.schema is not None:
            validate_identifier(self.schema, "database schema")
        if not 0 < int(self.port) < 65536:
            raise ConfigError(f"database port must be 1..65535, got {self.port}")
        if self.url:
            try:
                make_url(self.url)
            except Exception:
                # The URL may hold a password: never echo it back.
                raise ConfigError("ATM_DATABASE_URL is not a valid SQLAlchemy URL") from None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> DatabaseSettings:
        env = dict(os.environ if env is None else env)
        return cls(
            url=env.get("ATM_DATABASE_URL") or None,
            host=env.get("DB_HOST") or None,
            port=int(env.get("DB_PORT") or PG_DEFAULTS["port"]),
            user=env.get("DB_USER") or PG_DEFAULTS["user"],
            password=env.get("DB_PASSWORD"),
            name=env.get("DB_NAME") or PG_DEFAULTS["name"],
            schema=env.get("DB_SCHEMA") or PG_DEFAULTS["schema"],
            sqlite_path=env.get("ATM_SQLITE_PATH") or DEFAULT_SQLITE_PATH,
        )

    def sqlalchemy_url(self) -> URL:
        if self.url:
            url = make_url(self.url)
            # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; ATM ships psycopg2.
            if url.drivername == "postgresql":
                url = url.set(drivername="postgresql+psycopg2")
            return url
        if self.host:
            return URL.create(
                "postgresql+psycopg2",
                username=self.user,
                password=self.password if self.password is not None else PG_DEFAULTS["password"],
                host=self.host,
                port=int(self.port),
                database=self.name,
            )
        return URL.create("sqlite", database=self.sqlite_path)

    @property
    def dialect(self) -> str:
        return self.sqlalchemy_url().get_backend_name()

    @property
    def effective_schema(self) -> str | None:
        """SQLite has no schemas; on PostgreSQL tables go to `schema`."""
        return self.schema if self.dialect == "postgresql" else None

    def describe(self) -> str:
        """Where the data goes, for logs and errors: never the password."""
        url = self.sqlalchemy_url()
        if url.get_backend_name() == "sqlite":
            return f"SQLite file {Path(url.database or ':memory:').resolve()}"
        return (
            f"PostgreSQL {url.host}:{url.port or 5432}, database {url.database}, "
            f"user {url.username}, schema {self.schema}"
        )

    def create_engine(self) -> Engine:
        url = self.sqlalchemy_url()
        if url.get_backend_name() == "sqlite":
            path = url.database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"timeout": 60})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return sa.create_engine(
            url,
            pool_pre_ping=True,
            connect_args={"connect_timeout": self.connect_timeout, "application_name": "atm"},
        )


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets readers (state list, downstream assets) work while a sync writes;
    # synchronous=NORMAL in WAL mode is still safe against a killed process.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def check_connection(engine: Engine, settings: DatabaseSettings) -> None:
    """Fail early, naming host, port and database (never the password), if the DB is down."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as e:
        reason = str(getattr(e, "orig", e)).strip().splitlines()[0] if str(e) else type(e).__name__
        password = settings.sqlalchemy_url().password
        if password:
            reason = reason.replace(str(password), "***")
        raise DatabaseUnavailableError(
            f"cannot reach the target database ({settings.describe()}): {reason}"
        ) from None


def ensure_schema(engine: Engine, schema: str | None) -> None:
    if schema is None:
        return
    validate_identifier(schema, "database schema")
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
