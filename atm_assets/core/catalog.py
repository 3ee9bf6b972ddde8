"""The Tushare catalog: every dataset ATM syncs, one declaration each, and the user's own."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from atm_assets.core.datasets import (
    ADJ_FACTOR,
    COLUMN_TYPES,
    DAILY,
    DAILY_HFQ,
    SCHEMES,
    STOCK_BASIC,
    STOCK_UNIVERSE,
    TRADE_CAL,
    Column,
    TableSpec,
)
from atm_assets.core.errors import ConfigError
from atm_assets.core.settings import Settings, yaml_problem

DATASETS_ENV = "ATM_DATASETS"
DEFAULT_DATASETS_FILE = "config/datasets.yaml"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def columns(text: str) -> tuple[Column, ...]:
    """`"ts_code trade_date:date close:float"`: fields in answer order, `str` unless typed."""
    out = []
    for word in text.split():
        name, _, kind = word.partition(":")
        out.append(Column(name, kind or "str"))  # type: ignore[arg-type]
    return tuple(out)


def dataset(name: str, fields: str, key: tuple[str, ...], **declared: Any) -> TableSpec:
    """One catalog entry: the API is `name` unless given; key columns are never null."""
    cols = tuple(Column(c.name, c.type, nullable=c.name not in key) for c in columns(fields))
    declared.setdefault("api_name", name)
    return TableSpec(name=name, columns=cols, key=key, **declared)


_BAR = "ts_code trade_date:date close:float open:float high:float low:float pre_close:float "
_BAR += "change:float pct_chg:float vol:float amount:float"
_PER_DAY = {
    "scheme": "trade_date",
    "group": "market",
    "publication": "after_close",
    "partition_columns": ("trade_date",),
    # An open day that answers no rows is "not published yet" for four calendar days (a
    # Friday checked on Monday included; top_inst can still be missing the next day, #1570),
    # then final (Stock Connect flows are truly empty on Hong Kong holidays).
    "publication_lag_days": 4,
}
_PER_PERIOD = {
    "scheme": "period",
    "group": "financials",
    "publication": "evening",
    "points": 5000,
    "param_columns": (("period", "end_date"),),
    "noun": "reports",
    # Restatements come with the same quarter's report a year later, corrections of older
    # periods any time: a revision sync re-fetches the last five report periods.
    "revision_window": 5,
}


def _report_types(*types: int) -> tuple[tuple[tuple[str, str], ...], ...]:
    return tuple((("report_type", str(t)),) for t in types)


# Tushare answers income/balancesheet/cashflow with report_type 1 unless asked (doc 33's
# table): every documented type has its own call — 1 latest consolidated, 2 single quarter,
# 3 adjusted single quarter, 4 restated (a year on), 5 the original kept when restated, 6-12
# the parent company's. A balance sheet has no single-quarter types (2, 3, 7, 8).
_ALL_REPORT_TYPES = _report_types(*range(1, 13))
_BALANCE_REPORT_TYPES = _report_types(1, 4, 5, 6, 9, 10, 11, 12)
# A corrected report repeats with the same dates and report type, told apart by update_flag
# (waditu/tushare #1692, #1094, #1188): both versions are kept.
_STATEMENT_KEY = ("ts_code", "end_date", "report_type", "ann_date", "f_ann_date", "update_flag")
_STATEMENT_HEAD = "ts_code ann_date:date f_ann_date:date end_date:date report_type comp_type "
_STATEMENT_HEAD += "end_type "

BUILTIN: tuple[TableSpec, ...] = (
    # -- reference --
    STOCK_BASIC,
    TRADE_CAL,
    dataset(
        "namechange",
        "ts_code name start_date:date end_date:date ann_date:date change_reason",
        # No natural key: the service repeats some open-ended names (same stock, name and
        # start date); the table is replaced whole.
        (),
        description="Tushare namechange: every name a stock has had, with its dates.",
        max_rows=10000,
        doc_id=100,
        points=None,
    ),
    dataset(
        "stock_company",
        "ts_code com_name com_id exchange chairman manager secretary reg_capital:float "
        "setup_date:date province city introduction website email office employees:int "
        "main_business business_scope",
        ("ts_code",),
        description="Tushare stock_company: the listed companies' profiles.",
        max_rows=4500,
        noun="companies",
        doc_id=112,
    ),
    dataset(
        "index_basic",
        "ts_code name fullname market publisher index_type category base_date:date "
        "base_point:float list_date:date weight_rule desc exp_date:date",
        ("ts_code",),
        description="Tushare index_basic: the indices of each market (publisher).",
        scheme="values",
        value_param="market",
        values=("SSE", "SZSE", "CSI", "SW", "MSCI", "CICC", "OTH"),
        partition_columns=("market",),
        max_rows=8000,
        noun="indices",
        doc_id=94,
        points=None,
    ),
    # -- market, per trade date --
    DAILY,
    ADJ_FACTOR,
    dataset(
        "daily_basic",
        "ts_code trade_date:date close:float turnover_rate:float turnover_rate_f:float "
        "volume_ratio:float pe:float pe_ttm:float pb:float ps:float ps_ttm:float "
        "dv_ratio:float dv_ttm:float total_share:float float_share:float free_share:float "
        "total_mv:float circ_mv:float",
        ("ts_code", "trade_date"),
        description="Tushare daily_basic: valuation and turnover of every stock per day.",
        points=2000,
        late=True,
        **_PER_DAY,
        doc_id=32,
        revision_window=3,
        min_rows_ratio=0.9,
        covers="daily",
    ),
    dataset(
        "stk_limit",
        "trade_date:date ts_code pre_close:float up_limit:float down_limit:float",
        ("ts_code", "trade_date"),
        description="Tushare stk_limit: each stock's up and down price limits per day.",
        max_rows=5800,
        points=2000,
        **_PER_DAY,
        doc_id=183,
        min_rows_ratio=0.9,
    ),
    dataset(
        "suspend_d",
        "ts_code trade_date:date suspend_timing suspend_type",
        ("ts_code", "trade_date"),
        description="Tushare suspend_d: suspensions (S) and resumptions (R) per day.",
        max_rows=5000,
        **_PER_DAY,
        doc_id=214,
        points=None,
    ),
    dataset(
        "moneyflow",
        "ts_code trade_date:date buy_sm_vol:int buy_sm_amount:float sell_sm_vol:int "
        "sell_sm_amount:float buy_md_vol:int buy_md_amount:float sell_md_vol:int "
        "sell_md_amount:float buy_lg_vol:int buy_lg_amount:float sell_lg_vol:int "
        "sell_lg_amount:float buy_elg_vol:int buy_elg_amount:float sell_elg_vol:int "
        "sell_elg_amount:float net_mf_vol:int net_mf_amount:float",
        ("ts_code", "trade_date"),
        description="Tushare moneyflow: each stock's buy and sell flows by order size.",
        points=2000,
        **{**_PER_DAY, "publication": "evening"},
        doc_id=170,
        min_rows_ratio=0.9,
    ),
    dataset(
        "margin_detail",
        "trade_date:date ts_code name rzye:float rqye:float rzmre:float rqyl:float "
        "rzche:float rqchl:float rqmcl:float rzrqye:float",
        ("ts_code", "trade_date"),
        description="Tushare margin_detail: margin financing and securities lending per stock.",
        points=2000,
        **{**_PER_DAY, "publication": "next_morning"},
        doc_id=59,
        # The eligible stocks change by exchange announcements, a few at a time; SSE and SZSE
        # publish their halves separately, so a day holding one exchange's is caught.
        min_rows_ratio=0.9,
    ),
    dataset(
        "top_list",
        "trade_date:date ts_code name close:float pct_change:float turnover_rate:float "
        "amount:float l_sell:float l_buy:float l_amount:float net_amount:float "
        "net_rate:float amount_rate:float float_values:float reason",
        ("trade_date", "ts_code", "reason"),
        description="Tushare top_list: the daily dragon-tiger list (龙虎榜) with its reasons.",
        max_rows=10000,
        points=2000,
        **{**_PER_DAY, "publication": "evening"},
        doc_id=106,
    ),
    dataset(
        "top_inst",
        "trade_date:date ts_code exalter side buy:float buy_rate:float sell:float "
        "sell_rate:float net_buy:float reason",
        # No natural key: several 机构专用 seats on one side of one stock, day and reason are
        # identical in every column (waditu/tushare #1242), some rows are NULL (#1508).
        (),
        description="Tushare top_inst: the seats behind each dragon-tiger list entry.",
        max_rows=10000,
        points=5000,
        **{**_PER_DAY, "publication": "evening"},
        doc_id=107,
    ),
    dataset(
        "block_trade",
        "ts_code trade_date:date price:float vol:float amount:float buyer seller",
        # No natural key: identical trades repeat (doc 161's own sample); each day is
        # replaced whole.
        (),
        description="Tushare block_trade: block trades per day.",
        max_rows=1000,
        points=300,
        **{**_PER_DAY, "publication": "evening"},
        doc_id=161,
    ),
    dataset(
        "moneyflow_hsgt",
        "trade_date:date ggt_ss:float ggt_sz:float hgt:float sgt:float north_money:float "
        "south_money:float",
        ("trade_date",),
        description="Tushare moneyflow_hsgt: Stock Connect flows (north- and southbound).",
        max_rows=300,
        points=2000,
        **{**_PER_DAY, "publication": "evening"},
        doc_id=47,
        # One row a day (no ratio to judge), none on the open days Hong Kong is closed.
        empty_days=True,
    ),
    # -- market, per week and month --
    dataset(
        "weekly",
        _BAR,
        ("ts_code", "trade_date"),
        description="Tushare weekly: weekly bars, dated on each week's last trade date.",
        scheme="week",
        group="market",
        publication="evening",
        partition_columns=("trade_date",),
        points=2000,
        noun="bars",
        doc_id=144,
        publication_lag_days=4,
    ),
    dataset(
        "monthly",
        _BAR,
        ("ts_code", "trade_date"),
        description="Tushare monthly: monthly bars, dated on each month's last trade date.",
        scheme="month",
        group="market",
        publication="evening",
        partition_columns=("trade_date",),
        max_rows=4500,
        points=2000,
        noun="bars",
        doc_id=145,
        publication_lag_days=4,
    ),
    # -- indices --
    dataset(
        "index_daily",
        _BAR,
        ("ts_code", "trade_date"),
        description="Tushare index_daily: daily bars of the configured indices, by year.",
        scheme="index_year",
        group="indices",
        publication="after_close",
        max_rows=8000,
        points=2000,
        noun="bars",
        doc_id=95,
    ),
    dataset(
        "index_weight",
        "index_code con_code trade_date:date weight:float",
        ("index_code", "con_code", "trade_date"),
        description="Tushare index_weight: monthly constituent weights of the configured indices.",
        scheme="index_month",
        group="indices",
        publication="evening",
        points=2000,
        noun="weights",
        doc_id=96,
    ),
    dataset(
        "index_dailybasic",
        "ts_code trade_date:date total_mv:float float_mv:float total_share:float "
        "float_share:float free_share:float turnover_rate:float turnover_rate_f:float "
        "pe:float pe_ttm:float pb:float",
        ("ts_code", "trade_date"),
        description="Tushare index_dailybasic: valuation of the headline indices per day.",
        max_rows=3000,
        points=400,
        **{**_PER_DAY, "group": "indices", "publication": "evening"},
        doc_id=128,
        # A fixed set of headline indices (a dozen): the same count every day.
        min_rows_ratio=0.9,
    ),
    # -- financials, by report period, every published version --
    dataset(
        "income",
        _STATEMENT_HEAD + "basic_eps:float diluted_eps:float total_revenue:float revenue:float "
        "int_income:float total_cogs:float oper_cost:float sell_exp:float admin_exp:float "
        "fin_exp:float rd_exp:float operate_profit:float non_oper_income:float "
        "non_oper_exp:float total_profit:float income_tax:float n_income:float "
        "n_income_attr_p:float minority_gain:float update_flag",
        _STATEMENT_KEY,
        api_name="income_vip",
        description="Tushare income (income_vip): income statements, every published version.",
        variants=_ALL_REPORT_TYPES,
        known_from="f_ann_date",
        fact_key=("ts_code", "end_date", "report_type"),
        **_PER_PERIOD,
        doc_id=33,
    ),
    dataset(
        "balancesheet",
        _STATEMENT_HEAD + "total_share:float cap_rese:float undistr_porfit:float "
        "surplus_rese:float money_cap:float accounts_receiv:float inventories:float "
        "total_cur_assets:float fix_assets:float total_nca:float total_assets:float "
        "st_borr:float total_cur_liab:float lt_borr:float total_ncl:float total_liab:float "
        "minority_int:float total_hldr_eqy_exc_min_int:float total_hldr_eqy_inc_min_int:float "
        "total_liab_hldr_eqy:float update_flag",
        _STATEMENT_KEY,
        api_name="balancesheet_vip",
        description="Tushare balancesheet (balancesheet_vip): balance sheets, every version.",
        variants=_BALANCE_REPORT_TYPES,
        known_from="f_ann_date",
        fact_key=("ts_code", "end_date", "report_type"),
        **_PER_PERIOD,
        doc_id=36,
    ),
    dataset(
        "cashflow",
        "ts_code ann_date:date f_ann_date:date end_date:date comp_type report_type end_type "
        "net_profit:float finan_exp:float c_fr_sale_sg:float c_inf_fr_operate_a:float "
        "c_paid_goods_s:float c_paid_to_for_empl:float c_paid_for_taxes:float "
        "n_cashflow_act:float c_pay_acq_const_fiolta:float n_cashflow_inv_act:float "
        "c_recp_borrow:float c_pay_dist_dpcp_int_exp:float n_cash_flows_fnc_act:float "
        "n_incr_cash_cash_equ:float c_cash_equ_beg_period:float c_cash_equ_end_period:float "
        "free_cashflow:float update_flag",
        _STATEMENT_KEY,
        api_name="cashflow_vip",
        description="Tushare cashflow (cashflow_vip): cash flow statements, every version.",
        variants=_ALL_REPORT_TYPES,
        known_from="f_ann_date",
        fact_key=("ts_code", "end_date", "report_type"),
        **_PER_PERIOD,
        doc_id=44,
    ),
    dataset(
        "fina_indicator",
        "ts_code ann_date:date end_date:date eps:float dt_eps:float total_revenue_ps:float "
        "revenue_ps:float capital_rese_ps:float surplus_rese_ps:float undist_profit_ps:float "
        "extra_item:float profit_dedt:float gross_margin:float current_ratio:float "
        "quick_ratio:float cash_ratio:float assets_turn:float ebit:float bps:float "
        "ocfps:float roe:float roe_waa:float roa:float netprofit_margin:float "
        "grossprofit_margin:float debt_to_assets:float netprofit_yoy:float or_yoy:float "
        "update_flag",
        # A correction repeats the period under the same ann_date (waditu/tushare #821, #737):
        # update_flag tells them apart.
        ("ts_code", "end_date", "ann_date", "update_flag"),
        api_name="fina_indicator_vip",
        description="Tushare fina_indicator (fina_indicator_vip): financial ratios, every version.",
        known_from="ann_date",
        fact_key=("ts_code", "end_date"),
        **_PER_PERIOD,
        doc_id=79,
    ),
    dataset(
        "forecast",
        "ts_code ann_date:date end_date:date type p_change_min:float p_change_max:float "
        "net_profit_min:float net_profit_max:float last_parent_net:float "
        "first_ann_date:date summary change_reason update_flag",
        ("ts_code", "end_date", "ann_date"),
        api_name="forecast_vip",
        description="Tushare forecast (forecast_vip): earnings forecasts, every revision.",
        known_from="ann_date",
        fact_key=("ts_code", "end_date"),
        **_PER_PERIOD,
        doc_id=45,
    ),
    dataset(
        "express",
        "ts_code ann_date:date end_date:date revenue:float operate_profit:float "
        "total_profit:float n_income:float total_assets:float "
        "total_hldr_eqy_exc_min_int:float diluted_eps:float diluted_roe:float "
        "yoy_net_profit:float bps:float yoy_sales:float yoy_op:float yoy_tp:float "
        "yoy_dedu_np:float yoy_eps:float perf_summary is_audit:int remark update_flag",
        ("ts_code", "end_date", "ann_date"),
        api_name="express_vip",
        description="Tushare express (express_vip): preliminary results, every revision.",
        known_from="ann_date",
        fact_key=("ts_code", "end_date"),
        **_PER_PERIOD,
        doc_id=46,
    ),
    dataset(
        "dividend",
        "ts_code end_date:date ann_date:date div_proc stk_div:float stk_bo_rate:float "
        "stk_co_rate:float cash_div:float cash_div_tax:float record_date:date ex_date:date "
        "pay_date:date div_listdate:date imp_ann_date:date base_date:date base_share:float",
        # No natural key: the service answers some 实施 rows twice or three times, identical
        # in every column (waditu/tushare #1133, #1271, #1900); each period is replaced whole.
        (),
        description="Tushare dividend: dividend plans of each report period, every stage.",
        max_rows=2000,
        known_from="ann_date",
        fact_key=("ts_code", "end_date"),
        # dividend's end_date parameter is the report period itself.
        # Dividend stages (plan, approval, payment) follow each period through the next year.
        **{
            **_PER_PERIOD,
            "points": 2000,
            "param_columns": (),
            "value_param": "end_date",
            "revision_window": 4,
        },
        doc_id=103,
    ),
    # -- derived --
    DAILY_HFQ,
    STOCK_UNIVERSE,
)


def _declaration_error(where: str, name: str, problem: str) -> ConfigError:
    return ConfigError(f"{where}: dataset {name}: {problem}")


def user_dataset(where: str, name: Any, body: Any, taken: set[str]) -> TableSpec:
    """One dataset of the user's file, checked field by field."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{where}: dataset name {name!r} must be lower-case letters, digits and _ "
            "(it becomes a table name)"
        )
    if name in taken:
        raise _declaration_error(where, name, "the name clashes with a built-in dataset")
    if not isinstance(body, Mapping):
        raise _declaration_error(where, name, "expected a mapping of api, partition, key, columns")
    known = {
        "api",
        "partition",
        "key",
        "columns",
        "description",
        "max_rows",
        "offset_paging",
        "params",
        "empty_days",
    }
    unknown = sorted(set(body) - known)
    if unknown:
        raise _declaration_error(
            where,
            name,
            f"unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})",
        )
    api = body.get("api", name)
    if not isinstance(api, str) or not re.match(r"^[a-z][a-z0-9_]*$", api):
        raise _declaration_error(where, name, f"api: {api!r} is not a Tushare api_name")
    scheme = body.get("partition")
    user_schemes = [s for s in SCHEMES if s not in ("exchange_list_status", "values")]
    if scheme not in user_schemes:
        raise _declaration_error(
            where,
            name,
            f"partition: unknown scheme {scheme!r} (one of {', '.join(user_schemes)})",
        )
    cols = body.get("columns")
    if not isinstance(cols, Mapping) or not cols:
        raise _declaration_error(where, name, "columns: expected a mapping of field: type")
    for field, kind in cols.items():
        if not isinstance(field, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", field):
            raise _declaration_error(where, name, f"columns: {field!r} is not a field name")
        if kind not in COLUMN_TYPES:
            raise _declaration_error(
                where,
                name,
                f"columns.{field}: unknown type {kind!r} (one of {', '.join(COLUMN_TYPES)})",
            )
    key = body.get("key")
    if not isinstance(key, list) or not key or not all(isinstance(k, str) for k in key):
        raise _declaration_error(where, name, "key: expected a list of column names")
    missing = [k for k in key if k not in cols]
    if missing:
        raise _declaration_error(where, name, f"key: {', '.join(missing)} not among the columns")
    needs = {"trade_date": "trade_date", "week": "trade_date", "month": "trade_date"}
    needs.update({"exchange": "exchange", "index_month": "index_code", "index_year": "ts_code"})
    if scheme in needs and needs[scheme] not in cols:
        raise _declaration_error(
            where, name, f"partition {scheme} fills in {needs[scheme]}: declare that column"
        )
    max_rows = body.get("max_rows", 6000)
    if not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 1:
        raise _declaration_error(
            where, name, f"max_rows: expected a positive integer, got {max_rows!r}"
        )
    paging = body.get("offset_paging", True)
    if not isinstance(paging, bool):
        raise _declaration_error(where, name, f"offset_paging: expected true/false, got {paging!r}")
    empty_days = body.get("empty_days", False)
    if not isinstance(empty_days, bool):
        raise _declaration_error(
            where, name, f"empty_days: expected true/false, got {empty_days!r}"
        )
    params = body.get("params") or {}
    if not isinstance(params, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str | int) for k, v in params.items()
    ):
        raise _declaration_error(
            where, name, "params: expected a mapping of request parameter: value"
        )
    description = body.get("description") or f"Tushare {api} (declared in {where})."
    checked = {"trade_date": ("trade_date",), "week": ("trade_date",), "month": ("trade_date",)}
    checked["exchange"] = ("exchange",)
    return dataset(
        name,
        " ".join(f"{f}:{t}" for f, t in cols.items()),
        tuple(key),
        api_name=api,
        description=str(description),
        scheme=scheme,
        group="user",
        partition_columns=checked.get(scheme, ()),
        param_columns=(("period", "end_date"),) if scheme == "period" else (),
        max_rows=max_rows,
        offset_paging=paging,
        params=tuple((str(k), str(v)) for k, v in params.items()),
        empty_days=empty_days,
        user=True,
    )


