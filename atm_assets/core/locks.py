"""Task locks that free themselves when their holder dies: flock, PG advisory, timed lock rows."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import time
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from atm_assets.core.db import create_tables, validate_identifier
from atm_assets.core.dialects import dialect_of
from atm_assets.core.errors import AtmError, ConfigError, TaskLockError
from atm_assets.core.processes import gone
from atm_assets.core.settings import LOCK_KINDS
from atm_assets.core.state import utcnow, validate_task_name


class LockLostError(AtmError):
    """The lock was lost mid-run (connection dropped, or taken over after the timeout)."""


def holder_info(run_id: str | None) -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "run_id": run_id, "since": utcnow()}


class Lease(ABC):
    """A held task lock. `verify()` before each commit; `release()` when the last write is done."""

    kind = ""

    def __init__(self, task_name: str, holder: dict[str, Any]) -> None:
        self.task_name = task_name
        self.holder = holder
        self.released = False

    @abstractmethod
    def verify(self, conn: Connection | None = None) -> None:
        """Raise `LockLostError` unless the lock is still ours. `conn` is the writer's open
        transaction on the target database, for locks that live there."""

    @abstractmethod
    def _release(self) -> None: ...

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._release()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class FileLease(Lease):
    """flock(2) on storage/locks/<task>.lock: the kernel drops it the moment the holder dies."""

    kind = "file"

    def __init__(self, task_name: str, holder: dict[str, Any], fd: int, path: Path) -> None:
        super().__init__(task_name, holder)
        self.fd = fd
        self.path = path

    def verify(self, conn: Connection | None = None) -> None:
        # An flock cannot be taken away from a live process.
        return None

    def _release(self) -> None:
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _read_holder(fd: int) -> dict[str, Any] | None:
    try:
        raw = os.pread(fd, 4096, 0)
        data = json.loads(raw.decode("utf-8")) if raw.strip() else None
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def acquire_file_lock(
    lock_dir: str | os.PathLike[str], task_name: str, run_id: str | None
) -> Lease:
    path = Path(lock_dir) / f"{validate_task_name(task_name)}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise TaskLockError(task_name, holder) from None
    holder = holder_info(run_id)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
    os.fsync(fd)
    return FileLease(task_name, holder, fd, path)


def probe_file_lock(lock_dir: str | os.PathLike[str], task_name: str) -> dict[str, Any] | None:
    """The holder of a file lock if it is held right now, else None."""
    path = Path(lock_dir) / f"{validate_task_name(task_name)}.lock"
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd) or {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _lock_table(schema: str | None) -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData()
    table = sa.Table(
        "ingestion_lock",
        metadata,
        sa.Column("task_name", sa.Text, primary_key=True),
        sa.Column("token", sa.Text, nullable=False),
        sa.Column("holder", sa.Text, nullable=False),
        sa.Column("heartbeat_at", sa.Float(precision=53), nullable=False),
        schema=schema,
    )
    return metadata, table


def _advisory_key(task_name: str) -> tuple[int, int]:
    digest = hashlib.sha256(f"atm-task:{task_name}".encode()).digest()
    return (
        int.from_bytes(digest[:4], "big", signed=True),
        int.from_bytes(digest[4:8], "big", signed=True),
    )


class AdvisoryLease(Lease):
    """A session lock of the database (PostgreSQL: an advisory lock) on a dedicated connection.

    The server drops it when the session ends (process killed, connection lost), so a crashed
    holder never blocks the next run. A row in `ingestion_lock` says who holds it.
    """

    kind = "db-advisory"

    def __init__(self, manager: LockManager, task_name: str, holder: dict, conn: Connection):
        super().__init__(task_name, holder)
        self.manager = manager
        self.conn = conn
        self.key = _advisory_key(task_name)
        locks = dialect_of(conn).session_locks
        assert locks is not None
        self.locks = locks

    def verify(self, conn: Connection | None = None) -> None:
        try:
            held = self.locks.holds(self.conn, self.key)
            self.conn.commit()
        except sa.exc.DBAPIError:
            raise LockLostError(
                f"lock on task {self.task_name} lost: its database session ended"
            ) from None
        if not held:
            raise LockLostError(f"lock on task {self.task_name} is no longer held")

    def _release(self) -> None:
        try:
            self.locks.unlock(self.conn, self.key)
            table = self.manager.table
            self.conn.execute(
                sa.delete(table).where(
                    table.c.task_name == self.task_name, table.c.token == self.holder["token"]
                )
            )
            self.conn.commit()
        except (sa.exc.DBAPIError, sa.exc.PendingRollbackError):
            pass  # the session is gone (or broken), and the lock with it
        finally:
            # NullPool: closing really closes the session, so no lock can linger in a pool.
            self.conn.close()


class RowLease(Lease):
    """A row in `ingestion_lock` with a heartbeat; a holder silent past the timeout is stale."""

    kind = "db-row"

    def __init__(self, manager: LockManager, task_name: str, holder: dict[str, Any]):
        super().__init__(task_name, holder)
        self.manager = manager

    def verify(self, conn: Connection | None = None) -> None:
        # Inside the writer's transaction when given: SQLite has one writer at a time, and the
        # heartbeat then commits (or not) together with the rows.
        table = self.manager.table
        stmt = (
            sa.update(table)
            .where(table.c.task_name == self.task_name, table.c.token == self.holder["token"])
            .values(heartbeat_at=time.time())
        )
        if conn is not None:
            result = conn.execute(stmt)
        else:
            with self.manager.db().begin() as own:
                result = own.execute(stmt)
        if result.rowcount != 1:
            raise LockLostError(
                f"lock on task {self.task_name} was taken over by another run after it was idle "
                f"for more than {self.manager.timeout_minutes:g} minutes"
            )

    def _release(self) -> None:
        table = self.manager.table
        with self.manager.db().begin() as conn:
            conn.execute(
                sa.delete(table).where(
                    table.c.task_name == self.task_name, table.c.token == self.holder["token"]
                )
            )


class LockManager:
    """Hands out task locks: `file` (one host) or `db` (several hosts sharing the database)."""

    def __init__(
        self,
        kind: str = "file",
        lock_dir: str | os.PathLike[str] = "storage/locks",
        engine: Engine | None = None,
        schema: str | None = None,
        timeout_minutes: float = 30.0,
    ) -> None:
        if kind not in LOCK_KINDS:
            raise ConfigError(
                f"unknown lock kind {kind!r}: expected one of {', '.join(LOCK_KINDS)}"
            )
        if not timeout_minutes > 0:
            raise ConfigError(f"lock timeout must be positive, got {timeout_minutes}")
        if kind == "db" and engine is None:
            raise ConfigError("a database lock needs the target database")
        self.kind = kind
        self.lock_dir = Path(lock_dir)
        self.timeout_minutes = float(timeout_minutes)
        self.schema = validate_identifier(schema, "database schema") if schema else None
        self.engine: Engine | None = None
        if engine is not None:
            # Lock sessions must really end when released: never park them in a pool.
            self.engine = sa.create_engine(
                engine.url, poolclass=NullPool, connect_args=_connect_args(engine)
            )
        self.metadata, self.table = _lock_table(self.schema)
        self._ready = False

    def db(self) -> Engine:
        """The engine of database locks (a file lock manager has none)."""
        if self.engine is None:
            raise ConfigError("file locks have no database")
        return self.engine

    def describe(self) -> str:
        if self.kind == "file":
            return f"file locks in {self.lock_dir.resolve()}"
        assert self.engine is not None
        how = "session lock" if dialect_of(self.engine).session_locks else "lock row"
        return f"database {how} (timeout {self.timeout_minutes:g} min for lock rows)"

    def _ensure(self) -> None:
        if self._ready or self.engine is None:
            return
        create_tables(self.engine, self.metadata, self.schema)
        self._ready = True

    def acquire(self, task_name: str, run_id: str | None = None) -> Lease:
        """Take the task's lock or raise `TaskLockError` at once; never waits."""
        validate_task_name(task_name)
        if self.kind == "file":
            return acquire_file_lock(self.lock_dir, task_name, run_id)
        self._ensure()
        holder = {**holder_info(run_id), "token": uuid.uuid4().hex}
        assert self.engine is not None
        if dialect_of(self.engine).session_locks is not None:
            # A session lock: it dies with its holder's connection, whatever kills it.
            return self._acquire_advisory(task_name, holder)
        return self._acquire_row(task_name, holder)

    def _acquire_advisory(self, task_name: str, holder: dict[str, Any]) -> Lease:
        assert self.engine is not None
        conn = self.engine.connect()
        try:
            locks = dialect_of(conn).session_locks
            assert locks is not None
            if not locks.try_lock(conn, _advisory_key(task_name)):
                conn.rollback()
                raise TaskLockError(task_name, self._row_holder(conn, task_name))
            self._write_row(conn, task_name, holder)
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return AdvisoryLease(self, task_name, holder, conn)

    def _acquire_row(self, task_name: str, holder: dict[str, Any]) -> Lease:
        assert self.engine is not None
        stale_before = time.time() - self.timeout_minutes * 60
        # Read first: on SQLite a write waits for any open write transaction (a running sync
        # holds one per checkpoint interval), and a live holder must be reported at once.
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(self.table.c.holder, self.table.c.heartbeat_at).where(
                    self.table.c.task_name == task_name
                )
            ).first()
        if row is not None and row.heartbeat_at >= stale_before:
            current = _parse_holder(row.holder)
            if not _holder_is_dead(current):
                raise TaskLockError(task_name, current)
        with self.engine.begin() as conn:
            result = self._write_row(conn, task_name, holder, stale_before=stale_before)
            if result != 1:
                current = self._row_holder(conn, task_name)
                if not _holder_is_dead(current):
                    raise TaskLockError(task_name, current)
                # Same host and the holder's process is gone: the OS can tell, do not wait.
                result = self._write_row(conn, task_name, holder, stale_before=float("inf"))
        return RowLease(self, task_name, holder)

    def _write_row(
        self,
        conn: Connection,
        task_name: str,
        holder: dict[str, Any],
        stale_before: float | None = None,
    ) -> int:
        """Insert our row; take over an existing one only if stale (or always, under advisory)."""
        values = {
            "task_name": task_name,
            "token": holder["token"],
            "holder": json.dumps({k: v for k, v in holder.items() if k != "token"}),
            "heartbeat_at": time.time(),
        }
        stmt = dialect_of(conn).insert(self.table).values(**values)
        where = None if stale_before is None else self.table.c.heartbeat_at < stale_before
        stmt = stmt.on_conflict_do_update(
            index_elements=["task_name"],
            set_={k: stmt.excluded[k] for k in ("token", "holder", "heartbeat_at")},
            where=where,
        )
        return int(conn.execute(stmt).rowcount)

    def _row_holder(self, conn: Connection, task_name: str) -> dict[str, Any] | None:
        row = conn.execute(
            sa.select(self.table.c.holder).where(self.table.c.task_name == task_name)
        ).first()
        return _parse_holder(row[0]) if row else None

    def probe(self, task_name: str) -> dict[str, Any] | None:
        """Who holds the task's lock right now (None when free)."""
        validate_task_name(task_name)
        if self.kind == "file":
            return probe_file_lock(self.lock_dir, task_name)
        try:
            lease = self.acquire(task_name)
        except TaskLockError as e:
            return e.holder or {}
        lease.release()
        return None


def _parse_holder(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _holder_is_dead(holder: dict[str, Any] | None) -> bool:
    """True only when the holder ran on this host and its process no longer exists."""
    return bool(holder) and gone(holder.get("host"), holder.get("pid"))  # type: ignore[union-attr]


def _connect_args(engine: Engine) -> dict[str, Any]:
    return dialect_of(engine).connect_args(10)
