"""Where the governor's shared counts live: a SQLite file per host, or tables in a server
database every host reaches (its store is its dialect's: `Dialect.governor_store`)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from atm_assets.core.errors import ConfigError
from atm_assets.core.governor.budgets import Budget, next_day_reset, shanghai_day

MINUTE = "minute"
DAY = "day"
PERMISSION = "permission"
REFUSAL_KINDS = (MINUTE, DAY, PERMISSION)

CALLS_TABLE = "tushare_governor_calls"
DAYS_TABLE = "tushare_governor_days"
APIS_TABLE = "tushare_governor_apis"

# Waking exactly at a computed expiry can land a hair before it in float arithmetic; a retry
# that finds the window still full would only cost another round trip.
_WAKE_MARGIN = 0.002
# Admission locks on a name no API can have (API names start with a letter).
_SETUP_KEY = "_setup"


@dataclass(frozen=True)
class Policy:
    """Timings every process sharing a store must agree on (they come from settings)."""

    window: float = 60.0
    # A call still in flight after this long belongs to a dead process: stop counting it.
    in_flight_timeout: float = 600.0
    permission_ttl: float = 86400.0
    days_kept: int = 7

    def __post_init__(self) -> None:
        for name in ("window", "in_flight_timeout", "permission_ttl"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"governor {name} must be a positive number of seconds")
        if self.in_flight_timeout < self.window:
            raise ConfigError(
                f"governor in_flight_timeout ({self.in_flight_timeout:g}s) must be at least the "
                f"window ({self.window:g}s)"
            )
        if isinstance(self.days_kept, bool) or not isinstance(self.days_kept, int):
            raise ConfigError("governor days_kept must be a whole number of days")
        if self.days_kept < 1:
            raise ConfigError("governor days_kept must be at least 1")


@dataclass(frozen=True)
class Decision:
    """One admission attempt: admitted (`call_id`), wait `wait` seconds, or blocked."""

    call_id: str | None = None
    wait: float = 0.0
    blocked: str | None = None  # DAY or PERMISSION
    until: float | None = None
    message: str | None = None
    at: float | None = None


@dataclass(frozen=True)
class ApiRecord:
    """What a store knows of one API, in epoch seconds of the store's clock."""

    api_name: str
    now: float
    calls_in_window: int = 0
    in_flight: int = 0
    calls_today: int = 0
    paused_until: float | None = None
    minute_limit_seen: int | None = None
    minute_refused_at: float | None = None
    minute_message: str | None = None
    exhausted_until: float | None = None
    exhausted_message: str | None = None
    denied_at: float | None = None
    denied_message: str | None = None


def _tables(schema: str | None) -> tuple[sa.MetaData, sa.Table, sa.Table, sa.Table]:
    metadata = sa.MetaData()
    double = sa.Float(precision=53)
    calls = sa.Table(
        CALLS_TABLE,
        metadata,
        sa.Column("call_id", sa.Text, primary_key=True),
        sa.Column("api", sa.Text, nullable=False),
        # Start time while in flight, end time once finished (epoch seconds, store clock).
        sa.Column("stamp", double, nullable=False),
        sa.Column("in_flight", sa.Boolean, nullable=False),
        sa.Index(f"ix_{CALLS_TABLE}_api_stamp", "api", "stamp"),
        schema=schema,
    )
    days = sa.Table(
        DAYS_TABLE,
        metadata,
        sa.Column("api", sa.Text, primary_key=True),
        sa.Column("day", sa.Text, primary_key=True),  # Asia/Shanghai date, YYYY-MM-DD
        sa.Column("calls", sa.Integer, nullable=False),
        schema=schema,
    )
    apis = sa.Table(
        APIS_TABLE,
        metadata,
        sa.Column("api", sa.Text, primary_key=True),
        sa.Column("paused_until", double),
        sa.Column("minute_refused_at", double),
        sa.Column("minute_limit", sa.Integer),
        sa.Column("minute_message", sa.Text),
        sa.Column("exhausted_until", double),
        sa.Column("exhausted_message", sa.Text),
        sa.Column("denied_at", double),
        sa.Column("denied_message", sa.Text),
        schema=schema,
    )
    return metadata, calls, days, apis


