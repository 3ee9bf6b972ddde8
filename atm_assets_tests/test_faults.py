"""Fault injection: a flaky API, hostile answers and bad input. Transient faults end with the
exact source table; permanent ones fail clearly and leave the table as it was."""

import json
import math
import time

import pytest
from dagster import DagsterInstance

from atm_assets.core.errors import (
    TushareAuthError,
    TushareHTTPError,
    TusharePermissionError,
    TushareProtocolError,
    TushareRateLimitError,
    TushareTransportError,
)
from atm_assets.core.settings import RetrySettings, TushareSettings
from atm_assets.core.tushare_client import TushareClient
from atm_assets_tests.conftest import source_rows
from atm_assets_tests.helpers import controller, failure_message, run_stock_basic

PARTITION = ("SZSE", "D")
KEY = "SZSE|D"


def _calls(sb) -> int:
    return len([c for c in sb.calls() if c["api_name"] == "stock_basic"])


@pytest.fixture
def synced(target, atm_env, sb):
    """The partition synced once at revision 1; then the source moves to revision 2, so a
    successful re-run changes the table and a failed one must leave it as it was."""
    assert run_stock_basic(KEY).success
    snapshot = target.writer().read(with_bookkeeping=True).to_dict("records")
    sb.set_revision(2)
    sb.clear_calls()
    return snapshot


@pytest.mark.parametrize(
    "kind,opts,times",
    [
        ("rate_limit", {}, 2),
        ("http_500", {}, 2),
        ("http_502", {}, 1),
        ("http_503", {}, 3),
        ("http_429", {}, 1),
        ("reset", {}, 2),
        ("timeout", {"seconds": 3}, 1),
    ],
)
def test_transient_faults_are_retried_to_the_exact_table(
    target, synced, sb, monkeypatch, kind, opts, times, capfd
):
    monkeypatch.setenv("TUSHARE_TIMEOUT", "1")
    sb.inject(kind, api="stock_basic", times=times, **opts)
    result = run_stock_basic(KEY)
    assert result.success, failure_message(result)
    assert _calls(sb) == times + 1
    assert target.rows() == source_rows(sb, *PARTITION)
    logs = capfd.readouterr()
    retries = [line for line in (logs.out + logs.err).splitlines() if "retrying in" in line]
    assert len(retries) == times  # each retry is logged with its reason and wait


@pytest.mark.parametrize(
    "kind,opts,error,message",
    [
        ("bad_token", {}, "TushareAuthError", "40101"),
        ("no_permission", {}, "ApiPermissionDeniedError", "没有接口"),
        ("malformed_json", {}, "TushareProtocolError", "malformed or truncated JSON"),
        ("truncated_json", {}, "TushareProtocolError", "malformed or truncated JSON"),
        ("missing_data", {}, "TushareProtocolError", "without a usable `data` block"),
        ("wrong_fields", {}, "TushareProtocolError", "did not return the requested field"),
        ("http_404", {}, "TushareHTTPError", "HTTP 404 Not Found from"),
        (
            "bad_value",
            {"field": "list_date", "value": "20241345"},
            "DataValidationError",
            "has an unparseable list_date: '20241345'",
        ),
        (
            "bad_value",
            {"field": "exchange", "value": "SSE"},
            "DataValidationError",
            "outside the partition exchange=SZSE",
        ),
        ("duplicate_row", {}, "DataValidationError", "is not unique"),
    ],
)
def test_permanent_faults_fail_clearly_and_leave_the_table(
    target, synced, sb, kind, opts, error, message
):
    sb.inject(kind, api="stock_basic", times=-1, **opts)
    result = run_stock_basic(KEY)
    assert not result.success
    text = failure_message(result)
    assert error in text and message in text, text
    assert _calls(sb) == 1  # no retry storm on permanent faults
    assert target.writer().read(with_bookkeeping=True).to_dict("records") == synced


def test_a_rate_limit_outlasting_the_budget_gives_up_cleanly(target, synced, sb, monkeypatch):
    monkeypatch.setenv("TUSHARE_MAX_ATTEMPTS", "3")
    sb.inject("rate_limit", api="stock_basic", times=-1)
    result = run_stock_basic(KEY)
    assert not result.success
    assert "TushareRateLimitError" in failure_message(result)
    assert "gave up after 3 attempts" in failure_message(result)
    assert _calls(sb) == 3
    assert target.writer().read(with_bookkeeping=True).to_dict("records") == synced


def test_the_governor_holds_across_the_partitions_of_a_run(sqlite_target, atm_env, sb, monkeypatch):
    # The server allows 3 calls per 8 s window; so does the governor, across four partitions.
    sb.set_rate_limit(3, window=8)
    monkeypatch.setenv("TUSHARE_CALLS_PER_MINUTE", "3")
    monkeypatch.setenv("TUSHARE_RATE_WINDOW", "8")
    began = time.monotonic()
    with DagsterInstance.ephemeral() as instance:
        result = run_stock_basic(("SSE|P", "SZSE|G"), instance=instance)
    assert result.success, failure_message(result)
    calls = [c for c in sb.calls() if c["api_name"] == "stock_basic"]
    assert len(calls) == 4 and all(c["code"] == 0 for c in calls)  # never hit the server limit
    assert calls[3]["time"] - calls[0]["time"] >= 7.9
    assert time.monotonic() - began >= 7.9
    assert sqlite_target.rows() == sorted(
        source_rows(sb, "SSE", "P")
        + source_rows(sb, "SSE", "G")
        + source_rows(sb, "SZSE", "P")
        + source_rows(sb, "SZSE", "G"),
        key=lambda r: r["ts_code"],
    )


