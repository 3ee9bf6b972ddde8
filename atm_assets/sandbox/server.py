"""Tushare-compatible loopback HTTP server with runtime fault injection and call recording."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from atm_assets.sandbox.data import (
    API_SPECS,
    ParamError,
    QueryResult,
    SandboxDataset,
    execute,
)

if TYPE_CHECKING:
    from tushare.pro.client import DataApi

logger = logging.getLogger(__name__)

DEFAULT_TOKEN = "sandbox-token"

HTTP_FAULTS: dict[str, int] = {
    "http_500": 500,
    "http_502": 502,
    "http_503": 503,
    "http_404": 404,
    "http_429": 429,
}
FAULT_KINDS: tuple[str, ...] = (
    *HTTP_FAULTS,
    "rate_limit",
    "no_permission",
    "bad_token",
    "timeout",
    "reset",
    "malformed_json",
    "truncated_json",
    "missing_data",
    "wrong_fields",
    "empty_page",
    "short_page",
    "api_error",
    "bad_value",
    "duplicate_row",
)

CODE_BAD_TOKEN = 40101
CODE_FORBIDDEN = 40203
CODE_UNKNOWN_API = -2001
CODE_BAD_PARAMS = -2002
MSG_BAD_TOKEN = "您的token不对，请确认。"
_DOC_LINK = "权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
DEFAULT_RATE_LIMIT_IN_MESSAGE = 500

_HTTP_REASONS = {
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
}


def rate_limit_message(per_minute: int) -> str:
    return f"抱歉，您每分钟最多访问该接口{per_minute}次，{_DOC_LINK}"


def no_permission_message(api_name: str) -> str:
    return f"抱歉，您没有接口({api_name})访问权限，{_DOC_LINK}"


def unknown_api_message(api_name: str) -> str:
    return f"api名称错误: {api_name}"


class _UnknownControl(Exception):
    """No /_sandbox/<name> endpoint of that name."""


@dataclass
class _Fault:
    kind: str
    api: str
    remaining: int  # negative: never used up
    opts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "api": self.api, "remaining": self.remaining, **self.opts}


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    code: int | None = None
    rows: int | None = None
    has_more: bool | None = None


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _api_payload(code: int, msg: str, data: Any) -> dict[str, Any]:
    return {"request_id": str(uuid.uuid4()), "code": code, "msg": msg, "data": data}


def _api_error(code: int, msg: str) -> _Answer:
    return _Answer(200, _json_bytes(_api_payload(code, msg, None)), code=code)


def _token_key(token: object) -> str:
    # Rate windows are per token, but the token itself is never kept around.
    return hashlib.sha256(str(token).encode()).hexdigest()[:16]


def _http_error_page(status: int) -> bytes:
    reason = _HTTP_REASONS.get(status, "Error")
    return (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()


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
        verbose: bool = False,
    ) -> None:
        self._initial_dataset = dataset or SandboxDataset()
        self._initial_token = token
        self._initial_rate = (rate_limit, rate_window)
        self._host = host
        self._requested_port = port
        self._verbose = verbose
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
            self._rate_limit, self._rate_window = self._initial_rate
            self._windows: dict[tuple[str, str], deque[float]] = {}
            self._denied: set[str] = set()
            self._faults: list[_Fault] = []
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
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        times = int(times)
        if times == 0:
            return
        with self._lock:
            self._faults.append(_Fault(kind, api or "*", times, dict(opts)))

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.as_dict() for f in self._faults]

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

    def set_rate_limit(self, calls_per_minute: int | None, window: float = 60.0) -> None:
        """Limit calls per api per token over a sliding window (None: unlimited)."""
        with self._lock:
            self._rate_limit = None if calls_per_minute is None else int(calls_per_minute)
            self._rate_window = float(window)
            self._windows.clear()

    def deny(self, api: str) -> None:
        with self._lock:
            self._denied.add(api)

    def allow(self, api: str) -> None:
        with self._lock:
            self._denied.discard(api)

    def set_token(self, token: str) -> None:
        with self._lock:
            self._token = str(token)

    def reset(self) -> None:
        """Clear faults, call log and rate windows; restore the constructor's settings."""
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
                "sizes": {f"{ex}:{st}": n for (ex, st), n in ds.sizes.items()},
                "rate_limit": self._rate_limit,
                "rate_window": self._rate_window,
                "denied": sorted(self._denied),
                "faults": [f.as_dict() for f in self._faults],
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
                body = _http_error_page(404 if len(parts) > 1 else 405)
                self._send(h, _Answer(404 if len(parts) > 1 else 405, body, "text/html"))
                return
            self._serve_api(h, parts[0] if parts else "")
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            h.close_connection = True

    def _read_body(self, h: _Handler) -> bytes:
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length > 0 else b""

    def _send(self, h: _Handler, answer: _Answer, declared_length: int | None = None) -> None:
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
            fault = self._take_fault(api_name)
            kind = fault.kind if fault else None
            record["fault"] = kind
        opts = fault.opts if fault else {}

        if kind == "reset":
            self._finish(record, None)
            self._abort(h)
            return
        if kind in HTTP_FAULTS:
            status = HTTP_FAULTS[kind]
            answer = _Answer(status, _http_error_page(status), "text/html")
            self._finish(record, answer)
            self._send(h, answer)
            return
        if kind == "malformed_json":
            answer = _Answer(200, b'{"request_id": "x", "code": 0, "msg": "", "data": {fields: [}')
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

    def _finish(self, record: dict[str, Any], answer: _Answer | None) -> None:
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

    def _take_fault(self, api_name: str) -> _Fault | None:
        for i, fault in enumerate(self._faults):
            if fault.api in ("*", api_name):
                if fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        del self._faults[i]
                return fault
        return None

    def _rate_ok(self, api_name: str, token: object) -> bool:
        with self._lock:
            if self._rate_limit is None:
                return True
            now = time.monotonic()
            window = self._windows.setdefault((api_name, _token_key(token)), deque())
            while window and window[0] <= now - self._rate_window:
                window.popleft()
            if len(window) >= self._rate_limit:
                return False
            window.append(now)
            return True

    def _answer(
        self,
        body: dict[str, Any] | None,
        api_name: str,
        params: dict[str, Any],
        fields: object,
        token: object,
        fault: _Fault | None,
    ) -> _Answer:
        kind = fault.kind if fault else None
        opts = fault.opts if fault else {}
        with self._lock:
            expected_token = self._token
            denied = api_name in self._denied
            dataset = self._dataset
            configured_limit = self._rate_limit
        if kind == "bad_token":
            return _api_error(CODE_BAD_TOKEN, MSG_BAD_TOKEN)
        if kind == "no_permission":
            return _api_error(CODE_FORBIDDEN, no_permission_message(api_name))
        if kind == "rate_limit":
            limit = opts.get("limit") or configured_limit or DEFAULT_RATE_LIMIT_IN_MESSAGE
            return _api_error(CODE_FORBIDDEN, rate_limit_message(int(limit)))
        if kind == "api_error":
            return _api_error(int(opts.get("code", -1)), str(opts.get("msg", "系统内部错误")))
        if body is None:
            return _api_error(CODE_BAD_PARAMS, "请求数据格式错误")
        if not token or token != expected_token:
            return _api_error(CODE_BAD_TOKEN, MSG_BAD_TOKEN)
        if api_name not in API_SPECS:
            return _api_error(CODE_UNKNOWN_API, unknown_api_message(api_name))
        if denied:
            return _api_error(CODE_FORBIDDEN, no_permission_message(api_name))
        if not self._rate_ok(api_name, token):
            return _api_error(CODE_FORBIDDEN, rate_limit_message(int(configured_limit or 0)))
        try:
            result = execute(dataset, api_name, params, fields)
        except ParamError as exc:
            return _api_error(CODE_BAD_PARAMS, str(exc))
        except Exception:
            logger.exception("sandbox failed to answer %s", api_name)
            return _Answer(500, _http_error_page(500), "text/html")

        if kind == "missing_data":
            return _Answer(200, _json_bytes(_api_payload(0, "", None)), code=0)
        result = _mangle(result, kind, opts)
        data = {"fields": result.fields, "items": result.items, "has_more": result.has_more}
        return _Answer(
            200,
            _json_bytes(_api_payload(0, "", data)),
            code=0,
            rows=len(result.items),
            has_more=result.has_more,
        )

    # -- control endpoints --

    def _serve_control(self, h: _Handler, method: str, name: str) -> None:
        raw = self._read_body(h) if method == "POST" else b""
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
            if not isinstance(body, dict):
                raise ValueError("control body must be a JSON object")
            result = self._control(method, name, body)
            answer = _Answer(200, _json_bytes(result))
        except _UnknownControl as exc:
            answer = _Answer(404, _json_bytes({"ok": False, "error": str(exc)}))
        except (LookupError, ValueError, TypeError) as exc:
            answer = _Answer(400, _json_bytes({"ok": False, "error": str(exc)}))
        self._send(h, answer)

    def _control(self, method: str, name: str, body: dict[str, Any]) -> Any:
        if method == "GET":
            getters = {
                "health": lambda: {"ok": True},
                "calls": self.calls,
                "faults": self.faults,
                "state": self.state,
            }
            if name not in getters:
                raise _UnknownControl(f"unknown control GET /_sandbox/{name}")
            return getters[name]()
        if name == "inject":
            kind = body.pop("kind")
            self.inject(kind, api=body.pop("api", "*"), times=body.pop("times", 1), **body)
        elif name == "set_revision":
            self.set_revision(int(body["revision"]))
        elif name == "set_sizes":
            self.set_sizes(body.get("sizes"))
        elif name == "set_rate_limit":
            self.set_rate_limit(body.get("calls_per_minute"), float(body.get("window", 60.0)))
        elif name == "deny":
            self.deny(str(body["api"]))
        elif name == "allow":
            self.allow(str(body["api"]))
        elif name == "set_token":
            self.set_token(str(body["token"]))
        elif name == "reset":
            self.reset()
        elif name == "clear_calls":
            self.clear_calls()
        elif name == "clear_faults":
            self.clear_faults()
        else:
            raise _UnknownControl(f"unknown control POST /_sandbox/{name}")
        return {"ok": True}


