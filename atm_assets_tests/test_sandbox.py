"""Tests for the Tushare sandbox, driven through the real tushare client over loopback HTTP."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
import pytest
import requests

from atm_assets.sandbox import (
    DEFAULT_SIZES,
    FAULT_KINDS,
    STOCK_BASIC_DEFAULT_FIELDS,
    STOCK_BASIC_FIELDS,
    RemoteSandbox,
    SandboxDataset,
    SandboxServer,
    tushare_client,
)

TOKEN = "sandbox-token"
ALL_FIELDS = ",".join(STOCK_BASIC_FIELDS)
CODE_PATTERNS = {
    "SSE": re.compile(r"^\d{6}\.SH$"),
    "SZSE": re.compile(r"^\d{6}\.SZ$"),
    "BSE": re.compile(r"^\d{6}\.BJ$"),
}


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxServer]:
    with SandboxServer(token=TOKEN) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_state(sb: SandboxServer) -> Iterator[None]:
    sb.reset()
    yield
    sb.reset()


def _post(sb: SandboxServer, api_name: str, fields: str = "", **params: Any) -> dict[str, Any]:
    """Call the wire protocol directly, to see has_more and codes the client hides."""
    body = {"api_name": api_name, "token": TOKEN, "params": params, "fields": fields}
    resp = requests.post(f"{sb.url}/{api_name}", json=body, timeout=10)
    resp.raise_for_status()
    return resp.json()


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows with pandas' missing markers turned back into None."""
    out = []
    for row in df.to_dict("records"):
        out.append(
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        )
    return out


# -- stock_basic through the real client --


def test_default_sizes_are_realistic(sb: SandboxServer) -> None:
    api = sb.client()
    for exchange in ("SSE", "SZSE", "BSE"):
        for status in ("L", "D", "P", "G"):
            df = api.query("stock_basic", exchange=exchange, list_status=status, fields="ts_code")
            assert len(df) == DEFAULT_SIZES[(exchange, status)]
    assert 2000 <= DEFAULT_SIZES[("SSE", "L")] <= 2600
    assert 2600 <= DEFAULT_SIZES[("SZSE", "L")] <= 3200
    assert 200 <= DEFAULT_SIZES[("BSE", "L")] <= 350
    # Absent list_status and empty strings mean "listed, every exchange".
    listed = sum(n for (_, st), n in DEFAULT_SIZES.items() if st == "L")
    assert len(api.query("stock_basic", fields="ts_code")) == listed
    assert len(api.query("stock_basic", exchange="", list_status="", fields="ts_code")) == listed


def test_fields_all_default_and_requested_order(sb: SandboxServer) -> None:
    api = sb.client()
    full = api.query("stock_basic", exchange="BSE", fields=ALL_FIELDS)
    assert list(full.columns) == list(STOCK_BASIC_FIELDS) and len(STOCK_BASIC_FIELDS) == 17
    default = api.query("stock_basic", exchange="BSE")
    assert list(default.columns) == list(STOCK_BASIC_DEFAULT_FIELDS)
    assert len(STOCK_BASIC_DEFAULT_FIELDS) == 10
    picked = api.query("stock_basic", exchange="BSE", fields="name, ts_code,no_such_field,name")
    assert list(picked.columns) == ["name", "ts_code"]


def test_rows_match_ground_truth_and_formats(sb: SandboxServer) -> None:
    df = sb.client().query("stock_basic", exchange="SZSE", list_status="L", fields=ALL_FIELDS)
    truth = sb.dataset.stock_basic("SZSE", "L")
    assert _records(df) == truth
    assert list(df["ts_code"]) == sorted(df["ts_code"])
    for row in truth:
        assert CODE_PATTERNS["SZSE"].match(row["ts_code"])
        assert row["symbol"] == row["ts_code"][:6]
        assert row["market"] in ("主板", "创业板")
        assert row["curr_type"] == "CNY" and row["is_hs"] in ("N", "S")
        assert row["delist_date"] is None and re.fullmatch(r"\d{8}", row["list_date"])
    # Leading zeros survive the trip through JSON and pandas.
    assert any(s.startswith("000") for s in df["symbol"])


