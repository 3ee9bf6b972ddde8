"""Late and partial publication: per API and day, unpublished / partial / published, set
in-process or from another process, seen through the real tushare client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from atm_assets.sandbox import RemoteSandbox, SandboxDataset, SandboxServer

TOKEN = "publication-token"
SIZES = {"SSE:L": 200, "SZSE:L": 200, "BSE:L": 20}
DAY = "20240614"
NEXT = "20240617"


@pytest.fixture
def sb() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxDataset(sizes=SIZES), token=TOKEN) as server:
        yield server


def test_a_day_goes_from_unpublished_to_partial_to_published(sb: SandboxServer) -> None:
    client = sb.client()
    full = client.query("daily", trade_date=DAY)
    assert len(full) > 300
    sb.set_publication("daily", DAY, "unpublished")
    assert sb.dataset.is_open(DAY) and client.query("daily", trade_date=DAY).empty
    # Other days and other APIs are untouched.
    assert not client.query("daily", trade_date=NEXT).empty
    assert len(client.query("adj_factor", trade_date=DAY)) == len(full)
    # Ranges lose the day too.
    week = client.query("daily", start_date="20240610", end_date=NEXT)
    assert DAY not in set(week["trade_date"]) and NEXT in set(week["trade_date"])

    sb.set_publication("daily", DAY, "partial", count=100)
    part = client.query("daily", trade_date=DAY)
    assert len(part) == 100 and set(part["ts_code"]) < set(full["ts_code"])
    # Every query sees the same subset: a stock of it answers, one outside it does not.
    inside = part["ts_code"].iloc[0]
    outside = sorted(set(full["ts_code"]) - set(part["ts_code"]))[0]
    assert len(client.query("daily", ts_code=inside, trade_date=DAY)) == 1
    assert client.query("daily", ts_code=outside, trade_date=DAY).empty
    # Paging walks the partial answer only.
    page = client.query("daily", trade_date=DAY, limit=60)
    assert len(page) == 60 and set(page["ts_code"]) <= set(part["ts_code"])

    sb.set_publication("daily", DAY, "partial", fraction=0.5)
    assert len(client.query("daily", trade_date=DAY)) == round(len(full) / 2)
    sb.set_publication("daily", DAY, "published")
    assert len(client.query("daily", trade_date=DAY)) == len(full)
    assert sb.publication() == []


def test_ground_truth_stays_whole_and_published_rows_match_the_answer(sb: SandboxServer) -> None:
    sb.set_publication("top_inst", DAY, "partial", count=7)
    truth = sb.dataset.rows("top_inst", {"trade_date": DAY})
    out = sb.dataset.published_rows("top_inst", {"trade_date": DAY})
    answer = sb.client().query("top_inst", trade_date=DAY)
    assert len(truth) > 7 and len(out) == len(answer) == 7
    assert list(answer["exalter"]) == [r["exalter"] for r in out]


def test_reports_are_published_by_announcement_day(sb: SandboxServer) -> None:
    rows = sb.dataset.rows("income_vip", {"period": "20231231"})
    ann = rows[0]["ann_date"]
    same_day = [r for r in rows if r["ann_date"] == ann]
    sb.set_publication("income_vip", ann, "unpublished")
    answer = sb.client().query("income_vip", period="20231231")
    assert len(answer) == len(rows) - len(same_day)
    # The per-company API is its own API: it is still published.
    code = same_day[0]["ts_code"]
    assert not sb.client().query("income", ts_code=code, period="20231231").empty
    # A period can be held back by naming the column instead.
    sb.set_publication("income", "20231231", "unpublished", column="end_date")
    assert sb.client().query("income", ts_code=code, period="20231231").empty
    assert not sb.client().query("income", ts_code=code, period="20230930").empty


def test_bad_settings_are_refused(sb: SandboxServer) -> None:
    with pytest.raises(ValueError, match="count or fraction"):
        sb.set_publication("daily", DAY, "partial")
    with pytest.raises(ValueError, match="unknown publication state"):
        sb.set_publication("daily", DAY, "later")
    with pytest.raises(ValueError, match="unknown api"):
        sb.set_publication("nope", DAY, "unpublished")
    with pytest.raises(ValueError, match="published whole"):
        sb.set_publication("stock_basic", DAY, "unpublished")
    bad = requests.post(
        f"{sb.control_url}/set_publication",
        json={"api": "daily", "day": "2024-06-14", "state": "unpublished"},
        timeout=5,
    )
    assert bad.status_code == 400


def test_another_process_flips_publication_and_fidelity(sb: SandboxServer) -> None:
    remote = RemoteSandbox(sb.url)
    client = sb.client()
    full = len(client.query("moneyflow", trade_date=DAY))
    remote.set_publication("moneyflow", DAY, "partial", count=25)
    assert len(client.query("moneyflow", trade_date=DAY)) == 25
    listed = remote.publication()
    assert listed == [
        {
            "api": "moneyflow",
            "day": DAY,
            "state": "partial",
            "count": 25,
            "fraction": None,
            "column": None,
        }
    ]
    assert remote.state()["publication"] == listed
    remote.set_publication("moneyflow", DAY, "unpublished")
    assert client.query("moneyflow", trade_date=DAY).empty
    remote.clear_publication("moneyflow")
    assert len(client.query("moneyflow", trade_date=DAY)) == full

    remote.set_fidelity("real")
    assert remote.state()["fidelity"] == "real"
    assert "prem_earned" in client.query("income_vip", period="20231231").columns
    remote.set_fidelity(quirks={"documented_fields": False})
    assert remote.state()["quirks"]["documented_fields"] is False
    remote.set_publication("daily", DAY, "unpublished")
    remote.reset()
    assert remote.state()["fidelity"] == "simple" and remote.publication() == []
