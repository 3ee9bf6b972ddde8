"""Fidelity real through the real tushare client: each of Tushare's quirks is observable, and
fidelity simple (the default) keeps the sandbox's former answers."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import requests

from atm_assets.sandbox import API_SPECS, Fidelity, SandboxDataset, SandboxServer
from atm_assets.sandbox.__main__ import _parser, _quirk
from atm_assets.sandbox.world import QUIRKS

TOKEN = "fidelity-token"
SIZES = {"SSE:L": 300, "SZSE:L": 300, "BSE:L": 40, "SSE:D": 10, "SZSE:D": 10}
SIMPLE = SandboxDataset(sizes=SIZES)
REAL = SIMPLE.with_fidelity("real")
DAYS = ("20240614", "20240613", "20240612", "20240611", "20240607", "20240606")
STATEMENT_KEY = ("ts_code", "ann_date", "f_ann_date", "end_date", "report_type")


@pytest.fixture(scope="module")
def real() -> Iterator[SandboxServer]:
    with SandboxServer(REAL, token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def simple() -> Iterator[SandboxServer]:
    with SandboxServer(SIMPLE, token=TOKEN) as server:
        yield server


def _post(sb: SandboxServer, api: str, fields: str = "", **params: Any) -> dict[str, Any]:
    body = {"api_name": api, "token": TOKEN, "params": params, "fields": fields}
    resp = requests.post(f"{sb.url}/{api}", json=body, timeout=30)
    resp.raise_for_status()
    return resp.json()


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in df.to_dict("records")
    ]


def _corrected(ds: SandboxDataset) -> dict[str, Any]:
    """A report that was corrected: two report_type 1 rows of one company and period."""
    rows = ds.rows("income_vip", {"period": "20231231"})
    pairs = Counter(r["ts_code"] for r in rows)
    code = next(c for c, n in pairs.items() if n == 2)
    return next(r for r in rows if r["ts_code"] == code)


def test_simple_is_the_default_and_real_turns_every_quirk_on() -> None:
    assert SandboxServer().dataset.fidelity.name == "simple"
    assert SandboxDataset().fidelity == Fidelity()
    assert REAL.fidelity.quirks() == dict.fromkeys(QUIRKS, True)
    assert Fidelity.parse({"repeated_rows": True}).name == "custom"
    with pytest.raises(ValueError, match="unknown quirk"):
        Fidelity().with_quirks({"nope": True})


def test_a_correction_repeats_with_the_same_dates_told_apart_by_update_flag(
    real: SandboxServer, simple: SandboxServer
) -> None:
    code = _corrected(REAL)["ts_code"]
    fields = "ts_code,ann_date,f_ann_date,end_date,report_type,update_flag,revenue"
    df = real.client().query("income", ts_code=code, period="20231231", fields=fields)
    assert len(df) == 2
    assert df[list(STATEMENT_KEY)].drop_duplicates().shape[0] == 1, "same key-like columns"
    assert sorted(df["update_flag"]) == ["0", "1"]
    assert df["revenue"].nunique() == 2, "the correction moved the figures"
    # Fidelity simple dates the correction later (its own f_ann_date).
    old = simple.client().query("income", ts_code=code, period="20231231", fields=fields)
    assert old["f_ann_date"].nunique() == 2


def test_fina_indicator_repeats_a_corrected_period_under_one_ann_date(real: SandboxServer) -> None:
    code = _corrected(REAL)["ts_code"]
    df = real.client().query(
        "fina_indicator", ts_code=code, period="20231231", fields="ts_code,ann_date,eps"
    )
    assert len(df) == 2 and df["ann_date"].nunique() == 1
    assert "update_flag" not in df.columns, "update_flag must be asked for (doc 79)"
    flagged = real.client().query(
        "fina_indicator", ts_code=code, period="20231231", fields="ts_code,update_flag"
    )
    assert sorted(flagged["update_flag"]) == ["0", "1"]


def _restated() -> tuple[str, str]:
    for period in ("20220630", "20221231", "20230630"):
        rows = REAL.rows("income_vip", {"period": period, "report_type": "4"})
        if rows:
            return rows[0]["ts_code"], period
    raise AssertionError("no restated report in the sample periods")


def test_every_documented_report_type_is_served_when_asked(
    real: SandboxServer, simple: SandboxServer
) -> None:
    code, period = _restated()
    client = real.client()
    fields = "ts_code,ann_date,end_date,report_type,revenue,basic_eps"
    latest = client.query("income", ts_code=code, period=period, fields=fields)
    restated = client.query("income", ts_code=code, period=period, report_type="4", fields=fields)
    original = client.query("income", ts_code=code, period=period, report_type="5", fields=fields)
    # report_type 5 keeps the figures the restatement replaced, published with it.
    assert list(original["report_type"]) == ["5"]
    assert original["revenue"].iloc[0] == latest["revenue"].iloc[-1]
    assert original["ann_date"].iloc[0] == restated["ann_date"].iloc[0]
    parent = client.query("income", ts_code=code, period=period, report_type="6", fields=fields)
    assert 0 < parent["revenue"].iloc[-1] < latest["revenue"].iloc[-1]
    assert parent["basic_eps"].isna().all()
    # report_type 2: the single quarter, the cumulative figure less the previous quarter's.
    single = client.query("income", ts_code=code, period=period, report_type="2", fields=fields)
    before = f"{period[:4]}{'0331' if period.endswith('0630') else '0930'}"
    prev = client.query("income", ts_code=code, period=before, fields=fields)
    expected = latest["revenue"].iloc[-1] - prev["revenue"].iloc[-1]
    assert single["revenue"].iloc[-1] == pytest.approx(expected, abs=0.01)
    sheet = client.query("balancesheet", ts_code=code, period=period, report_type="2")
    assert sheet.empty, "a balance sheet has no single quarter"
    assert simple.client().query("income", ts_code=code, period=period, report_type="5").empty


def test_financial_answers_follow_the_documented_column_order(
    real: SandboxServer, simple: SandboxServer
) -> None:
    code = _corrected(REAL)["ts_code"]
    asked = "n_income_attr_p,update_flag,ts_code,nope,ann_date,revenue"
    df = real.client().query("income", ts_code=code, fields=asked)
    assert list(df.columns) == ["ts_code", "ann_date", "revenue", "n_income_attr_p", "update_flag"]
    df = simple.client().query("income", ts_code=code, fields=asked)
    assert list(df.columns) == ["n_income_attr_p", "update_flag", "ts_code", "ann_date", "revenue"]
    # Other APIs keep the request's order in both worlds.
    daily = real.client().query("daily", trade_date=DAYS[0], fields="close,ts_code")
    assert list(daily.columns) == ["close", "ts_code"]


def test_real_serves_every_documented_field_with_the_documented_defaults(
    real: SandboxServer, simple: SandboxServer
) -> None:
    code = _corrected(REAL)["ts_code"]
    doc = API_SPECS["income"].documented
    df = real.client().query("income", ts_code=code)
    assert list(df.columns) == list(doc.default_fields)
    assert df["prem_earned"].isna().all(), "documented but not generated: null"
    assert "net_after_nr_lp_correct" not in df.columns
    assert len(simple.client().query("income", ts_code=code).columns) == len(
        API_SPECS["income"].fields
    )
    express = real.client().query("express_vip", period="20231231")
    assert "yoy_sales" not in express.columns and "update_flag" in express.columns


def test_top_inst_repeats_institution_seats_and_has_null_rows(
    real: SandboxServer, simple: SandboxServer
) -> None:
    key = ["trade_date", "ts_code", "exalter", "side", "reason"]
    frames = [real.client().query("top_inst", trade_date=day) for day in DAYS]
    df = pd.concat(frames)
    repeated = df[df.duplicated(key, keep=False)]
    assert not repeated.empty and set(repeated["exalter"]) == {"机构专用"}
    sides = repeated.groupby(["trade_date", "ts_code", "reason", "side"]).size()
    assert {3, 2} <= set(sides), "3 buying and 2 selling 机构专用 seats, as in #1242"
    assert df["side"].isna().any() and df["buy_rate"].isna().any()
    plain = pd.concat(simple.client().query("top_inst", trade_date=day) for day in DAYS)
    assert not plain.duplicated(key).any()


def test_block_trade_and_namechange_repeat_identical_rows(
    real: SandboxServer, simple: SandboxServer
) -> None:
    trades = pd.concat(real.client().query("block_trade", trade_date=day) for day in DAYS)
    assert trades.duplicated(keep=False).any()
    plain = pd.concat(simple.client().query("block_trade", trade_date=day) for day in DAYS)
    assert not plain.duplicated().any()
    names = real.client().query("namechange")
    twice = names[names.duplicated(keep=False)]
    assert not twice.empty and twice["end_date"].isna().all(), "open-ended rows repeat"
    assert not simple.client().query("namechange").duplicated().any()


def test_dividend_repeats_implemented_rows_identically(
    real: SandboxServer, simple: SandboxServer
) -> None:
    """Two or three identical 实施 rows of one company and period (#1271, #1900; #1133)."""
    df = real.client().query("dividend", end_date="20231231")
    twice = df[df.duplicated(keep=False)]
    assert not twice.empty and set(twice["div_proc"]) == {"实施"}
    copies = twice.groupby(["ts_code", "end_date"]).size()
    assert set(copies) == {2, 3}
    # The same rows each time: the repeats are part of the world, not of one answer.
    again = real.client().query("dividend", end_date="20231231")
    assert again.equals(df)
    assert len(df) == len(REAL.rows("dividend", {"end_date": "20231231"}))
    assert not simple.client().query("dividend", end_date="20231231").duplicated().any()


def test_stk_limit_lists_funds_and_b_shares_beyond_one_page() -> None:
    with SandboxServer(SandboxDataset(fidelity="real"), token=TOKEN) as sb:
        first = _post(sb, "stk_limit", trade_date=DAYS[0], limit=6000)["data"]
        assert len(first["items"]) == 5800 and first["has_more"] is True
        df = sb.client().query("stk_limit", trade_date=DAYS[0], offset=5800)
        total = 5800 + len(df)
        assert 7000 < total < 8500
        codes = {r[1] for r in first["items"]} | set(df["ts_code"])
        assert any(c.startswith("900") for c in codes), "B shares"
        assert any(c.startswith(("51", "159")) for c in codes), "funds"
        assert total == len(sb.dataset.rows("stk_limit", {"trade_date": DAYS[0]}))
    assert len(SandboxDataset().rows("stk_limit", {"trade_date": DAYS[0]})) < 5800


def test_an_undocumented_cap_answers_less_than_asked() -> None:
    params = {"period": "20231231", "fields": "ts_code,ann_date,end_date,eps"}
    real, simple = SandboxDataset(fidelity="real"), SandboxDataset()  # default sizes
    total = len(real.rows("fina_indicator_vip", {"period": "20231231"}))
    assert total > 4000
    assert API_SPECS["fina_indicator_vip"].documented.cap_source == "undocumented"
    with SandboxServer(real, token=TOKEN) as sb:
        first = _post(sb, "fina_indicator_vip", limit=6000, **params)["data"]
        assert len(first["items"]) == 2000 and first["has_more"] is True
        # Offset paging still walks the whole answer, 2000 rows at a time.
        got = len(first["items"])
        while True:
            page = _post(sb, "fina_indicator_vip", limit=6000, offset=got, **params)["data"]
            got += len(page["items"])
            if not page["has_more"]:
                break
        assert got == total
    with SandboxServer(simple, token=TOKEN) as sb:
        answer = _post(sb, "fina_indicator_vip", limit=6000, **params)["data"]
        assert len(answer["items"]) > 4000 and answer["has_more"] is False


def test_real_requires_the_documented_parameters(
    real: SandboxServer, simple: SandboxServer
) -> None:
    with pytest.raises(Exception, match="必填参数ts_code不能为空"):
        real.client().query("cyq_perf", trade_date=DAYS[0])
    assert not simple.client().query("cyq_perf", trade_date=DAYS[0]).empty


def test_ground_truth_holds_every_row_of_the_real_answer(real: SandboxServer) -> None:
    """Paging through the answer gives exactly rows(): duplicates and corrections included."""
    truth = REAL.rows("income_vip", {"period": "20231231"})
    fields = ",".join(API_SPECS["income_vip"].served_fields(REAL.fidelity))
    got: list[dict[str, Any]] = []
    while True:
        df = real.client().query(
            "income_vip", period="20231231", fields=fields, offset=len(got), limit=300
        )
        got += _records(df)
        if len(df) < 300:
            break
    assert len(got) == len(truth)
    key = [tuple(r[k] for k in STATEMENT_KEY) for r in truth]
    assert len(set(key)) < len(key), "the truth repeats key-like columns"
    assert Counter(key) == Counter(tuple(r[k] for k in STATEMENT_KEY) for r in got)
    assert [r["revenue"] for r in got] == [r["revenue"] for r in truth]


def test_cli_flags_choose_the_world() -> None:
    args = _parser().parse_args(["--fidelity", "real", "--quirk", "repeated_rows=off"])
    world = Fidelity.named(args.fidelity).with_quirks(dict(map(_quirk, args.quirk)))
    assert world.documented_fields and not world.repeated_rows
    assert _parser().parse_args([]).fidelity == "simple"
    with pytest.raises(ValueError):
        _quirk("repeated_rows")


def test_set_fidelity_switches_a_running_sandbox() -> None:
    with SandboxServer(SIMPLE, token=TOKEN, fidelity="real") as sb:
        assert sb.state()["fidelity"] == "real"
        sb.set_fidelity(quirks={"documented_fields": False})
        assert sb.state()["fidelity"] == "custom"
        assert sb.state()["quirks"]["documented_fields"] is False
        sb.set_fidelity("simple")
        assert sb.dataset.fidelity == Fidelity()
        sb.set_fidelity("real")
        sb.reset()
        assert sb.state()["fidelity"] == "real", "reset returns to the constructor's fidelity"
