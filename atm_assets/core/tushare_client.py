"""Tushare Pro client: the `tushare` package's DataApi, with typed errors, retries and a limiter."""

from __future__ import annotations

import bisect
import copy
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import pandas as pd
import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from atm_assets.core.errors import (
    TushareAPIError,
    TushareAuthError,
    TushareError,
    TushareHTTPError,
    TusharePermissionError,
    TushareProtocolError,
    TushareRateLimitError,
    TushareTransportError,
)
from atm_assets.core.settings import RetrySettings, TushareSettings

if TYPE_CHECKING:
    from tushare.pro.client import DataApi

# One call returns at most this many rows; larger results must be paged with limit/offset.
MAX_ROWS_PER_CALL = 6000
# Backoff jitter: each wait is stretched by up to this fraction, at random.
JITTER = 0.25

_log = logging.getLogger("atm.tushare")


def data_api(url: str, token: str, timeout: float) -> DataApi:
    """The `tushare` package's own client, posting to `url` instead of Tushare's endpoint."""
    # Imported here because `import tushare` costs ~0.8 s and most callers never query.
    from tushare.pro.client import DataApi

    api = DataApi(token=token, timeout=timeout)
    # DataApi has no URL argument; the base URL is this name-mangled attribute. Setting it on
    # the instance leaves the class (and any other client in the process) untouched.
    api._DataApi__http_url = url
    return api


class _OverBudget(stop_base):
    """Stop when the next wait would take the call's total waiting past its budget."""

    def __init__(self, retry: RetrySettings) -> None:
        self.budget = retry.budget_seconds

    def __call__(self, retry_state: RetryCallState) -> bool:
        return retry_state.idle_for + (retry_state.upcoming_sleep or 0) > self.budget


class _Backoff(wait_base):
    """Exponential from a base that depends on the error (rate limits wait longer), capped,
    with multiplicative jitter."""

    def __init__(self, retry: RetrySettings, rand: Callable[[], float]) -> None:
        self.retry = retry
        self.rand = rand

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        base = (
            self.retry.rate_limit_base_delay
            if isinstance(error, TushareRateLimitError)
            else self.retry.base_delay
        )
        raw = min(self.retry.max_delay, base * (2 ** (retry_state.attempt_number - 1)))
        return raw * (1 + JITTER * self.rand())


class RateLimiter:
    """Client-side sliding-window limiter: at most N calls per API in any 60 seconds."""

    def __init__(
        self,
        calls_per_minute: int | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        window: float = 60.0,
    ) -> None:
        if calls_per_minute is not None and calls_per_minute <= 0:
            raise ValueError("calls_per_minute must be a positive integer or None")
        self.calls_per_minute = calls_per_minute
        self._clock = clock
        self._sleep = sleep
        self._window = window
        # Per API, sorted: when each admitted call ended (or began, while it is under way).
        self._calls: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def acquire(self, api_name: str) -> float:
        """Block until a call to `api_name` is allowed; return the seconds waited."""
        return self._admit(api_name)[0]

    @contextmanager
    def call(self, api_name: str) -> Iterator[float]:
        """Admit one call (yielding the seconds waited) and count it from when it ended.

        The service counts a call when it arrives, which is never later than when its answer
        is back; counting from the acquire instead would let the N+1th call in early whenever
        an earlier request took a while to reach the service.
        """
        waited, stamp = self._admit(api_name)
        try:
            yield waited
        finally:
            if stamp is not None:
                with self._lock:
                    calls = self._calls[api_name]
                    if stamp in calls:
                        calls.remove(stamp)
                    bisect.insort(calls, self._clock())

    def _admit(self, api_name: str) -> tuple[float, float | None]:
        if self.calls_per_minute is None:
            return 0.0, None
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                calls = self._calls.setdefault(api_name, [])
                while calls and now - calls[0] >= self._window:
                    calls.pop(0)
                if len(calls) < self.calls_per_minute:
                    calls.append(now)
                    return waited, now
                wait = self._window - (now - calls[0])
            self._sleep(wait)
            waited += wait


