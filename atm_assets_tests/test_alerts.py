"""Alerts over real HTTP to a local receiver: the JSON webhook, Apprise, failures, no secrets."""

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    DagsterEventType,
    DagsterInstance,
    Output,
    asset,
    build_run_status_sensor_context,
    materialize,
)

from atm_assets.core.alerts import Alert, Alerter, redact, split_urls
from atm_assets.core.settings import AlertsSection, load_settings

SECRET = "tok-5ecret-7d1f"


class Receiver:
    """A local HTTP server recording each POST (path and JSON body); answers `status`."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                outer.posts.append((self.path, json.loads(body or b"{}")))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alerter(warnings: list[str], **settings: object) -> Alerter:
    return Alerter(AlertsSection.model_validate(settings), warnings.append)


ALERT = Alert(
    event="run_failed",
    dataset="daily",
    message="Run of daily_job failed",
    partitions=["2024-01-05"],
    run_id="abc123",
    link="http://127.0.0.1:3000/runs/abc123",
)


@pytest.mark.integration
def test_the_webhook_and_apprise_get_the_alert_over_http(receiver):
    warnings: list[str] = []
    send = _alerter(
        warnings,
        webhook_url=f"http://127.0.0.1:{receiver.port}/hook?token={SECRET}",
        apprise_urls=f"json://127.0.0.1:{receiver.port}/apprise/{SECRET}",
    )
    assert send.send(ALERT) == 2, warnings
    by_path = dict(receiver.posts)
    payload, note = by_path[f"/hook?token={SECRET}"], by_path[f"/apprise/{SECRET}"]
    assert {k: payload[k] for k in ("event", "dataset", "partitions", "run_id", "link")} == {
        "event": "run_failed",
        "dataset": "daily",
        "partitions": ["2024-01-05"],
        "run_id": "abc123",
        "link": "http://127.0.0.1:3000/runs/abc123",
    }
    assert payload["message"] == "Run of daily_job failed" and payload["source"] == "atm"
    # Apprise's own JSON: a title and a body naming the dataset, partitions and the link.
    assert "daily" in note["title"] and "2024-01-05" in note["message"]
    assert "http://127.0.0.1:3000/runs/abc123" in note["message"]
    assert not warnings


@pytest.mark.integration
def test_a_failing_target_never_raises_and_no_secret_is_logged(receiver, caplog):
    caplog.set_level(logging.DEBUG)
    warnings: list[str] = []
    closed = _free_port()
    receiver.status = 500
    send = _alerter(
        warnings,
        webhook_url=f"http://user:{SECRET}@127.0.0.1:{closed}/hook/{SECRET}?token={SECRET}",
        apprise_urls=f"json://127.0.0.1:{closed}/{SECRET}, json://127.0.0.1:{receiver.port}/"
        f"{SECRET} notaurl://{SECRET}",
        timeout_seconds=2,
    )
    assert send.send(ALERT) == 0
    assert len(warnings) == 4, warnings
    assert f"webhook http://127.0.0.1:{closed}/…" in warnings[0]
    assert "not an Apprise URL" in warnings[3]
    logged = "\n".join(warnings) + caplog.text
    assert SECRET not in logged
    assert SECRET not in repr(send.settings) and SECRET not in str(load_settings())


@pytest.mark.pure
def test_redaction_and_url_lists():
    assert redact(f"https://oapi.dingtalk.com/robot/send?access_token={SECRET}") == (
        "https://oapi.dingtalk.com/…"
    )
    assert redact(f"slack://T1/B2/{SECRET}") == "slack://…"
    assert redact(f"dingtalk://{SECRET}/") == "dingtalk://…"
    assert split_urls("a://x, b://y\nc://z") == ["a://x", "b://y", "c://z"]


def _instance_and_run(assets: list, tags: dict | None = None):
    instance = DagsterInstance.ephemeral()
    result = materialize(assets, instance=instance, raise_on_error=False, tags=tags or {})
    run = instance.get_run_by_id(result.run_id)
    return instance, run


def _event(instance: DagsterInstance, run_id: str, kind: DagsterEventType):
    records = instance.get_records_for_run(run_id, of_type=kind).records
    return records[-1].event_log_entry.dagster_event


@pytest.mark.integration
def test_sensors_alert_a_final_failure_once(receiver, monkeypatch):
    from atm_assets.alerting import atm_alert_run_failure_sensor, stale_transitions

    monkeypatch.setenv("ATM_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{receiver.port}/h?k={SECRET}")
    monkeypatch.setenv("ATM_UI_URL", "http://atm.example:3000/")

    @asset
    def daily() -> None:
        raise RuntimeError("the service answered 503")

    for will_retry, expected in (("true", 0), ("false", 1)):
        instance, run = _instance_and_run([daily], {"dagster/partition": "2024-01-05"})
        instance.add_run_tags(run.run_id, {"dagster/will_retry": will_retry})
        run = instance.get_run_by_id(run.run_id)
        context = build_run_status_sensor_context(
            sensor_name="atm_alert_run_failure_sensor",
            dagster_event=_event(instance, run.run_id, DagsterEventType.RUN_FAILURE),
            dagster_instance=instance,
            dagster_run=run,
        ).for_run_failure()
        before = len(receiver.posts)
        atm_alert_run_failure_sensor(context)
        assert len(receiver.posts) - before == expected, will_retry
    payload = receiver.posts[-1][1]
    assert payload["event"] == "run_failed" and payload["dataset"] == "daily"
    assert payload["partitions"] == ["2024-01-05"] and payload["run_id"] == run.run_id
    assert payload["link"] == f"http://atm.example:3000/runs/{run.run_id}"
    assert "503" in payload["message"]

    # A dataset alerts when it turns stale, not on every tick it stays so.
    turned, cursor = stale_transitions({}, {"daily": "stale", "weekly": "fresh"})
    assert turned == ["daily"]
    assert stale_transitions(cursor, {"daily": "stale", "weekly": "stale"})[0] == ["weekly"]
    assert stale_transitions({"daily": "stale"}, {"daily": "fresh"})[0] == []


@pytest.mark.integration
def test_a_failing_check_alerts_once_until_it_passes_again(receiver, monkeypatch):
    """Schema drift on every day's run is one alert, not one a run; a check that passed in
    between alerts again; each (dataset, check) on its own; failed runs' checks too."""
    from dagster import build_sensor_context

    from atm_assets.alerting import atm_alert_check_sensor

    monkeypatch.setenv("ATM_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{receiver.port}/h?k={SECRET}")
    monkeypatch.setenv("ATM_UI_URL", "http://atm.example:3000/")
    failing: dict[str, bool] = {}
    crash = {"on": False}

    @asset(
        check_specs=[
            AssetCheckSpec("no_schema_drift", asset="daily", blocking=False),
            AssetCheckSpec("rows_complete", asset="daily", blocking=False),
        ]
    )
    def daily():
        yield Output(None)
        for name in ("no_schema_drift", "rows_complete"):
            yield AssetCheckResult(
                check_name=name,
                passed=not failing.get(name),
                description=f"{name} found it" if failing.get(name) else "fine",
            )
        if crash["on"]:
            raise RuntimeError("the step failed after its checks")

    instance = DagsterInstance.ephemeral()
    cursor: str | None = None

    def run_then_tick(*names: str, crashed: bool = False) -> list[dict]:
        nonlocal cursor
        failing.clear()
        failing.update(dict.fromkeys(names, True))
        crash["on"] = crashed
        result = materialize([daily], instance=instance, raise_on_error=False)
        assert result.success is not crashed
        before = len(receiver.posts)
        context = build_sensor_context(instance=instance, cursor=cursor)
        atm_alert_check_sensor(context)
        cursor = context.cursor
        return [body for _, body in receiver.posts[before:]]

    # The first tick starts from the newest ended run: history is not alerted.
    assert run_then_tick("no_schema_drift") == []
    drift = run_then_tick("no_schema_drift")
    assert [(a["event"], a["dataset"]) for a in drift] == [("check_failed", "daily")]
    assert "no_schema_drift" in drift[0]["message"] and "found it" in drift[0]["message"]
    assert drift[0]["link"].startswith("http://atm.example:3000/runs/")
    # Still failing on the next runs: silent; another check of the dataset alerts on its own.
    assert run_then_tick("no_schema_drift") == []
    both = run_then_tick("no_schema_drift", "rows_complete")
    assert ["rows_complete" in a["message"] for a in both] == [True]
    # Passed in between: the next failure alerts again — a failed run's checks too.
    assert run_then_tick() == []
    again = run_then_tick("no_schema_drift", crashed=True)
    assert len(again) == 1 and "no_schema_drift" in again[0]["message"]
    assert json.loads(cursor or "{}")["failing"] == ["daily:no_schema_drift"]
    # Several runs ended between two ticks are read in order, each once.
    failing.clear()
    crash["on"] = False
    materialize([daily], instance=instance)
    failing["rows_complete"] = True
    materialize([daily], instance=instance)
    context = build_sensor_context(instance=instance, cursor=cursor)
    before = len(receiver.posts)
    atm_alert_check_sensor(context)
    assert [("rows_complete" in b["message"]) for _, b in receiver.posts[before:]] == [True]
    assert json.loads(context.cursor or "{}")["failing"] == ["daily:rows_complete"]


