"""The stock_basic asset end to end: sandbox over HTTP → tushare client → IO manager → table."""

import pytest

from atm_assets.core.datasets import STOCK_BASIC
from atm_assets_tests.conftest import source_rows
from atm_assets_tests.helpers import (
    ALL_RANGE,
    failure_message,
    materialization_metadata,
    run_stock_basic,
)


@pytest.mark.smoke
def test_every_partition_equals_the_source(target, atm_env, sb):
    result = run_stock_basic(ALL_RANGE)
    assert result.success, failure_message(result)
    rows = target.rows()
    expected = source_rows(sb)
    assert len(rows) == len(expected) == 5480 + 391
    assert rows == expected  # all 17 fields, NULLs, Unicode, quotes, dates
    keys = {str(e.partition) for e in result.asset_materializations_for_node("stock_basic")}
    assert len(keys) == 12 and "SSE|L" in keys and "BSE|G" in keys
    meta = materialization_metadata(result)[0]
    assert meta["total_fetched"] == meta["total_saved"] == meta["inserted"] == len(expected)
    assert meta["total_errors"] == 0 and meta["updated"] == 0
    assert meta["api_calls"] == 12
    assert meta["table"].endswith("stock_basic")


def test_values_are_stored_as_the_api_returns_them(target, atm_env, sb):
    assert run_stock_basic("SZSE|L").success
    rows = {r["ts_code"]: r for r in target.rows()}
    source = {r["ts_code"]: r for r in source_rows(sb, "SZSE", "L")}
    assert rows == source
    assert any(r["symbol"].startswith("00") for r in rows.values())  # leading zeros kept
    assert any(r["industry"] is None for r in rows.values())  # NULLs stay NULL
    assert any("'" in (r["enname"] or "") or '"' in (r["enname"] or "") for r in rows.values())
    assert all(set(r) == set(STOCK_BASIC.fields) for r in rows.values())


def test_second_run_after_source_change_updates_without_duplicates(target, atm_env, sb):
    first = run_stock_basic("SSE|L")
    assert first.success
    before = {r["ts_code"]: r for r in source_rows(sb, "SSE", "L")}
    sb.set_revision(2)
    after = {r["ts_code"]: r for r in source_rows(sb, "SSE", "L")}
    changed = sum(1 for k in before if before[k] != after[k])
    added = len(set(after) - set(before))
    assert changed > 50 and added > 0

    second = run_stock_basic("SSE|L")
    assert second.success, failure_message(second)
    meta = materialization_metadata(second)[0]
    assert (meta["inserted"], meta["updated"]) == (added, changed)
    assert meta["unchanged"] == len(before) - changed
    assert target.rows() == source_rows(sb, "SSE", "L")

    stamps = {
        r["ts_code"]: r["synced_at"]
        for r in target.writer().read(with_bookkeeping=True).to_dict("records")
    }
    third = run_stock_basic("SSE|L")
    meta = materialization_metadata(third)[0]
    assert (meta["inserted"], meta["updated"], meta["unchanged"]) == (0, 0, len(after))
    restamped = {
        r["ts_code"]: r["synced_at"]
        for r in target.writer().read(with_bookkeeping=True).to_dict("records")
    }
    assert restamped == stamps  # an unchanged row is not rewritten


def test_append_over_existing_keys_fails_and_changes_nothing(target, atm_env, sb):
    assert run_stock_basic("BSE|L").success
    snapshot = target.writer().read(with_bookkeeping=True).to_dict("records")
    sb.set_revision(2)  # adds new keys next to the existing ones
    result = run_stock_basic("BSE|L", {"mode": "append"})
    assert not result.success
    message = failure_message(result)
    assert "AppendConflictError" in message and "already exist" in message
    first_key = snapshot[0]["ts_code"]
    assert first_key in message
    assert target.writer().read(with_bookkeeping=True).to_dict("records") == snapshot