def test_dataset_has_nulls_and_awkward_characters() -> None:
    rows = SandboxDataset().stock_basic()
    n = len(rows)

    def share(pred: Any) -> float:
        return sum(1 for r in rows if pred(r)) / n

    assert 0.005 < share(lambda r: r["industry"] is None) < 0.05
    assert 0.01 < share(lambda r: r["act_name"] is None) < 0.1
    assert 0.01 < share(lambda r: r["enname"] is None) < 0.06
    text = "\n".join(f"{r['name']}|{r['fullname']}|{r['enname']}" for r in rows)
    for needle in ("*ST", "Ａ", "'", '"', "\\", "\U0001f680"):
        assert needle in text, needle
    assert all(r["cnspell"] == r["cnspell"].lower() for r in rows)


def test_partitions_disjoint_and_status_invariants() -> None:
    ds = SandboxDataset()
    seen: dict[str, tuple[str, str]] = {}
    for exchange in ("SSE", "SZSE", "BSE"):
        for status in ("L", "D", "P", "G"):
            for row in ds.stock_basic(exchange, status):
                assert row["ts_code"] not in seen
                seen[row["ts_code"]] = (exchange, status)
                assert CODE_PATTERNS[exchange].match(row["ts_code"])
                assert (row["exchange"], row["list_status"]) == (exchange, status)
                if status == "D":
                    assert row["delist_date"] > row["list_date"]
                else:
                    assert row["delist_date"] is None
                if status == "G":
                    assert row["list_date"] is None
    assert len(seen) == sum(DEFAULT_SIZES.values())


def test_paging_a_15000_row_partition(sb: SandboxServer) -> None:
    sb.set_sizes({("SZSE", "L"): 15000})
    codes: list[str] = []
    pages: list[tuple[int, bool]] = []
    offset = 0
    while True:
        answer = _post(
            sb,
            "stock_basic",
            "ts_code",
            exchange="SZSE",
            list_status="L",
            limit=6000,
            offset=offset,
        )
        assert answer["code"] == 0
        data = answer["data"]
        codes += [item[0] for item in data["items"]]
        pages.append((len(data["items"]), data["has_more"]))
        if not data["has_more"]:
            break
        offset += len(data["items"])
    assert pages == [(6000, True), (6000, True), (3000, False)]
    assert len(codes) == len(set(codes)) == 15000
    assert codes == [r["ts_code"] for r in sb.dataset.stock_basic("SZSE", "L")]
    # Without limit, or with a larger one, a call is capped at 6000 rows.
    api = sb.client()
    assert len(api.query("stock_basic", exchange="SZSE", fields="ts_code")) == 6000
    assert len(api.query("stock_basic", exchange="SZSE", fields="ts_code", limit=9000)) == 6000
    tail = _post(sb, "stock_basic", "ts_code", exchange="SZSE", limit=6000, offset=15000)
    assert tail["data"]["items"] == [] and tail["data"]["has_more"] is False
    exact = _post(sb, "stock_basic", "ts_code", exchange="SZSE", limit=5000, offset=10000)
    assert len(exact["data"]["items"]) == 5000 and exact["data"]["has_more"] is False


def test_large_partitions_keep_codes_unique() -> None:
    started = time.perf_counter()
    ds = SandboxDataset(sizes={("SSE", "L"): 40000, ("SSE", "D"): 5000})
    listed = ds.stock_basic("SSE", "L")
    assert time.perf_counter() - started < 5
    assert len(listed) == 40000
    every = [r["ts_code"] for r in ds.stock_basic()]
    assert len(every) == len(set(every))
    assert all(CODE_PATTERNS["SSE"].match(r["ts_code"]) for r in listed)


def test_determinism() -> None:
    assert SandboxDataset(seed=0).stock_basic() == SandboxDataset(seed=0).stock_basic()
    assert SandboxDataset(seed=0) == SandboxDataset(seed=0, sizes=dict(DEFAULT_SIZES))
    assert SandboxDataset(seed=0).stock_basic() != SandboxDataset(seed=1).stock_basic()
    day = "20240614"
    assert SandboxDataset(seed=3).daily(trade_date=day) == SandboxDataset(seed=3).daily(
        trade_date=day
    )


