"""The other processes of the governor tests: each function builds its own governor from a Spec."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from atm_assets.core.dialects.postgresql import PostgresStore
from atm_assets.core.governor import (
    ApiStatus,
    Budgets,
    Governor,
    GovernorStore,
    SqliteStore,
)


@dataclass(frozen=True)
class Spec:
    """Everything a process needs to join a shared store (picklable, for spawn)."""

    kind: str  # "sqlite" or "postgresql"
    where: str  # the SQLite file, or the PostgreSQL URL
    schema: str | None = None
    points: int | None = None
    overrides: dict[str, dict[str, int]] = field(default_factory=dict)
    window: float = 1.0
    in_flight_timeout: float = 600.0
    permission_ttl: float = 86400.0

    def store(self) -> GovernorStore:
        if self.kind == "sqlite":
            return SqliteStore(self.where)
        return PostgresStore(sa.create_engine(self.where), self.schema)

    def governor(self) -> Governor:
        return Governor(
            self.store(),
            Budgets(self.points, overrides=self.overrides),
            window=self.window,
            in_flight_timeout=self.in_flight_timeout,
            permission_ttl=self.permission_ttl,
        )


def close(governor: Governor) -> None:
    governor.close()
    governor.store.engine.dispose()


@contextmanager
def governed(spec: Spec) -> Iterator[Governor]:
    governor = spec.governor()
    try:
        yield governor
    finally:
        close(governor)


def hammer(spec: Spec, api: str, threads: int, duration: float, barrier: Any, out: Any) -> None:
    """`threads` threads call `api` back to back for `duration` seconds after every process is
    ready; puts (pid, deadline, [(start, end), ...]) on `out`, times taken inside each call.

    A thread waiting at the deadline still makes its call, so the last calls thin out."""
    with governed(spec) as governor:
        governor.store.ensure()
        barrier.wait(timeout=120)
        deadline = time.time() + duration
        records: list[tuple[float, float]] = []
        lock = threading.Lock()

        def work(seed: int) -> None:
            rnd = random.Random(seed)
            while time.time() < deadline:
                with governor.call(api):
                    start = time.time()
                    time.sleep(rnd.uniform(0.0, 0.03))  # the HTTP call
                    end = time.time()
                with lock:
                    records.append((start, end))

        workers = [
            threading.Thread(target=work, args=(os.getpid() * 100 + i,)) for i in range(threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    out.put((os.getpid(), deadline, records))


def calls(spec: Spec, api: str, n: int) -> int:
    with governed(spec) as governor:
        for _ in range(n):
            with governor.call(api):
                pass
    return os.getpid()


def refuse(spec: Spec, api: str, kind: str, message: str) -> int:
    with governed(spec) as governor:
        governor.refused(api, kind, message)
    return os.getpid()


def try_call(spec: Spec, api: str) -> tuple[str, float, str, int]:
    """(outcome: "ok" or the error's class name, seconds it took, error message, pid)."""
    with governed(spec) as governor:
        began = time.monotonic()
        try:
            with governor.call(api):
                pass
        except Exception as e:  # noqa: BLE001 - the test inspects whatever came out
            return type(e).__name__, time.monotonic() - began, str(e), os.getpid()
        return "ok", time.monotonic() - began, "", os.getpid()


def status(spec: Spec) -> list[ApiStatus]:
    with governed(spec) as governor:
        return governor.status()


def die_in_flight(spec: Spec, api: str) -> None:
    """Start a call and die without finishing it, as a killed process would."""
    governor = spec.governor()
    with governor.call(api):
        os._exit(3)