def test_append_into_an_empty_table_inserts_everything(target, atm_env, sb):
    result = run_stock_basic("SZSE|D", {"mode": "append", "batch_size": 7})
    assert result.success, failure_message(result)
    meta = materialization_metadata(result)[0]
    assert meta["mode"] == "append" and meta["batch_size"] == 7
    assert meta["batches"] == -(-150 // 7)
    assert target.rows() == source_rows(sb, "SZSE", "D")


def test_bad_token_fails_fast_and_writes_nothing(target, atm_env, sb, monkeypatch):
    monkeypatch.setenv("TUSHARE_TOKEN", "not-the-token")
    result = run_stock_basic("SSE|L")
    assert not result.success
    message = failure_message(result)
    assert "TushareAuthError" in message and "40101" in message
    assert "not-the-token" not in message
    assert len([c for c in sb.calls() if c["api_name"] == "stock_basic"]) == 1  # no retries
    assert target.rows() == []


@pytest.mark.parametrize("kind", ["http_500", "http_503", "http_404"])
def test_an_http_error_is_never_taken_for_no_rows(target, atm_env, sb, kind):
    sb.inject(kind, api="stock_basic", times=-1)
    result = run_stock_basic("SSE|L")
    assert not result.success
    assert f"HTTP {kind[-3:]}" in failure_message(result)
    # 5xx may pass: bounded retries (max_attempts); a 404 will not: one call.
    assert len(sb.calls()) == (1 if kind == "http_404" else 5)
    assert target.rows() == []


def test_a_transient_http_500_is_retried_and_the_table_is_complete(target, atm_env, sb):
    sb.inject("http_500", api="stock_basic", times=2)
    result = run_stock_basic("SSE|D")
    assert result.success, failure_message(result)
    assert target.rows() == source_rows(sb, "SSE", "D")
    assert len(sb.calls()) == 3


def test_a_large_partition_is_paged_not_truncated(target, atm_env, sb):
    sb.set_sizes({"SZSE:L": 13_000})
    result = run_stock_basic("SZSE|L", {"batch_size": 1000})
    assert result.success, failure_message(result)
    calls = [c for c in sb.calls() if c["api_name"] == "stock_basic"]
    offsets = sorted(c["params"].get("offset") for c in calls)
    # Every page, in order: one at a time from a fast, near source (answers take longer to
    # take in than to come), else up to 4 at once (a loaded machine may look slow).
    assert offsets in ([0, 6000, 12000], [0, 6000, 12000, 18000, 24000])
    assert target.rows() == source_rows(sb, "SZSE", "L")


def test_a_slow_source_is_paged_several_pages_at_once(target, atm_env, sb):
    sb.set_sizes({"SZSE:L": 13_000})
    sb.set_latency(0.4, api="stock_basic")
    result = run_stock_basic("SZSE|L", {"batch_size": 1000})
    assert result.success, failure_message(result)
    calls = [c for c in sb.calls() if c["api_name"] == "stock_basic"]
    offsets = sorted(c["params"].get("offset") for c in calls)
    # After a full first page the next ones are fetched up to 4 at once (max_in_flight 8):
    # the pages past the end come back empty.
    assert offsets == [0, 6000, 12000, 18000, 24000]
    assert [c["rows"] for c in sorted(calls, key=lambda c: c["params"]["offset"])][3:] == [0, 0]
    assert target.rows() == source_rows(sb, "SZSE", "L")


def test_rows_outside_the_partition_fail_validation(target, atm_env, sb):
    sb.inject("wrong_fields", api="stock_basic")
    result = run_stock_basic("SSE|P")
    assert not result.success
    assert "did not return the requested field" in failure_message(result)
    assert target.rows() == []


def test_a_swapped_partition_key_is_refused(target, atm_env, sb):
    try:
        result = run_stock_basic("L|SSE")
    except Exception as e:  # Dagster itself may refuse the key before the run starts
        message = str(e)
    else:
        assert not result.success
        message = failure_message(result)
    assert "L|SSE" in message
    assert sb.calls() == []
    assert target.rows() == []
