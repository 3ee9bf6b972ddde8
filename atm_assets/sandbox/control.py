"""The /_sandbox/* control endpoints and RemoteSandbox, their client for another process."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from atm_assets.sandbox.protocol import json_bytes

if TYPE_CHECKING:
    from atm_assets.sandbox.server import SandboxServer


class UnknownControl(Exception):
    """No /_sandbox/<name> endpoint of that name."""


def handle_control(server: SandboxServer, method: str, name: str, body: dict[str, Any]) -> Any:
    """Run one control call; LookupError/ValueError/TypeError mean a bad request."""
    if method == "GET":
        getters = {
            "health": lambda: {"ok": True},
            "calls": server.calls,
            "faults": server.faults,
            "state": server.state,
            "publication": server.publication,
        }
        if name not in getters:
            raise UnknownControl(f"unknown control GET /_sandbox/{name}")
        return getters[name]()
    if name == "inject":
        kind = body.pop("kind")
        server.inject(kind, api=body.pop("api", "*"), times=body.pop("times", 1), **body)
    elif name == "set_revision":
        server.set_revision(int(body["revision"]))
    elif name == "set_sizes":
        server.set_sizes(body.get("sizes"))
    elif name == "set_rate_limit":
        server.set_rate_limit(
            body.get("calls_per_minute"), float(body.get("window", 60.0)), body.get("api")
        )
    elif name == "set_daily_quota":
        server.set_daily_quota(body.get("calls_per_day"), body.get("api"))
    elif name == "reset_daily_counts":
        server.reset_daily_counts()
    elif name == "set_latency":
        server.set_latency(body.get("seconds"), float(body.get("jitter", 0.0)), body.get("api"))
    elif name == "add_token":
        server.add_token(str(body["token"]))
    elif name == "deny":
        server.deny(str(body["api"]))
    elif name == "allow":
        server.allow(str(body["api"]))
    elif name == "set_token":
        server.set_token(str(body["token"]))
    elif name == "set_fidelity":
        server.set_fidelity(body.get("fidelity"), body.get("quirks"))
    elif name == "set_publication":
        server.set_publication(
            str(body["api"]),
            str(body["day"]),
            str(body["state"]),
            count=body.get("count"),
            fraction=body.get("fraction"),
            column=body.get("column"),
        )
    elif name == "clear_publication":
        server.clear_publication(body.get("api"))
    elif name == "reset":
        server.reset()
    elif name == "clear_calls":
        server.clear_calls()
    elif name == "clear_faults":
        server.clear_faults()
    else:
        raise UnknownControl(f"unknown control POST /_sandbox/{name}")
    return {"ok": True}


class RemoteSandbox:
    """Drive a sandbox running in another process through its /_sandbox/* endpoints."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        self.root = f"{parts.scheme}://{parts.netloc}"
        self.url = f"{self.root}/dataapi"
        self.timeout = timeout

    def _request(self, method: str, name: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json_bytes(dict(body or {})) if method == "POST" else None
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

    def set_rate_limit(
        self, calls_per_minute: int | None, window: float = 60.0, api: str | None = None
    ) -> None:
        body = {"calls_per_minute": calls_per_minute, "window": window, "api": api}
        self._request("POST", "set_rate_limit", body)

    def set_daily_quota(self, calls_per_day: int | None, api: str | None = None) -> None:
        self._request("POST", "set_daily_quota", {"calls_per_day": calls_per_day, "api": api})

    def reset_daily_counts(self) -> None:
        self._request("POST", "reset_daily_counts")

    def set_latency(
        self, seconds: float | None, jitter: float = 0.0, api: str | None = None
    ) -> None:
        self._request("POST", "set_latency", {"seconds": seconds, "jitter": jitter, "api": api})

    def add_token(self, token: str) -> None:
        self._request("POST", "add_token", {"token": token})

    def deny(self, api: str) -> None:
        self._request("POST", "deny", {"api": api})

    def allow(self, api: str) -> None:
        self._request("POST", "allow", {"api": api})

    def set_token(self, token: str) -> None:
        self._request("POST", "set_token", {"token": token})

    def set_fidelity(
        self, fidelity: str | None = None, quirks: Mapping[str, bool] | None = None
    ) -> None:
        self._request("POST", "set_fidelity", {"fidelity": fidelity, "quirks": dict(quirks or {})})

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
        body = {"api": api, "day": day, "state": state, "count": count, "fraction": fraction}
        self._request("POST", "set_publication", {**body, "column": column})

    def clear_publication(self, api: str | None = None) -> None:
        self._request("POST", "clear_publication", {"api": api})

    def publication(self) -> list[dict[str, Any]]:
        return self._request("GET", "publication")

    def reset(self) -> None:
        self._request("POST", "reset")

    def clear_calls(self) -> None:
        self._request("POST", "clear_calls")

    def clear_faults(self) -> None:
        self._request("POST", "clear_faults")