def test_revision_two_changes_some_rows_and_adds_listings(sb: SandboxServer) -> None:
    before = {r["ts_code"]: r for r in SandboxDataset(revision=1).stock_basic()}
    after = {r["ts_code"]: r for r in SandboxDataset(revision=2).stock_basic()}
    assert set(before) <= set(after)
    changed = [c for c in before if before[c] != after[c]]
    assert 0.07 < len(changed) / len(before) < 0.13
    for code in changed:
        diff = {k for k in STOCK_BASIC_FIELDS if before[code][k] != after[code][k]}
        assert diff <= {"name", "cnspell", "industry", "is_hs"}
    added = [after[c] for c in set(after) - set(before)]
    listed = sum(1 for r in before.values() if r["list_status"] == "L")
    assert 0.005 < len(added) / listed < 0.02
    assert all(r["list_status"] == "L" and r["list_date"] >= "2026" for r in added)

    api = sb.client()
    first = api.query("stock_basic", fields="ts_code,name")
    sb.set_revision(2)
    second = api.query("stock_basic", fields="ts_code,name")
    assert len(second) > len(first)
    merged = first.merge(second, on="ts_code", suffixes=("_1", "_2"))
    assert (merged["name_1"] != merged["name_2"]).sum() > 0


def test_answer_cache_serves_repeats_and_follows_the_dataset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import atm_assets.sandbox.server as server_module

    executed: list[str] = []
    real_execute = server_module.execute

    def counting(dataset: SandboxDataset, api_name: str, params: Any, fields: Any) -> Any:
        executed.append(api_name)
        return real_execute(dataset, api_name, params, fields)

    monkeypatch.setattr(server_module, "execute", counting)
    with SandboxServer(token=TOKEN, cache_answers=True, rate_limit=4, rate_window=60) as server:
        api = server.client()
        first = api.query("stock_basic", fields="ts_code,name")
        again = api.query("stock_basic", fields="ts_code,name")
        pd.testing.assert_frame_equal(first, again)
        assert executed == ["stock_basic"]  # the repeat came from the cache
        api.query("stock_basic", fields="ts_code")  # other fields: generated
        assert len(executed) == 2
        # Every call is still logged and counted against the limits.
        assert len(server.calls()) == 3
        api.query("stock_basic", fields="ts_code,name")
        with pytest.raises(Exception, match="每分钟最多访问该接口4次"):
            api.query("stock_basic", fields="ts_code,name")
        server.set_rate_limit(None)
        # A new revision is a new dataset: nothing stale is served.
        server.set_revision(2)
        revised = api.query("stock_basic", fields="ts_code,name")
        assert len(revised) > len(first)
        assert len(executed) == 3
        # Faults are never cached nor served from the cache.
        server.inject("missing_data", api="stock_basic")
        with pytest.raises(TypeError):  # the client's own failure on a null data block
            api.query("stock_basic", fields="ts_code,name")
        assert len(executed) == 4
        assert len(api.query("stock_basic", fields="ts_code,name")) == len(revised)
        assert len(executed) == 4
    with SandboxServer(token=TOKEN) as plain:  # off by default: every call generates
        plain.client().query("stock_basic", fields="ts_code")
        plain.client().query("stock_basic", fields="ts_code")
    assert len(executed) == 6


# -- faults as the real client sees them --


@pytest.mark.parametrize("kind", ["http_500", "http_502", "http_503", "http_404", "http_429"])
def test_http_errors_give_an_empty_frame_silently(sb: SandboxServer, kind: str) -> None:
    sb.inject(kind)
    df = sb.client().query("stock_basic", fields="ts_code")
    # Known tushare flaw: any non-2xx status is swallowed into an empty DataFrame.
    assert df.empty and list(df.columns) == []
    assert sb.calls()[-1]["status"] == int(kind[-3:])


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("rate_limit", "抱歉，您每分钟最多访问该接口"),
        ("no_permission", "抱歉，您没有接口(stock_basic)访问权限"),
        ("bad_token", "您的token不对，请确认。"),
    ],
)
def test_api_error_faults_raise_with_the_service_message(
    sb: SandboxServer, kind: str, expected: str
) -> None:
    sb.inject(kind)
    with pytest.raises(Exception, match=re.escape(expected)) as info:
        sb.client().query("stock_basic", fields="ts_code")
    assert "doc_id=108" in str(info.value) or kind == "bad_token"


