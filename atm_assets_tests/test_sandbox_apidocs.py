"""apis.yaml, the APIs as Tushare documents them, describes every served API completely."""

from __future__ import annotations

import pytest

from atm_assets.sandbox import API_SPECS
from atm_assets.sandbox.apidoc import README, readme_block, render_api_table
from atm_assets.sandbox.apidocs import APIS_FILE, api_docs

FINANCIAL = ("income", "balancesheet", "cashflow", "fina_indicator")


def test_the_data_file_describes_exactly_the_served_apis() -> None:
    assert sorted(api_docs()) == sorted(API_SPECS)
    assert len(API_SPECS) == 35


@pytest.mark.parametrize("name", sorted(API_SPECS))
def test_every_api_has_doc_id_fields_params_and_cap(name: str) -> None:
    doc = API_SPECS[name].documented
    assert isinstance(doc.doc_id, int) and doc.url is not None
    assert doc.title and doc.fields and doc.cap > 0 and doc.cap_source
    assert set(doc.default_fields) <= set(doc.fields)
    assert len(set(doc.fields)) == len(doc.fields), "a field is listed twice"
    assert doc.params or name in ("trade_cal",) or not doc.required
    # Every column the sandbox generates is a documented field.
    assert set(API_SPECS[name].fields) <= set(doc.fields)
    if doc.publication_key is not None:
        assert doc.publication_key in doc.fields


def test_documented_details_that_matter_to_clients() -> None:
    docs = api_docs()
    assert not docs["daily"].offset_paging
    assert docs["income"].cap == 500 and docs["balancesheet"].cap == 100
    assert docs["stk_limit"].cap == 5800 and docs["fina_indicator"].cap == 100
    assert "update_flag" not in docs["fina_indicator"].default_fields
    assert docs["stk_limit"].default_fields == ("trade_date", "ts_code", "up_limit", "down_limit")
    assert docs["cyq_perf"].required == (("ts_code",),)
    assert docs["income_vip"].fields == docs["income"].fields
    assert docs["income_vip"].points == 5000 and docs["income"].points == 2000
    assert docs["fina_indicator_vip"].real_cap == 2000
    assert not docs["fina_indicator_vip"].cap_documented and docs["fina_indicator"].real_cap is None
    for name in FINANCIAL:
        assert docs[name].answer_order == "documented"
    assert docs["income"].fields[:4] == ("ts_code", "ann_date", "f_ann_date", "end_date")


def test_the_readme_table_is_generated_from_the_data_file() -> None:
    block = readme_block(README.read_text(encoding="utf-8"))
    assert block == render_api_table()
    for name, doc in api_docs().items():
        assert f"| `{name}` | [{doc.doc_id}]" in block
    assert "net_after_nr_lp_correct*" in block, "fields the docs leave out of the default set"
    assert APIS_FILE.name == "apis.yaml"