def _mangle(result: QueryResult, kind: str | None, opts: Mapping[str, Any]) -> QueryResult:
    """Apply payload-level faults to an otherwise correct answer."""
    if kind == "empty_page":
        return QueryResult(result.fields, [], False)
    if kind == "short_page":
        keep = int(len(result.items) * float(opts.get("keep", 0.5)))
        return QueryResult(result.fields, result.items[:keep], False)
    if kind == "wrong_fields":
        fields = list(result.fields)
        if opts.get("mode", "drop") == "rename" or len(fields) < 2:
            fields[-1] = f"{fields[-1]}_x"
            return QueryResult(fields, result.items, result.has_more)
        return QueryResult(fields[:-1], [row[:-1] for row in result.items], result.has_more)
    if kind == "bad_value" and result.items:
        # One field of one row replaced: an unparseable date, a row from another partition…
        field = str(opts.get("field", "list_date"))
        if field in result.fields:
            items = [list(row) for row in result.items]
            items[int(opts.get("row", 0)) % len(items)][result.fields.index(field)] = opts.get(
                "value", "2024-13-45"
            )
            return QueryResult(result.fields, items, result.has_more)
    if kind == "duplicate_row" and result.items:
        return QueryResult(result.fields, [*result.items, result.items[0]], result.has_more)
    return result


