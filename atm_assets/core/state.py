"""Task state: checkpoints and totals per task, in atomic JSON files or a database table."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import threading
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from atm_assets.core.db import create_tables, validate_identifier
from atm_assets.core.dialects import dialect_of
from atm_assets.core.errors import ConfigError, DatabaseUnavailableError, StateError
from atm_assets.core.paths import atomic_write_text

STATE_FORMAT = "atm.task_state/v1"
# running: a run is writing it (or died doing so: `state list` asks Dagster whether the run
# lives); interrupted: stopped at a checkpoint on request; failed: stopped by an error;
# unpublished: its open day answered no rows yet (fetched again by the next run).
STATUSES = ("running", "completed", "interrupted", "failed", "unpublished")
_TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def validate_task_name(name: str) -> str:
    """A task name becomes a file name and a lock key: no separators, no control characters."""
    if not isinstance(name, str) or not name:
        raise ConfigError("task name must be a non-empty string")
    bad = [ch for ch in name if unicodedata.category(ch).startswith("C")]
    if bad:
        raise ConfigError(f"task name {name!r} contains control characters")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise ConfigError(f"task name {name!r} must not contain path separators")
    if not _TASK_NAME.match(name):
        raise ConfigError(
            f"task name {name!r} is invalid: use letters, digits, '_', '-' and '.', "
            "start with a letter or digit, at most 128 characters"
        )
    return name


def utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Totals:
    """The original script's totals (fetched, saved, errors), summed over some tasks' records."""

    def _parts(self) -> Iterable[Any]:
        raise NotImplementedError

    def total(self, name: str) -> int:
        return sum(int(getattr(part, name)) for part in self._parts())

    @property
    def total_fetched(self) -> int:
        return self.total("total_fetched")

    @property
    def total_saved(self) -> int:
        return self.total("total_saved")

    @property
    def total_errors(self) -> int:
        return self.total("total_errors")


@dataclass
class TaskState:
    """What is known about one task: its status, totals and the checkpoint to resume from."""

    task_name: str
    status: str = "running"
    dataset: str | None = None
    partition: dict[str, str] = field(default_factory=dict)
    mode: str | None = None
    total_fetched: int = 0
    total_saved: int = 0
    total_errors: int = 0
    last_processed_key: str | None = None
    # An interval whose commit was under way when the state was saved (file store only): a
    # resumed run asks the table whether it committed (see SYNC_COMMIT).
    pending_commit: dict[str, Any] | None = None
    started_at: str | None = None
    updated_at: str | None = None
    finished_at: str | None = None
    run_id: str | None = None
    # The first run of a re-executed run chain: a backfill resumed by re-execution skips the
    # partitions its chain already completed.
    root_run_id: str | None = None
    resumed_from: str | None = None
    last_error: str | None = None
    holder: dict[str, Any] | None = None
    # The table the checkpoint and totals belong to (Target.as_dict()): a checkpoint is used
    # only against the same incarnation of the same table, and in the same mode.
    target: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise StateError(f"unknown task status {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Any, source: str) -> TaskState:
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise StateError(
                f"{source} is not an ATM task state (expected format {STATE_FORMAT!r}); "
                "move it away or reset the task"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        body = {k: v for k, v in data.items() if k != "format"}
        unknown = sorted(set(body) - known)
        if unknown or "task_name" not in body:
            raise StateError(f"{source} has unexpected or missing keys {unknown or ['task_name']}")
        try:
            return cls(**body)
        except (TypeError, StateError) as e:
            raise StateError(f"{source} holds an invalid task state: {e}") from None


@dataclass(frozen=True)
class Target:
    """Where a task writes: the table's incarnation id (new whenever the table is created
    anew: another database file or server, another schema, a dropped table), its name and a
    description of its database (never a password), for messages."""

    table_id: str
    table: str
    database: str

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    def holds(self, saved: dict[str, Any] | None) -> bool:
        """Whether a state saved with target `saved` describes this table."""
        return bool(saved) and saved.get("table_id") == self.table_id  # type: ignore[union-attr]

    @staticmethod
    def describe(saved: dict[str, Any] | None) -> str:
        if not saved:
            return "an unrecorded table"
        return f"table {saved.get('table')} in {saved.get('database')}"


def as_seen(state: TaskState, run: str | None) -> tuple[str, str]:
    """What a saved state means now, and a note why (whole), given what became of the run that
    saved it: "live", "gone" (its process died), Dagster's final status in lower case
    ("canceled", "failure", "success"), or None when that run is unknown here. A task saved
    running whose run is over was interrupted, whatever the file says."""
    short = (state.run_id or "?")[:8]
    if state.status == "running":
        if run in (None, "live"):
            return "running", f"run {short}"
        why = "process gone" if run == "gone" else run
        return "interrupted", f"run {short} ended ({why}); the next run resumes it"
    if state.status in ("failed", "interrupted", "unpublished"):
        # Whole, on one line: what to do is often at the end (`HTTP 404 Not Found from <url>
        # (not retried: check TUSHARE_API_URL)`, past 100 characters), and DETAIL is the
        # listing's last column, so a long one runs on without shifting the others.
        return state.status, " ".join((state.last_error or "").split())
    return state.status, ""


class StateStore(ABC):
    """Where task states live. `transactional` stores save checkpoints inside the write txn."""

    transactional = False
    kind = ""

    @abstractmethod
    def in_use(self) -> bool:
        """Whether the store holds anything, without creating it."""

    @abstractmethod
    def get(self, task_name: str) -> TaskState | None: ...

    @abstractmethod
    def list(self) -> list[TaskState]: ...

    @abstractmethod
    def save(self, state: TaskState, conn: Connection | None = None) -> None: ...

    def save_many(self, states: Sequence[TaskState], conn: Connection | None = None) -> None:
        """Every state, in `conn`'s transaction when given (atomic with the rows of them all)."""
        for state in states:
            self.save(state, conn)

    @abstractmethod
    def reset(self, task_name: str) -> bool: ...

    @abstractmethod
    def describe(self) -> str: ...


