"""Tushare Pro client: the `tushare` package's DataApi, typed errors, retries, the governor."""

from __future__ import annotations

import copy
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, NoReturn

import orjson
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
    TushareProtocolError,
    TushareRateLimitError,
    TushareTransportError,
)
from atm_assets.core.governor import (
    DAY,
    MINUTE,
    PERMISSION,
    ApiPermissionDeniedError,
    CallCancelledError,
    DailyQuotaExhaustedError,
    Governor,
    classify_refusal,
    next_day_reset,
)
from atm_assets.core.governor.budgets import shanghai_time
from atm_assets.core.settings import RetrySettings, TushareSettings

if TYPE_CHECKING:
    from tushare.pro.client import DataApi

# One call returns at most this many rows; larger results must be paged with limit/offset.
MAX_ROWS_PER_CALL = 6000
# Pages of one query fetched at once: a full page says more follow, not how many.
MAX_PAGES_IN_FLIGHT = 4
# Backoff jitter: each wait is stretched by up to this fraction, at random.
JITTER = 0.25

_log = logging.getLogger("atm.tushare")


class _FastJson:
    """What the tushare client's module sees as `json`: orjson's parser (a well-kept C library,
    ~4x faster on a 5,000-row answer, which a backfill parses ~1,000 of), falling back to the
    standard one for anything orjson refuses (NaN literals, malformed text), so answers parse
    to the same values and fail with the same errors as before. The one difference: an integer
    beyond 64 bits becomes a float (Tushare's integers are counts, volumes and dates)."""

    JSONDecodeError = json.JSONDecodeError
    # The `has_more` of each thread's last answer: the client drops it, paging needs it.
    answer = threading.local()

    @classmethod
    def loads(cls, text: str | bytes) -> Any:
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = json.loads(text)
        data = parsed.get("data") if isinstance(parsed, dict) else None
        cls.answer.has_more = data.get("has_more") if isinstance(data, dict) else None
        return parsed

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        return json.dumps(obj, **kwargs)


class _Transport:
    """What the tushare client's module sees as `requests`: each thread posts through its own
    keep-alive session (one TCP connection reused across calls instead of one per call), and
    its last response is kept, so the HTTP status the client hides (it turns any 4xx/5xx into
    an empty frame) can be told: a 404 is a wrong URL, not a fault worth retrying."""

    def __init__(self) -> None:
        self._local = threading.local()

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        self._local.response = None
        response = session.post(url, **kwargs)
        self._local.response = response
        return response

    def last_latency(self) -> float | None:
        """Seconds this thread's last call waited for the answer's headers (the server's and
        the network's share; parsing the body comes after)."""
        response = getattr(self._local, "response", None)
        return None if response is None else response.elapsed.total_seconds()

    def last_content(self) -> bytes:
        """The body of this thread's last answer (empty if none)."""
        response = getattr(self._local, "response", None)
        return b"" if response is None else response.content

    def last_status(self) -> int | None:
        """The HTTP status of this thread's last answer, if it got one."""
        response = getattr(self._local, "response", None)
        return None if response is None else int(response.status_code)


TRANSPORT = _Transport()


def data_api(url: str, token: str, timeout: float) -> DataApi:
    """The `tushare` package's own client, posting to `url` instead of Tushare's endpoint."""
    # Imported here because `import tushare` costs ~0.8 s and most callers never query.
    import tushare.pro.client as tushare_client
    from tushare.pro.client import DataApi

    # The client calls json.loads(res.text) on each answer: parse with orjson instead; and
    # requests.post: through TRANSPORT.
    tushare_client.json = _FastJson
    tushare_client.requests = TRANSPORT
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


