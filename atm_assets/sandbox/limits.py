"""Service-side admission: per-api, per-token sliding windows of calls per minute."""

from __future__ import annotations

import threading
import time
from collections import deque

from atm_assets.sandbox.protocol import token_key


class RateWindows:
    """Calls admitted per (api, token) over a sliding window; a refused call is not counted."""

    def __init__(self, limit: int | None = None, window: float = 60.0) -> None:
        self._lock = threading.Lock()
        self.limit = limit
        self.window = window
        self._windows: dict[tuple[str, str], deque[float]] = {}

    def configure(self, limit: int | None, window: float = 60.0) -> None:
        with self._lock:
            self.limit = None if limit is None else int(limit)
            self.window = float(window)
            self._windows.clear()

    def admit(self, api_name: str, token: object) -> bool:
        with self._lock:
            if self.limit is None:
                return True
            now = time.monotonic()
            window = self._windows.setdefault((api_name, token_key(token)), deque())
            while window and window[0] <= now - self.window:
                window.popleft()
            if len(window) >= self.limit:
                return False
            window.append(now)
            return True
