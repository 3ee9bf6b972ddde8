"""Ctrl-C as a request to stop at the next safe point, never inside a transaction."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

# Signals that ask a sync to stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_requested = threading.Event()


def request_stop() -> None:
    """Ask every sync of this process to stop at its next safe point (between partitions and
    between checkpoint intervals); what was committed stays committed and checkpointed."""
    _requested.set()


def stop_requested() -> bool:
    return _requested.is_set()


def clear_stop() -> None:
    _requested.clear()


@contextmanager
def deferred() -> Iterator[None]:
    """Signals that arrive inside are delivered when the block ends, so a transaction and its
    checkpoint are never cut in half by an exception raised from a signal handler (a driver
    interrupted mid-COPY leaves its connection unusable). Signals reach the main thread only:
    elsewhere there is nothing to defer."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def record(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous: dict[int, Any] = {int(s): signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, record)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for signum in dict.fromkeys(received):
            _deliver(signum, previous[signum])


def _deliver(signum: int, handler: object) -> None:
    """What would have happened had the signal not waited."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        os.kill(os.getpid(), signum)