@pytest.mark.cli
def test_the_database_unreachable_at_start_is_named_before_anything_is_fetched(
    pg_target, sb, atm_env, workdir
):
    proc = controller("sync", "stock-basic", "--exchange", "BSE", cwd=workdir, env={"DB_PORT": "1"})
    assert proc.returncode == 1
    assert "Error: cannot reach the target database" in proc.stderr
    assert (
        "PostgreSQL 127.0.0.1:1, database" in proc.stderr
        and pg_target.db.settings.name in proc.stderr
    )
    assert pg_target.db.password not in proc.stderr + proc.stdout
    assert sb.calls() == []


@pytest.mark.parametrize(
    "config,message",
    [
        ({"mode": "merge"}, "mode: must be one of upsert, append, got 'merge'"),
        ({"batch_size": 0}, "batch_size: must be an integer in 1..1,000,000"),
        ({"batch_size": 10**9}, "batch_size: must be an integer in 1..1,000,000"),
        ({"task_name": "a/b"}, "must not contain path separators"),
        ({"task_name": "a\x07b"}, "contains control characters"),
    ],
)
def test_bad_run_config_fails_clearly_and_writes_nothing(target, atm_env, sb, config, message):
    result = run_stock_basic(KEY, config)
    assert not result.success
    assert message in failure_message(result)
    assert sb.calls() == [] and target.rows() == []


@pytest.mark.parametrize("schema", ["quant; DROP TABLE x", "a-b", "1abc", 'x"y'])
def test_a_schema_that_is_not_a_plain_identifier_is_refused(
    pg_target, atm_env, sb, monkeypatch, schema
):
    monkeypatch.setenv("DB_SCHEMA", schema)
    with pytest.raises(Exception, match="is not a plain identifier"):
        run_stock_basic(KEY)
    assert sb.calls() == []


# -- the client on its own: error mapping and backoff without Dagster --


def _client(sb, **kw) -> TushareClient:
    waits: list[float] = []
    retry = RetrySettings(max_attempts=4, base_delay=1, rate_limit_base_delay=10)
    client = TushareClient(
        sb.token,
        TushareSettings(api_url=sb.url, retry=retry),
        sleep=waits.append,
        rand=lambda: 1.0,
        **kw,
    )
    client.waits = waits  # type: ignore[attr-defined]
    return client


def test_backoff_is_exponential_bounded_and_jittered(sb):
    client = _client(sb)
    sb.inject("http_500", api="stock_basic", times=3)
    client.query("stock_basic", ["ts_code"], exchange="BSE", list_status="P")
    assert client.waits == [1.25, 2.5, 5.0]  # base 1, doubling, +25% jitter at rand()=1
    sb.inject("rate_limit", api="stock_basic", times=1)
    client.query("stock_basic", ["ts_code"], exchange="BSE", list_status="P")
    assert client.waits[-1] == 12.5  # rate limits start from their own, longer base


@pytest.mark.parametrize(
    "kind,error",
    [
        ("bad_token", TushareAuthError),
        ("no_permission", TusharePermissionError),
        ("malformed_json", TushareProtocolError),
        ("missing_data", TushareProtocolError),
        ("http_503", TushareHTTPError),
        ("reset", TushareTransportError),
        ("rate_limit", TushareRateLimitError),
    ],
)
def test_errors_are_typed(sb, kind, error):
    client = _client(sb)
    sb.inject(kind, api="stock_basic", times=-1)
    with pytest.raises(error):
        client.query("stock_basic", ["ts_code"], exchange="BSE", list_status="P")
    sb.clear_faults()


def test_refused_connections_are_transport_errors():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = TushareSettings(
        api_url=f"http://127.0.0.1:{port}/dataapi", retry=RetrySettings(max_attempts=2)
    )
    client = TushareClient("t", settings, sleep=lambda _s: None)
    with pytest.raises(TushareTransportError, match="refused, reset or dropped"):
        client.query("stock_basic", ["ts_code"])
    assert client.calls == 2


def test_the_client_never_shows_the_token(sb):
    client = _client(sb)
    assert sb.token not in repr(client)
    sb.inject("reset", api="stock_basic", times=-1)
    with pytest.raises(TushareTransportError) as info:
        client.query("stock_basic", ["ts_code"])
    assert sb.token not in str(info.value)


def test_answers_parse_as_the_standard_json_module_parses_them():
    from atm_assets.core.tushare_client import _FastJson

    doc = '{"code":0,"msg":"","data":{"fields":["a","b"],"items":[[1.1,"中文"],[null,2e-7]]}}'
    assert _FastJson.loads(doc) == json.loads(doc)
    # NaN is not JSON, but Python's parser accepts it: so does the client, as before.
    assert math.isnan(_FastJson.loads("[NaN]")[0])
    assert _FastJson.loads(f"[{2**63 - 1}, {-(2**63)}]") == [2**63 - 1, -(2**63)]
    for broken in ('{"code": 0, "data": {"fields": [', '{"code": 0,}'):
        with pytest.raises(json.JSONDecodeError) as fast:
            _FastJson.loads(broken)
        with pytest.raises(json.JSONDecodeError) as standard:
            json.loads(broken)
        assert (fast.value.msg, fast.value.pos) == (standard.value.msg, standard.value.pos)
