"""The governor: admits each Tushare call against budgets shared by every process of an account."""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from atm_assets.core.errors import (
    ConfigError,
    TushareError,
    TusharePermissionError,
    TushareRateLimitError,
)
from atm_assets.core.governor.budgets import (
    Budgets,
    next_day_reset,
    shanghai_day,
    shanghai_time,
    validate_api_name,
)
from atm_assets.core.governor.stores import (
    DAY,
    MINUTE,
    PERMISSION,
    REFUSAL_KINDS,
    ApiRecord,
    Decision,
    GovernorStore,
    Policy,
)

_log = logging.getLogger("atm.tushare.governor")

_MINUTE_LIMIT = re.compile(r"每分钟最多访问该接口\s*(\d+)\s*次")
# Waits shorter than this are the budget doing its job; longer ones are worth a log line.
_LOG_WAIT_SECONDS = 5.0


class DailyQuotaExhaustedError(TushareRateLimitError):
    """The API's daily quota is used up: waiting minutes will not help, so nobody retries."""

    retryable = False

    def __init__(
        self,
        message: str,
        code: int | None = 40203,
        api_name: str = "",
        resets_at: dt.datetime | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.api_name = api_name
        self.resets_at = resets_at


class ApiPermissionDeniedError(TusharePermissionError):
    """The service refused this account access to the API; retrying never helps."""

    def __init__(
        self,
        message: str,
        code: int | None = 40203,
        api_name: str = "",
        refused_at: dt.datetime | None = None,
        retry_after: dt.datetime | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.api_name = api_name
        self.refused_at = refused_at
        self.retry_after = retry_after


class CallCancelledError(TushareError):
    """The work a call was for stopped while the call waited for the budget: it never started."""


@dataclass(frozen=True)
class ApiStatus:
    """One API as every process sharing the store sees it (times in Asia/Shanghai)."""

    api_name: str
    per_minute: int | None
    per_day: int | None
    window_seconds: float
    calls_in_window: int
    in_flight: int
    calls_today: int
    day: str
    minute_limit_seen: int | None = None
    paused_until: dt.datetime | None = None
    minute_message: str | None = None
    exhausted_until: dt.datetime | None = None
    exhausted_message: str | None = None
    denied_at: dt.datetime | None = None
    denied_until: dt.datetime | None = None
    denied_message: str | None = None


def classify_refusal(message: str) -> str | None:
    """Which refusal a 40203 message is: "minute", "day", "permission", or None.

    Any other quota ("每小时…") counts as a daily one: it will not reset within a retry budget,
    and waiting for midnight is the safe reading.
    """
    if "最多访问" in message:
        return MINUTE if "每分钟" in message else DAY
    if "权限" in message:
        return PERMISSION
    return None


def _fmt(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} Asia/Shanghai"


class Governor:
    """Admits Tushare calls so that no API's budget is exceeded by all processes together.

    `with governor.call(api):` waits (outside any transaction) until a call may start, counts it
    as in flight from its start and from its end once it ends; raises at once when the API's
    daily quota is used up or its permission was refused. Thread-safe; one per process.
    """

    def __init__(
        self,
        store: GovernorStore,
        budgets: Budgets,
        window: float = 60.0,
        in_flight_timeout: float = 600.0,
        permission_ttl: float = 86400.0,
        sleep: Callable[[float], None] = time.sleep,
        logger: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.budgets = budgets
        self.policy = Policy(
            window=window, in_flight_timeout=in_flight_timeout, permission_ttl=permission_ttl
        )
        self._sleep = sleep
        self.log = logger or _log

    def __repr__(self) -> str:
        return f"Governor({self.describe()})"

    def describe(self) -> str:
        return f"{self.store.describe()}, window {self.policy.window:g}s, {self.budgets!r}"

    def close(self) -> None:
        self.store.close()

    @contextmanager
    def call(self, api_name: str, stop: threading.Event | None = None) -> Iterator[float]:
        """Admit one call to `api_name`, yielding the seconds waited for it; `stop` set while
        waiting raises CallCancelledError (a failed run need not wait out a window)."""
        validate_api_name(api_name)
        budget = self.budgets.for_api(api_name)
        waited = 0.0
        while True:
            decision = self.store.admit(api_name, budget, self.policy)
            if decision.call_id is not None:
                break
            if decision.blocked is not None:
                raise self._blocked_error(api_name, decision)
            if decision.wait >= _LOG_WAIT_SECONDS:
                self.log.info(
                    f"Tushare {api_name}: shared budget full or paused after a refusal; "
                    f"waiting {decision.wait:.1f}s"
                )
            if stop is None:
                self._sleep(decision.wait)
            elif stop.wait(decision.wait):
                raise CallCancelledError(
                    f"Tushare {api_name}: the run stopped while this call waited for the budget"
                )
            waited += decision.wait
        try:
            yield waited
        finally:
            try:
                self.store.finish(api_name, decision.call_id)
            except sa.exc.DBAPIError as e:
                # The row stays in flight and counts until in_flight_timeout: safe, and losing
                # the answer the call already got would not be.
                self.log.warning(f"Tushare {api_name}: could not record the end of a call: {e}")

    def refused(self, api_name: str, kind: str, message: str = "") -> None:
        """Share a 40203 refusal: "minute" pauses the API for one window for everyone, "day"
        marks it exhausted until 00:00 Asia/Shanghai, "permission" marks it unavailable."""
        validate_api_name(api_name)
        if kind not in REFUSAL_KINDS:
            raise ConfigError(
                f"unknown refusal kind {kind!r}: expected one of {', '.join(REFUSAL_KINDS)}"
            )
        limit = None
        if kind == MINUTE:
            found = _MINUTE_LIMIT.search(message)
            limit = int(found.group(1)) if found and int(found.group(1)) > 0 else None
        self.store.refuse(api_name, kind, message, self.policy, limit)
        self.log.warning(f"Tushare {api_name}: {kind} refusal shared with every process: {message}")

    def refusal_error(self, api_name: str, kind: str, message: str) -> Exception:
        """Share a day or permission refusal (see `refused`) and return the error that ends the
        call: the same one every later call to the API gets from `call` at once."""
        self.refused(api_name, kind, message)
        now = time.time()
        if kind == DAY:
            decision = Decision(blocked=DAY, until=next_day_reset(now), message=message)
        elif kind == PERMISSION:
            decision = Decision(
                blocked=PERMISSION, until=now + self.policy.permission_ttl, message=message, at=now
            )
        else:
            raise ConfigError(f"a {kind} refusal is waited out, not raised")
        return self._blocked_error(api_name, decision)

    def clear(self, api_name: str) -> bool:
        """Forget the refusals recorded for `api_name` (after buying points, say)."""
        return self.store.clear(validate_api_name(api_name))

    def status(self) -> list[ApiStatus]:
        """Every API seen by any process sharing the store, with its budget and counts."""
        return [self._status(record) for record in self.store.snapshot(self.policy)]

    def _status(self, r: ApiRecord) -> ApiStatus:
        budget = self.budgets.for_api(r.api_name)
        day = shanghai_day(r.now)
        active = r.minute_refused_at is not None and shanghai_day(r.minute_refused_at) == day
        denied = r.denied_at is not None and r.now < r.denied_at + self.policy.permission_ttl
        paused = r.paused_until is not None and r.paused_until > r.now
        exhausted = r.exhausted_until is not None and r.exhausted_until > r.now

        def when(epoch: float | None, keep: bool = True) -> dt.datetime | None:
            return shanghai_time(epoch) if epoch is not None and keep else None

        return ApiStatus(
            api_name=r.api_name,
            per_minute=budget.per_minute,
            per_day=budget.per_day,
            window_seconds=self.policy.window,
            calls_in_window=r.calls_in_window,
            in_flight=r.in_flight,
            calls_today=r.calls_today,
            day=day,
            minute_limit_seen=r.minute_limit_seen if active else None,
            paused_until=when(r.paused_until, paused),
            minute_message=r.minute_message if active else None,
            exhausted_until=when(r.exhausted_until, exhausted),
            exhausted_message=r.exhausted_message if exhausted else None,
            denied_at=when(r.denied_at, denied),
            denied_until=when(
                None if r.denied_at is None else r.denied_at + self.policy.permission_ttl, denied
            ),
            denied_message=r.denied_message if denied else None,
        )

    def _blocked_error(self, api_name: str, d: Decision) -> Exception:
        assert d.until is not None
        until = shanghai_time(d.until)
        if d.blocked == DAY:
            reason = d.message or "the service refused it"
            return DailyQuotaExhaustedError(
                f"Tushare daily quota of API {api_name} is exhausted ({reason}); "
                f"it resets at {_fmt(until)}",
                api_name=api_name,
                resets_at=until,
            )
        assert d.at is not None
        refused_at = shanghai_time(d.at)
        return ApiPermissionDeniedError(
            f"Tushare refused this account access to API {api_name} at {_fmt(refused_at)} "
            f"({d.message or 'no message'}); not retried before {_fmt(until)} unless cleared "
            "(`controller.sh tushare clear API`, after the account gains the points)",
            api_name=api_name,
            refused_at=refused_at,
            retry_after=until,
        )
