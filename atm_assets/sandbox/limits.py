"""Service-side admission and pacing: per-api, per-token sliding windows (calls per minute),
daily quotas that reset at midnight Asia/Shanghai, and per-call answer latency."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from atm_assets.sandbox.protocol import token_key

# Shanghai has no daylight saving time: its midnight is 16:00 UTC all year.
_SHANGHAI_OFFSET = 8 * 3600


def shanghai_day(epoch: float) -> int:
    """Days since 1970-01-01 in Asia/Shanghai for a Unix time."""
    return int((epoch + _SHANGHAI_OFFSET) // 86400)


@dataclass(frozen=True)
class Refusal:
    """Why a call was not admitted: "minute" or "day", and the limit it hit."""

    scope: str
    limit: int


@dataclass(frozen=True)
class _Window:
    calls: int
    seconds: float


@dataclass(frozen=True)
class _Latency:
    seconds: float
    jitter: float


class Limits:
    """Admission per (api, token) and latency per api; thread-safe.

    A default applies to every api unless the api has its own setting. Only admitted calls
    count, in both the minute window and the day's quota.
    """

    def __init__(
        self,
        rate_limit: int | None = None,
        rate_window: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = random.Random(0)
        self._rates: dict[str | None, _Window] = {}
        self._quotas: dict[str | None, int] = {}
        self._latency: dict[str | None, _Latency] = {}
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._day_counts: dict[tuple[str, str], tuple[int, int]] = {}
        self.set_rate_limit(rate_limit, rate_window)

    # -- configuration (api None: the default for all apis) --

    def set_rate_limit(
        self, calls: int | None, window: float = 60.0, api: str | None = None
    ) -> None:
        with self._lock:
            if calls is None:
                self._rates.pop(api, None)
            else:
                self._rates[api] = _Window(int(calls), float(window))
            # A new limit starts from an empty window, like a fresh minute.
            for key in [k for k in self._windows if api is None or k[0] == api]:
                del self._windows[key]

    def set_daily_quota(self, calls: int | None, api: str | None = None) -> None:
        with self._lock:
            if calls is None:
                self._quotas.pop(api, None)
            else:
                self._quotas[api] = int(calls)

    def set_latency(
        self, seconds: float | None, jitter: float = 0.0, api: str | None = None
    ) -> None:
        with self._lock:
            if seconds is None:
                self._latency.pop(api, None)
            else:
                self._latency[api] = _Latency(float(seconds), max(0.0, float(jitter)))

    def reset_daily_counts(self) -> None:
        with self._lock:
            self._day_counts.clear()

    # -- per call --

    def admit(self, api: str, token: object) -> Refusal | None:
        """Count the call and return None, or refuse it (and count nothing)."""
        key = (api, token_key(token))
        with self._lock:
            rate = self._rates.get(api) or self._rates.get(None)
            window = None
            if rate is not None:
                now = self._clock()
                window = self._windows.setdefault(key, deque())
                while window and window[0] <= now - rate.seconds:
                    window.popleft()
                if len(window) >= rate.calls:
                    return Refusal("minute", rate.calls)
            quota = self._quotas.get(api, self._quotas.get(None))
            today = shanghai_day(self._wall_clock())
            day, used = self._day_counts.get(key, (today, 0))
            if day != today:
                used = 0
            if quota is not None and used >= quota:
                return Refusal("day", quota)
            self._day_counts[key] = (today, used + 1)
            if window is not None:
                window.append(self._clock())
            return None

    def minute_limit(self, api: str) -> int | None:
        with self._lock:
            rate = self._rates.get(api) or self._rates.get(None)
            return None if rate is None else rate.calls

    def latency(self, api: str) -> float:
        """Seconds to hold this call's answer: the api's setting, else the default."""
        with self._lock:
            setting = self._latency.get(api) or self._latency.get(None)
            if setting is None:
                return 0.0
            return setting.seconds + (self._rng.uniform(0, setting.jitter) if setting.jitter else 0)

    def state(self) -> dict[str, Any]:
        with self._lock:
            default_rate = self._rates.get(None)
            default_latency = self._latency.get(None)
            return {
                "rate_limit": default_rate.calls if default_rate else None,
                "rate_window": default_rate.seconds if default_rate else 60.0,
                "api_rate_limits": {
                    api: {"calls_per_minute": w.calls, "window": w.seconds}
                    for api, w in sorted(self._rates.items(), key=lambda kv: str(kv[0]))
                    if api is not None
                },
                "daily_quota": self._quotas.get(None),
                "api_daily_quotas": {a: n for a, n in sorted(self._quotas.items(), key=str) if a},
                "latency": (
                    {"seconds": default_latency.seconds, "jitter": default_latency.jitter}
                    if default_latency
                    else None
                ),
                "api_latency": {
                    api: {"seconds": v.seconds, "jitter": v.jitter}
                    for api, v in sorted(self._latency.items(), key=lambda kv: str(kv[0]))
                    if api is not None
                },
            }