@pytest.mark.integration
def test_the_freshness_sensor_alerts_once_when_a_dataset_turns_stale(
    receiver, tmp_path, monkeypatch
):
    import datetime as dt

    from dagster import build_sensor_context

    from atm_assets.alerting import freshness_alert_sensor
    from atm_assets.core.catalog import build_catalog
    from atm_assets.core.settings import DatabaseSection
    from atm_assets.core.writer import TableWriter
    from atm_assets.resources import DatabaseResource

    monkeypatch.setenv("ATM_ALERT_APPRISE_URLS", f"json://127.0.0.1:{receiver.port}/{SECRET}")
    for var in ("ATM_DATABASE_URL", "DB_PASSWORD", "DB_HOST"):
        monkeypatch.delenv(var, raising=False)
    section = DatabaseSection(sqlite_path=str(tmp_path / "atm.db"))
    database = DatabaseResource.from_settings(section)
    writer = TableWriter(database.engine(), build_catalog(None)["daily"])
    writer.ensure_table()
    with writer.engine.begin() as conn:
        conn.execute(
            writer.table.insert(),
            [
                {
                    "ts_code": "600000.SH",
                    "trade_date": dt.date(2024, 1, 2),
                    "synced_at": dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
                    "sync_commit": "t",
                }
            ],
        )
    sensor = freshness_alert_sensor()
    cursor = None
    for tick in range(2):
        context = build_sensor_context(cursor=cursor, resources={"database": database})
        list(sensor(context))
        cursor = context.cursor
        # The first tick finds daily stale and alerts; the second finds it still stale: silent.
        assert len(receiver.posts) == 1, tick
    assert "daily" in receiver.posts[0][1]["title"]
    assert "stale" in receiver.posts[0][1]["message"]
    assert json.loads(cursor or "{}") == {"daily": "stale"}
