"""What ATM needs of a database: engines, upserts, key probes and the writes of an interval."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from atm_assets.core.errors import ConfigError
from atm_assets.core.tables import Row, TableRef, WriteCounts


class Intervals(Protocol):
    """How one task's checkpoint intervals get into the table."""

    def write(self, conn: Connection, rows: pd.DataFrame, commit_id: str) -> WriteCounts:
        """Write `rows` inside the caller's open transaction on `conn`, stamped `commit_id`."""
        ...

    def write_many(self, conn: Connection, group: Group, commit_id: str) -> list[WriteCounts]:
        """Several tasks' rows in the caller's one transaction, as if written one after the
        other; one WriteCounts per frame."""
        ...


@dataclass
class Group:
    """Several tasks' validated rows, to be written in one transaction."""

    frames: Sequence[pd.DataFrame]
    # Each frame as its dialect scans it (`Dialect.columns_of`), when made ahead.
    columns: Sequence[Any] | None = None
    # No key is in two frames (validation made each frame's keys unique, and the frames are
    # partitions told apart by a key column): nothing to drop between them.
    disjoint: bool = False


def one_by_one(
    intervals: Intervals, conn: Connection, group: Group, commit_id: str
) -> list[WriteCounts]:
    """`write_many` for a database where an interval costs little more than its rows."""
    return [intervals.write(conn, frame, commit_id) for frame in group.frames]


class SessionLocks(Protocol):
    """Locks that belong to a database session and die with it (killed holder, lost
    connection): a crashed run never blocks the next one. `key` is two signed 32-bit ints."""

    def try_lock(self, conn: Connection, key: tuple[int, int]) -> bool: ...

    def holds(self, conn: Connection, key: tuple[int, int]) -> bool: ...

    def unlock(self, conn: Connection, key: tuple[int, int]) -> None: ...


class Dialect(ABC):
    """One kind of target database."""

    # SQLAlchemy's backend name, and how people call the database.
    name: ClassVar[str]
    title: ClassVar[str]
    default_port: ClassVar[int | None] = None
    # Whether tables live in a schema (`database.schema`).
    has_schemas: ClassVar[bool]
    # A server every host reaches: the rate governor and task locks can live in it and be
    # shared by every host, and locks can be session locks that die with their holder.
    server: ClassVar[bool]
    # Session locks for task locks, where the database has them (else a lock row).
    session_locks: ClassVar[SessionLocks | None] = None

    def driver_url(self, url: URL) -> URL:
        """The URL with the driver ATM uses for this database."""
        return url

    def file_of(self, url: URL) -> str | None:
        """The file an embedded database lives in (None for a server or in memory)."""
        return None

    def describe(self, url: URL, schema: str | None) -> str:
        """Where the data goes, for logs and errors: never the password."""
        where = f", schema {schema}" if schema else ""
        return (
            f"{self.title} {url.host}:{url.port or self.default_port}, database {url.database}, "
            f"user {url.username}{where}"
        )

    @abstractmethod
    def create_engine(self, url: URL, connect_timeout: int) -> Engine:
        """An engine tuned for ATM's use (pragmas, timeouts, application name)."""

    def governor_store(self, engine: Engine, schema: str | None) -> Any:
        """The rate governor's store (a GovernorStore) in this database, for a `server` one:
        the account's budget then shared by every host writing here. Typed Any: the governor's
        stores import core.db, which imports the dialects: naming its type here would close an
        import circle."""
        raise ConfigError(f"{self.title} cannot hold the rate governor's store")

    def connect_args(self, connect_timeout: int) -> dict[str, Any]:
        """Connection arguments of a short-lived side engine (locks)."""
        return {}

    @abstractmethod
    def insert(self, table: sa.Table) -> Any:
        """An INSERT on `table` that takes `.on_conflict_do_update/nothing`."""

    @abstractmethod
    def existing_keys(self, conn: Connection, table: TableRef, frame: pd.DataFrame) -> list[Row]:
        """Keys of `frame` already in the table, sorted."""

    @abstractmethod
    def intervals(self, table: TableRef, mode: str) -> Intervals:
        """The write strategy of one task in `mode` (upsert or append)."""

    @contextlib.contextmanager
    def session(self, engine: Engine) -> Iterator[None]:
        """Held around a run's writes: whatever keeps the database ready between its
        transactions (nothing, for most)."""
        yield

    def columns_of(self, table: TableRef, frame: pd.DataFrame) -> Any:
        """`frame` as this database scans it in bulk, made on the thread that prepared the
        partition (off the writer's path); None where the writer takes the frame as it is."""
        return None

    def upsert_rows(
        self, conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]
    ) -> None:
        """Rows of `table` (keyed by its primary key) inserted, or their other columns set, in
        multi-row statements."""
        key = [c.name for c in table.primary_key.columns]
        for start in range(0, len(rows), 500):
            stmt = self.insert(table).values(list(rows[start : start + 500]))
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=key,
                    set_={k: stmt.excluded[k] for k in rows[0] if k not in key},
                )
            )

    def key_constraints(self, conn: Connection, table: sa.Table) -> tuple[list[str], list[str]]:
        """The columns of the stored table's primary key, and those it declares NOT NULL."""
        inspector = sa.inspect(conn)
        primary = inspector.get_pk_constraint(table.name, schema=table.schema)
        columns = inspector.get_columns(table.name, schema=table.schema)
        # A primary key column is NOT NULL on a server; SQLite lets a NULL in unless the
        # column also says NOT NULL, which the reflected `nullable` tells.
        return list(primary.get("constrained_columns") or ()), [
            c["name"] for c in columns if not c["nullable"]
        ]

    def serialise_replace(
        self, conn: Connection, table: str, partitions: Sequence[str] | None
    ) -> None:
        """Make the caller's open transaction the only one replacing these partitions of
        `table` (None: the whole table) until it ends, so two replaces of one partition never
        both insert their rows. Called before the DELETE. An embedded database has one writer
        at a time: its write transaction already is the only one."""
        return None

    def read_frame(self, conn: Connection, stmt: sa.Select) -> pd.DataFrame:
        """The answer to `stmt` as a DataFrame: dates as `datetime.date` (or datetime64 where
        the database hands over columns), NULL numbers as NaN."""
        result = conn.execute(stmt)
        return pd.DataFrame(result.all(), columns=list(result.keys()))


class EmbeddedDialect(Dialect):
    """A database in one file on this host (SQLite, DuckDB): no schemas, no server."""

    has_schemas: ClassVar[bool] = False
    server: ClassVar[bool] = False

    def file_of(self, url: URL) -> str | None:
        path = url.database
        return path if path and path != ":memory:" else None

    def describe(self, url: URL, schema: str | None) -> str:
        return f"{self.title} file {Path(url.database or ':memory:').resolve()}"