def test_transport_faults(sb: SandboxServer) -> None:
    sb.inject("timeout", seconds=2)
    with pytest.raises(requests.exceptions.Timeout):
        sb.client(timeout=0.3).query("stock_basic", fields="ts_code")
    sb.inject("reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        sb.client().query("stock_basic", fields="ts_code")
    for kind in ("malformed_json", "truncated_json"):
        sb.inject(kind)
        with pytest.raises(json.JSONDecodeError):
            sb.client().query("stock_basic", fields="ts_code")
    sb.inject("missing_data")
    with pytest.raises(TypeError):
        sb.client().query("stock_basic", fields="ts_code")
    # The server keeps working after every one of them.
    assert len(sb.client().query("stock_basic", exchange="BSE", fields="ts_code")) == 280


def test_timeout_fault_answers_patient_clients(sb: SandboxServer) -> None:
    sb.inject("timeout", seconds=0.3)
    started = time.monotonic()
    df = sb.client(timeout=5).query("stock_basic", exchange="BSE", fields="ts_code")
    assert len(df) == 280 and time.monotonic() - started >= 0.3


def test_payload_faults(sb: SandboxServer) -> None:
    api = sb.client()
    sb.inject("wrong_fields")
    assert list(api.query("stock_basic", fields="ts_code,name").columns) == ["ts_code"]
    sb.inject("wrong_fields", mode="rename")
    assert list(api.query("stock_basic", fields="ts_code,name").columns) == ["ts_code", "name_x"]
    sb.inject("empty_page")
    df = api.query("stock_basic", fields="ts_code,name")
    assert df.empty and list(df.columns) == ["ts_code", "name"]
    sb.inject("short_page")
    answer = _post(sb, "stock_basic", "ts_code", limit=100)
    assert len(answer["data"]["items"]) == 50 and answer["data"]["has_more"] is False


def test_every_fault_kind_is_injectable(sb: SandboxServer) -> None:
    assert len(FAULT_KINDS) >= 11
    for kind in FAULT_KINDS:
        sb.inject(kind, api="not_called_here")
    assert len(sb.faults()) == len(FAULT_KINDS)
    with pytest.raises(ValueError):
        sb.inject("no_such_fault")


def test_faults_are_consumed_and_scoped_by_api(sb: SandboxServer) -> None:
    api = sb.client()
    sb.inject("http_503", api="daily", times=2)
    assert not api.query("stock_basic", fields="ts_code").empty
    assert api.query("daily", trade_date="20240614").empty
    assert api.query("daily", trade_date="20240614").empty
    assert not api.query("daily", trade_date="20240614").empty
    assert sb.faults() == []
    sb.inject("http_500", times=-1)
    for _ in range(3):
        assert api.query("trade_cal", start_date="20240101", end_date="20240110").empty
    assert sb.faults()[0]["remaining"] == -1
    sb.clear_faults()
    assert not api.query("trade_cal", start_date="20240101", end_date="20240110").empty


def test_rate_limit_over_a_sliding_window(sb: SandboxServer) -> None:
    api = sb.client()
    sb.set_rate_limit(3, window=0.5)
    for _ in range(3):
        api.query("stock_basic", exchange="BSE", fields="ts_code")
    with pytest.raises(Exception, match="每分钟最多访问该接口3次"):
        api.query("stock_basic", exchange="BSE", fields="ts_code")
    # Limits are per api.
    assert len(api.query("trade_cal", start_date="20240101", end_date="20240105")) == 5
    time.sleep(0.6)
    assert len(api.query("stock_basic", exchange="BSE", fields="ts_code")) == 280
    assert sb.calls()[3]["code"] == 40203


def test_permissions_tokens_and_unknown_apis(sb: SandboxServer) -> None:
    sb.deny("daily")
    with pytest.raises(Exception, match=re.escape("没有接口(daily)访问权限")):
        sb.client().query("daily", trade_date="20240614")
    sb.allow("daily")
    assert not sb.client().query("daily", trade_date="20240614").empty
    with pytest.raises(Exception, match="token不对"):
        tushare_client(sb.url, token="wrong-token").query("trade_cal")
    sb.set_token("rotated")
    with pytest.raises(Exception, match="token不对"):
        sb.client(token=TOKEN).query("trade_cal")
    assert not sb.client().query("trade_cal", start_date="20240102", end_date="20240102").empty
    with pytest.raises(Exception, match="api名称错误: no_such_api"):
        sb.client().query("no_such_api")


def test_calls_are_recorded_without_the_token(sb: SandboxServer) -> None:
    api = sb.client()
    api.query("stock_basic", exchange="SSE", fields="ts_code,name")
    sb.inject("reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        api.query("daily", trade_date="20240614")
    with pytest.raises(Exception, match="token不对"):
        tushare_client(sb.url, token="a-wrong-token").query("trade_cal", exchange="SSE")
    calls = sb.calls()
    assert [c["api_name"] for c in calls] == ["stock_basic", "daily", "trade_cal"]
    first = calls[0]
    assert first["params"] == {"exchange": "SSE"}
    assert first["fields"] == "ts_code,name"
    assert (first["status"], first["code"], first["rows"]) == (200, 0, 2300)
    assert calls[1]["fault"] == "reset" and calls[1]["status"] is None
    assert calls[2]["code"] == 40101
    assert all(isinstance(c["time"], float) for c in calls)
    raw = requests.get(f"{sb.control_url}/calls", timeout=5).text
    for blob in (raw, json.dumps(calls, ensure_ascii=False)):
        assert TOKEN not in blob and "a-wrong-token" not in blob and "ts_type_name" not in blob
    assert json.loads(raw) == calls


def test_http_control_endpoints(sb: SandboxServer) -> None:
    remote = RemoteSandbox(sb.url)
    assert remote.health()
    assert requests.get(f"{sb.control_url}/health", timeout=5).json() == {"ok": True}
    remote.inject("bad_token", api="stock_basic", times=1)
    assert remote.faults()[0]["kind"] == "bad_token"
    with pytest.raises(Exception, match="token不对"):
        sb.client().query("stock_basic", fields="ts_code")
    remote.set_sizes({"BSE:L": 10})
    assert len(sb.client().query("stock_basic", exchange="BSE", fields="ts_code")) == 10
    remote.set_revision(2)
    assert remote.state()["revision"] == 2 and sb.dataset.revision == 2
    remote.set_rate_limit(1)
    remote.deny("adj_factor")
    state = remote.state()
    assert state["rate_limit"] == 1 and state["denied"] == ["adj_factor"]
    assert "token" not in json.dumps(state)
    assert len(remote.calls()) == 2
    remote.reset()
    assert remote.calls() == [] and remote.state()["revision"] == 1
    bad = requests.post(f"{sb.control_url}/inject", json={"kind": "nope"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["ok"] is False
    assert requests.post(f"{sb.control_url}/nope", json={}, timeout=5).status_code == 404


def test_concurrent_requests(sb: SandboxServer) -> None:
    def fetch(exchange: str) -> int:
        return len(sb.client().query("stock_basic", exchange=exchange, fields="ts_code"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(fetch, ["SSE", "SZSE", "BSE"] * 4))
    assert counts == [2300, 2900, 280] * 4


# -- trade_cal, daily, adj_factor --


def test_trade_cal_invariants(sb: SandboxServer) -> None:
    api = sb.client()
    df = api.query("trade_cal", exchange="SSE", start_date="20240101", end_date="20241231")
    assert list(df.columns) == ["exchange", "cal_date", "is_open", "pretrade_date"]
    assert len(df) == 366 and list(df["cal_date"]) == sorted(df["cal_date"], reverse=True)
    assert set(df["is_open"]) == {0, 1}
    rows = sorted(_records(df), key=lambda r: r["cal_date"])
    last_open = "20231229"
    for row in rows:
        day = pd.Timestamp(row["cal_date"])
        if day.weekday() >= 5:
            assert row["is_open"] == 0
        assert row["pretrade_date"] == last_open
        if row["is_open"]:
            last_open = row["cal_date"]
    closed = {r["cal_date"] for r in rows if not r["is_open"]}
    assert {"20240101", "20240212", "20241001", "20241007"} <= closed
    assert 240 <= sum(r["is_open"] for r in rows) <= 250
    opened = api.query("trade_cal", start_date="20240101", end_date="20241231", is_open="1")
    assert set(opened["is_open"]) == {1} and len(opened) == sum(r["is_open"] for r in rows)
    whole = _post(sb, "trade_cal")
    assert len(whole["data"]["items"]) == 6000 and whole["data"]["has_more"] is True


def test_daily_bar_invariants(sb: SandboxServer) -> None:
    api = sb.client()
    ds = sb.dataset
    days = ds.open_dates("20240601", "20240630")
    prev_day, day = days[-2], days[-1]
    today = api.query("daily", trade_date=day)
    yesterday = api.query("daily", trade_date=prev_day)
    assert list(today.columns) == [
        "ts_code",
        "trade_date",
        "open",
        "high",
        "low",
        "close",
        "pre_close",
        "change",
        "pct_chg",
        "vol",
        "amount",
    ]
    assert (today["high"] >= today[["open", "close"]].max(axis=1)).all()
    assert (today["low"] <= today[["open", "close"]].min(axis=1)).all()
    assert (today["low"] > 0).all() and (today["vol"] > 0).all() and (today["amount"] > 0).all()
    assert ((today["close"] - today["pre_close"]).round(2) == today["change"]).all()
    assert (
        (today["change"] / today["pre_close"] * 100).round(4) - today["pct_chg"]
    ).abs().max() < 1e-3
    merged = today.merge(yesterday, on="ts_code", suffixes=("", "_prev"))
    assert len(merged) > 4000
    assert (merged["pre_close"] == merged["close_prev"]).all()
    # Listed-on-day rows minus a small share of suspensions.
    listed = [
        r
        for r in ds.stock_basic()
        if r["list_status"] in ("L", "D")
        and r["list_date"]
        and r["list_date"] <= day
        and (r["delist_date"] is None or r["delist_date"] > day)
    ]
    assert 0.95 * len(listed) <= len(today) < len(listed)
    assert set(today["ts_code"]) <= {r["ts_code"] for r in listed}
    assert api.query("daily", trade_date="20240615").empty  # a Saturday
    assert api.query("daily", trade_date="20241001").empty  # National Day
    assert _records(today) == ds.daily(trade_date=day)


def test_daily_by_code_and_adj_factor(sb: SandboxServer) -> None:
    api = sb.client()
    code = sb.dataset.stock_basic("SSE", "L")[0]["ts_code"]
    bars = api.query("daily", ts_code=code, start_date="20230101", end_date="20241231")
    assert set(bars["ts_code"]) == {code}
    assert list(bars["trade_date"]) == sorted(bars["trade_date"], reverse=True)
    assert all(sb.dataset.is_open(d) for d in bars["trade_date"])
    factors = api.query("adj_factor", ts_code=code, start_date="20230101", end_date="20241231")
    assert list(factors.columns) == ["ts_code", "trade_date", "adj_factor"]
    assert list(factors["trade_date"]) == list(bars["trade_date"])
    series = list(factors["adj_factor"])[::-1]
    steps = sum(1 for a, b in zip(series, series[1:], strict=False) if a != b)
    assert steps <= 4 and all(b >= a for a, b in zip(series, series[1:], strict=False))
    day = "20240614"
    daily_codes = set(api.query("daily", trade_date=day, fields="ts_code")["ts_code"])
    adj_codes = set(api.query("adj_factor", trade_date=day, fields="ts_code")["ts_code"])
    assert daily_codes == adj_codes


# -- packaging: import weight and the CLI --


@pytest.mark.cli
def test_sandbox_imports_neither_dagster_nor_pandas() -> None:
    code = (
        "import sys, atm_assets.sandbox; "
        "bad = [m for m in ('dagster', 'pandas', 'tushare') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


@pytest.mark.cli
def test_cli_serves_until_sigterm() -> None:
    secret = "cli-secret-token"
    env = dict(os.environ, SANDBOX_TOKEN=secret)
    proc = subprocess.Popen(
        [sys.executable, "-m", "atm_assets.sandbox", "--port", "0", "--size", "BSE:L=7"]
        + ["--verbose"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        match = re.fullmatch(
            r"Tushare sandbox listening on (http://127\.0\.0\.1:\d+/dataapi)", line
        )
        assert match, line
        url = match.group(1)
        df = tushare_client(url, token=secret).query("stock_basic", exchange="BSE")
        assert len(df) == 7
        remote = RemoteSandbox(url)
        remote.inject("http_502")
        assert tushare_client(url, token=secret).query("stock_basic").empty
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "stock_basic" in err and secret not in err