def classify_api_message(
    message: str, governor: Governor | None = None, api_name: str = ""
) -> TushareError:
    """Turn the bare `Exception(msg)` the tushare client raises back into a typed error; a
    40203 refusal is shared through `governor` (when given) with every process of the account."""
    if "token" in message.lower() and ("不对" in message or "invalid" in message.lower()):
        return TushareAuthError(f"Tushare refused the token (40101): {message}", code=40101)
    kind = classify_refusal(message)
    if kind == MINUTE:
        if governor is not None:
            governor.refused(api_name, MINUTE, message)
        return TushareRateLimitError(f"Tushare rate limit (40203): {message}", code=40203)
    if kind in (DAY, PERMISSION) and governor is not None:
        error = governor.refusal_error(api_name, kind, message)
        assert isinstance(error, TushareError)
        return error
    if kind == DAY:
        # Daily quotas do not reset within a retry budget: report, do not hammer.
        resets = shanghai_time(next_day_reset(time.time()))
        return DailyQuotaExhaustedError(
            f"Tushare daily quota of API {api_name} is exhausted (40203): {message}; it resets "
            f"at {resets:%Y-%m-%d %H:%M:%S} Asia/Shanghai",
            api_name=api_name,
            resets_at=resets,
        )
    if kind == PERMISSION:
        return ApiPermissionDeniedError(
            f"Tushare permission denied (40203): {message}", api_name=api_name
        )
    return TushareAPIError(f"Tushare API error: {message}")


def http_error(status: int | None, where: str) -> TushareHTTPError:
    """The error the tushare client's empty frame stands for: the server's overload (408, 429,
    5xx) may pass and is retried; any other 4xx (a wrong TUSHARE_API_URL: 404) will not."""
    if status is None:
        return TushareHTTPError(
            f"HTTP error from {where}: the tushare client returned an empty frame without "
            "columns, which is how it reports any HTTP 4xx/5xx (check TUSHARE_API_URL)"
        )
    known = {s.value: s.phrase for s in HTTPStatus}
    transient = status in (408, 429) or status >= 500
    hint = "" if transient else " (not retried: check TUSHARE_API_URL)"
    error = TushareHTTPError(f"HTTP {status} {known.get(status, 'error')} from {where}{hint}")
    error.retryable = transient
    return error


@dataclass(frozen=True)
class Page:
    """One answer: its rows, and whether the service said more remain (None: it did not)."""

    frame: pd.DataFrame
    has_more: bool | None

    def more(self, asked: int) -> bool:
        """Whether to ask for the next page: as the service says; when it does not say, a
        full page may be followed by more (an empty page ends it either way)."""
        if not len(self.frame):
            return False
        if self.has_more is not None:
            return bool(self.has_more)
        return len(self.frame) >= asked


# Per-call row caps the service showed (below what ATM asked for), by API, for this process:
# logged once. Each client view also keeps those its own calls showed (`caps`), which a sync
# puts in its materialisation's metadata (`observed_caps`).
OBSERVED_CAPS: dict[str, int] = {}
# Fields the service answered that ATM did not ask for (it added columns), by API, for this
# process: the schema-drift check reads them.
OBSERVED_EXTRA_FIELDS: dict[str, set[str]] = {}
_OBSERVED_LOCK = threading.Lock()
_SAID: set[tuple[Any, ...]] = set()


def extra_fields(api_name: str) -> list[str]:
    """The fields `api_name` answered unasked in this process, sorted."""
    with _OBSERVED_LOCK:
        return sorted(OBSERVED_EXTRA_FIELDS.get(api_name, ()))


def _once(what: tuple[Any, ...]) -> bool:
    """True the first time `what` is said in this process (a line per API, not per call)."""
    with _OBSERVED_LOCK:
        if what in _SAID:
            return False
        _SAID.add(what)
        return True


