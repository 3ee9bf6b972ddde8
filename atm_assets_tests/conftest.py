"""Shared fixtures: the sandbox server, real PostgreSQL and SQLite targets, a clean workdir."""

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from atm_assets.core.datasets import STOCK_BASIC
from atm_assets.core.db import Database
from atm_assets.core.settings import DatabaseSection
from atm_assets.core.writer import TableWriter
from atm_assets.sandbox import SandboxServer
from atm_assets_tests.faults import HOOKS
from atm_assets_tests.pg_server import ThrowawayPostgres

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# A server of your own (any superuser URL); unset, the suite starts a throwaway one.
EXTERNAL_PG_ENV = "ATM_TEST_PG_ADMIN_URL"
# Trust auth accepts any password; a distinctive one lets tests prove it never leaks.
TEST_DB_PASSWORD = "pg-secret-Zq81xT"
TEST_TOKEN = "tok-secret-9f3KqLmW"


LAYERS = ("pure", "integration", "cli", "ui")
# Fixtures that bring a server or a database: a test using one is an integration test at least.
_INTEGRATION_FIXTURES = {
    "sb", "sandbox", "target", "sqlite_target", "pg_target", "pg_database", "pg_server",
    "pg_admin_url", "atm_env", "deployment",
}  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test gets one layer marker (`pytest -m pure`, `-m "not cli and not ui"`, …): its
    own or its module's if it has one, else integration or pure by the fixtures it uses."""
    for item in items:
        if any(item.get_closest_marker(layer) for layer in LAYERS):
            continue
        fixtures = set(getattr(item, "fixturenames", ()))
        layer = "integration" if fixtures & _INTEGRATION_FIXTURES else "pure"
        item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[ThrowawayPostgres | None]:
    """The suite's own PostgreSQL server, started on first use and deleted at the end; None when
    ATM_TEST_PG_ADMIN_URL points at a server of yours (which no test then stops or restarts)."""
    if os.environ.get(EXTERNAL_PG_ENV):
        yield None
        return
    with ThrowawayPostgres() as server:
        yield server


@pytest.fixture(scope="session")
def pg_admin_url(pg_server: ThrowawayPostgres | None) -> str:
    return pg_server.admin_url if pg_server is not None else os.environ[EXTERNAL_PG_ENV]


@pytest.fixture(scope="session")
def pg_database(pg_admin_url: str) -> Iterator[sa.engine.URL]:
    """A throwaway PostgreSQL database for this test session (dropped at the end)."""
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    name = f"atm_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as e:
        where = sa.engine.make_url(pg_admin_url).render_as_string(hide_password=True)
        pytest.fail(f"cannot create a test database on {where}: {e}")
    url = sa.engine.make_url(pg_admin_url).set(database=name)
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(token=TEST_TOKEN, fidelity="real") as server:
        yield server


@pytest.fixture
def sb(sandbox: SandboxServer) -> Iterator[SandboxServer]:
    """The session's sandbox, reset to defaults before and after each test."""
    sandbox.reset()
    yield sandbox
    sandbox.reset()


@dataclass
class Target:
    """A database the test writes to, with the env vars that point ATM at it."""

    kind: str
    db: Database
    env: dict[str, str] = field(default_factory=dict)

    @property
    def schema(self) -> str | None:
        return self.db.schema

    def engine(self) -> sa.engine.Engine:
        return self.db.create_engine()

    def writer(self, spec=STOCK_BASIC) -> TableWriter:
        return TableWriter(self.engine(), spec, self.schema)

    def rows(self, spec=STOCK_BASIC) -> list[dict]:
        w = self.writer(spec)
        if not w.exists():
            return []
        return w.read().to_dict("records")


def sqlite_db(workdir: str, path: str = "storage/atm.db") -> Database:
    return Database(DatabaseSection(sqlite_path=os.path.join(workdir, path)))


def duckdb_target_at(workdir: str, path: str = "storage/atm.duckdb") -> Target:
    """A DuckDB file under `workdir`, selected the way a user does (ATM_DUCKDB_PATH)."""
    full = os.path.join(workdir, path)
    return Target("duckdb", Database(DatabaseSection(duckdb_path=full)), {"ATM_DUCKDB_PATH": full})


# Every target, for the guarantee tests that parametrise over DuckDB too (`target` alone runs
# SQLite and PostgreSQL: DuckDB is added where its guarantee is tested, not to every test).
ALL_TARGETS = ["sqlite", "postgresql", "duckdb"]


