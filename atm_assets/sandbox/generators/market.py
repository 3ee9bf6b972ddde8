"""Per-trade-date market extras derived from the daily bars: valuation, limits, suspensions,
money flow, margin, dragon-tiger list, block trades, Stock Connect flows and chip costs."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from atm_assets.sandbox.generators.bars import bar_days, bar_stocks
from atm_assets.sandbox.generators.common import mix
from atm_assets.sandbox.generators.prices import Tradable
from atm_assets.sandbox.generators.profiles import Profile, profiles
from atm_assets.sandbox.generators.vocab import SEATS, TOP_LIST_REASONS
from atm_assets.sandbox.query import ApiSpec, codes_param, param, register_api
from atm_assets.sandbox.tradecal import calendar

if TYPE_CHECKING:
    from atm_assets.sandbox.dataset import SandboxDataset

_CODE_OR_DAY = (("ts_code", "trade_date"),)


def _u(z: int, shift: int) -> float:
    """A uniform [0, 1) from 16 bits of a splitmix word."""
    return ((z >> shift) & 0xFFFF) / 65536


def _listed_days(
    ds: SandboxDataset, params: Mapping[str, Any], *, traded_only: bool = True
) -> Iterator[tuple[Tradable, str, int]]:
    """(stock, day, index), newest day first and ts_code ascending: bars, or listed days."""
    stocks = bar_stocks(ds, params)
    open_index = calendar().open_index
    for day in bar_days(params):
        i = open_index[day]
        for t in stocks:
            if t.trades_on(day) and (not traded_only or not t.suspended(i)):
                yield t, day, i


def _profile(ds: SandboxDataset, t: Tradable) -> Profile:
    return profiles(ds.listing())[t.ts_code]


# -- daily_basic --

DAILY_BASIC_FIELDS: tuple[str, ...] = (
    "ts_code",
    "trade_date",
    "close",
    "turnover_rate",
    "turnover_rate_f",
    "volume_ratio",
    "pe",
    "pe_ttm",
    "pb",
    "ps",
    "ps_ttm",
    "dv_ratio",
    "dv_ttm",
    "total_share",
    "float_share",
    "free_share",
    "total_mv",
    "circ_mv",
)


def _ratio(num: float, den: float, digits: int = 4) -> float | None:
    return round(num / den, digits) if den > 0 else None


def daily_basic_row(p: Profile, t: Tradable, day: str, i: int) -> dict[str, Any]:
    year = int(day[:4])
    close, vol = t.close(i), t.vol(i)
    total, floating, free = p.shares(year)
    before = [t.vol(j) for j in range(i - 5, i)]
    drift = 1 + 0.25 * math.sin(i / 120 + (p.key % 628) / 100)
    annual = 1 + 0.25 * math.sin(year * 1.7 + (p.key % 628) / 100)
    dividend = 0.3 * p.eps * annual if p.payer else None
    return {
        "ts_code": t.ts_code,
        "trade_date": day,
        "close": close,
        "turnover_rate": round(vol / floating, 4),
        "turnover_rate_f": round(vol / free, 4),
        "volume_ratio": round(vol / (sum(before) / 5), 2),
        # Loss makers have no P/E, as on the real service.
        "pe": _ratio(close, p.eps * annual),
        "pe_ttm": _ratio(close, p.eps * drift),
        "pb": _ratio(close, p.bps * (1 + 0.04 * (year - 2010))),
        "ps": _ratio(close, p.sps * annual),
        "ps_ttm": _ratio(close, p.sps * drift),
        "dv_ratio": None if dividend is None else round(dividend / close * 100, 4),
        "dv_ttm": None if dividend is None else round(dividend * drift / close * 100, 4),
        "total_share": total,
        "float_share": floating,
        "free_share": free,
        "total_mv": round(close * total, 4),
        "circ_mv": round(close * floating, 4),
    }


def _daily_basic_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for t, day, i in _listed_days(ds, params):
        yield daily_basic_row(_profile(ds, t), t, day, i)


# -- stk_limit --

STK_LIMIT_FIELDS: tuple[str, ...] = ("trade_date", "ts_code", "pre_close", "up_limit", "down_limit")


def limit_pct(row: Mapping[str, Any], day: str) -> float:
    """The board's daily price limit on `day` (ST names: 5% on the main board)."""
    market = row["market"]
    if market == "北交所":
        return 0.30
    if market == "科创板" or (market == "创业板" and day >= "20200824"):
        return 0.20
    if str(row["name"]).startswith(("ST", "*ST")):
        return 0.05
    return 0.10


