"""Invariants of the generated data at realistic size: consistency between APIs, point in
time versions, dates on open days, weights, balances, NULLs and awkward strings."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

import pytest

from atm_assets.sandbox import API_SPECS, SandboxDataset

DS = SandboxDataset()
DAY = "20240614"


def _by(rows: list[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[k] for k in keys): r for r in rows}


def test_per_date_answers_are_realistic_and_fast() -> None:
    for api in ("daily_basic", "stk_limit", "moneyflow", "cyq_perf", "margin_detail"):
        started = time.perf_counter()
        rows = DS.rows(api, {"trade_date": DAY})
        elapsed = time.perf_counter() - started
        assert len(rows) > (3000 if api == "margin_detail" else 4500), api
        assert elapsed < 1.5, f"{api} took {elapsed:.2f}s"


def test_trade_date_rows_only_on_open_days() -> None:
    saturday, holiday = "20240615", "20241001"
    for api in ("daily_basic", "stk_limit", "moneyflow", "cyq_perf", "top_list", "weekly"):
        assert DS.rows(api, {"trade_date": saturday}) == []
        assert DS.rows(api, {"trade_date": holiday}) == []
    code = DS.stock_basic("SZSE", "L")[0]["ts_code"]
    for api in ("daily_basic", "stk_limit", "margin_detail", "suspend_d", "index_daily"):
        params = {"ts_code": "000300.SH" if api == "index_daily" else code}
        rows = DS.rows(api, {**params, "start_date": "20230101", "end_date": "20231231"})
        assert all(DS.is_open(r["trade_date"]) for r in rows), api
    hsgt = DS.rows("moneyflow_hsgt", {"start_date": "20240101", "end_date": "20241231"})
    assert [r["trade_date"] for r in hsgt] == DS.open_dates("20240101", "20241231")[::-1]


def test_daily_extras_agree_with_daily() -> None:
    daily = _by(DS.daily(trade_date=DAY), "ts_code")
    basic = DS.rows("daily_basic", {"trade_date": DAY})
    assert {r["ts_code"] for r in basic} == {c for (c,) in daily}
    for r in basic:
        d = daily[(r["ts_code"],)]
        assert r["close"] == d["close"]
        assert r["total_mv"] == pytest.approx(r["close"] * r["total_share"], rel=1e-6)
        assert r["free_share"] <= r["float_share"] <= r["total_share"]
    assert 0.05 < sum(r["pe"] is None for r in basic) / len(basic) < 0.25
    flows = DS.rows("moneyflow", {"trade_date": DAY})
    assert {r["ts_code"] for r in flows} == {c for (c,) in daily}
    for r in flows[:500]:
        total = sum(r[f"{side}_{size}_amount"] for side in ("buy", "sell")
                    for size in ("sm", "md", "lg", "elg"))  # fmt: skip
        assert total == pytest.approx(daily[(r["ts_code"],)]["amount"] / 10, rel=1e-3)
    tops = DS.rows("top_list", {"trade_date": DAY})
    assert 20 < len(tops) < 200
    for r in tops:
        d = daily[(r["ts_code"],)]
        assert (r["close"], r["pct_change"]) == (d["close"], d["pct_chg"])
        assert r["l_amount"] == pytest.approx(r["l_buy"] + r["l_sell"], abs=0.02)
    insts = DS.rows("top_inst", {"trade_date": DAY})
    assert {(r["ts_code"], r["reason"]) for r in insts} == {
        (r["ts_code"], r["reason"]) for r in tops
    }
    assert Counter(r["side"] for r in insts) == {"0": 5 * len(tops), "1": 5 * len(tops)}


def test_stk_limit_brackets_pre_close_and_the_close() -> None:
    daily = _by(DS.daily(trade_date=DAY), "ts_code")
    listing = {r["ts_code"]: r for r in DS.stock_basic()}
    limits = DS.rows("stk_limit", {"trade_date": DAY})
    assert len(limits) >= len(daily)  # suspended stocks keep their limits
    pcts: Counter[int] = Counter()
    for r in limits:
        assert r["down_limit"] < r["pre_close"] < r["up_limit"]
        pct = round((r["up_limit"] / r["pre_close"] - 1) * 100)
        pcts[pct] += 1
        market = listing[r["ts_code"]]["market"]
        assert pct == {"北交所": 30, "科创板": 20, "创业板": 20}.get(
            market, pct if pct in (5, 10) else -1
        )
        if (r["ts_code"],) in daily:
            assert daily[(r["ts_code"],)]["pre_close"] == r["pre_close"]
            assert r["down_limit"] <= daily[(r["ts_code"],)]["close"] <= r["up_limit"]
    assert {5, 10, 20, 30} <= set(pcts)


def test_suspensions_match_missing_daily_bars() -> None:
    listed = {t.ts_code for t in DS.listing().tradables() if t.trades_on(DAY)}
    traded = {r["ts_code"] for r in DS.daily(trade_date=DAY)}
    rows = DS.rows("suspend_d", {"trade_date": DAY})
    full_day = {r["ts_code"] for r in rows if r["suspend_type"] == "S" and not r["suspend_timing"]}
    assert full_day == listed - traded
    resumed = {r["ts_code"] for r in rows if r["suspend_type"] == "R"}
    assert resumed <= traded
    assert DS.rows("suspend_d", {"trade_date": DAY, "suspend_type": "R"}) == [
        r for r in rows if r["suspend_type"] == "R"
    ]
    month = DS.rows("suspend_d", {"start_date": "20240501", "end_date": "20240614"})
    assert any(r["suspend_timing"] for r in month)


@pytest.mark.parametrize("kind", ["weekly", "monthly"])
def test_weekly_and_monthly_bars_aggregate_the_daily_bars(kind: str) -> None:
    codes = [t.ts_code for t in DS.listing().tradables()[::400]]
    for code in codes:
        bars = DS.rows(kind, {"ts_code": code, "start_date": "20230101", "end_date": "20241231"})
        daily = sorted(DS.daily(ts_code=code, start_date="20221201", end_date="20241231"),
                       key=lambda r: r["trade_date"])  # fmt: skip
        previous = None
        for bar in sorted(bars, key=lambda r: r["trade_date"]):
            key = (lambda d: d[:6]) if kind == "monthly" else None
            period = [
                d for d in daily
                if d["trade_date"] <= bar["trade_date"]
                and (key(d["trade_date"]) == key(bar["trade_date"]) if key
                     else _same_week(d["trade_date"], bar["trade_date"]))
            ]  # fmt: skip
            assert period, (code, bar["trade_date"])
            assert bar["open"] == period[0]["open"] and bar["close"] == period[-1]["close"]
            assert bar["high"] == max(d["high"] for d in period)
            assert bar["low"] == min(d["low"] for d in period)
            assert bar["vol"] == pytest.approx(sum(d["vol"] for d in period), abs=0.02)
            assert bar["amount"] == pytest.approx(sum(d["amount"] for d in period), abs=0.01)
            assert bar["pct_chg"] == pytest.approx(bar["change"] / bar["pre_close"], abs=1e-4)
            last_open = DS.open_dates(bar["trade_date"][:6] + "01", "20271231")
            assert DS.is_open(bar["trade_date"])
            if kind == "monthly":
                month_days = [d for d in last_open if d[:6] == bar["trade_date"][:6]]
                assert bar["trade_date"] == month_days[-1]
            if previous is not None:
                assert bar["pre_close"] == previous["close"]
            previous = bar


def _same_week(a: str, b: str) -> bool:
    from datetime import date

    da, db = (date(int(x[:4]), int(x[4:6]), int(x[6:])) for x in (a, b))
    return da.isocalendar()[:2] == db.isocalendar()[:2]


def test_margin_balances_move_by_the_days_flows() -> None:
    code = next(r["ts_code"] for r in DS.rows("margin_detail", {"trade_date": DAY}))
    rows = sorted(DS.rows("margin_detail", {"ts_code": code, "start_date": "20240101",
                                            "end_date": "20240630"}),
                  key=lambda r: r["trade_date"])  # fmt: skip
    assert len(rows) > 100
    for prev, row in zip(rows, rows[1:], strict=False):
        assert row["rzye"] == pytest.approx(prev["rzye"] + row["rzmre"] - row["rzche"], abs=0.02)
        assert row["rqyl"] == pytest.approx(prev["rqyl"] + row["rqmcl"] - row["rqchl"], abs=1)
        assert row["rzrqye"] == pytest.approx(row["rzye"] + row["rqye"], abs=0.02)
        assert min(row["rzmre"], row["rzche"], row["rqmcl"], row["rqchl"]) >= 0
    old = DS.rows("margin_detail", {"ts_code": code, "trade_date": "20180614"})
    assert not old or old[0]["name"] is None


def test_index_weights_sum_to_100_and_come_from_the_listing() -> None:
    listed = {r["ts_code"]: r for r in DS.stock_basic()}
    for code, size in (("000300.SH", 300), ("000016.SH", 50), ("399006.SZ", 100)):
        rows = DS.rows("index_weight", {"index_code": code, "start_date": "20230101",
                                        "end_date": "20231231"})  # fmt: skip
        by_date: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            by_date[r["trade_date"]].append(r)
        assert len(by_date) == 12
        members = [{r["con_code"] for r in day} for day in by_date.values()]
        assert len(set.union(*members)) > size  # constituents change over the year
        for day, entries in by_date.items():
            assert len(entries) == size and DS.is_open(day)
            assert sum(e["weight"] for e in entries) == pytest.approx(100, abs=0.01)
            assert all(listed[e["con_code"]]["list_date"] < day for e in entries)
    assert DS.rows("index_weight", {"index_code": "000001.SH", "trade_date": "20230103"}) == []


def test_index_apis() -> None:
    everything = [DS.rows("index_basic", {"market": m}) for m in
                  ("MSCI", "CSI", "SSE", "SZSE", "CICC", "SW", "OTH")]  # fmt: skip
    assert all(everything) and sum(map(len, everything)) > 60
    assert DS.rows("index_basic", {}) == everything[2]  # market defaults to SSE
    assert DS.rows("index_daily", {"ts_code": "801780.SI"}) == []  # no Shenwan in index_daily
    bars = DS.rows("index_daily", {"ts_code": "399300.SZ", "start_date": "20240101"})
    for prev, bar in zip(bars[1:], bars, strict=False):  # newest first
        assert bar["pre_close"] == prev["close"]
        assert bar["low"] <= min(bar["open"], bar["close"]) <= max(bar["open"], bar["close"])
    basics = DS.rows("index_dailybasic", {"trade_date": DAY})
    assert 10 <= len(basics) <= 12
    assert DS.rows("index_daily", {"ts_code": "399005.SZ", "trade_date": "20230103"}) == []


def test_statements_have_point_in_time_versions() -> None:
    rows = DS.rows("income_vip", {"period": "20221231"})
    by_key = defaultdict(list)
    for r in rows:
        by_key[(r["ts_code"], r["end_date"])].append(r)
    corrected = [v for v in by_key.values() if len(v) > 1]
    assert 0.03 < len(corrected) / len(by_key) < 0.1
    for versions in corrected:
        original, fixed = sorted(versions, key=lambda r: r["f_ann_date"])
        assert original["update_flag"] == "0" and fixed["update_flag"] == "1"
        assert original["ann_date"] == fixed["ann_date"] < fixed["f_ann_date"]
        assert original["n_income_attr_p"] != fixed["n_income_attr_p"]
    assert all(r["report_type"] == "1" for r in rows)
    restated = DS.rows("income_vip", {"period": "20221231", "report_type": "4"})
    assert restated and all(r["ann_date"] > "20230401" for r in restated)
    # What was known on a day differs from the latest.
    known = [r for r in rows if r["f_ann_date"] <= "20230501"]
    latest = {k: max(v, key=lambda r: r["f_ann_date"]) for k, v in by_key.items()}
    as_of = {(r["ts_code"], r["end_date"]): r for r in sorted(known, key=lambda r: r["f_ann_date"])}
    assert any(as_of.get(k) != v for k, v in latest.items())
    unique = API_SPECS["income"].unique_key
    every = DS.rows("income_vip", {"start_date": "20230101", "end_date": "20230430"})
    assert len({tuple(r[k] for k in unique) for r in every}) == len(every)


def test_statement_identities_and_nulls() -> None:
    flows = DS.rows("cashflow_vip", {"period": "20231231"})
    for r in flows:
        assert r["c_cash_equ_end_period"] == pytest.approx(
            r["c_cash_equ_beg_period"] + r["n_incr_cash_cash_equ"], abs=0.02)  # fmt: skip
    sheets = DS.rows("balancesheet_vip", {"period": "20231231"})
    for r in sheets:
        assert r["total_liab_hldr_eqy"] == pytest.approx(r["total_assets"], rel=1e-6)
    banks = [r for r in sheets if r["comp_type"] == "2"]
    assert banks and all(r["inventories"] is None for r in banks)
    income = {r["ts_code"]: r for r in DS.rows("income_vip", {"period": "20231231"})
              if r["update_flag"] == "1"}  # fmt: skip
    ratios = DS.rows("fina_indicator_vip", {"period": "20231231"})
    for r in ratios:
        if r["update_flag"] == "1":
            assert r["eps"] == income[r["ts_code"]]["basic_eps"]


def test_forecasts_and_flash_reports_precede_the_report() -> None:
    reports = {r["ts_code"]: r["ann_date"] for r in DS.rows("income_vip", {"period": "20231231"})}
    forecasts = DS.rows("forecast_vip", {"period": "20231231"})
    assert 0.3 < len({r["ts_code"] for r in forecasts}) / len(reports) < 0.6
    assert any(r["ann_date"] != r["first_ann_date"] for r in forecasts)  # revisions
    assert {r["type"] for r in forecasts} >= {"预增", "略增", "预减", "首亏", "扭亏", "续亏"}
    for r in forecasts:
        assert r["first_ann_date"] <= r["ann_date"] < reports[r["ts_code"]]
        assert r["net_profit_min"] <= r["net_profit_max"]
    flashes = DS.rows("express_vip", {"period": "20231231"})
    assert all(r["ann_date"] < reports[r["ts_code"]] for r in flashes)


def test_dividend_stages() -> None:
    rows = DS.rows("dividend", {"end_date": "20221231"})
    stages = defaultdict(list)
    for r in rows:
        stages[r["ts_code"]].append(r)
    assert Counter(len(v) for v in stages.values()).keys() >= {1, 2, 3}
    for versions in stages.values():
        assert [v["div_proc"] for v in versions] == ["预案", "股东大会通过", "实施"][
            : len(versions)
        ]
        assert len({v["ann_date"] for v in versions}) == 1
        done = versions[-1]
        if done["div_proc"] == "实施":
            assert done["ann_date"] < done["imp_ann_date"] < done["record_date"] < done["ex_date"]
        else:
            assert done["ex_date"] is None


def test_namechange_matches_the_listing_in_every_revision() -> None:
    for revision in (1, 2):
        ds = SandboxDataset(revision=revision)
        history = ds.rows("namechange", {})
        current = {r["ts_code"]: r["name"] for r in history if r["end_date"] is None}
        listed = {r["ts_code"]: r["name"] for r in ds.stock_basic() if r["list_date"]}
        assert current == listed
        reasons = Counter(r["change_reason"] for r in history)
        assert {"其他", "ST", "*ST", "撤销ST", "改名", "终止上市"} <= set(reasons)
        for r in history:
            assert r["end_date"] is None or r["start_date"] <= r["end_date"]
    announced = DS.rows("namechange", {"start_date": "20200101", "end_date": "20201231"})
    assert announced and all("20200101" <= r["ann_date"] <= "20201231" for r in announced)


def test_text_fields_carry_nulls_and_awkward_characters() -> None:
    company = DS.rows("stock_company", {})
    text = "".join(str(r[f]) for r in company for f in ("introduction", "com_name", "office"))
    for needle in ('"', "\t", "\n", "\\", "\U0001f680", "\r\n"):
        assert needle in text, repr(needle)
    assert any(r["secretary"] is None for r in company)
    assert any(r["employees"] is None for r in company)
    seats = {r["exalter"] for r in DS.rows("top_inst", {"trade_date": DAY})}
    reasons = "".join(
        str(r["change_reason"]) for r in DS.rows("forecast_vip", {"period": "20231231"})
    )
    assert "\t" in reasons and "\\" in reasons and "\n" in reasons
    desc = "".join(str(r["desc"]) for r in DS.rows("index_basic", {"market": "SSE"}))
    assert '"' in desc and "\t" in desc
    assert seats


def test_cyq_perf_costs_are_ordered() -> None:
    rows = DS.rows("cyq_perf", {"trade_date": DAY})
    for r in rows:
        costs = [r[f"cost_{q}pct"] for q in (5, 15, 50, 85, 95)]
        assert r["his_low"] <= costs[0] and costs == sorted(costs) and costs[-1] <= r["his_high"]
        assert 0 <= r["winner_rate"] <= 100
    assert DS.rows("cyq_perf", {"trade_date": "20171229"}) == []  # history starts in 2018
