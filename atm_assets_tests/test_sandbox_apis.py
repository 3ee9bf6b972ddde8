"""Every served API through the real tushare client: ground truth, fields, required
parameters, caps, paging and unique keys, parametrised over the API registry."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import requests

from atm_assets.sandbox import API_SPECS, SandboxDataset, SandboxServer

TOKEN = "apis-token"
# A few hundred stocks: every per-date API has rows, and answers stay small and fast.
SIZES = {
    "SSE:L": 400,
    "SZSE:L": 400,
    "BSE:L": 60,
    "SSE:D": 20,
    "SZSE:D": 20,
    "BSE:D": 4,
    "SSE:P": 2,
    "SZSE:P": 2,
    "BSE:P": 1,
    "SSE:G": 2,
    "SZSE:G": 2,
    "BSE:G": 1,
}
DAY = "20240614"
DATASET = SandboxDataset(sizes=SIZES)


def _company_with(api: str, period: str = "20231231") -> str:
    return DATASET.rows(f"{api}_vip", {"period": period})[0]["ts_code"]


def _old_company() -> str:
    return next(r["ts_code"] for r in DATASET.stock_basic("SSE", "L") if r["list_date"] < "2012")


SAMPLES: dict[str, dict[str, Any]] = {
    "stock_basic": {"exchange": "SSE"},
    "trade_cal": {"start_date": "20240101", "end_date": "20240229"},
    "daily": {"trade_date": DAY},
    "adj_factor": {"trade_date": DAY},
    "weekly": {"trade_date": DAY},
    "monthly": {"trade_date": "20240628"},
    "daily_basic": {"trade_date": DAY},
    "stk_limit": {"trade_date": DAY},
    "suspend_d": {"start_date": "20240501", "end_date": DAY},
    "moneyflow": {"trade_date": DAY},
    "margin_detail": {"trade_date": DAY},
    "top_list": {"trade_date": DAY},
    "top_inst": {"trade_date": DAY},
    "block_trade": {"trade_date": DAY},
    "moneyflow_hsgt": {"start_date": "20240101", "end_date": "20240331"},
    "cyq_perf": {"trade_date": DAY},
    "namechange": {},
    "stock_company": {"exchange": "SZSE"},
    "index_basic": {"market": "SW"},
    "index_daily": {"ts_code": "000300.SH", "start_date": "20240101", "end_date": "20240630"},
    "index_weight": {"index_code": "000300.SH", "start_date": "20240101", "end_date": "20240331"},
    "index_dailybasic": {"trade_date": DAY},
    "income": {"ts_code": _old_company()},
    "balancesheet": {"ts_code": _old_company()},
    "cashflow": {"ts_code": _old_company()},
    "fina_indicator": {"ts_code": _old_company()},
    "forecast": {"ts_code": _company_with("forecast")},
    "express": {"ts_code": _company_with("express")},
    "income_vip": {"period": "20231231"},
    "balancesheet_vip": {"period": "20230630"},
    "cashflow_vip": {"period": "20230930"},
    "fina_indicator_vip": {"period": "20231231"},
    "forecast_vip": {"period": "20231231"},
    "express_vip": {"period": "20231231"},
    "dividend": {"end_date": "20231231"},
}
# Queries answering more rows than the API's cap, to see the cap and has_more.
OVER_CAP: dict[str, dict[str, Any]] = {
    "daily": {"start_date": "20240601", "end_date": "20240630"},
    "adj_factor": {"start_date": "20240601", "end_date": "20240630"},
    "daily_basic": {
        "trade_date": "",
        "start_date": "20240601",
        "end_date": "20240630",
        "ts_code": ",".join(r["ts_code"] for r in DATASET.stock_basic()[:400]),
    },
    "stk_limit": {"start_date": "20240101", "end_date": "20240331"},
    "moneyflow_hsgt": {"start_date": "20150101", "end_date": "20171231"},
    "monthly": {
        "ts_code": ",".join(r["ts_code"] for r in DATASET.stock_basic()[:240]),
        "start_date": "20230101",
        "end_date": "20241231",
    },
    "index_dailybasic": {"ts_code": "000001.SH"},
    "balancesheet": {
        "ts_code": ",".join(r["ts_code"] for r in DATASET.stock_basic("SSE", "L")[:4])
    },
    "dividend": {"ts_code": ",".join(r["ts_code"] for r in DATASET.stock_basic()[:150])},
    "trade_cal": {},
}


@pytest.fixture(scope="module")
def srv() -> Iterator[SandboxServer]:
    with SandboxServer(DATASET, token=TOKEN) as server:
        yield server


def _post(srv: SandboxServer, api: str, fields: str = "", **params: Any) -> dict[str, Any]:
    body = {"api_name": api, "token": TOKEN, "params": params, "fields": fields}
    resp = requests.post(f"{srv.url}/{api}", json=body, timeout=30)
    resp.raise_for_status()
    return resp.json()


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in df.to_dict("records")
    ]


def test_every_api_has_a_sample_query() -> None:
    assert sorted(SAMPLES) == sorted(API_SPECS)
    assert len(API_SPECS) == 35


@pytest.mark.parametrize("api", sorted(SAMPLES))
def test_answer_equals_ground_truth(srv: SandboxServer, api: str) -> None:
    spec = API_SPECS[api]
    truth = DATASET.rows(api, SAMPLES[api])
    assert truth, f"{api}: the sample query should have rows"
    assert len(truth) <= spec.max_rows, "samples stay within one page"
    df = srv.client().query(api, fields=",".join(spec.fields), **SAMPLES[api])
    assert list(df.columns) == list(spec.fields)
    assert _records(df) == truth
    # The documented unique key holds.
    keys = [tuple(r[k] for k in spec.unique_key) for r in truth]
    assert len(keys) == len(set(keys)), f"{api}: duplicate {spec.unique_key}"
    assert all(None not in key for key in keys)


@pytest.mark.parametrize("api", sorted(SAMPLES))
def test_default_and_requested_fields(srv: SandboxServer, api: str) -> None:
    spec = API_SPECS[api]
    default = _post(srv, api, **SAMPLES[api], limit=3)["data"]["fields"]
    assert default == list(spec.default_fields or spec.fields)
    n = min(4, len(spec.fields))
    wanted = list(reversed(spec.fields))[:n] + ["no_such_field"]
    answer = _post(srv, api, ",".join(wanted), **SAMPLES[api], limit=3)
    assert answer["data"]["fields"] == wanted[:n]
    assert all(len(item) == n for item in answer["data"]["items"])


@pytest.mark.parametrize("api", sorted(a for a in SAMPLES if API_SPECS[a].required))
def test_missing_required_parameters_answer_minus_2002(srv: SandboxServer, api: str) -> None:
    spec = API_SPECS[api]
    for group in spec.required:
        params = {k: v for k, v in SAMPLES[api].items() if k not in group}
        # Other groups stay satisfied so that exactly this one is missing.
        for other in spec.required:
            if other != group and not any(params.get(p) for p in other):
                params[other[0]] = SAMPLES[api].get(other[0], DAY)
        answer = _post(srv, api, **params)
        assert answer["code"] == -2002 and answer["data"] is None
        assert all(name in answer["msg"] for name in group)
        with pytest.raises(Exception, match="-2002|必填|至少"):
            srv.client().query(api, **params)
        with pytest.raises(ValueError):
            DATASET.rows(api, params)


@pytest.mark.parametrize("api", sorted(OVER_CAP))
def test_row_cap(srv: SandboxServer, api: str) -> None:
    cap = API_SPECS[api].max_rows
    assert len(DATASET.rows(api, OVER_CAP[api])) > cap
    answer = _post(srv, api, "", **OVER_CAP[api])
    assert len(answer["data"]["items"]) == cap and answer["data"]["has_more"] is True
    bigger = _post(srv, api, "", **OVER_CAP[api], limit=cap + 500)
    assert len(bigger["data"]["items"]) == cap


@pytest.mark.parametrize("api", sorted(a for a in SAMPLES if API_SPECS[a].offset_paging))
def test_offset_paging_walks_the_whole_answer(srv: SandboxServer, api: str) -> None:
    spec = API_SPECS[api]
    truth = DATASET.rows(api, SAMPLES[api])
    page_size = max(1, len(truth) // 3)
    items: list[list[Any]] = []
    offset = 0
    while True:
        answer = _post(srv, api, ",".join(spec.fields), **SAMPLES[api], limit=page_size,
                       offset=offset)  # fmt: skip
        page = answer["data"]["items"]
        items += page
        offset += len(page)
        if not answer["data"]["has_more"]:
            break
    assert items == [[r[f] for f in spec.fields] for r in truth]


def test_daily_ignores_offset(srv: SandboxServer) -> None:
    assert not API_SPECS["daily"].offset_paging
    first = _post(srv, "daily", "ts_code", trade_date=DAY, limit=10)
    later = _post(srv, "daily", "ts_code", trade_date=DAY, limit=10, offset=10)
    assert first["data"]["items"] == later["data"]["items"]
    assert first["data"]["has_more"] is True
    # adj_factor, on the same rows, pages.
    moved = _post(srv, "adj_factor", "ts_code", trade_date=DAY, limit=10, offset=10)
    assert moved["data"]["items"] != first["data"]["items"]


def test_sizes_shrink_every_per_date_api() -> None:
    tiny = SandboxDataset(sizes={f"{e}:{s}": 3 for e in ("SSE", "SZSE", "BSE") for s in "LDPG"})
    for api in ("daily_basic", "stk_limit", "moneyflow", "cyq_perf", "weekly"):
        full = len(DATASET.rows(api, {"trade_date": DAY}))
        small = len(tiny.rows(api, {"trade_date": DAY}))
        assert 0 < small < full / 20, api
    assert len(tiny.rows("income_vip", {"period": "20231231"})) <= 12