def _pg_target(url: sa.engine.URL) -> Target:
    schema = f"s_{uuid.uuid4().hex[:10]}"
    section = DatabaseSection(
        host=url.host,
        port=url.port or 5432,
        user=url.username or "postgres",
        name=url.database or "",
        db_schema=schema,
    )
    env = {
        "DB_HOST": url.host or "127.0.0.1",
        "DB_PORT": str(url.port or 5432),
        "DB_USER": url.username or "postgres",
        "DB_PASSWORD": TEST_DB_PASSWORD,
        "DB_NAME": url.database or "",
        "DB_SCHEMA": schema,
    }
    return Target("postgresql", Database(section, password=TEST_DB_PASSWORD), env)


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> str:
    """Run from an empty directory: storage/ (SQLite, state, locks) lands there."""
    monkeypatch.chdir(tmp_path)
    return str(tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, workdir, monkeypatch) -> Target:
    if request.param == "sqlite":
        t = Target("sqlite", sqlite_db(workdir))
        t.env = {"ATM_SQLITE_PATH": t.db.settings.sqlite_path}
    elif request.param == "duckdb":
        t = duckdb_target_at(workdir)
    else:
        t = _pg_target(request.getfixturevalue("pg_database"))
    for var in (
        "DB_HOST",
        "DB_PORT",
        "DB_USER",
        "DB_PASSWORD",
        "DB_NAME",
        "DB_SCHEMA",
        "ATM_DATABASE_URL",
        "ATM_SQLITE_PATH",
        "ATM_DUCKDB_PATH",
        "ATM_CONFIG",
    ):
        monkeypatch.delenv(var, raising=False)
    for key, value in t.env.items():
        monkeypatch.setenv(key, value)
    return t


@pytest.fixture
def sqlite_target(workdir, monkeypatch) -> Target:
    t = Target("sqlite", sqlite_db(workdir))
    t.env = {"ATM_SQLITE_PATH": t.db.settings.sqlite_path}
    for var in ("DB_HOST", "ATM_DATABASE_URL", "ATM_DUCKDB_PATH", "ATM_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ATM_SQLITE_PATH", t.db.settings.sqlite_path)
    return t


@pytest.fixture
def pg_target(workdir, pg_database, monkeypatch) -> Target:
    t = _pg_target(pg_database)
    for key, value in t.env.items():
        monkeypatch.setenv(key, value)
    return t


@pytest.fixture
def atm_env(sb, monkeypatch) -> dict[str, str]:
    """Point ATM at the sandbox with fast retries, no practical rate limit and a 1 s window."""
    env = {
        "TUSHARE_TOKEN": sb.token,
        "TUSHARE_API_URL": sb.url,
        "TUSHARE_CALLS_PER_MINUTE": "100000",
        # An injected 40203 pauses the API for one window for every process: keep it short.
        "TUSHARE_RATE_WINDOW": "1",
        "TUSHARE_RETRY_BASE_DELAY": "0.05",
        "TUSHARE_RATE_LIMIT_DELAY": "0.05",
        "TUSHARE_RETRY_MAX_DELAY": "0.2",
        "DAGSTER_HOME": "",
        # Faults are injected through the engine's hooks, importable by subprocesses too.
        "ATM_SYNC_HOOKS": HOOKS,
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    for key, value in env.items():
        if value:
            monkeypatch.setenv(key, value)
        else:
            monkeypatch.delenv(key, raising=False)
    return env


def source_rows(server: SandboxServer, exchange=None, list_status=None) -> list[dict]:
    """The sandbox's ground truth, as the table should hold it (dates as dates)."""
    rows = server.dataset.stock_basic(exchange, list_status)
    for row in rows:
        for col in STOCK_BASIC.date_columns:
            value = row[col]
            row[col] = dt.datetime.strptime(value, "%Y%m%d").date() if value else None
    return rows


def files_with_secrets(root) -> list[str]:
    """Files under `root` holding the test token or password (bytes: event logs are SQLite)."""
    from pathlib import Path

    secrets = [TEST_TOKEN.encode(), TEST_DB_PASSWORD.encode()]
    hits = []
    for path in Path(root).rglob("*"):
        try:
            data = path.read_bytes() if path.is_file() else b""
        except OSError:
            continue
        hits += [f"{path}: {s.decode()}" for s in secrets if s in data]
    return hits


@pytest.fixture(scope="session", autouse=True)
def no_secret_left_behind(tmp_path_factory):
    """After the whole run: every file any test left (task state, locks, SQLite databases,
    Dagster instances, event logs, compute logs) is free of the token and the password."""
    yield
    hits = files_with_secrets(tmp_path_factory.getbasetemp())
    assert hits == [], "secrets found on disk after the test run:\n" + "\n".join(hits)
