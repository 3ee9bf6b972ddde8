"""Minute limits, daily quotas and latency as the real service enforces them, seen through
the real tushare client, the HTTP controls, RemoteSandbox and the CLI."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from atm_assets.sandbox import RemoteSandbox, SandboxDataset, SandboxServer, tushare_client
from atm_assets.sandbox.limits import Limits, shanghai_day

TOKEN, OTHER = "limits-token", "second-token"
DOC = "权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
SMALL = SandboxDataset(sizes={"SSE:L": 30, "SZSE:L": 30, "BSE:L": 5})


def minute_message(n: int) -> str:
    return f"抱歉，您每分钟最多访问该接口{n}次，{DOC}"


def day_message(n: int) -> str:
    return f"抱歉，您每天最多访问该接口{n}次，{DOC}"


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(SMALL, token=TOKEN) as srv:
        yield srv


@pytest.fixture
def srv(server: SandboxServer) -> Iterator[SandboxServer]:
    server.reset()
    server.add_token(OTHER)
    yield server
    server.reset()


def _cal(srv: SandboxServer, token: str = TOKEN) -> Any:
    return tushare_client(srv.url, token).query(
        "trade_cal", start_date="20240102", end_date="20240103"
    )


def _raw(srv: SandboxServer, api: str = "trade_cal", token: str = TOKEN) -> dict[str, Any]:
    body = {"api_name": api, "token": token, "params": {"limit": 1}, "fields": ""}
    return requests.post(f"{srv.url}/{api}", json=body, timeout=10).json()


def test_minute_limit_exact_message_and_code(srv: SandboxServer) -> None:
    srv.set_rate_limit(2, window=30)
    _cal(srv)
    _cal(srv)
    with pytest.raises(Exception) as info:
        _cal(srv)
    assert str(info.value) == minute_message(2)
    answer = _raw(srv)
    assert answer["code"] == 40203 and answer["data"] is None
    assert answer["msg"] == minute_message(2)
    assert [c["code"] for c in srv.calls()] == [0, 0, 40203, 40203]


def test_per_api_override_and_default(srv: SandboxServer) -> None:
    srv.set_rate_limit(5, window=30)
    srv.set_rate_limit(1, window=30, api="stock_basic")
    api = tushare_client(srv.url, TOKEN)
    api.query("stock_basic", fields="ts_code")
    with pytest.raises(Exception, match=re.escape(minute_message(1))):
        api.query("stock_basic", fields="ts_code")
    for _ in range(5):
        _cal(srv)
    with pytest.raises(Exception, match=re.escape(minute_message(5))):
        _cal(srv)
    # An injected rate_limit fault quotes the api's own limit.
    srv.inject("rate_limit", api="stock_basic")
    assert _raw(srv, "stock_basic")["msg"] == minute_message(1)
    srv.set_rate_limit(None, api="stock_basic")  # back to the default of 5
    assert srv.state()["api_rate_limits"] == {}


def test_windows_are_per_token(srv: SandboxServer) -> None:
    srv.set_rate_limit(1, window=30)
    _cal(srv, TOKEN)
    _cal(srv, OTHER)  # a second token has its own window
    with pytest.raises(Exception, match="每分钟"):
        _cal(srv, TOKEN)
    with pytest.raises(Exception, match="每分钟"):
        _cal(srv, OTHER)
    with pytest.raises(Exception, match="token不对"):
        _cal(srv, "unknown-token")


def test_refused_calls_are_not_counted(srv: SandboxServer) -> None:
    srv.set_rate_limit(2, window=0.6)
    _cal(srv)
    _cal(srv)
    time.sleep(0.35)
    assert _raw(srv)["code"] == 40203  # refused at ~0.35 s: must not hold a slot
    time.sleep(0.35)
    # The first two left the window at 0.6 s; a counted refusal would block the second.
    _cal(srv)
    _cal(srv)
    assert _raw(srv)["code"] == 40203


def test_daily_quota_and_its_reset(srv: SandboxServer) -> None:
    srv.set_daily_quota(3, api="trade_cal")
    for _ in range(3):
        _cal(srv)
    with pytest.raises(Exception) as info:
        _cal(srv)
    assert str(info.value) == day_message(3)
    assert _raw(srv)["code"] == 40203
    _cal(srv, OTHER)  # per token
    tushare_client(srv.url, TOKEN).query("stock_basic", fields="ts_code")  # per api
    srv.reset_daily_counts()
    for _ in range(3):  # the refused calls did not count towards the new day either
        _cal(srv)
    with pytest.raises(Exception, match=re.escape(day_message(3))):
        _cal(srv)
    srv.set_daily_quota(10)  # a default for every api
    assert srv.state()["daily_quota"] == 10
    assert srv.state()["api_daily_quotas"] == {"trade_cal": 3}


def test_quota_day_ends_at_midnight_in_shanghai() -> None:
    # 2024-06-14 15:59:59 UTC is 23:59:59 in Shanghai; one second later a new day starts.
    now = [1718380799.0]
    limits = Limits(wall_clock=lambda: now[0])
    limits.set_daily_quota(1)
    assert limits.admit("daily", "t") is None
    refusal = limits.admit("daily", "t")
    assert refusal is not None and (refusal.scope, refusal.limit) == ("day", 1)
    now[0] += 1
    assert shanghai_day(now[0]) == shanghai_day(now[0] - 1) + 1
    assert limits.admit("daily", "t") is None
    assert limits.admit("daily", "t") is not None


def test_minute_limit_is_checked_before_the_quota() -> None:
    clock = [0.0]
    limits = Limits(1, 60.0, clock=lambda: clock[0])
    limits.set_daily_quota(2)
    assert limits.admit("x", "t") is None
    assert limits.admit("x", "t").scope == "minute"  # type: ignore[union-attr]
    clock[0] = 61
    assert limits.admit("x", "t") is None
    clock[0] = 122
    assert limits.admit("x", "t").scope == "day"  # type: ignore[union-attr]


def test_latency_overlaps_across_concurrent_calls(srv: SandboxServer) -> None:
    srv.set_latency(0.5)
    api = tushare_client(srv.url, TOKEN)

    def call(_: int) -> float:
        started = time.monotonic()
        api.query("stock_basic", fields="ts_code")
        return time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        each = list(pool.map(call, range(8)))
    total = time.monotonic() - started
    assert all(t >= 0.5 for t in each)
    assert total < 2.0, f"8 calls with 0.5 s latency took {total:.2f}s"


def test_latency_per_api_and_jitter(srv: SandboxServer) -> None:
    srv.set_latency(0.3, api="trade_cal")
    started = time.monotonic()
    tushare_client(srv.url, TOKEN).query("stock_basic", fields="ts_code")
    assert time.monotonic() - started < 0.25
    started = time.monotonic()
    _cal(srv)
    assert time.monotonic() - started >= 0.3
    srv.set_latency(0.05, jitter=0.2)
    durations = []
    for _ in range(4):
        started = time.monotonic()
        tushare_client(srv.url, TOKEN).query("stock_basic", fields="ts_code")
        durations.append(time.monotonic() - started)
    assert all(0.05 <= d < 0.6 for d in durations)
    # Errors wait too: the answer is what arrives late, whatever it says.
    started = time.monotonic()
    assert _raw(srv, "stock_basic", token="nope")["code"] == 40101
    assert time.monotonic() - started >= 0.05


def test_http_controls_remote_state_and_reset(srv: SandboxServer) -> None:
    remote = RemoteSandbox(srv.url)
    remote.set_rate_limit(7, window=30, api="daily")
    remote.set_rate_limit(9)
    remote.set_daily_quota(100)
    remote.set_daily_quota(5, api="daily")
    remote.set_latency(0.2, jitter=0.1)
    remote.set_latency(0.01, api="trade_cal")
    remote.add_token("third-token")
    state = remote.state()
    assert state["rate_limit"] == 9
    assert state["api_rate_limits"] == {"daily": {"calls_per_minute": 7, "window": 30.0}}
    assert (state["daily_quota"], state["api_daily_quotas"]) == (100, {"daily": 5})
    assert state["latency"] == {"seconds": 0.2, "jitter": 0.1}
    assert state["api_latency"] == {"trade_cal": {"seconds": 0.01, "jitter": 0.0}}
    assert "third-token" not in str(state) and TOKEN not in str(state)
    _cal(srv, "third-token")
    remote.reset_daily_counts()
    bad = requests.post(f"{srv.control_url}/set_daily_quota", json={"calls_per_day": "x"},
                        timeout=5)  # fmt: skip
    assert bad.status_code == 400
    remote.reset()
    state = remote.state()
    assert state["rate_limit"] is None and state["api_rate_limits"] == {}
    assert state["daily_quota"] is None and state["latency"] is None
    with pytest.raises(Exception, match="token不对"):
        _cal(srv, "third-token")


def test_constructor_settings_are_what_reset_restores() -> None:
    with SandboxServer(
        SMALL,
        token=TOKEN,
        rate_limit=50,
        api_rate_limits={"daily": 2},
        daily_quota=1000,
        api_daily_quotas={"trade_cal": 1},
        latency=0.01,
        api_latency={"daily": 0.02},
    ) as srv:
        srv.set_daily_quota(None, api="trade_cal")
        srv.reset()
        state = srv.state()
        assert (
            state["rate_limit"] == 50 and state["api_rate_limits"]["daily"]["calls_per_minute"] == 2
        )
        assert (state["daily_quota"], state["api_daily_quotas"]) == (1000, {"trade_cal": 1})
        assert state["api_latency"] == {"daily": {"seconds": 0.02, "jitter": 0.0}}
        _cal(srv)
        with pytest.raises(Exception, match=re.escape(day_message(1))):
            _cal(srv)


def test_cli_limit_flags() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "atm_assets.sandbox", "--port", "0", "--size", "BSE:L=7",
         "--token", TOKEN, "--api-rate-limit", "stock_basic=1", "--daily-quota", "5",
         "--daily-quota", "trade_cal=2", "--latency", "0.1", "--api-latency", "daily=0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        url = line.rsplit(" ", 1)[-1]
        state = RemoteSandbox(url).state()
        assert state["api_rate_limits"] == {"stock_basic": {"calls_per_minute": 1, "window": 60.0}}
        assert (state["daily_quota"], state["api_daily_quotas"]) == (5, {"trade_cal": 2})
        assert state["latency"] == {"seconds": 0.1, "jitter": 0.0}
        assert state["api_latency"] == {"daily": {"seconds": 0.2, "jitter": 0.0}}
        api = tushare_client(url, TOKEN)
        started = time.monotonic()
        assert len(api.query("stock_basic", exchange="BSE", fields="ts_code")) == 7
        assert time.monotonic() - started >= 0.1
        with pytest.raises(Exception, match=re.escape(minute_message(1))):
            api.query("stock_basic", exchange="BSE", fields="ts_code")
        RemoteSandbox(url).reset()  # the flags are the defaults reset returns to
        assert RemoteSandbox(url).state()["daily_quota"] == 5
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    bad = subprocess.run(
        [sys.executable, "-m", "atm_assets.sandbox", "--api-rate-limit", "nope=3"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "unknown api 'nope'" in bad.stderr