class TushareClient:
    """Calls Tushare through `tushare.pro.client.DataApi`, without inheriting its flaws.

    The tushare client turns any HTTP 4xx/5xx into an empty DataFrame and every API error into a
    bare `Exception(msg)`; here the first raises `TushareHTTPError` and the second a typed error,
    transient failures are retried with bounded backoff, and every call is admitted by the
    account's governor (one budget per API for all processes) and tells it of refusals.
    """

    def __init__(
        self,
        token: str,
        settings: TushareSettings | None = None,
        governor: Governor | None = None,
        logger: logging.Logger | Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not token:
            raise TushareAuthError("no Tushare token: set TUSHARE_TOKEN (or --tushare-token)")
        self.settings = settings or TushareSettings()
        self.api_url = self.settings.api_url.rstrip("/")
        # None: no admission control (unit tests); the resources always pass the shared one.
        self.governor = governor
        # Set by the stream that owns this client when its run stops: calls waiting for the
        # governor give up instead of sleeping out a window.
        self.stop: threading.Event | None = None
        self.log = logger or _log
        self._sleep = sleep
        self._rand = rand
        self._api = data_api(self.api_url, token, self.settings.timeout_seconds)
        self.calls = 0
        # Whether an answer held an escaped NUL (\u0000): only then need the rows be
        # searched for one (a database text column cannot store it).
        self.nul_seen = False
        # Caps this client's (this view's) calls showed, by API: a run's metadata names them.
        self.caps: dict[str, int] = {}
        self._count_lock = threading.Lock()

    def __repr__(self) -> str:  # never show the token
        return f"TushareClient(api_url={self.api_url!r})"

    def view(self, log: logging.Logger | Any) -> TushareClient:
        """The same client (connection, governor) logging to `log`, with its own call count:
        one per task, so work on other threads reports to the task it is done for."""
        other = copy.copy(self)
        other.log = log
        other.calls = 0
        other.nul_seen = False
        other.caps = {}
        other._count_lock = threading.Lock()
        return other

    def stopping(self, stop: threading.Event) -> TushareClient:
        """The same client, whose calls waiting for the governor end when `stop` is set."""
        other = copy.copy(self)
        other.stop = stop
        return other

    def query(self, api_name: str, fields: Sequence[str], **params: object) -> pd.DataFrame:
        """One API call, retried on transient faults; the frame has exactly `fields` as columns,
        in that order, whatever order the service answered them in."""
        return self.query_page(api_name, fields, **params).frame

    def query_page(self, api_name: str, fields: Sequence[str], **params: object) -> Page:
        """One API call and what the service said of the rest: `has_more` (None when the
        answer did not say)."""
        return self._call(api_name, fields, params, as_answered=False)

    def probe(self, api_name: str, fields: Sequence[str], **params: object) -> Page:
        """One call answered as the service sent it: its columns in its order (to check the
        catalog against the service), not the requested ones by name."""
        return self._call(api_name, fields, params, as_answered=True)

    def _call(
        self,
        api_name: str,
        fields: Sequence[str],
        params: Mapping[str, object],
        as_answered: bool,
    ) -> Page:
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
            sleep=self._pause,
        )
        return retrying(self._governed_query, api_name, fields, params, as_answered)

    def _pause(self, seconds: float) -> None:
        """A backoff that ends early, as a cancelled call, when the run owning this client
        stops (Ctrl-C must not wait out a minute's backoff)."""
        if self.stop is not None and self._sleep is time.sleep:
            if self.stop.wait(seconds):
                raise CallCancelledError("the run stopped while the call waited to retry")
            return
        self._sleep(seconds)

    def _governed_query(
        self,
        api_name: str,
        fields: Sequence[str],
        params: Mapping[str, object],
        as_answered: bool = False,
    ) -> Page:
        if self.governor is None:
            return self._query_once(api_name, fields, params, as_answered)
        with self.governor.call(api_name, self.stop) as waited:
            if waited >= 1:
                self.log.info(f"Tushare {api_name}: waited {waited:.1f}s for the shared budget")
            return self._query_once(api_name, fields, params, as_answered)

    def _query_once(
        self,
        api_name: str,
        fields: Sequence[str],
        params: Mapping[str, object],
        as_answered: bool = False,
    ) -> Page:
        where = f"{self.api_url}/{api_name}"
        _FastJson.answer.has_more = None
        with self._count_lock:  # pages of one query may be fetched on several threads
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
            raise classify_api_message(str(e), self.governor, api_name) from e
        if len(frame.columns) == 0:
            raise http_error(TRANSPORT.last_status(), where)
        if b"\\u0000" in TRANSPORT.last_content():
            self.nul_seen = True
        if not as_answered:
            frame = self._by_name(frame, api_name, fields)
        return Page(frame, _FastJson.answer.has_more)

    def _by_name(self, frame: pd.DataFrame, api_name: str, fields: Sequence[str]) -> pd.DataFrame:
        """The requested columns by name, in the requested order: the service may answer in
        its own (documented) order. A requested field it did not answer is an error naming
        it; fields it answered unasked are dropped, said once per API."""
        got = [str(c) for c in frame.columns]
        if got == list(fields):
            return frame
        missing = [f for f in fields if f not in got]
        if missing:
            raise TushareProtocolError(
                f"{self.api_url}/{api_name} did not return the requested field(s) "
                f"{', '.join(missing)} (it returned {', '.join(got)})"
            )
        extra = sorted(set(got) - set(fields))
        if extra:
            with _OBSERVED_LOCK:
                OBSERVED_EXTRA_FIELDS.setdefault(api_name, set()).update(extra)
            if _once(("extra", api_name, tuple(extra))):
                self.log.info(f"Tushare {api_name} also answered {', '.join(extra)}: not stored")
        frame.columns = got  # plain strings, so selection by name is exact
        return frame[list(fields)]

    def _page_width(self, seconds: float, latency: float | None) -> int:
        """How many pages to fetch at once, from the first page: several pay off when the
        answer is slow to come (the real service, far away: the waits overlap); when taking
        it in costs more than waiting for it (a fast, near source) threads only fight over
        the interpreter, and one at a time is faster."""
        wanted = max(1, min(self.settings.max_in_flight, MAX_PAGES_IN_FLIGHT))
        if latency is not None and latency < seconds - latency:
            return 1
        return wanted

    def query_all(
        self,
        api_name: str,
        fields: Sequence[str],
        page_size: int = MAX_ROWS_PER_CALL,
        **params: object,
    ) -> pd.DataFrame:
        """All rows of a query, paging with limit/offset until the service says there are no
        more (`has_more`; a page shorter than asked when it does not say) or a page comes
        back empty. A first page shorter than asked that still has more is the API's real
        cap, below `page_size`: recorded (`observed_caps`) and paged by. The pages after the
        first are fetched up to `max_in_flight` (at most 4) at a time when that pays off."""
        if not 0 < page_size <= MAX_ROWS_PER_CALL:
            raise ValueError(f"page_size must be in 1..{MAX_ROWS_PER_CALL}, got {page_size}")

        def page_at(offset: int) -> Page:
            return self.query_page(api_name, fields, limit=page_size, offset=offset, **params)

        began = time.perf_counter()
        first = page_at(0)
        if not first.more(page_size):
            return first.frame
        step = len(first.frame)
        if step < page_size:
            self._observe_cap(api_name, step, page_size)
        # Pages beyond the end come back empty: at most width - 1 calls are spent on them.
        width = self._page_width(time.perf_counter() - began, TRANSPORT.last_latency())
        pages, offset, going = [first.frame], step, True
        with ThreadPoolExecutor(width, thread_name_prefix="atm-page") as pool:
            while going:
                if width > 1:
                    self.log.info(
                        f"Tushare {api_name}: more rows after {offset}, fetching up to {width} "
                        "pages at once"
                    )
                offsets = [offset + i * step for i in range(width)]
                for at, page in zip(offsets, pool.map(page_at, offsets), strict=True):
                    previous = pages[-1]
                    frame = page.frame
                    if len(frame) and len(previous) and frame.iloc[0].equals(previous.iloc[0]):
                        raise TushareProtocolError(
                            f"{self.api_url}/{api_name} ignored offset={at}: paging does not "
                            "advance"
                        )
                    pages.append(frame)
                    if not page.more(step):
                        going = False
                        break
                offset = offsets[-1] + step
        return pd.concat(pages, ignore_index=True)

    def _observe_cap(self, api_name: str, cap: int, asked: int) -> None:
        """The API answers fewer rows a call than asked while more remain: its own cap."""
        with _OBSERVED_LOCK:
            known = OBSERVED_CAPS.get(api_name)
            OBSERVED_CAPS[api_name] = cap if known is None else min(known, cap)
            self.caps[api_name] = min(cap, self.caps.get(api_name, cap))
        if _once(("cap", api_name, cap)):
            self.log.warning(
                f"Tushare {api_name} answers at most {cap} rows a call (asked for {asked}) and "
                f"says more remain: paging by {cap}"
            )
