"""Alerts: a JSON webhook and Apprise targets told of failed runs, failed checks, stale data."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from atm_assets.core.settings import AlertsSection

RUN_FAILED = "run_failed"
CHECK_FAILED = "check_failed"
DATASET_STALE = "dataset_stale"
# A run's worker died (SIGKILL, OOM, a restart): marked failed, then retried.
WORKER_DIED = "run_worker_died"


@dataclass(frozen=True)
class Alert:
    """What the webhook receives as JSON (and Apprise targets as a title and a body)."""

    event: str
    dataset: str
    message: str
    partitions: list[str] = field(default_factory=list)
    run_id: str | None = None
    link: str | None = None
    at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    def payload(self) -> dict[str, object]:
        return {"source": "atm", **asdict(self)}

    def title(self) -> str:
        return f"ATM {self.event.replace('_', ' ')}: {self.dataset}"

    def body(self) -> str:
        lines = [self.message]
        if self.partitions:
            lines.append(f"Partitions: {', '.join(self.partitions[:20])}")
        if self.run_id:
            lines.append(f"Run: {self.run_id}")
        if self.link:
            lines.append(self.link)
        return "\n".join(lines)


def run_link(ui_url: str, run_id: str) -> str:
    return f"{ui_url.rstrip('/')}/runs/{run_id}"


def asset_link(ui_url: str, dataset: str) -> str:
    return f"{ui_url.rstrip('/')}/assets/{dataset}"


# Schemes whose host is a host; elsewhere (slack://, dingtalk://, tgram://) it is a token.
_HOSTED = ("http", "https", "json", "jsons", "xml", "xmls", "form", "forms")


def redact(url: str) -> str:
    """`scheme://host[:port]/…` for web targets, `scheme://…` for the rest: a target without
    its user, password, path or query, where the tokens live (a Slack webhook's path,
    DingTalk's access_token, Apprise's service URLs whose "host" is a token)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    if not parts.scheme:
        return "<URL without a scheme>"
    if parts.scheme.lower() not in _HOSTED:
        return f"{parts.scheme}://…"
    return f"{parts.scheme}://{host}{port}/…"


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Silence loggers that print target URLs (Apprise on failures, urllib3's debug lines
    with the request path) for the length of a delivery."""
    loggers = [logging.getLogger(n) for n in names]
    was = [lg.disabled for lg in loggers]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    finally:
        for lg, before in zip(loggers, was, strict=True):
            lg.disabled = before


_NOISY = ("apprise", "urllib3", "urllib3.connectionpool", "requests")


def split_urls(text: str | None) -> list[str]:
    """Comma- or whitespace-separated URLs."""
    return [u for u in re.split(r"[\s,]+", text or "") if u]


class Alerter:
    """Delivers alerts to the configured targets; never raises: a failing target is one
    warning naming it redacted, and the sync or sensor tick that alerted goes on."""

    def __init__(self, settings: AlertsSection, warn: Callable[[str], None]) -> None:
        self.settings = settings
        self.warn = warn
        secret = settings.webhook_url
        self.webhook = secret.get_secret_value().strip() if secret else ""
        urls = settings.apprise_urls
        self.apprise = split_urls(urls.get_secret_value() if urls else None)

    @property
    def configured(self) -> bool:
        return bool(self.webhook or self.apprise)

    def link(self, run_id: str | None, dataset: str) -> str:
        ui = self.settings.ui_url
        return run_link(ui, run_id) if run_id else asset_link(ui, dataset)

    def send(self, alert: Alert) -> int:
        """Deliver `alert` to every target; the number that took it."""
        delivered = 0
        with _quiet(*_NOISY):
            if self.webhook:
                delivered += self._post(alert)
            for url in self.apprise:
                delivered += self._notify(url, alert)
        return delivered

    def send_all(self, alerts: Sequence[Alert]) -> int:
        return sum(self.send(a) for a in alerts)

    def _post(self, alert: Alert) -> int:
        import requests

        try:
            response = requests.post(
                self.webhook, json=alert.payload(), timeout=self.settings.timeout_seconds
            )
        except Exception as error:  # noqa: BLE001 - an alert never fails its caller
            # The exception's text holds the whole URL: name only its class and the host.
            self.warn(
                f"Alert {alert.event} for {alert.dataset} not delivered to webhook "
                f"{redact(self.webhook)}: {type(error).__name__}"
            )
            return 0
        if response.status_code >= 400:
            self.warn(
                f"Alert {alert.event} for {alert.dataset} refused by webhook "
                f"{redact(self.webhook)}: HTTP {response.status_code}"
            )
            return 0
        return 1

    def _notify(self, url: str, alert: Alert) -> int:
        try:
            import apprise

            targets = apprise.Apprise()
            if not targets.add(url):
                self.warn(f"Alert target {redact(url)} is not an Apprise URL it understands")
                return 0
            ok = bool(targets.notify(title=alert.title(), body=alert.body()))
        except Exception as error:  # noqa: BLE001 - an alert never fails its caller
            self.warn(
                f"Alert {alert.event} for {alert.dataset} not delivered to {redact(url)}: "
                f"{type(error).__name__}"
            )
            return 0
        if not ok:
            self.warn(f"Alert {alert.event} for {alert.dataset} not delivered to {redact(url)}")
        return int(ok)
