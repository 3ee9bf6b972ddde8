"""Financial reports by period (end_date = quarter end), point in time: originals, later
corrections and restatements, forecasts and flash reports published before the reports,
and dividends with their stages. Every figure is a pure function of (company, period)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from atm_assets.sandbox.generators.common import mix
from atm_assets.sandbox.generators.profiles import Profile, profiles
from atm_assets.sandbox.query import ApiSpec, codes_param, date_param, param, register_api
from atm_assets.sandbox.tradecal import CALENDAR_END, calendar, shift_days

if TYPE_CHECKING:
    from atm_assets.sandbox.dataset import SandboxDataset

FIRST_PERIOD = "20091231"
LAST_PERIOD = "20270930"
# Cumulative (year to date) share of the annual figure at each quarter end.
_YTD = {"0331": 0.22, "0630": 0.47, "0930": 0.73, "1231": 1.0}
_END_TYPE = {"0331": "1", "0630": "2", "0930": "3", "1231": "4"}


@lru_cache(maxsize=1)
def periods() -> tuple[str, ...]:
    out = []
    for year in range(2009, 2028):
        for mmdd in ("0331", "0630", "0930", "1231"):
            period = f"{year}{mmdd}"
            if FIRST_PERIOD <= period <= LAST_PERIOD:
                out.append(period)
    return tuple(out)


def _u(z: int, shift: int) -> float:
    return ((z >> shift) & 0xFFFF) / 65536


def _on_or_after(day: str) -> str:
    """The first open day on or after `day` (calendar days past the calendar's end)."""
    return calendar().next_open(day) if day <= CALENDAR_END else day


def report_day(p: Profile, period: str) -> str:
    """When the report for `period` is first announced (an open day)."""
    z = mix(p.key ^ 0xA11, int(period))
    mmdd, year = period[4:], int(period[:4])
    if mmdd == "1231":
        start, span = f"{year + 1}0120", 95
    elif mmdd == "0630":
        start, span = f"{year}0715", 45
    else:
        start, span = f"{year}{'04' if mmdd == '0331' else '10'}15", 15
    return _on_or_after(shift_days(start, z % span))


@dataclass(frozen=True)
class _Version:
    """One published version of a (company, period) report."""

    report_type: str
    ann_date: str
    f_ann_date: str
    update_flag: str
    # Multiplier applied to the figures: corrections and restatements move them a little.
    factor: float


def versions(p: Profile, period: str, in_place: bool = False) -> list[_Version]:
    """Published versions, oldest first: the original, maybe a correction (report_type 1) and
    maybe a restatement a year later (report_type 4).

    A correction carries a later f_ann_date, unless `in_place`: Tushare keeps the original's
    ann_date and f_ann_date and tells the two rows apart by update_flag alone (waditu/tushare
    #1692, #1094, #1188)."""
    first = report_day(p, period)
    z = mix(p.key ^ 0xC0F, int(period))
    corrected = z % 100 < 6
    out = [_Version("1", first, first, "0" if corrected else "1", 1.0)]
    if corrected:
        fixed = _on_or_after(shift_days(first, 10 + (z >> 8) % 110))
        if fixed <= CALENDAR_END:
            factor = 1 + 0.08 * (_u(z, 16) - 0.5)
            out.append(_Version("1", first, first if in_place else fixed, "1", factor))
        else:
            out[0] = _Version("1", first, first, "1", 1.0)
    if (z >> 32) % 100 < 4:
        next_year = f"{int(period[:4]) + 1}{period[4:]}"
        if next_year <= LAST_PERIOD:
            later = report_day(p, next_year)
            out.append(_Version("4", later, later, "1", 1 + 0.1 * (_u(z, 40) - 0.5)))
    return out


def _reports(p: Profile, period: str) -> bool:
    """Whether the company publishes a report for `period` (listed, not yet delisted)."""
    row = p.row
    if row["list_date"] > period:
        return False
    return row["delist_date"] is None or report_day(p, period) < row["delist_date"]


@dataclass
class _Figures:
    """The period's main figures in 元 (cumulative year to date for flows)."""

    revenue: float
    oper_cost: float
    sell_exp: float
    admin_exp: float
    fin_exp: float
    rd_exp: float
    operate_profit: float
    non_oper: float
    total_profit: float
    income_tax: float
    n_income: float
    n_income_attr_p: float
    total_share: float  # 股
    total_assets: float
    total_liab: float
    cur_assets: float
    cur_liab: float
    money_cap: float
    inventories: float
    receivables: float
    equity_parent: float
    minority: float
    ocf: float
    icf: float
    fcf_fin: float
    cash_begin: float


def figures(p: Profile, period: str, factor: float = 1.0) -> _Figures:
    year, mmdd = int(period[:4]), period[4:]
    ytd = _YTD[mmdd]
    z = mix(p.key ^ 0xF16, year)
    zq = mix(p.key ^ 0xF17, int(period))
    total_share = p.shares(year)[0] * 1e4
    growth = (1.02 + 0.12 * _u(z, 0)) ** (year - 2010)
    annual_revenue = p.sps * total_share * growth * (0.9 + 0.2 * _u(z, 16))
    revenue = annual_revenue * ytd * (0.95 + 0.1 * _u(zq, 0)) * factor
    margin = 0.15 + 0.45 * ((p.key >> 8) % 1000) / 1000
    oper_cost = revenue * (1 - margin)
    sell_exp = revenue * (0.02 + 0.08 * _u(z, 32))
    admin_exp = revenue * (0.02 + 0.06 * _u(z, 48))
    rd_exp = revenue * 0.04 * _u(zq, 16)
    fin_exp = revenue * (0.03 * _u(zq, 32) - 0.005)
    # The profit follows the profile's EPS (losses included), not the cost lines exactly.
    cycle = 1 + 0.3 * math.sin(year * 1.3 + (p.key % 628) / 100)
    zy = mix(p.key ^ 0xF18, year)
    # Some years swing hard, and one in ten flips the sign (first loss, or a turnaround).
    swing = math.exp(1.4 * (_u(zy, 0) - 0.5)) * (-1 if zy % 10 == 0 else 1)
    n_income_attr_p = p.eps * total_share * cycle * swing * ytd * factor
    minority_share = 0.02 + 0.1 * _u(z, 8)
    n_income = n_income_attr_p / (1 - minority_share)
    income_tax = max(0.0, n_income) * 0.25 / 0.75
    total_profit = n_income + income_tax
    non_oper = total_profit * 0.03 * (_u(zq, 48) - 0.5)
    operate_profit = total_profit - non_oper
    total_assets = annual_revenue * (0.8 + 2.2 * _u(z, 24)) * factor
    leverage = 0.92 if p.comp_type == "2" else 0.2 + 0.55 * _u(z, 40)
    total_liab = total_assets * leverage
    equity = total_assets - total_liab
    minority = equity * minority_share
    cur_assets = total_assets * (0.3 + 0.4 * _u(zq, 8))
    money_cap = cur_assets * (0.2 + 0.3 * _u(zq, 24))
    ocf = n_income * (0.6 + 0.9 * _u(zq, 40)) + revenue * 0.02
    icf = -revenue * (0.02 + 0.1 * _u(zq, 56))
    return _Figures(
        revenue=revenue,
        oper_cost=oper_cost,
        sell_exp=sell_exp,
        admin_exp=admin_exp,
        fin_exp=fin_exp,
        rd_exp=rd_exp,
        operate_profit=operate_profit,
        non_oper=non_oper,
        total_profit=total_profit,
        income_tax=income_tax,
        n_income=n_income,
        n_income_attr_p=n_income_attr_p,
        total_share=total_share,
        total_assets=total_assets,
        total_liab=total_liab,
        cur_assets=cur_assets,
        cur_liab=total_liab * (0.5 + 0.3 * _u(z, 56)),
        money_cap=money_cap,
        inventories=cur_assets * 0.25 * _u(zq, 12),
        receivables=cur_assets * 0.3 * _u(zq, 20),
        equity_parent=equity - minority,
        minority=minority,
        ocf=ocf,
        icf=icf,
        fcf_fin=-(ocf + icf) * (0.3 + 0.9 * _u(zq, 28)),
        cash_begin=money_cap * (0.8 + 0.4 * _u(zq, 36)),
    )


def _r(x: float) -> float:
    return round(x, 2)


def _bank(p: Profile, value: float) -> float | None:
    """Industrial lines that banks and insurers do not report."""
    return None if p.comp_type in ("2", "3") else _r(value)


def _head(p: Profile, period: str, v: _Version) -> dict[str, Any]:
    return {
        "ts_code": p.ts_code,
        "ann_date": v.ann_date,
        "f_ann_date": v.f_ann_date,
        "end_date": period,
        "report_type": v.report_type,
        "comp_type": p.comp_type,
        "end_type": _END_TYPE[period[4:]],
    }


# -- income / balancesheet / cashflow --

INCOME_FIELDS: tuple[str, ...] = (
    "ts_code", "ann_date", "f_ann_date", "end_date", "report_type", "comp_type", "end_type",
    "basic_eps", "diluted_eps", "total_revenue", "revenue", "int_income", "total_cogs",
    "oper_cost", "sell_exp", "admin_exp", "fin_exp", "rd_exp", "operate_profit",
    "non_oper_income", "non_oper_exp", "total_profit", "income_tax", "n_income",
    "n_income_attr_p", "minority_gain", "update_flag",
)  # fmt: skip
BALANCESHEET_FIELDS: tuple[str, ...] = (
    "ts_code", "ann_date", "f_ann_date", "end_date", "report_type", "comp_type", "end_type",
    "total_share", "cap_rese", "undistr_porfit", "surplus_rese", "money_cap",
    "accounts_receiv", "inventories", "total_cur_assets", "fix_assets", "total_nca",
    "total_assets", "st_borr", "total_cur_liab", "lt_borr", "total_ncl", "total_liab",
    "minority_int", "total_hldr_eqy_exc_min_int", "total_hldr_eqy_inc_min_int",
    "total_liab_hldr_eqy", "update_flag",
)  # fmt: skip
CASHFLOW_FIELDS: tuple[str, ...] = (
    "ts_code", "ann_date", "f_ann_date", "end_date", "comp_type", "report_type", "end_type",
    "net_profit", "finan_exp", "c_fr_sale_sg", "c_inf_fr_operate_a", "c_paid_goods_s",
    "c_paid_to_for_empl", "c_paid_for_taxes", "n_cashflow_act", "c_pay_acq_const_fiolta",
    "n_cashflow_inv_act", "c_recp_borrow", "c_pay_dist_dpcp_int_exp", "n_cash_flows_fnc_act",
    "n_incr_cash_cash_equ", "c_cash_equ_beg_period", "c_cash_equ_end_period",
    "free_cashflow", "update_flag",
)  # fmt: skip


def _income(p: Profile, period: str, v: _Version) -> dict[str, Any]:
    f = figures(p, period, v.factor)
    eps = round(f.n_income_attr_p / f.total_share, 4)
    total_cogs = f.oper_cost + f.sell_exp + f.admin_exp + f.fin_exp + f.rd_exp
    return {
        **_head(p, period, v),
        "basic_eps": eps,
        "diluted_eps": round(eps * 0.99, 4) if eps > 0 else eps,
        "total_revenue": _r(f.revenue * 1.01),
        "revenue": _r(f.revenue),
        "int_income": _r(f.revenue * 0.7) if p.comp_type == "2" else None,
        "total_cogs": _r(total_cogs),
        "oper_cost": _bank(p, f.oper_cost),
        "sell_exp": _bank(p, f.sell_exp),
        "admin_exp": _r(f.admin_exp),
        "fin_exp": _bank(p, f.fin_exp),
        "rd_exp": None if f.rd_exp < f.revenue * 0.002 else _r(f.rd_exp),
        "operate_profit": _r(f.operate_profit),
        "non_oper_income": _r(max(f.non_oper, 0.0) + abs(f.total_profit) * 0.005),
        "non_oper_exp": _r(max(-f.non_oper, 0.0) + abs(f.total_profit) * 0.005),
        "total_profit": _r(f.total_profit),
        "income_tax": _r(f.income_tax),
        "n_income": _r(f.n_income),
        "n_income_attr_p": _r(f.n_income_attr_p),
        "minority_gain": _r(f.n_income - f.n_income_attr_p),
        "update_flag": v.update_flag,
    }


def _balancesheet(p: Profile, period: str, v: _Version) -> dict[str, Any]:
    f = figures(p, period, v.factor)
    equity = f.equity_parent + f.minority
    return {
        **_head(p, period, v),
        "total_share": _r(f.total_share),
        "cap_rese": _r(f.equity_parent * 0.3),
        "undistr_porfit": _r(f.equity_parent * 0.45),
        "surplus_rese": _r(f.equity_parent * 0.08),
        "money_cap": _r(f.money_cap),
        "accounts_receiv": _bank(p, f.receivables),
        "inventories": _bank(p, f.inventories),
        "total_cur_assets": _bank(p, f.cur_assets),
        "fix_assets": _r((f.total_assets - f.cur_assets) * 0.4),
        "total_nca": _bank(p, f.total_assets - f.cur_assets),
        "total_assets": _r(f.total_assets),
        "st_borr": _bank(p, f.cur_liab * 0.3),
        "total_cur_liab": _bank(p, f.cur_liab),
        "lt_borr": _bank(p, (f.total_liab - f.cur_liab) * 0.5),
        "total_ncl": _bank(p, f.total_liab - f.cur_liab),
        "total_liab": _r(f.total_liab),
        "minority_int": _r(f.minority),
        "total_hldr_eqy_exc_min_int": _r(f.equity_parent),
        "total_hldr_eqy_inc_min_int": _r(equity),
        "total_liab_hldr_eqy": _r(f.total_liab + equity),
        "update_flag": v.update_flag,
    }


def _cashflow(p: Profile, period: str, v: _Version) -> dict[str, Any]:
    f = figures(p, period, v.factor)
    incr = _r(f.ocf) + _r(f.icf) + _r(f.fcf_fin)
    begin = _r(f.cash_begin)
    inflow = f.revenue * 1.12
    return {
        **_head(p, period, v),
        "net_profit": _r(f.n_income),
        "finan_exp": _r(f.fin_exp),
        "c_fr_sale_sg": _r(f.revenue * 1.1),
        "c_inf_fr_operate_a": _r(inflow),
        "c_paid_goods_s": _r(f.oper_cost * 1.05),
        "c_paid_to_for_empl": _r(f.revenue * 0.1),
        "c_paid_for_taxes": _r(f.revenue * 0.05),
        "n_cashflow_act": _r(f.ocf),
        "c_pay_acq_const_fiolta": _r(-f.icf * 0.8),
        "n_cashflow_inv_act": _r(f.icf),
        "c_recp_borrow": _bank(p, abs(f.fcf_fin) * 1.5),
        "c_pay_dist_dpcp_int_exp": _r(abs(f.n_income) * 0.3),
        "n_cash_flows_fnc_act": _r(f.fcf_fin),
        # Ending cash is exactly the beginning plus the three activities.
        "n_incr_cash_cash_equ": _r(incr),
        "c_cash_equ_beg_period": begin,
        "c_cash_equ_end_period": _r(begin + incr),
        "free_cashflow": _r(f.ocf + f.icf),
        "update_flag": v.update_flag,
    }


# -- fina_indicator --

FINA_INDICATOR_FIELDS: tuple[str, ...] = (
    "ts_code", "ann_date", "end_date", "eps", "dt_eps", "total_revenue_ps", "revenue_ps",
    "capital_rese_ps", "surplus_rese_ps", "undist_profit_ps", "extra_item", "profit_dedt",
    "gross_margin", "current_ratio", "quick_ratio", "cash_ratio", "assets_turn", "ebit",
    "bps", "ocfps", "roe", "roe_waa", "roa", "netprofit_margin", "grossprofit_margin",
    "debt_to_assets", "netprofit_yoy", "or_yoy", "update_flag",
)  # fmt: skip


def _yoy(now: float, before: float) -> float | None:
    return None if before == 0 else round((now - before) / abs(before) * 100, 4)


def _fina_indicator(p: Profile, period: str, v: _Version) -> dict[str, Any]:
    f = figures(p, period, v.factor)
    last = figures(p, f"{int(period[:4]) - 1}{period[4:]}")
    shares = f.total_share
    eps = round(f.n_income_attr_p / shares, 4)
    cur_ratio = None if p.comp_type in ("2", "3") else round(f.cur_assets / f.cur_liab, 4)
    return {
        "ts_code": p.ts_code,
        "ann_date": v.f_ann_date,
        "end_date": period,
        "eps": eps,
        "dt_eps": round(eps * 0.99, 4) if eps > 0 else eps,
        "total_revenue_ps": round(f.revenue * 1.01 / shares, 4),
        "revenue_ps": round(f.revenue / shares, 4),
        "capital_rese_ps": round(f.equity_parent * 0.3 / shares, 4),
        "surplus_rese_ps": round(f.equity_parent * 0.08 / shares, 4),
        "undist_profit_ps": round(f.equity_parent * 0.45 / shares, 4),
        "extra_item": _r(f.non_oper * 0.75),
        "profit_dedt": _r(f.n_income_attr_p - f.non_oper * 0.75),
        "gross_margin": _r(f.revenue - f.oper_cost),
        "current_ratio": cur_ratio,
        "quick_ratio": None if cur_ratio is None else round(cur_ratio * 0.75, 4),
        "cash_ratio": None if cur_ratio is None else round(f.money_cap / f.cur_liab, 4),
        "assets_turn": round(f.revenue / f.total_assets, 4),
        "ebit": _r(f.total_profit + max(f.fin_exp, 0.0)),
        "bps": round(f.equity_parent / shares, 4),
        "ocfps": round(f.ocf / shares, 4),
        "roe": round(f.n_income_attr_p / f.equity_parent * 100, 4),
        "roe_waa": round(f.n_income_attr_p / f.equity_parent * 100 * 1.02, 4),
        "roa": round(f.n_income / f.total_assets * 100, 4),
        "netprofit_margin": round(f.n_income / f.revenue * 100, 4),
        "grossprofit_margin": round((1 - f.oper_cost / f.revenue) * 100, 4),
        "debt_to_assets": round(f.total_liab / f.total_assets * 100, 4),
        "netprofit_yoy": _yoy(f.n_income_attr_p, last.n_income_attr_p),
        "or_yoy": _yoy(f.revenue, last.revenue),
        "update_flag": v.update_flag,
    }


# -- forecast / express --

FORECAST_FIELDS: tuple[str, ...] = (
    "ts_code", "ann_date", "end_date", "type", "p_change_min", "p_change_max",
    "net_profit_min", "net_profit_max", "last_parent_net", "first_ann_date", "summary",
    "change_reason", "update_flag",
)  # fmt: skip
EXPRESS_FIELDS: tuple[str, ...] = (
    "ts_code", "ann_date", "end_date", "revenue", "operate_profit", "total_profit",
    "n_income", "total_assets", "total_hldr_eqy_exc_min_int", "diluted_eps", "diluted_roe",
    "yoy_net_profit", "bps", "yoy_sales", "yoy_op", "yoy_tp", "yoy_dedu_np", "yoy_eps",
    "perf_summary", "is_audit", "remark", "update_flag",
)  # fmt: skip
_FORECAST_ODDS = {"1231": 45, "0630": 30, "0331": 15, "0930": 15}
_REASONS = (
    "报告期内，公司主营业务收入稳步增长。",
    "受原材料价格波动影响，毛利率有所下降。",
    '主要系"降本增效"措施见效\t及非经常性损益增加所致。',
    "报告期内计提资产减值准备\\商誉减值。\n同时汇兑损失增加。",
    None,
)


def _forecast_type(now: float, before: float) -> str:
    if before <= 0:
        return "扭亏" if now > 0 else "续亏"
    if now <= 0:
        return "首亏"
    change = (now - before) / before
    if change >= 0.5:
        return "预增"
    if change >= 0:
        return "略增"
    return "预减" if change <= -0.5 else "略减"


def forecast_days(p: Profile, period: str) -> list[str]:
    """Announcement days of the forecast and its revision (none when not forecast)."""
    z = mix(p.key ^ 0xF0C, int(period))
    if z % 100 >= _FORECAST_ODDS[period[4:]]:
        return []
    report = report_day(p, period)
    year, mmdd = int(period[:4]), period[4:]
    start = f"{year + 1}0105" if mmdd == "1231" else shift_days(period, 1)
    first = _on_or_after(shift_days(start, (z >> 8) % 10))
    if first >= report:
        return []
    days = [first]
    revised = _on_or_after(shift_days(first, 5 + (z >> 16) % 20))
    if (z >> 24) % 100 < 20 and revised < report:
        days.append(revised)
    return days


def _forecasts(p: Profile, period: str) -> list[dict[str, Any]]:
    days = forecast_days(p, period)
    if not days:
        return []
    now = figures(p, period).n_income_attr_p / 1e4
    before = figures(p, f"{int(period[:4]) - 1}{period[4:]}").n_income_attr_p / 1e4
    out = []
    for n, day in enumerate(days):
        z = mix(p.key ^ 0xF0D ^ n, int(period))
        width = 0.3 / (n + 1)  # a revision narrows the range
        lo, hi = now * (1 - width * _u(z, 0)), now * (1 + width * _u(z, 16))
        lo, hi = min(lo, hi), max(lo, hi)
        kind = _forecast_type(now, before)
        out.append(
            {
                "ts_code": p.ts_code,
                "ann_date": day,
                "end_date": period,
                "type": kind,
                "p_change_min": _yoy(lo, before),
                "p_change_max": _yoy(hi, before),
                "net_profit_min": _r(lo),
                "net_profit_max": _r(hi),
                "last_parent_net": _r(before),
                "first_ann_date": days[0],
                "summary": f"预计净利润{_r(lo)}万元至{_r(hi)}万元（{kind}）",
                "change_reason": _REASONS[(z >> 32) % len(_REASONS)],
                "update_flag": "1" if n == len(days) - 1 else "0",
            }
        )
    return out


def _expresses(p: Profile, period: str) -> list[dict[str, Any]]:
    z = mix(p.key ^ 0xE4B, int(period))
    if z % 100 >= (20 if period.endswith("1231") else 8):
        return []
    report = report_day(p, period)
    first = _on_or_after(shift_days(report, -10 - (z >> 8) % 25))
    days = [first]
    revised = _on_or_after(shift_days(first, 3 + (z >> 16) % 5))
    if (z >> 24) % 100 < 5 and revised < report:
        days.append(revised)
    f = figures(p, period)
    last = figures(p, f"{int(period[:4]) - 1}{period[4:]}")
    out = []
    for n, day in enumerate(days):
        k = 1 + 0.02 * n
        eps = round(f.n_income_attr_p * k / f.total_share, 4)
        out.append(
            {
                "ts_code": p.ts_code,
                "ann_date": day,
                "end_date": period,
                "revenue": _r(f.revenue * k),
                "operate_profit": _r(f.operate_profit * k),
                "total_profit": _r(f.total_profit * k),
                "n_income": _r(f.n_income_attr_p * k),
                "total_assets": _r(f.total_assets),
                "total_hldr_eqy_exc_min_int": _r(f.equity_parent),
                "diluted_eps": eps,
                "diluted_roe": round(f.n_income_attr_p * k / f.equity_parent * 100, 4),
                "yoy_net_profit": _r(last.n_income_attr_p),
                "bps": round(f.equity_parent / f.total_share, 4),
                "yoy_sales": _yoy(f.revenue * k, last.revenue),
                "yoy_op": _yoy(f.operate_profit * k, last.operate_profit),
                "yoy_tp": _yoy(f.total_profit * k, last.total_profit),
                "yoy_dedu_np": _yoy(f.n_income_attr_p * k, last.n_income_attr_p),
                "yoy_eps": _yoy(eps, last.n_income_attr_p / last.total_share),
                "perf_summary": _REASONS[(z >> 32) % len(_REASONS)],
                "is_audit": 0,
                "remark": "更正后" if n else None,
                "update_flag": "1" if n == len(days) - 1 else "0",
            }
        )
    return out


# -- dividend --

DIVIDEND_FIELDS: tuple[str, ...] = (
    "ts_code", "end_date", "ann_date", "div_proc", "stk_div", "stk_bo_rate", "stk_co_rate",
    "cash_div", "cash_div_tax", "record_date", "ex_date", "pay_date", "div_listdate",
    "imp_ann_date", "base_date", "base_share",
)  # fmt: skip


def _dividends(p: Profile, period: str) -> list[dict[str, Any]]:
    mmdd = period[4:]
    z = mix(p.key ^ 0xD17, int(period))
    if not p.payer or mmdd not in ("1231", "0630") or (mmdd == "0630" and z % 100 >= 15):
        return []
    announced = report_day(p, period)
    f = figures(p, period)
    cash_tax = round(max(0.01, 0.3 * f.n_income_attr_p / f.total_share), 2)
    stk_bo = round(0.1 * ((z >> 8) % 4), 2) if (z >> 12) % 10 == 0 else 0.0
    stk_co = round(0.1 * ((z >> 16) % 5), 2) if (z >> 20) % 8 == 0 else 0.0
    base = {
        "ts_code": p.ts_code,
        "end_date": period,
        "ann_date": announced,
        "stk_div": round(stk_bo + stk_co, 2),
        "stk_bo_rate": stk_bo or None,
        "stk_co_rate": stk_co or None,
        "cash_div": round(cash_tax * 0.9, 4),
        "cash_div_tax": cash_tax,
        "record_date": None,
        "ex_date": None,
        "pay_date": None,
        "div_listdate": None,
        "imp_ann_date": None,
        "base_date": period,
        "base_share": round(f.total_share / 1e4, 4),
    }
    out = [{**base, "div_proc": "预案"}]
    stage = (z >> 28) % 20
    if stage == 0:
        return out  # the plan went no further
    out.append({**base, "div_proc": "股东大会通过"})
    imp = _on_or_after(shift_days(announced, 40 + (z >> 36) % 40))
    if stage == 1 or imp > CALENDAR_END:
        return out
    record = _on_or_after(shift_days(imp, 5))
    ex = _on_or_after(shift_days(record, 1))
    implemented = {
        **base,
        "div_proc": "实施",
        "imp_ann_date": imp,
        "record_date": record,
        "ex_date": ex,
        "pay_date": ex,
        "div_listdate": ex if base["stk_div"] else None,
    }
    return [*out, implemented]


# -- query plumbing --


@dataclass(frozen=True)
class _Ask:
    """What a query asks of one company's reports, and which of Tushare's ways apply."""

    # Corrections keep the original's dates (fidelity real).
    in_place: bool = False
    # report_type 2, 3, 5 … 10 are served (fidelity real); simple serves 1 and 4 only.
    all_types: bool = False
    # The report_type asked for (None: every type the API has).
    report_type: str | None = None


ReportFn = Callable[[Profile, str, _Ask], list[dict[str, Any]]]
_HEAD = frozenset({"ts_code", "ann_date", "f_ann_date", "end_date", "report_type",
                   "comp_type", "end_type", "update_flag"})  # fmt: skip
_EPS = ("basic_eps", "diluted_eps")
# Documented report types (doc 33's table): (parent company, single quarter, source), source
# being the latest consolidated figures (1), the restatement (4) or the figures a
# restatement replaced (5). 11 and 12 are documented without a clear meaning: no rows.
_REPORT_TYPES: dict[str, tuple[bool, bool, str]] = {
    "2": (False, True, "1"),
    "3": (False, True, "4"),
    "5": (False, False, "5"),
    "6": (True, False, "1"),
    "7": (True, True, "1"),
    "8": (True, True, "4"),
    "9": (True, False, "4"),
    "10": (True, False, "5"),
}


def _previous_quarter(period: str) -> str | None:
    """The same year's previous quarter end (None for Q1, whose single quarter is itself)."""
    mmdd = {"0630": "0331", "0930": "0630", "1231": "0930"}.get(period[4:])
    return None if mmdd is None else f"{period[:4]}{mmdd}"


def _parent_share(p: Profile) -> float:
    return 0.35 + 0.4 * _u(mix(p.key ^ 0x9A4, 1), 0)


def _derived(
    build: Callable[[Profile, str, _Version], dict[str, Any]],
    p: Profile,
    period: str,
    published: list[_Version],
    report_type: str,
    flows: bool,
) -> list[dict[str, Any]]:
    """Rows of a derived report_type, built from the versions the company published."""
    if report_type not in _REPORT_TYPES:
        return []
    parent, single, source = _REPORT_TYPES[report_type]
    if single and not flows:
        return []  # a balance sheet is a position: there is no single-quarter sheet
    latest = [v for v in published if v.report_type == "1"]
    restated = [v for v in published if v.report_type == "4"]
    if source == "1":
        chosen = latest
    elif source == "4":
        chosen = restated
    else:
        # The original is kept, as report_type 5, when a restatement replaces it.
        chosen = [_Version("5", r.ann_date, r.f_ann_date, "1", latest[-1].factor) for r in restated]
    previous = _previous_quarter(period) if single else None
    before = None
    if previous is not None and _reports(p, previous):
        before = build(p, previous, [v for v in versions(p, previous) if v.report_type == "1"][-1])
    out = []
    for v in chosen:
        row = build(p, period, v)
        if before is not None:
            for key, value in before.items():
                if key in _HEAD or not isinstance(row.get(key), float) or value is None:
                    continue
                if key == "c_cash_equ_end_period":
                    continue
                if key == "c_cash_equ_beg_period":
                    row[key] = before["c_cash_equ_end_period"]
                    continue
                row[key] = round(row[key] - value, 4 if key in _EPS else 2)
        if parent:
            share = _parent_share(p)
            for key, value in row.items():
                if key not in _HEAD and isinstance(value, float):
                    row[key] = round(value * share, 2)
            for key in _EPS:
                if key in row:
                    row[key] = None  # a parent company statement states no EPS
        row["report_type"] = report_type
        out.append(row)
    return out


def _statement(
    build: Callable[[Profile, str, _Version], dict[str, Any]], *, flows: bool = True
) -> ReportFn:
    def rows(p: Profile, period: str, ask: _Ask) -> list[dict[str, Any]]:
        published = versions(p, period, ask.in_place)
        if ask.all_types and ask.report_type not in (None, "1", "4"):
            return _derived(build, p, period, published, ask.report_type, flows)
        return [build(p, period, v) for v in published]

    return rows


def _fina_versions(p: Profile, period: str, ask: _Ask) -> list[dict[str, Any]]:
    # Indicators are recomputed when a report is corrected, not for restatements.
    published = versions(p, period, ask.in_place)
    return [_fina_indicator(p, period, v) for v in published if v.report_type == "1"]


def _plain(fn: Callable[[Profile, str], list[dict[str, Any]]]) -> ReportFn:
    """Reports with a single way of publishing: the fidelity does not change them."""
    return lambda p, period, ask: fn(p, period)


def _period_range(params: Mapping[str, Any], by_period: bool) -> tuple[str, str]:
    period = date_param(params, "period")
    if period is not None:
        return period, period
    if by_period:  # fina_indicator: start_date/end_date bound the report period
        return (
            date_param(params, "start_date") or FIRST_PERIOD,
            date_param(params, "end_date") or LAST_PERIOD,
        )
    return FIRST_PERIOD, LAST_PERIOD


def _matches(row: Mapping[str, Any], params: Mapping[str, Any], by_period: bool) -> bool:
    for key in ("ann_date", "f_ann_date"):
        value = date_param(params, key)
        if value is not None and row.get(key) != value:
            return False
    if not by_period:  # statements and the rest: start/end bound the announcement date
        start, end = date_param(params, "start_date"), date_param(params, "end_date")
        if (start and row["ann_date"] < start) or (end and row["ann_date"] > end):
            return False
    for key in ("report_type", "comp_type", "type"):
        value = param(params, key)
        if value is not None and str(row.get(key)) != value:
            return False
    return True


def _report_rows(
    ds: SandboxDataset,
    params: Mapping[str, Any],
    build: ReportFn,
    *,
    by_period: bool = False,
    default_report_type: bool = False,
) -> Iterator[dict[str, Any]]:
    """Rows ts_code ascending, newest period first, versions oldest first."""
    if default_report_type and param(params, "report_type") is None:
        # Tushare answers report_type 1 (consolidated) unless another type is asked for.
        params = {**params, "report_type": "1"}
    world = ds.fidelity
    ask = _Ask(world.corrections_in_place, world.all_report_types, param(params, "report_type"))
    table = profiles(ds.listing())
    codes = codes_param(params)
    lo, hi = _period_range(params, by_period)
    if not by_period:
        # A report is announced within ~1.5 years of its period: skip periods that cannot
        # match an announcement-date filter (start/end, ann_date, f_ann_date).
        days = [date_param(params, k) for k in ("ann_date", "f_ann_date", "start_date")]
        first = min((d for d in days if d), default=None)
        last = date_param(params, "ann_date") or date_param(params, "end_date")
        if first:
            lo = max(lo, shift_days(first, -600))
        if last:
            hi = min(hi, last)
    chosen = [c for c in codes if c in table] if codes is not None else sorted(table)
    wanted = [q for q in reversed(periods()) if lo <= q <= hi]
    for code in chosen:
        p = table[code]
        for period in wanted:
            if not _reports(p, period):
                continue
            for row in build(p, period, ask):
                if _matches(row, params, by_period):
                    yield row


_ANY_FILTER = ("ts_code", "period", "ann_date", "f_ann_date", "start_date", "end_date")


def _register_pair(
    name: str,
    fields: tuple[str, ...],
    build: ReportFn,
    *,
    unique_key: tuple[str, ...],
    by_period: bool = False,
    default_report_type: bool = False,
    vip: bool = True,
) -> None:
    """The API and its _vip variant (the same rows for a whole period; apis.yaml has both)."""

    def rows(ds: SandboxDataset, query: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        return _report_rows(
            ds, query, build, by_period=by_period, default_report_type=default_report_type
        )

    register_api(ApiSpec(name, fields, rows, unique_key=unique_key))
    if vip:
        register_api(ApiSpec(f"{name}_vip", fields, rows, unique_key=unique_key, cache=True))


_STATEMENT_KEY = ("ts_code", "end_date", "report_type", "f_ann_date")
_register_pair(
    "income", INCOME_FIELDS, _statement(_income), unique_key=_STATEMENT_KEY,
    default_report_type=True,
)  # fmt: skip
_register_pair(
    "balancesheet", BALANCESHEET_FIELDS, _statement(_balancesheet, flows=False),
    unique_key=_STATEMENT_KEY, default_report_type=True,
)  # fmt: skip
_register_pair(
    "cashflow", CASHFLOW_FIELDS, _statement(_cashflow), unique_key=_STATEMENT_KEY,
    default_report_type=True,
)  # fmt: skip
_register_pair(
    "fina_indicator", FINA_INDICATOR_FIELDS, _fina_versions,
    unique_key=("ts_code", "end_date", "ann_date"), by_period=True,
)  # fmt: skip
_register_pair(
    "forecast", FORECAST_FIELDS, _plain(_forecasts),
    unique_key=("ts_code", "end_date", "ann_date"),
)  # fmt: skip
_register_pair(
    "express", EXPRESS_FIELDS, _plain(_expresses),
    unique_key=("ts_code", "end_date", "ann_date"),
)  # fmt: skip


def _dividend_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    table = profiles(ds.listing())
    codes = codes_param(params)
    chosen = [c for c in codes if c in table] if codes is not None else sorted(table)
    end_date = date_param(params, "end_date")
    filters = {k: date_param(params, k) for k in ("ann_date", "record_date", "ex_date",
                                                    "imp_ann_date")}  # fmt: skip
    for code in chosen:
        p = table[code]
        for period in reversed(periods()):
            if (end_date and period != end_date) or not _reports(p, period):
                continue
            for row in _dividends(p, period):
                if all(v is None or row[k] == v for k, v in filters.items()):
                    yield row
                    yield from _repeats(ds, p, period, row)


def _repeats(
    ds: SandboxDataset, p: Profile, period: str, row: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """Fidelity real: about one implemented dividend in fifteen is answered twice, a third of
    those three times, identical in every column (waditu/tushare #1271 and #1900: two rows,
    #1133: three)."""
    if not ds.fidelity.repeated_rows or row["div_proc"] != "实施":
        return
    z = mix(p.key ^ 0xD1D, int(period))
    if z % 15 == 0:
        for _ in range(2 if (z >> 8) % 3 == 0 else 1):
            yield dict(row)


register_api(
    ApiSpec(
        "dividend",
        DIVIDEND_FIELDS,
        _dividend_rows,
        tuple(f for f in DIVIDEND_FIELDS if f not in ("base_date", "base_share")),
        unique_key=("ts_code", "end_date", "div_proc"),
        simple_required=(
            ("ts_code", "ann_date", "end_date", "record_date", "ex_date", "imp_ann_date"),
        ),
        note="Fidelity simple requires one of these filters; the documentation requires none.",
        cache=True,
    )
)
