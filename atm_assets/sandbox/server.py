"""The Tushare-compatible loopback HTTP server: request dispatch, call recording, runtime setup."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from atm_assets.sandbox.control import RemoteSandbox, UnknownControl, handle_control
from atm_assets.sandbox.dataset import SandboxDataset
from atm_assets.sandbox.faults import FAULT_KINDS, HTTP_FAULTS, Fault, FaultQueue, mangle
from atm_assets.sandbox.limits import Limits
from atm_assets.sandbox.protocol import (
    CODE_BAD_PARAMS,
    CODE_BAD_TOKEN,
    CODE_FORBIDDEN,
    CODE_UNKNOWN_API,
    DEFAULT_RATE_LIMIT_IN_MESSAGE,
    DEFAULT_TOKEN,
    MSG_BAD_TOKEN,
    Answer,
    api_error,
    api_payload,
    daily_quota_message,
    http_error_page,
    json_bytes,
    no_permission_message,
    rate_limit_message,
    unknown_api_message,
)
from atm_assets.sandbox.query import API_SPECS, ParamError, execute
from atm_assets.sandbox.world import Fidelity, make_release

if TYPE_CHECKING:
    from tushare.pro.client import DataApi

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_TOKEN", "FAULT_KINDS", "RemoteSandbox", "SandboxServer", "tushare_client"]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # stop() must not wait for handlers parked in an injected timeout.
    block_on_close = False

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response (timeouts, resets) are expected here, not errors.
        logger.debug("sandbox connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "ATMTushareSandbox/1.0"
    # Bounds how long an idle keep-alive connection pins a handler thread.
    timeout = 60

    def setup(self) -> None:
        super().setup()
        self.server.sandbox._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sandbox._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        # Request logging happens in SandboxServer, where the token can be kept out of it.
        return

    def do_POST(self) -> None:
        self.server.sandbox._dispatch(self, "POST")

    def do_GET(self) -> None:
        self.server.sandbox._dispatch(self, "GET")


class SandboxServer:
    """A Tushare Pro look-alike on loopback, driven in-process or over /_sandbox/* HTTP calls."""

    def __init__(
        self,
        dataset: SandboxDataset | None = None,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        rate_limit: int | None = None,
        rate_window: float = 60.0,
        api_rate_limits: Mapping[str, int] | None = None,
        daily_quota: int | None = None,
        api_daily_quotas: Mapping[str, int] | None = None,
        latency: float | None = None,
        latency_jitter: float = 0.0,
        api_latency: Mapping[str, float] | None = None,
        verbose: bool = False,
        cache_answers: bool = False,
        fidelity: Fidelity | str | Mapping[str, bool] | None = None,
    ) -> None:
        """Limits, quotas and latency given here are the defaults reset() returns to.

        `cache_answers` keeps the encoded answer of every fault-free call and serves a repeat
        of the same request from it (same dataset, API, params and fields): for benchmarks,
        whose timed run should measure ATM, not the generators (the real service's CPU is
        not on the client's machine). Limits, quotas, latency, faults and the call log still
        apply to every call.

        `fidelity` ("simple", the default and the former behaviour; "real", Tushare's quirks;
        or {quirk: bool}) replaces the dataset's; reset() returns to it."""
        self._initial_dataset = dataset or SandboxDataset()
        if fidelity is not None:
            self._initial_dataset = self._initial_dataset.with_fidelity(fidelity)
        self._initial_token = token
        self._initial_rate = (rate_limit, rate_window)
        self._initial_api_rates = dict(api_rate_limits or {})
        self._initial_quotas: dict[str | None, int] = {
            k: v for k, v in (api_daily_quotas or {}).items()
        }
        if daily_quota is not None:
            self._initial_quotas[None] = daily_quota
        self._initial_latency: dict[str | None, float] = {
            k: v for k, v in (api_latency or {}).items()
        }
        if latency is not None:
            self._initial_latency[None] = latency
        self._initial_jitter = latency_jitter
        self._host = host
        self._requested_port = port
        self._verbose = verbose
        self._cache: dict[tuple[str, str, str], tuple[SandboxDataset, Answer]] | None = (
            {} if cache_answers else None
        )
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._restore_defaults()

    def _restore_defaults(self) -> None:
        with self._lock:
            self._dataset = self._initial_dataset
            self._token = self._initial_token
            self._extra_tokens: set[str] = set()
            self._limits = Limits(*self._initial_rate)
            for api, calls in self._initial_api_rates.items():
                self._limits.set_rate_limit(calls, self._initial_rate[1], api)
            for api_or_all, calls in self._initial_quotas.items():
                self._limits.set_daily_quota(calls, api_or_all)
            for api_or_all, seconds in self._initial_latency.items():
                self._limits.set_latency(seconds, self._initial_jitter, api_or_all)
            self._denied: set[str] = set()
            self._faults = FaultQueue()
            self._calls: list[dict[str, Any]] = []
            self._seq = 0

    # -- lifecycle --

    def start(self) -> SandboxServer:
        if self._httpd is not None:
            return self
        # Build the data before accepting requests so the first call is not slow.
        self._dataset.listing()
        self._stopping.clear()
        self._httpd = _HTTPServer((self._host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"tushare-sandbox:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("sandbox server is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL to give the tushare client (it appends /<api_name>)."""
        return f"http://{self._host}:{self.port}/dataapi"

    @property
    def control_url(self) -> str:
        return f"http://{self._host}:{self.port}/_sandbox"

    @property
    def token(self) -> str:
        with self._lock:
            return self._token

    @property
    def dataset(self) -> SandboxDataset:
        with self._lock:
            return self._dataset

    def client(self, timeout: float = 30.0, token: str | None = None) -> DataApi:
        return tushare_client(self.url, self.token if token is None else token, timeout)

    # -- runtime controls --

    def inject(self, kind: str, api: str = "*", times: int = 1, **opts: Any) -> None:
        """Queue a fault for the next `times` matching calls (times < 0: until cleared)."""
        with self._lock:
            self._faults.add(kind, api, times, **opts)

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._faults.listing()

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def set_revision(self, revision: int) -> None:
        dataset = self.dataset.with_revision(int(revision))
        dataset.listing()
        with self._lock:
            self._dataset = dataset

    def set_sizes(
        self, sizes: Mapping[str, int] | Mapping[tuple[str, str], int] | None = None
    ) -> None:
        """Replace the partition sizes (None: defaults), keeping seed and revision."""
        dataset = self.dataset.with_sizes(sizes)
        dataset.listing()
        with self._lock:
            self._dataset = dataset

    def set_dataset(self, dataset: SandboxDataset) -> None:
        dataset.listing()
        with self._lock:
            self._dataset = dataset

    def set_fidelity(
        self,
        fidelity: Fidelity | str | Mapping[str, bool] | None = None,
        quirks: Mapping[str, bool] | None = None,
    ) -> None:
        """Switch the world: "simple" or "real" (None: keep the current one), then turn single
        quirks on or off (see world.QUIRKS)."""
        with self._lock:
            world = self._dataset.fidelity if fidelity is None else Fidelity.parse(fidelity)
            self._dataset = self._dataset.with_fidelity(world.with_quirks(quirks or {}))

    def set_publication(
        self,
        api: str,
        day: str,
        state: str,
        *,
        count: int | None = None,
        fraction: float | None = None,
        column: str | None = None,
    ) -> None:
        """Whether `api`'s rows of `day` are out: "unpublished" (none), "partial" (the first
        `count` or `fraction` of them, the same subset for every query) or "published" (all,
        the default). `day` is matched on the API's publication key (trade_date, or ann_date
        for reports; see the README) unless `column` names another (e.g. end_date)."""
        spec = API_SPECS.get(api)
        if spec is None:
            raise ValueError(f"unknown api {api!r}")
        if column is None and spec.documented.publication_key is None:
            raise ValueError(f"{api} is published whole; give the column to match the day on")
        release = make_release(api, day, state, count, fraction, column)
        with self._lock:
            publication = self._dataset.publication.set(release)
            self._dataset = self._dataset.with_publication(publication)

    def clear_publication(self, api: str | None = None) -> None:
        """Everything (or everything of `api`) published again."""
        with self._lock:
            publication = self._dataset.publication.clear(api)
            self._dataset = self._dataset.with_publication(publication)

    def publication(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._dataset.publication.listing()

    def set_rate_limit(
        self, calls_per_minute: int | None, window: float = 60.0, api: str | None = None
    ) -> None:
        """Limit calls per api per token over a sliding window (None: unlimited).

        Without `api` this is the default for every api; with it, that api's own limit
        (None removes the override).
        """
        self._limits.set_rate_limit(calls_per_minute, window, api)

    def set_daily_quota(self, calls_per_day: int | None, api: str | None = None) -> None:
        """Limit calls per api per token per Shanghai day (default for all, or one api)."""
        self._limits.set_daily_quota(calls_per_day, api)

    def reset_daily_counts(self) -> None:
        """Start a new quota day now instead of at midnight Asia/Shanghai."""
        self._limits.reset_daily_counts()

    def set_latency(
        self, seconds: float | None, jitter: float = 0.0, api: str | None = None
    ) -> None:
        """Hold each answer `seconds` (+ up to `jitter`) on its own handler thread."""
        self._limits.set_latency(seconds, jitter, api)

    def deny(self, api: str) -> None:
        with self._lock:
            self._denied.add(api)

    def allow(self, api: str) -> None:
        with self._lock:
            self._denied.discard(api)

    def set_token(self, token: str) -> None:
        with self._lock:
            self._token = str(token)

    def add_token(self, token: str) -> None:
        """Accept one more token (limits and quotas are kept per token)."""
        with self._lock:
            self._extra_tokens.add(str(token))

    def reset(self) -> None:
        """Clear faults, call log, limits, quotas, latency and publication settings; restore
        the constructor's setup (its dataset and fidelity)."""
        self._restore_defaults()

    def calls(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._calls)

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def state(self) -> dict[str, Any]:
        with self._lock:
            ds = self._dataset
            return {
                "seed": ds.seed,
                "revision": ds.revision,
                "fidelity": ds.fidelity.name,
                "quirks": ds.fidelity.quirks(),
                "publication": ds.publication.listing(),
                "sizes": {f"{ex}:{st}": n for (ex, st), n in ds.sizes.items()},
                **self._limits.state(),
                "denied": sorted(self._denied),
                "faults": self._faults.listing(),
                "calls": len(self._calls),
                "apis": sorted(API_SPECS),
            }

    # -- request handling (called on handler threads) --

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _dispatch(self, h: _Handler, method: str) -> None:
        path = urlsplit(h.path).path.rstrip("/")
        try:
            if path == "/_sandbox" or path.startswith("/_sandbox/"):
                self._serve_control(h, method, path.removeprefix("/_sandbox").strip("/"))
                return
            parts = [p for p in path.split("/") if p]
            if parts and parts[0] == "dataapi":
                parts = parts[1:]
            if method != "POST" or len(parts) > 1:
                body = http_error_page(404 if len(parts) > 1 else 405)
                self._send(h, Answer(404 if len(parts) > 1 else 405, body, "text/html"))
                return
            self._serve_api(h, parts[0] if parts else "")
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            h.close_connection = True

    def _read_body(self, h: _Handler) -> bytes:
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length > 0 else b""

    def _send(self, h: _Handler, answer: Answer, declared_length: int | None = None) -> None:
        h.send_response(answer.status)
        h.send_header("Content-Type", answer.content_type)
        h.send_header("Content-Length", str(declared_length or len(answer.body)))
        if h.close_connection or declared_length is not None:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        h.wfile.write(answer.body)

    def _abort(self, h: _Handler) -> None:
        """Drop the connection with a TCP RST and no HTTP response at all."""
        h.close_connection = True
        conn = h.connection
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        # The socket only really closes (and sends the RST) once its file wrappers are gone;
        # the stand-in writer absorbs the flushes the stdlib handler still performs.
        real_wfile, h.wfile = h.wfile, io.BytesIO()
        real_wfile.close()
        h.rfile.close()
        conn.close()

    def _serve_api(self, h: _Handler, path_api: str) -> None:
        raw = self._read_body(h)
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None
        if not isinstance(body, dict):
            body = None
        req = body or {}
        api_name = str(req.get("api_name") or path_api or "")
        raw_params = req.get("params")
        params = raw_params if isinstance(raw_params, dict) else {}
        params = {k: v for k, v in params.items() if k not in ("token", "ts_type_name")}
        fields = req.get("fields", "")
        token = req.get("token")

        record: dict[str, Any] = {
            "seq": 0,
            "api_name": api_name,
            "params": params,
            "fields": fields,
            "time": time.time(),
            "status": None,
            "code": None,
            "rows": None,
            "has_more": None,
            "fault": None,
        }
        with self._lock:
            self._seq += 1
            record["seq"] = self._seq
            self._calls.append(record)
            fault = self._faults.take(api_name)
            kind = fault.kind if fault else None
            record["fault"] = kind
        opts = fault.opts if fault else {}

        if kind == "reset":
            self._finish(record, None)
            self._abort(h)
            return
        if kind in HTTP_FAULTS:
            status = HTTP_FAULTS[kind]
            answer = Answer(status, http_error_page(status), "text/html")
            self._finish(record, answer)
            self._send(h, answer)
            return
        if kind == "malformed_json":
            answer = Answer(200, b'{"request_id": "x", "code": 0, "msg": "", "data": {fields: [}')
            self._finish(record, answer)
            self._send(h, answer)
            return
        if kind == "timeout":
            if self._stopping.wait(float(opts.get("seconds", 5.0))):
                self._abort(h)
                return

        answer = self._answer(body, api_name, params, fields, token, fault)
        if kind == "truncated_json":
            full = len(answer.body)
            answer.body = answer.body[: full // 2]
            self._finish(record, answer)
            declare = full if opts.get("declare_full_length") else None
            self._send(h, answer, declared_length=declare)
            return
        self._finish(record, answer)
        self._send(h, answer)

    def _finish(self, record: dict[str, Any], answer: Answer | None) -> None:
        # Fill in the outcome before replying so calls() is complete once the client returns.
        with self._lock:
            if answer is not None:
                record.update(
                    status=answer.status,
                    code=answer.code,
                    rows=answer.rows,
                    has_more=answer.has_more,
                )
        if self._verbose:
            logger.info(
                "%s params=%s fields=%s -> status=%s code=%s rows=%s fault=%s",
                record["api_name"],
                json.dumps(record["params"], ensure_ascii=False),
                record["fields"],
                record["status"],
                record["code"],
                record["rows"],
                record["fault"],
            )

    def _refusal(
        self, body: dict[str, Any] | None, api_name: str, token: object, fault: Fault | None
    ) -> Answer | None:
        """The error answer for a call the service would not serve, or None (admitted)."""
        kind = fault.kind if fault else None
        opts = fault.opts if fault else {}
        with self._lock:
            tokens = {self._token, *self._extra_tokens}
            denied = api_name in self._denied
        if kind == "bad_token":
            return api_error(CODE_BAD_TOKEN, MSG_BAD_TOKEN)
        if kind == "no_permission":
            return api_error(CODE_FORBIDDEN, no_permission_message(api_name))
        if kind == "rate_limit":
            limit = opts.get("limit") or self._limits.minute_limit(api_name)
            return api_error(
                CODE_FORBIDDEN, rate_limit_message(int(limit or DEFAULT_RATE_LIMIT_IN_MESSAGE))
            )
        if kind == "api_error":
            return api_error(int(opts.get("code", -1)), str(opts.get("msg", "系统内部错误")))
        if body is None:
            return api_error(CODE_BAD_PARAMS, "请求数据格式错误")
        if not token or token not in tokens:
            return api_error(CODE_BAD_TOKEN, MSG_BAD_TOKEN)
        if api_name not in API_SPECS:
            return api_error(CODE_UNKNOWN_API, unknown_api_message(api_name))
        if denied:
            return api_error(CODE_FORBIDDEN, no_permission_message(api_name))
        refused = self._limits.admit(api_name, token)
        if refused is None:
            return None
        if refused.scope == "day":
            return api_error(CODE_FORBIDDEN, daily_quota_message(refused.limit))
        return api_error(CODE_FORBIDDEN, rate_limit_message(refused.limit))

    def _answer(
        self,
        body: dict[str, Any] | None,
        api_name: str,
        params: dict[str, Any],
        fields: object,
        token: object,
        fault: Fault | None,
    ) -> Answer:
        refusal = self._refusal(body, api_name, token, fault)
        # The answer leaves `latency` after the call arrived (the service counts it then),
        # built meanwhile: the time the generators take is part of the latency, not added.
        arrived = time.monotonic()
        latency = self._limits.latency(api_name)
        answer = refusal if refusal is not None else self._build(api_name, params, fields, fault)
        if self._stopping.wait(max(0.0, latency - (time.monotonic() - arrived))):
            return Answer(503, http_error_page(503), "text/html")
        return answer

    def _build(
        self, api_name: str, params: dict[str, Any], fields: object, fault: Fault | None
    ) -> Answer:
        """The data answer of an admitted call (served from the cache when it may be)."""
        kind = fault.kind if fault else None
        opts = fault.opts if fault else {}
        with self._lock:
            dataset = self._dataset
        # Only fault-free answers are cached; the key is built only when there is a cache.
        cache = self._cache if kind is None else None
        key = ("", "", "")
        if cache is not None:
            key = (api_name, json.dumps(params, sort_keys=True, default=str), str(fields))
            cached = cache.get(key)
            if cached is not None and cached[0] is dataset:
                return dataclasses.replace(cached[1])
        try:
            result = execute(dataset, api_name, params, fields)
        except ParamError as exc:
            return api_error(CODE_BAD_PARAMS, str(exc))
        except Exception:
            logger.exception("sandbox failed to answer %s", api_name)
            return Answer(500, http_error_page(500), "text/html")

        if kind == "missing_data":
            return Answer(200, json_bytes(api_payload(0, "", None)), code=0)
        result = mangle(result, kind, opts)
        data = {"fields": result.fields, "items": result.items, "has_more": result.has_more}
        answer = Answer(
            200,
            json_bytes(api_payload(0, "", data)),
            code=0,
            rows=len(result.items),
            has_more=result.has_more,
        )
        if cache is not None:
            cache[key] = (dataset, dataclasses.replace(answer))
        return answer

    # -- control endpoints --

    def _serve_control(self, h: _Handler, method: str, name: str) -> None:
        raw = self._read_body(h) if method == "POST" else b""
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
            if not isinstance(body, dict):
                raise ValueError("control body must be a JSON object")
            result = handle_control(self, method, name, body)
            answer = Answer(200, json_bytes(result))
        except UnknownControl as exc:
            answer = Answer(404, json_bytes({"ok": False, "error": str(exc)}))
        except (LookupError, ValueError, TypeError) as exc:
            answer = Answer(400, json_bytes({"ok": False, "error": str(exc)}))
        self._send(h, answer)


def tushare_client(url: str, token: str = DEFAULT_TOKEN, timeout: float = 30.0) -> DataApi:
    """The real tushare DataApi, pointed at a sandbox base URL."""
    from tushare.pro.client import DataApi  # deferred: tushare drags in pandas

    api = DataApi(token, timeout=timeout)
    # The client keeps its endpoint in a name-mangled attribute with no public setter.
    api._DataApi__http_url = url
    return api