def load_user_datasets(path: str | os.PathLike[str], taken: set[str]) -> list[TableSpec]:
    """The datasets of the user's file; every problem is one error naming file and field."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read datasets file {where}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as e:
        raise ConfigError(f"{where}: not valid YAML: {yaml_problem(e)}") from None
    if data is None:
        return []
    if not isinstance(data, Mapping) or set(data) - {"datasets"}:
        raise ConfigError(f"{where}: expected one top-level key, datasets")
    entries = data.get("datasets") or {}
    if not isinstance(entries, Mapping):
        raise ConfigError(f"{where}: datasets must be a mapping of name: declaration")
    return [user_dataset(where, name, body, taken) for name, body in entries.items()]


def datasets_file(settings: Settings) -> Path | None:
    """catalog.datasets_file / $ATM_DATASETS (must exist), else config/datasets.yaml if it
    exists, else none."""
    named = settings.catalog.datasets_file
    if named:
        if not Path(named).is_file():
            raise ConfigError(f"{DATASETS_ENV}={named}: no such datasets file")
        return Path(named)
    default = Path(DEFAULT_DATASETS_FILE)
    return default if default.is_file() else None


def build_catalog(path: str | os.PathLike[str] | None) -> dict[str, TableSpec]:
    entries = {d.name: d for d in BUILTIN}
    if path is not None:
        for user in load_user_datasets(path, set(entries)):
            entries[user.name] = user
    return entries


def catalog_for(settings: Settings) -> dict[str, TableSpec]:
    """Every dataset: the built-ins and the user's file, by name."""
    return build_catalog(datasets_file(settings))


@cache
def catalog() -> dict[str, TableSpec]:
    """The catalog of this process's settings."""
    from atm_assets.core.settings import current

    return catalog_for(current())


def find(name: str) -> TableSpec:
    """A dataset by name (`-` may stand for `_`), or a ConfigError listing the known ones."""
    entries = catalog()
    spec = entries.get(name.replace("-", "_"))
    if spec is None or not spec.fetched:
        known = ", ".join(n.replace("_", "-") for n, d in entries.items() if d.fetched)
        raise ConfigError(f"unknown dataset {name!r}: expected one of {known}")
    return spec