_shared_limiters: dict[tuple[str, int | None], RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_rate_limiter(api_url: str, calls_per_minute: int | None) -> RateLimiter:
    """One limiter per endpoint and rate in this process, so every partition of a run shares it."""
    with _shared_lock:
        key = (api_url, calls_per_minute)
        if key not in _shared_limiters:
            _shared_limiters[key] = RateLimiter(calls_per_minute)
        return _shared_limiters[key]


def classify_api_message(message: str) -> TushareError:
    """Turn the bare `Exception(msg)` the tushare client raises back into a typed error."""
    if "token" in message.lower() and ("不对" in message or "invalid" in message.lower()):
        return TushareAuthError(f"Tushare refused the token (40101): {message}", code=40101)
    if "每分钟" in message and "最多访问" in message:
        return TushareRateLimitError(f"Tushare rate limit (40203): {message}", code=40203)
    if "最多访问" in message:
        # Hourly/daily quotas do not reset within a retry budget: report, do not hammer.
        error = TushareRateLimitError(f"Tushare quota exhausted (40203): {message}", code=40203)
        error.retryable = False
        return error
    if "权限" in message:
        return TusharePermissionError(f"Tushare permission denied (40203): {message}", code=40203)
    return TushareAPIError(f"Tushare API error: {message}")


class TushareClient:
    """Calls Tushare through `tushare.pro.client.DataApi`, without inheriting its flaws.

    The tushare client turns any HTTP 4xx/5xx into an empty DataFrame and every API error into a
    bare `Exception(msg)`; here the first raises `TushareHTTPError` and the second a typed error,
    transient failures are retried with bounded backoff, and calls pass a per-API rate limiter.
    """

    def __init__(
        self,
        token: str,
        settings: TushareSettings | None = None,
        limiter: RateLimiter | None = None,
        logger: logging.Logger | Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not token:
            raise TushareAuthError("no Tushare token: set TUSHARE_TOKEN (or --tushare-token)")
        self.settings = settings or TushareSettings()
        self.api_url = self.settings.api_url.rstrip("/")
        self.limiter = limiter or RateLimiter(None)
        self.log = logger or _log
        self._sleep = sleep
        self._rand = rand
        self._api = data_api(self.api_url, token, self.settings.timeout_seconds)
        self.calls = 0

    def __repr__(self) -> str:  # never show the token
        return f"TushareClient(api_url={self.api_url!r})"

    def view(self, log: logging.Logger | Any) -> TushareClient:
        """The same client (connection, limiter) logging to `log`, with its own call count:
        one per task, so work on other threads reports to the task it is done for."""
        other = copy.copy(self)
        other.log = log
        other.calls = 0
        return other

    def query(self, api_name: str, fields: Sequence[str], **params: object) -> pd.DataFrame:
        """One API call, retried on transient faults; the frame has exactly `fields` as columns."""
        retry = self.settings.retry

        def give_up(state: RetryCallState) -> NoReturn:
            error = state.outcome.exception() if state.outcome else None
            assert isinstance(error, TushareError)
            why = (
                f"gave up after {state.attempt_number} attempts"
                if state.attempt_number >= retry.max_attempts
                else f"gave up: retry budget of {retry.budget_seconds:g}s spent"
            )
            raise type(error)(f"{error} ({why})", code=error.code) from error

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            self.log.warning(
                f"Tushare {api_name} attempt {state.attempt_number}/{retry.max_attempts} "
                f"failed: {error}; retrying in {state.upcoming_sleep:.1f}s"
            )

        retrying = Retrying(
            stop=stop_any(stop_after_attempt(retry.max_attempts), _OverBudget(retry)),
            wait=_Backoff(retry, self._rand),
            retry=retry_if_exception(lambda e: isinstance(e, TushareError) and e.retryable),
            before_sleep=log_retry,
            retry_error_callback=give_up,
            sleep=self._sleep,
        )
        return retrying(self._limited_query, api_name, fields, params)

    def _limited_query(
        self, api_name: str, fields: Sequence[str], params: Mapping[str, object]
    ) -> pd.DataFrame:
        with self.limiter.call(api_name):
            return self._query_once(api_name, fields, params)

    def _query_once(
        self, api_name: str, fields: Sequence[str], params: Mapping[str, object]
    ) -> pd.DataFrame:
        where = f"{self.api_url}/{api_name}"
        self.calls += 1
        try:
            frame = self._api.query(api_name, fields=",".join(fields), **params)
        except requests.Timeout as e:
            raise TushareTransportError(
                f"timed out after {self.settings.timeout_seconds:g}s calling {where}"
            ) from e
        except requests.ConnectionError as e:
            raise TushareTransportError(
                f"connection to {where} failed ({type(e).__name__}: refused, reset or dropped)"
            ) from e
        except requests.RequestException as e:
            raise TushareTransportError(f"request to {where} failed: {type(e).__name__}") from e
        except json.JSONDecodeError as e:
            raise TushareProtocolError(
                f"{where} answered with malformed or truncated JSON ({e.msg} at char {e.pos})"
            ) from e
        except (TypeError, KeyError) as e:
            # The client indexes result['data']['fields']: a null or partial `data` lands here.
            raise TushareProtocolError(
                f"{where} answered code 0 without a usable `data` block ({type(e).__name__}: {e})"
            ) from e
        except Exception as e:  # noqa: BLE001 - the client raises bare Exception(msg) for codes
            raise classify_api_message(str(e)) from e
        if len(frame.columns) == 0:
            raise TushareHTTPError(
                f"HTTP error from {where}: the tushare client returned an empty frame without "
                "columns, which is how it reports any HTTP 4xx/5xx (check TUSHARE_API_URL)"
            )
        got = [str(c) for c in frame.columns]
        if got != list(fields):
            raise TushareProtocolError(f"{where} returned fields {got}, expected {list(fields)}")
        return frame

    def query_all(
        self,
        api_name: str,
        fields: Sequence[str],
        page_size: int = MAX_ROWS_PER_CALL,
        **params: object,
    ) -> pd.DataFrame:
        """All rows of a query, paging with limit/offset whenever a page comes back full."""
        if not 0 < page_size <= MAX_ROWS_PER_CALL:
            raise ValueError(f"page_size must be in 1..{MAX_ROWS_PER_CALL}, got {page_size}")
        pages: list[pd.DataFrame] = []
        offset = 0
        while True:
            page = self.query(api_name, fields, limit=page_size, offset=offset, **params)
            if pages and len(page) and len(pages[-1]) and page.iloc[0].equals(pages[-1].iloc[0]):
                raise TushareProtocolError(
                    f"{self.api_url}/{api_name} ignored offset={offset}: paging does not advance"
                )
            pages.append(page)
            offset += len(page)
            if len(page) < page_size:
                break
            self.log.info(f"Tushare {api_name}: page of {len(page)} rows is full, fetching more")
        if len(pages) == 1:
            return pages[0]
        return pd.concat(pages, ignore_index=True)