def tushare_client(url: str, token: str = DEFAULT_TOKEN, timeout: float = 30.0) -> DataApi:
    """The real tushare DataApi, pointed at a sandbox base URL."""
    from tushare.pro.client import DataApi  # deferred: tushare drags in pandas

    api = DataApi(token, timeout=timeout)
    # The client keeps its endpoint in a name-mangled attribute with no public setter.
    api._DataApi__http_url = url
    return api


class RemoteSandbox:
    """Drive a sandbox running in another process through its /_sandbox/* endpoints."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        self.root = f"{parts.scheme}://{parts.netloc}"
        self.url = f"{self.root}/dataapi"
        self.timeout = timeout

    def _request(self, method: str, name: str, body: Mapping[str, Any] | None = None) -> Any:
        data = _json_bytes(dict(body or {})) if method == "POST" else None
        req = urllib.request.Request(
            f"{self.root}/_sandbox/{name}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise RuntimeError(f"sandbox control {name} failed: {exc.code} {detail}") from None

    def health(self) -> bool:
        return bool(self._request("GET", "health").get("ok"))

    def calls(self) -> list[dict[str, Any]]:
        return self._request("GET", "calls")

    def faults(self) -> list[dict[str, Any]]:
        return self._request("GET", "faults")

    def state(self) -> dict[str, Any]:
        return self._request("GET", "state")

    def inject(self, kind: str, api: str = "*", times: int = 1, **opts: Any) -> None:
        self._request("POST", "inject", {"kind": kind, "api": api, "times": times, **opts})

    def set_revision(self, revision: int) -> None:
        self._request("POST", "set_revision", {"revision": revision})

    def set_sizes(
        self, sizes: Mapping[str, int] | Mapping[tuple[str, str], int] | None = None
    ) -> None:
        wire = None
        if sizes is not None:
            wire = {k if isinstance(k, str) else ":".join(k): v for k, v in sizes.items()}
        self._request("POST", "set_sizes", {"sizes": wire})

    def set_rate_limit(self, calls_per_minute: int | None, window: float = 60.0) -> None:
        self._request(
            "POST", "set_rate_limit", {"calls_per_minute": calls_per_minute, "window": window}
        )

    def deny(self, api: str) -> None:
        self._request("POST", "deny", {"api": api})

    def allow(self, api: str) -> None:
        self._request("POST", "allow", {"api": api})

    def set_token(self, token: str) -> None:
        self._request("POST", "set_token", {"token": token})

    def reset(self) -> None:
        self._request("POST", "reset")

    def clear_calls(self) -> None:
        self._request("POST", "clear_calls")

    def clear_faults(self) -> None:
        self._request("POST", "clear_faults")