def _half_up(x: float) -> float:
    return round(math.floor(x * 100 + 0.5) / 100, 2)


def _stk_limit_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    if ds.fidelity.funds_and_b_shares:
        yield from _market_wide_limits(ds, params)
        return
    yield from _stock_limits(ds, params)


def _stock_limits(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    # Suspended stocks keep their limits: every listed stock has a row.
    for t, day, i in _listed_days(ds, params, traded_only=False):
        pre_close = t.close(i - 1)
        pct = limit_pct(t.row, day)
        yield {
            "trade_date": day,
            "ts_code": t.ts_code,
            "pre_close": pre_close,
            "up_limit": _half_up(pre_close * (1 + pct)),
            "down_limit": _half_up(pre_close * (1 - pct)),
        }


# About one fund or B share for every two listed A shares: with the default sizes a day
# has ~7,800 rows, more than one 5,800-row page (doc 183: 全市场（包含A/B股和基金）).
_OTHER_PER_LISTED = 0.5


@lru_cache(maxsize=4)
def other_securities(seed: int, listed: int) -> tuple[tuple[str, float, float], ...]:
    """(ts_code, base price, phase) of the funds and B shares stk_limit also lists."""
    n = max(2, round(listed * _OTHER_PER_LISTED))
    n_b = max(1, n // 20)
    out = []
    for k in range(n):
        if k < n_b:  # B shares: 900xxx.SH (USD), 200xxx.SZ (HKD)
            code = f"{900901 + k // 2}.SH" if k % 2 == 0 else f"{200011 + k // 2}.SZ"
        else:  # exchange-traded funds: 51xxxx.SH, 159xxx.SZ
            j = k - n_b
            code = f"{510010 + j // 2}.SH" if j % 2 == 0 else f"{159001 + j // 2}.SZ"
        z = mix(seed ^ 0xF0D5, k)
        out.append((code, 0.5 + 4.0 * _u(z, 0), 6.28 * _u(z, 16)))
    return tuple(sorted(out))


def _half_up_3(x: float) -> float:
    return round(math.floor(x * 1000 + 0.5) / 1000, 3)


def _market_wide_limits(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """A shares plus funds and B shares (prices to 0.001, 10 % limits), ts_code ascending."""
    listed = sum(n for (_ex, status), n in ds.sizes.items() if status == "L")
    others = other_securities(ds.seed, listed)
    codes = codes_param(params)
    if codes is not None:
        wanted = set(codes)
        others = tuple(o for o in others if o[0] in wanted)
    stocks = bar_stocks(ds, params)
    open_index = calendar().open_index
    for day in bar_days(params):
        i = open_index[day]
        day_params = {**params, "trade_date": day, "start_date": None, "end_date": None}
        rows = list(_stock_limits(ds, day_params)) if stocks else []
        for code, base, phase in others:
            pre_close = round(base * math.exp(0.15 * math.sin(i / 40 + phase)), 3)
            rows.append(
                {
                    "trade_date": day,
                    "ts_code": code,
                    "pre_close": pre_close,
                    "up_limit": _half_up_3(pre_close * 1.1),
                    "down_limit": _half_up_3(pre_close * 0.9),
                }
            )
        rows.sort(key=lambda r: r["ts_code"])
        yield from rows


# -- suspend_d --

SUSPEND_D_FIELDS: tuple[str, ...] = ("ts_code", "trade_date", "suspend_timing", "suspend_type")
_INTRADAY = ("09:30-10:30", "09:30-11:30", "13:00-14:57", "10:30-11:30")


def _suspend_d_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    wanted = (param(params, "suspend_type") or "").upper() or None
    days = calendar().open_dates
    for t, day, i in _listed_days(ds, params, traded_only=False):
        timing = None
        if t.suspended(i):
            kind = "S"
        elif i > 0 and days[i - 1] >= t.list_date and t.suspended(i - 1):
            kind = "R"
        elif mix(t.key ^ 0x1D5, i) % 4000 < 3:
            # A short intraday halt: the stock still has a daily bar that day.
            kind, timing = "S", _INTRADAY[mix(t.key ^ 0x1D6, i) % len(_INTRADAY)]
        else:
            continue
        if wanted is None or kind == wanted:
            yield {"ts_code": t.ts_code, "trade_date": day, "suspend_timing": timing,
                   "suspend_type": kind}  # fmt: skip


# -- moneyflow --

MONEYFLOW_FIELDS: tuple[str, ...] = (
    "ts_code",
    "trade_date",
    "buy_sm_vol",
    "buy_sm_amount",
    "sell_sm_vol",
    "sell_sm_amount",
    "buy_md_vol",
    "buy_md_amount",
    "sell_md_vol",
    "sell_md_amount",
    "buy_lg_vol",
    "buy_lg_amount",
    "sell_lg_vol",
    "sell_lg_amount",
    "buy_elg_vol",
    "buy_elg_amount",
    "sell_elg_vol",
    "sell_elg_amount",
    "net_mf_vol",
    "net_mf_amount",
)
_SIZES = ("sm", "md", "lg", "elg")


def _moneyflow_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for t, day, i in _listed_days(ds, params):
        bar = t.bar(i)
        vol, total = bar[7], bar[8] / 10  # hands; 千元 -> 万元
        za, zb = mix(t.key ^ 0x3F1, i), mix(t.key ^ 0x3F2, i)
        buy_share = 0.4 + 0.2 * _u(zb, 0)
        row: dict[str, Any] = {"ts_code": t.ts_code, "trade_date": day}
        for side, share, z in (("buy", buy_share, za), ("sell", 1 - buy_share, zb >> 8)):
            weights = [1 + 3 * _u(z, 12 * k) for k in range(4)]
            scale = share / sum(weights)
            for size, w in zip(_SIZES, weights, strict=True):
                row[f"{side}_{size}_vol"] = int(round(vol * w * scale))
                row[f"{side}_{size}_amount"] = round(total * w * scale, 2)
        # Net inflow is computed from level-2 orders, not from these buckets: only related.
        big = sum(row[f"buy_{s}_amount"] - row[f"sell_{s}_amount"] for s in ("lg", "elg"))
        net = round(0.8 * big + 0.05 * total * (_u(zb, 40) - 0.5), 2)
        row["net_mf_amount"] = net
        row["net_mf_vol"] = int(round(net * 100 / bar[3])) if bar[3] else 0
        yield row


# -- margin_detail --

MARGIN_DETAIL_FIELDS: tuple[str, ...] = (
    "trade_date",
    "ts_code",
    "name",
    "rzye",
    "rqye",
    "rzmre",
    "rqyl",
    "rzche",
    "rqchl",
    "rqmcl",
    "rzrqye",
)


def _balances(p: Profile, i: int) -> tuple[float, float]:
    """(financing balance 元, securities lent shares) at the close of day i."""
    z = mix(p.key ^ 0x4A1, i)
    ph = (p.key % 628) / 100
    base_rz = p.total_share * 1e4 * p.price * (0.005 + 0.045 * ((p.key >> 20) % 1000) / 1000)
    base_rq = p.total_share * 1e4 * (0.0005 + 0.0025 * ((p.key >> 30) % 1000) / 1000)
    rzye = round(base_rz * (1 + 0.35 * math.sin(0.012 * i + ph)) * (1 + 0.03 * (_u(z, 0) - 0.5)), 2)
    rqyl = round(base_rq * (1 + 0.5 * math.sin(0.02 * i + ph)) * (1 + 0.05 * (_u(z, 16) - 0.5)))
    return rzye, float(rqyl)


def _margin_detail_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    table = profiles(ds.listing())
    for t, day, i in _listed_days(ds, params):
        p = table[t.ts_code]
        if not p.margin or day < p.margin_from:
            continue
        prev = t.last_traded_before(i)
        rzye, rqyl = _balances(p, i)
        rzye0, rqyl0 = _balances(p, i - 1 if prev is None else prev)
        z = mix(p.key ^ 0x4A2, i)
        # Balances move only by the day's flows: balance = previous + bought - repaid.
        rzmre = round(rzye * 0.02 * (0.3 + _u(z, 0)) + max(0.0, rzye - rzye0), 2)
        rzche = round(rzye0 + rzmre - rzye, 2)
        rqmcl = float(round(rqyl * 0.05 * _u(z, 16) + max(0.0, rqyl - rqyl0)))
        rqchl = float(round(rqyl0 + rqmcl - rqyl))
        rqye = round(rqyl * t.close(i), 2)
        yield {
            "trade_date": day,
            "ts_code": t.ts_code,
            # The exchanges publish names only from 2019-09-10 on.
            "name": t.row["name"] if day >= "20190910" else None,
            "rzye": rzye,
            "rqye": rqye,
            "rzmre": rzmre,
            "rqyl": rqyl,
            "rzche": rzche,
            "rqchl": rqchl,
            "rqmcl": rqmcl,
            "rzrqye": round(rzye + rqye, 2),
        }


# -- top_list / top_inst --

TOP_LIST_FIELDS: tuple[str, ...] = (
    "trade_date",
    "ts_code",
    "name",
    "close",
    "pct_change",
    "turnover_rate",
    "amount",
    "l_sell",
    "l_buy",
    "l_amount",
    "net_amount",
    "net_rate",
    "amount_rate",
    "float_values",
    "reason",
)
TOP_INST_FIELDS: tuple[str, ...] = (
    "trade_date",
    "ts_code",
    "exalter",
    "side",
    "buy",
    "buy_rate",
    "sell",
    "sell_rate",
    "net_buy",
    "reason",
)


def _top_entries(
    ds: SandboxDataset, params: Mapping[str, Any]
) -> Iterator[tuple[Tradable, Profile, str, int, tuple[float, ...], str, int]]:
    """(stock, profile, day, index, bar, reason, salt) of each dragon-tiger list entry."""
    table = profiles(ds.listing())
    for t, day, i in _listed_days(ds, params):
        z = mix(t.key ^ 0x70B, i)
        if z % 1000 >= 12:
            continue
        bar = t.bar(i)
        first = 0 if bar[6] >= 0 else 1
        reasons = [TOP_LIST_REASONS[first]]
        if (z >> 10) % 10 == 0:
            reasons.append(TOP_LIST_REASONS[2 + (z >> 14) % (len(TOP_LIST_REASONS) - 2)])
        for salt, reason in enumerate(reasons):
            yield t, table[t.ts_code], day, i, bar, reason, salt


def _top_list_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for t, p, day, i, bar, reason, salt in _top_entries(ds, params):
        z = mix(t.key ^ 0x70C ^ salt, i)
        amount = round(bar[8] * 1000, 2)  # 千元 -> 元
        l_buy = round(amount * (0.05 + 0.25 * _u(z, 0)), 2)
        l_sell = round(amount * (0.05 + 0.25 * _u(z, 16)), 2)
        _, floating, _ = p.shares(int(day[:4]))
        yield {
            "trade_date": day,
            "ts_code": t.ts_code,
            "name": t.row["name"],
            "close": bar[3],
            "pct_change": bar[6],
            "turnover_rate": round(bar[7] / floating, 4),
            "amount": amount,
            "l_sell": l_sell,
            "l_buy": l_buy,
            "l_amount": round(l_buy + l_sell, 2),
            "net_amount": round(l_buy - l_sell, 2),
            "net_rate": round((l_buy - l_sell) / amount * 100, 4),
            "amount_rate": round((l_buy + l_sell) / amount * 100, 4),
            "float_values": round(bar[3] * floating * 1e4, 2),
            "reason": reason,
        }


_STRIDES = tuple(k for k in range(1, len(SEATS)) if math.gcd(k, len(SEATS)) == 1)


_INSTITUTION = "机构专用"


def _top_inst_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    repeat = ds.fidelity.repeated_rows
    for t, _p, day, i, bar, reason, salt in _top_entries(ds, params):
        amount = bar[8] * 1000
        zi = mix(t.key ^ 0x71B ^ salt, i)
        # Fidelity real: in one entry of three, several 机构专用 seats per side, identical in
        # every key-like column (waditu/tushare#1242 shows 3 buying and 2 selling).
        institutions = {"0": 3, "1": 2} if repeat and zi % 3 == 0 else {"0": 0, "1": 0}
        for side in ("0", "1"):
            z = mix(t.key ^ 0x71A ^ (salt << 4) ^ int(side), i)
            # Five distinct seats per side: a stride coprime to the list length.
            start, stride = z % len(SEATS), _STRIDES[(z >> 8) % len(_STRIDES)]
            seats = [SEATS[(start + k * stride) % len(SEATS)] for k in range(5)]
            seats[: institutions[side]] = [_INSTITUTION] * institutions[side]
            for k, seat in enumerate(seats):
                big = amount * (0.02 + 0.08 * _u(z, 16 + 8 * k) / (k + 1))
                small = amount * 0.01 * _u(z, 20 + 8 * k)
                buy, sell = (big, small) if side == "0" else (small, big)
                buy, sell = round(buy, 2), round(sell, 2)
                yield {
                    "trade_date": day,
                    "ts_code": t.ts_code,
                    "exalter": seat,
                    "side": side,
                    "buy": buy,
                    "buy_rate": round(buy / amount * 100, 4),
                    "sell": sell,
                    "sell_rate": round(sell / amount * 100, 4),
                    "net_buy": round(buy - sell, 2),
                    "reason": reason,
                }
        if repeat and (zi >> 8) % 20 == 0:
            # A seat row with NULL side and rates, as waditu/tushare#1508 shows.
            yield {
                "trade_date": day,
                "ts_code": t.ts_code,
                "exalter": SEATS[(zi >> 16) % len(SEATS)],
                "side": None,
                "buy": 0.0,
                "buy_rate": None,
                "sell": 0.0,
                "sell_rate": None,
                "net_buy": None,
                "reason": reason,
            }


# -- block_trade --

BLOCK_TRADE_FIELDS: tuple[str, ...] = (
    "ts_code",
    "trade_date",
    "price",
    "vol",
    "amount",
    "buyer",
    "seller",
)


def _block_trade_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for t, day, i in _listed_days(ds, params):
        z = mix(t.key ^ 0xB10C, i)
        if z % 1000 >= 20:
            continue
        close = t.close(i)
        # Fidelity real: an identical trade can repeat (doc 161's sample shows 601318.SH five
        # times at one price); simple never repeats one.
        repeat = ds.fidelity.repeated_rows and (z >> 20) % 6 == 0
        seen: set[tuple[float, float, str, str]] = set()
        for k in range(1 + (z >> 10) % 3):
            zk = mix(t.key ^ 0xB10D ^ k, i)
            price = round(close * (0.85 + 0.2 * _u(zk, 0)), 2)
            vol = round(10 ** (0.5 + 2 * _u(zk, 16)), 2)  # 万股
            buyer = SEATS[(zk >> 32) % len(SEATS)]
            seller = SEATS[(zk >> 40) % len(SEATS)]
            trade = (price, vol, buyer, seller)
            if trade in seen:
                continue
            seen.add(trade)
            row = {
                "ts_code": t.ts_code,
                "trade_date": day,
                "price": price,
                "vol": vol,
                "amount": round(price * vol, 2),  # 万元
                "buyer": buyer,
                "seller": seller,
            }
            yield row
            if repeat and k == 0:
                yield dict(row)


# -- moneyflow_hsgt --

MONEYFLOW_HSGT_FIELDS: tuple[str, ...] = (
    "trade_date",
    "ggt_ss",
    "ggt_sz",
    "hgt",
    "sgt",
    "north_money",
    "south_money",
)
_HSGT_START = "20141117"  # Shanghai Connect
_SZ_CONNECT_START = "20161205"


def _moneyflow_hsgt_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    key = ds.seed * 0x9E37 + 0x45617
    for day in bar_days(params):
        if day < _HSGT_START:
            continue
        i = calendar().open_index[day]
        z = mix(key, i)
        shenzhen = day >= _SZ_CONNECT_START
        hgt = round(3000 * math.sin(i / 37) + 4000 * (_u(z, 0) - 0.5), 2)
        ggt_ss = round(2000 * math.sin(i / 53) + 3000 * (_u(z, 16) - 0.5), 2)
        sgt = round(2500 * math.sin(i / 41) + 3500 * (_u(z, 32) - 0.5), 2) if shenzhen else None
        ggt_sz = round(1500 * math.sin(i / 29) + 2500 * (_u(z, 48) - 0.5), 2) if shenzhen else None
        yield {
            "trade_date": day,
            "ggt_ss": ggt_ss,
            "ggt_sz": ggt_sz,
            "hgt": hgt,
            "sgt": sgt,
            "north_money": round(hgt + (sgt or 0.0), 2),
            "south_money": round(ggt_ss + (ggt_sz or 0.0), 2),
        }


# -- cyq_perf --

CYQ_PERF_FIELDS: tuple[str, ...] = (
    "ts_code",
    "trade_date",
    "his_low",
    "his_high",
    "cost_5pct",
    "cost_15pct",
    "cost_50pct",
    "cost_85pct",
    "cost_95pct",
    "weight_avg",
    "winner_rate",
)
_CYQ_START = "20180102"
_QUANTILES = (-1.645, -1.036, 0.0, 1.036, 1.645)


def _cyq_perf_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for t, day, i in _listed_days(ds, params):
        if day < _CYQ_START:
            continue
        # Wider than any close since 2010: the history reaches back before the calendar.
        reach = t.amp + 0.08 + 0.015
        low = round(t.base * math.exp(-reach - 0.15), 2)
        high = round(t.base * math.exp(reach + 0.3), 2)
        # Chips sit around a lagged smooth price: the cost distribution trails the market.
        center = t.base * math.exp(t.amp * math.sin(t.w1 * (i - 15) + t.ph1))
        spread = 0.04 + 0.08 * ((t.key >> 7) % 1000) / 1000
        costs = [round(min(high, max(low, center * math.exp(q * spread))), 2) for q in _QUANTILES]
        z = (math.log(t.close(i)) - math.log(center)) / spread
        yield {
            "ts_code": t.ts_code,
            "trade_date": day,
            "his_low": low,
            "his_high": high,
            "cost_5pct": costs[0],
            "cost_15pct": costs[1],
            "cost_50pct": costs[2],
            "cost_85pct": costs[3],
            "cost_95pct": costs[4],
            "weight_avg": round(min(high, max(low, center * math.exp(spread**2 / 2))), 2),
            "winner_rate": round(50 * (1 + math.erf(z / math.sqrt(2))), 2),
        }


for _spec in (
    ApiSpec(
        "daily_basic",
        DAILY_BASIC_FIELDS,
        _daily_basic_rows,
        unique_key=("ts_code", "trade_date"),
    ),
    ApiSpec(
        "stk_limit",
        STK_LIMIT_FIELDS,
        _stk_limit_rows,
        ("trade_date", "ts_code", "up_limit", "down_limit"),
        unique_key=("ts_code", "trade_date"),
    ),
    ApiSpec(
        "suspend_d",
        SUSPEND_D_FIELDS,
        _suspend_d_rows,
        unique_key=("ts_code", "trade_date"),
    ),
    ApiSpec(
        "moneyflow",
        MONEYFLOW_FIELDS,
        _moneyflow_rows,
        unique_key=("ts_code", "trade_date"),
    ),
    ApiSpec(
        "margin_detail",
        MARGIN_DETAIL_FIELDS,
        _margin_detail_rows,
        unique_key=("ts_code", "trade_date"),
    ),
    ApiSpec(
        "top_list",
        TOP_LIST_FIELDS,
        _top_list_rows,
        unique_key=("trade_date", "ts_code", "reason"),
    ),
    ApiSpec(
        "top_inst",
        TOP_INST_FIELDS,
        _top_inst_rows,
        unique_key=("trade_date", "ts_code", "reason", "side", "exalter"),
        note="The key holds in fidelity simple only: real repeats 机构专用 seats.",
    ),
    ApiSpec(
        "block_trade",
        BLOCK_TRADE_FIELDS,
        _block_trade_rows,
        unique_key=("ts_code", "trade_date", "price", "vol", "buyer", "seller"),
        note="Fidelity simple never repeats this combination; real repeats identical trades.",
    ),
    ApiSpec(
        "moneyflow_hsgt",
        MONEYFLOW_HSGT_FIELDS,
        _moneyflow_hsgt_rows,
        unique_key=("trade_date",),
    ),
    ApiSpec(
        "cyq_perf",
        CYQ_PERF_FIELDS,
        _cyq_perf_rows,
        simple_required=_CODE_OR_DAY,
        note="Fidelity simple also answers a trade_date-only query with every stock.",
        unique_key=("ts_code", "trade_date"),
        cache=True,
    ),
):
    register_api(_spec)