class GovernorStore(ABC):
    """Shared call records. Every admission is one short transaction, serialised per API."""

    def __init__(self, engine: Engine, schema: str | None) -> None:
        self.engine = engine
        self.schema = schema
        self.metadata, self.calls, self.days, self.apis = _tables(schema)
        self._ready = False
        self._ready_lock = threading.Lock()

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    def _transaction(self, key: str | None) -> Any:
        """A context manager giving a connection in a transaction that holds the lock for
        `key` (an API name, or None for no per-API lock) until it commits."""

    @abstractmethod
    def _now(self, conn: Connection) -> float:
        """The store's clock, read inside the transaction (after its lock is held)."""

    @abstractmethod
    def _insert(self, table: sa.Table) -> Any: ...

    def _create_schema(self, conn: Connection) -> None:
        return None

    def close(self) -> None:
        """Release the store's own connections (not those of an engine the caller owns)."""
        return None

    def ensure(self) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            try:
                self._create_tables()
            except sa.exc.IntegrityError:
                # Governors take turns under a lock, but other ATM code may create the same
                # schema at that moment; the loser's CREATE then fails once.
                self._create_tables()
            self._ready = True

    def _create_tables(self) -> None:
        with self._transaction(_SETUP_KEY) as conn:
            self._create_schema(conn)
            self.metadata.create_all(conn, checkfirst=True)

    def admit(self, api: str, budget: Budget, policy: Policy) -> Decision:
        """Check every limit and, if none is reached, record the call as started."""
        self.ensure()
        with self._transaction(api) as conn:
            return self._admit(conn, api, budget, policy)

    def _admit(self, conn: Connection, api: str, budget: Budget, policy: Policy) -> Decision:
        now = self._now(conn)
        today = shanghai_day(now)
        state = conn.execute(sa.select(self.apis).where(self.apis.c.api == api)).first()
        per_minute = budget.per_minute
        if state is not None:
            if state.denied_at is not None and now < state.denied_at + policy.permission_ttl:
                return Decision(
                    blocked=PERMISSION,
                    until=state.denied_at + policy.permission_ttl,
                    message=state.denied_message,
                    at=state.denied_at,
                )
            if state.exhausted_until is not None and now < state.exhausted_until:
                return Decision(
                    blocked=DAY, until=state.exhausted_until, message=state.exhausted_message
                )
            # The limit a refusal named is the service's word; it holds for that quota day.
            if (
                state.minute_limit is not None
                and state.minute_refused_at is not None
                and shanghai_day(state.minute_refused_at) == today
            ):
                per_minute = min(per_minute or state.minute_limit, state.minute_limit)
        if budget.per_day is not None:
            used = conn.execute(
                sa.select(self.days.c.calls).where(self.days.c.api == api, self.days.c.day == today)
            ).scalar()
            if used is not None and used >= budget.per_day:
                return Decision(
                    blocked=DAY,
                    until=next_day_reset(now),
                    message=f"the configured {budget.per_day} calls a day are used up",
                )
        if state is not None and state.paused_until is not None and now < state.paused_until:
            return Decision(wait=state.paused_until - now + _WAKE_MARGIN)
        calls = self.calls
        conn.execute(
            sa.delete(calls).where(
                calls.c.api == api,
                sa.or_(
                    sa.and_(~calls.c.in_flight, calls.c.stamp <= now - policy.window),
                    sa.and_(calls.c.in_flight, calls.c.stamp <= now - policy.in_flight_timeout),
                ),
            )
        )
        if per_minute is not None:
            rows = conn.execute(
                sa.select(calls.c.in_flight, calls.c.stamp).where(calls.c.api == api)
            ).all()
            if len(rows) >= per_minute:
                # A finished call frees its slot one window after it ended; one in flight
                # at the earliest one window from now (if it ended now), or when it goes stale.
                frees = sorted(
                    min(now + policy.window, stamp + policy.in_flight_timeout)
                    if in_flight
                    else stamp + policy.window
                    for in_flight, stamp in rows
                )
                free_at = frees[len(rows) - per_minute]
                return Decision(wait=max(free_at - now, 0.0) + _WAKE_MARGIN)
        call_id = uuid.uuid4().hex
        conn.execute(sa.insert(calls).values(call_id=call_id, api=api, stamp=now, in_flight=True))
        insert = self._insert(self.days).values(api=api, day=today, calls=1)
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=["api", "day"], set_={"calls": self.days.c.calls + 1}
            )
        )
        oldest_kept = shanghai_day(now - policy.days_kept * 86400)
        conn.execute(
            sa.delete(self.days).where(self.days.c.api == api, self.days.c.day < oldest_kept)
        )
        return Decision(call_id=call_id)

    def finish(self, api: str, call_id: str) -> None:
        """Re-stamp a call with its end time: it counts for one window from then."""
        with self._transaction(None) as conn:
            now = self._now(conn)
            conn.execute(
                sa.update(self.calls)
                .where(self.calls.c.call_id == call_id)
                .values(stamp=now, in_flight=False)
            )

    def refuse(self, api: str, kind: str, message: str, policy: Policy, limit: int | None) -> None:
        """Record a refusal by the service, for every process to see."""
        self.ensure()
        with self._transaction(api) as conn:
            now = self._now(conn)
            state = conn.execute(sa.select(self.apis).where(self.apis.c.api == api)).first()
            values: dict[str, Any]
            if kind == MINUTE:
                # The service's window holds calls we never saw (another client on the same
                # account, or arrival order): nobody calls for one full window.
                pause = now + policy.window
                if state is not None and state.paused_until is not None:
                    pause = max(pause, state.paused_until)
                values = {
                    "paused_until": pause,
                    "minute_refused_at": now,
                    "minute_message": message,
                }
                if limit is not None:
                    values["minute_limit"] = limit
            elif kind == DAY:
                values = {"exhausted_until": next_day_reset(now), "exhausted_message": message}
            else:
                values = {"denied_at": now, "denied_message": message}
            insert = self._insert(self.apis).values(api=api, **values)
            conn.execute(insert.on_conflict_do_update(index_elements=["api"], set_=values))

    def clear(self, api: str) -> bool:
        """Forget every refusal recorded for `api`; True if there was any record."""
        self.ensure()
        with self._transaction(api) as conn:
            result = conn.execute(sa.delete(self.apis).where(self.apis.c.api == api))
        return result.rowcount > 0

    def snapshot(self, policy: Policy) -> list[ApiRecord]:
        """Every API seen: calls in the window and today, and its recorded refusals."""
        self.ensure()
        calls = self.calls
        with self._transaction(None) as conn:
            now = self._now(conn)
            active = sa.or_(
                sa.and_(~calls.c.in_flight, calls.c.stamp > now - policy.window),
                sa.and_(calls.c.in_flight, calls.c.stamp > now - policy.in_flight_timeout),
            )
            window_rows = conn.execute(
                sa.select(
                    calls.c.api,
                    sa.func.count(),
                    sa.func.sum(sa.case((calls.c.in_flight, 1), else_=0)),
                )
                .where(active)
                .group_by(calls.c.api)
            ).all()
            day_rows = conn.execute(
                sa.select(self.days.c.api, self.days.c.calls).where(
                    self.days.c.day == shanghai_day(now)
                )
            ).all()
            api_rows = conn.execute(sa.select(self.apis)).all()
        records: dict[str, dict[str, Any]] = {}

        def record(api: str) -> dict[str, Any]:
            return records.setdefault(api, {"api_name": api, "now": now})

        for api, count, in_flight in window_rows:
            record(api).update(calls_in_window=int(count), in_flight=int(in_flight or 0))
        for api, count in day_rows:
            record(api)["calls_today"] = int(count)
        for row in api_rows:
            record(row.api).update(
                paused_until=row.paused_until,
                minute_limit_seen=row.minute_limit,
                minute_refused_at=row.minute_refused_at,
                minute_message=row.minute_message,
                exhausted_until=row.exhausted_until,
                exhausted_message=row.exhausted_message,
                denied_at=row.denied_at,
                denied_message=row.denied_message,
            )
        return [ApiRecord(**records[api]) for api in sorted(records)]


class SqliteStore(GovernorStore):
    """One host: a SQLite file of its own (not the target database, whose writer holds long
    write transactions), WAL, and BEGIN IMMEDIATE so check-and-insert is atomic across
    processes. Uses the host clock, `time.time()`."""

    def __init__(self, path: str | os.PathLike[str], busy_timeout: float = 30.0) -> None:
        self.path = Path(path).absolute()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            sa.engine.URL.create("sqlite", database=str(self.path)),
            connect_args={"timeout": busy_timeout},
        )
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
        super().__init__(engine, None)

    def describe(self) -> str:
        return f"host-wide SQLite file {self.path}"

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _transaction(self, key: str | None) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _now(self, conn: Connection) -> float:
        return time.time()

    def _insert(self, table: sa.Table) -> Any:
        from sqlalchemy.dialects.sqlite import insert

        return insert(table)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event open the transaction, as BEGIN IMMEDIATE: the default
    # deferred BEGIN would let two processes read the same count before either inserts.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # Losing the last admissions on a power cut costs nothing; an fsync per call would.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