class FileStateStore(StateStore):
    """One JSON file per task under `state_dir`, replaced atomically (never a torn file)."""

    kind = "file"

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        # Absolute, so errors name the file unambiguously.
        self.dir = Path(state_dir).absolute()

    def in_use(self) -> bool:
        return self.dir.is_dir() and any(self.dir.glob("*.json"))

    def describe(self) -> str:
        return f"files in {self.dir}"

    def path(self, task_name: str) -> Path:
        return self.dir / f"{validate_task_name(task_name)}.json"

    def _read(self, path: Path) -> TaskState:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise StateError(f"cannot read state file {path}: {e.strerror}") from None
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise StateError(
                f"state file {path} is corrupt ({e}); reset the task to start it over"
            ) from None
        return TaskState.from_dict(data, f"state file {path}")

    def get(self, task_name: str) -> TaskState | None:
        path = self.path(task_name)
        return self._read(path) if path.exists() else None

    def list(self) -> list[TaskState]:
        if not self.dir.is_dir():
            return []
        return [self._read(p) for p in sorted(self.dir.glob("*.json"))]

    def save(self, state: TaskState, conn: Connection | None = None) -> None:
        path = self.path(state.task_name)
        self.dir.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(state.to_dict(), ensure_ascii=False, indent=2, sort_keys=True)
        atomic_write_text(path, payload)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def reset(self, task_name: str) -> bool:
        path = self.path(task_name)
        if not path.exists():
            return False
        path.unlink()
        return True


class DbStateStore(StateStore):
    """Table `ingestion_state` in the target database; checkpoints commit with the rows."""

    transactional = True
    kind = "db"
    TABLE = "ingestion_state"

    def __init__(self, engine: Engine, schema: str | None = None) -> None:
        self.engine = engine
        self.schema = validate_identifier(schema, "database schema") if schema else None
        metadata = sa.MetaData()
        self.table = sa.Table(
            self.TABLE,
            metadata,
            sa.Column("task_name", sa.Text, primary_key=True),
            sa.Column("status", sa.Text, nullable=False),
            sa.Column("state", sa.Text, nullable=False),
            sa.Column("updated_at", sa.Text, nullable=False),
            schema=self.schema,
        )
        self._metadata = metadata
        self._ready = False
        self._ensuring = threading.Lock()

    def describe(self) -> str:
        where = f"{self.schema}.{self.TABLE}" if self.schema else self.TABLE
        return f"table {where} in {self.engine.url.render_as_string(hide_password=True)}"

    def in_use(self) -> bool:
        try:
            return sa.inspect(self.engine).has_table(self.TABLE, schema=self.schema)
        except sa.exc.DBAPIError:
            raise DatabaseUnavailableError(
                f"cannot read task state from {self.describe()}: database unreachable"
            ) from None

    def ensure(self) -> None:
        # Tasks are prepared on several threads: one creates the table, the others wait.
        with self._ensuring:
            if self._ready:
                return
            create_tables(self.engine, self._metadata, self.schema)
            self._ready = True

    def _decode(self, task_name: str, text: str) -> TaskState:
        source = f"row {task_name!r} of {self.describe()}"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise StateError(f"{source} is corrupt ({e}); reset the task") from None
        return TaskState.from_dict(data, source)

    def get(self, task_name: str) -> TaskState | None:
        validate_task_name(task_name)
        self.ensure()
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(self.table.c.state).where(self.table.c.task_name == task_name)
            ).first()
        return self._decode(task_name, row[0]) if row else None

    def list(self) -> list[TaskState]:
        self.ensure()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(self.table.c.task_name, self.table.c.state).order_by(
                    self.table.c.task_name
                )
            ).fetchall()
        return [self._decode(name, text) for name, text in rows]

    def save(self, state: TaskState, conn: Connection | None = None) -> None:
        """Upsert the state; inside `conn`'s transaction when given (atomic with the rows)."""
        self.save_many([state], conn)

    @staticmethod
    def _values(state: TaskState) -> dict[str, Any]:
        return {
            "task_name": state.task_name,
            "status": state.status,
            "state": json.dumps(state.to_dict(), ensure_ascii=False, sort_keys=True),
            "updated_at": state.updated_at or utcnow(),
        }

    def save_many(self, states: Sequence[TaskState], conn: Connection | None = None) -> None:
        """Every state in one or two statements, inside `conn`'s transaction when given."""
        self.ensure()
        rows = [self._values(state) for state in states]
        if conn is not None:
            dialect_of(conn).upsert_rows(conn, self.table, rows)
        else:
            with self.engine.begin() as c:
                dialect_of(c).upsert_rows(c, self.table, rows)

    def reset(self, task_name: str) -> bool:
        validate_task_name(task_name)
        self.ensure()
        with self.engine.begin() as conn:
            result = conn.execute(sa.delete(self.table).where(self.table.c.task_name == task_name))
        return result.rowcount > 0
