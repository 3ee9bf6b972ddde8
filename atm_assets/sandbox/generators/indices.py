"""Indices: the index list (index_basic), daily index bars, monthly constituent weights drawn
from the stock listing, and daily valuation of a dozen major indices."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from atm_assets.sandbox.generators.common import Bits, digest, mix
from atm_assets.sandbox.generators.profiles import profiles
from atm_assets.sandbox.query import ApiSpec, codes_param, date_param, param, register_api
from atm_assets.sandbox.tradecal import CALENDAR_END, CALENDAR_START, calendar, shift_days

if TYPE_CHECKING:
    from atm_assets.sandbox.dataset import SandboxDataset

INDEX_MARKETS: tuple[str, ...] = ("MSCI", "CSI", "SSE", "SZSE", "CICC", "SW", "OTH")


@dataclass(frozen=True)
class _Index:
    ts_code: str
    name: str
    fullname: str
    market: str
    publisher: str
    index_type: str | None
    category: str
    base_date: str
    base_point: float
    list_date: str
    weight_rule: str | None
    exp_date: str | None = None
    # Constituents: (pool, first rank, last rank) by a size score, or None.
    members: tuple[str, int, int] | None = None
    desc: str | None = None


_SSE, _SZ, _CSI = "上海证券交易所", "深圳证券交易所", "中证指数有限公司"
_SIZE, _COMPOSITE = "规模指数", "综合指数"
_CAP = "自由流通市值加权"

_MAJORS: tuple[_Index, ...] = (
    _Index("000001.SH", "上证指数", "上海证券交易所综合股价指数", "SSE", _SSE, "综合指数",
           _COMPOSITE, "19901219", 100.0, "19910715", "总市值加权",
           desc="以上海证券交易所全部上市股票为样本，以总股本为权数。"),
    _Index("000002.SH", "A股指数", "上证A股指数", "SSE", _SSE, "综合指数", _COMPOSITE,
           "19901219", 100.0, "19920221", "总市值加权"),
    _Index("000010.SH", "上证180", "上证180指数", "SSE", _CSI, "成份指数", _SIZE,
           "20020628", 3299.06, "20020701", _CAP, members=("SSE", 0, 180)),
    _Index("000009.SH", "上证380", "上证380指数", "SSE", _CSI, "成份指数", _SIZE,
           "20031231", 1000.0, "20101129", _CAP, members=("SSE", 180, 560)),
    _Index("000016.SH", "上证50", "上证50指数", "SSE", _CSI, "成份指数", _SIZE,
           "20031231", 1000.0, "20040102", _CAP, members=("SSE", 0, 50),
           desc='"上证50"：挑选规模大、流动性好的50只股票\t(样本每半年调整)'),
    _Index("000015.SH", "红利指数", "上证红利指数", "SSE", _CSI, "策略指数", "策略指数",
           "20041231", 1000.0, "20050104", "股息率加权"),
    _Index("000300.SH", "沪深300", "沪深300指数", "SSE", _CSI, "成份指数", _SIZE,
           "20041231", 1000.0, "20050408", _CAP, members=("A", 0, 300)),
    _Index("000905.SH", "中证500", "中证小盘500指数", "SSE", _CSI, "成份指数", _SIZE,
           "20041231", 1000.0, "20070115", _CAP, members=("A", 300, 800)),
    _Index("000852.SH", "中证1000", "中证1000指数", "SSE", _CSI, "成份指数", _SIZE,
           "20041231", 1000.0, "20141017", _CAP, members=("A", 800, 1800)),
    _Index("000688.SH", "科创50", "上证科创板50成份指数", "SSE", _CSI, "成份指数", _SIZE,
           "20191231", 1000.0, "20200723", _CAP, members=("STAR", 0, 50)),
    _Index("399001.SZ", "深证成指", "深证成份指数", "SZSE", _SZ, "成份指数", _SIZE,
           "19940720", 1000.0, "19950123", _CAP, members=("SZSE", 0, 500)),
    _Index("399005.SZ", "中小板指", "中小企业板指数", "SZSE", _SZ, "成份指数", _SIZE,
           "20050607", 1000.0, "20060124", _CAP, exp_date="20220209",
           desc="中小板与主板合并后停止发布\\（历史数据保留）"),
    _Index("399006.SZ", "创业板指", "创业板指数", "SZSE", _SZ, "成份指数", _SIZE,
           "20100531", 1000.0, "20100601", _CAP, members=("GEM", 0, 100)),
    _Index("399016.SZ", "深证创新", "深证创新指数", "SZSE", _SZ, "主题指数", "主题指数",
           "20021231", 1000.0, "20030102", _CAP),
    _Index("399102.SZ", "创业板综", "创业板综合指数", "SZSE", _SZ, "综合指数", _COMPOSITE,
           "20100531", 1000.0, "20100820", "总市值加权"),
    _Index("399106.SZ", "深证综指", "深证综合指数", "SZSE", _SZ, "综合指数", _COMPOSITE,
           "19910403", 100.0, "19910403", "总市值加权"),
    _Index("399107.SZ", "深证A指", "深证A股指数", "SZSE", _SZ, "综合指数", _COMPOSITE,
           "19910403", 100.0, "19921004", "总市值加权"),
    _Index("399300.SZ", "沪深300", "沪深300指数", "SZSE", _CSI, "成份指数", _SIZE,
           "20041231", 1000.0, "20050408", _CAP, members=("A", 0, 300)),
    _Index("399330.SZ", "深证100", "深证100指数", "SZSE", _SZ, "成份指数", _SIZE,
           "20021231", 1000.0, "20030103", _CAP, members=("SZSE", 0, 100)),
    _Index("399673.SZ", "创业板50", "创业板50指数", "SZSE", _SZ, "成份指数", _SIZE,
           "20140630", 1000.0, "20140618", _CAP, members=("GEM", 0, 50)),
    _Index("000903.CSI", "中证100", "中证100指数", "CSI", _CSI, None, _SIZE,
           "20041231", 1000.0, "20060529", _CAP, members=("A", 0, 100)),
    _Index("000906.CSI", "中证800", "中证800指数", "CSI", _CSI, None, _SIZE,
           "20041231", 1000.0, "20070115", _CAP, members=("A", 0, 800)),
    _Index("000985.CSI", "中证全指", "中证全指指数", "CSI", _CSI, None, _COMPOSITE,
           "20041231", 1000.0, "20110802", _CAP),
    _Index("930050.CSI", "中证A50", "中证A50指数", "CSI", _CSI, None, _SIZE,
           "20131231", 1000.0, "20240102", _CAP, members=("A", 0, 50)),
    _Index("932000.CSI", "中证2000", "中证2000指数", "CSI", _CSI, None, _SIZE,
           "20131231", 1000.0, "20230811", _CAP, members=("A", 1800, 3800)),
    _Index("892400.MI", "MSCI中国A股", "MSCI China A Index", "MSCI", "MSCI", None, _SIZE,
           "20081130", 1000.0, "20140610", _CAP),
    _Index("892410.MI", "MSCI中国A50", "MSCI China A 50 Connect Index", "MSCI", "MSCI", None,
           _SIZE, "20141130", 1000.0, "20211018", _CAP),
    _Index("716567.MI", "MSCI中国A股国际", "MSCI China A International Index", "MSCI",
           "MSCI", None, _SIZE, "20080531", 1000.0, "20180601", None,
           desc="MSCI China A International Index (USD) — \"inclusion\" series"),
    _Index("CI000001.CIC", "中金300", "中金300指数", "CICC", "中金公司", None, _SIZE,
           "20041231", 1000.0, "20090617", _CAP),
    _Index("CI000002.CIC", "中金小盘", "中金小盘指数", "CICC", "中金公司", None, "风格指数",
           "20041231", 1000.0, "20090617", "等权重"),
    _Index("CI000003.CIC", "中金价值", "中金价值指数", "CICC", "中金公司", None, "价值指数",
           "20041231", 1000.0, "20090617", _CAP),
    _Index("NHCI.NH", "南华商品", "南华商品指数", "OTH", "南华期货", None, "商品指数",
           "20040601", 1000.0, "20040601", None),
    _Index("HSI.HI", "恒生指数", "恒生指数", "OTH", "恒生指数公司", None, "其他指数",
           "19640731", 100.0, "19691124", "流通市值加权"),
    _Index("CBA00101.CS", "中债总财富", "中债-总财富(总值)指数", "OTH", "中央国债登记结算",
           None, "债券指数", "20011231", 100.0, "20020104", None),
)  # fmt: skip

_SW_LEVEL1 = (
    (801010, "农林牧渔"), (801030, "基础化工"), (801040, "钢铁"), (801050, "有色金属"),
    (801080, "电子"), (801110, "家用电器"), (801120, "食品饮料"), (801130, "纺织服饰"),
    (801140, "轻工制造"), (801150, "医药生物"), (801160, "公用事业"), (801170, "交通运输"),
    (801180, "房地产"), (801200, "商贸零售"), (801210, "社会服务"), (801230, "综合"),
    (801710, "建筑材料"), (801720, "建筑装饰"), (801730, "电力设备"), (801740, "国防军工"),
    (801750, "计算机"), (801760, "传媒"), (801770, "通信"), (801780, "银行"),
    (801790, "非银金融"), (801880, "汽车"), (801890, "机械设备"), (801950, "煤炭"),
    (801960, "石油石化"), (801970, "环保"), (801980, "美容护理"),
)  # fmt: skip

INDICES: tuple[_Index, ...] = _MAJORS + tuple(
    _Index(f"{code}.SI", name, f"申万{name}行业指数", "SW", "申万宏源研究", "一级行业指数",
           "行业指数", "19991230", 1000.0, "20040216", "流通市值加权")
    for code, name in _SW_LEVEL1
)  # fmt: skip
_BY_CODE = {idx.ts_code: idx for idx in INDICES}

# index_dailybasic covers these: the exchanges' and CSI's headline indices.
DAILYBASIC_INDICES: tuple[str, ...] = (
    "000001.SH", "000016.SH", "000300.SH", "000905.SH", "000852.SH", "000688.SH",
    "399001.SZ", "399005.SZ", "399006.SZ", "399016.SZ", "399300.SZ", "399673.SZ",
)  # fmt: skip

# -- index_basic --

INDEX_BASIC_FIELDS: tuple[str, ...] = (
    "ts_code",
    "name",
    "fullname",
    "market",
    "publisher",
    "index_type",
    "category",
    "base_date",
    "base_point",
    "list_date",
    "weight_rule",
    "desc",
    "exp_date",
)
INDEX_BASIC_DEFAULT_FIELDS: tuple[str, ...] = (
    "ts_code",
    "name",
    "market",
    "publisher",
    "category",
    "base_date",
    "base_point",
    "list_date",
)


def _index_basic_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    codes = codes_param(params)
    name = param(params, "name")
    market = (param(params, "market") or "").upper() or None
    if market is None and codes is None and name is None:
        market = "SSE"  # the documented default
    publisher, category = param(params, "publisher"), param(params, "category")
    for idx in INDICES:
        if codes is not None and idx.ts_code not in codes:
            continue
        if (name and idx.name != name) or (market and idx.market != market):
            continue
        if (publisher and idx.publisher != publisher) or (category and idx.category != category):
            continue
        yield {f: getattr(idx, f) for f in INDEX_BASIC_FIELDS}


# -- index_daily --

INDEX_DAILY_FIELDS: tuple[str, ...] = (
    "ts_code",
    "trade_date",
    "close",
    "open",
    "high",
    "low",
    "pre_close",
    "change",
    "pct_chg",
    "vol",
    "amount",
)


class _Level:
    """An index's points as a pure function of the day index (like the stock price model)."""

    def __init__(self, seed: int, idx: _Index) -> None:
        bits = Bits(digest(seed, idx.ts_code, "idx"))
        self.key = bits.take(1 << 64)
        self.base = idx.base_point * (1.5 + 30 * bits.unit())
        self.amp = 0.2 + 0.2 * bits.unit()
        self.w1, self.ph1 = 0.004 + 0.01 * bits.unit(), 6.28 * bits.unit()
        self.w2, self.ph2 = 0.03 + 0.05 * bits.unit(), 6.28 * bits.unit()
        self.vol = 10 ** (6.5 + 2.5 * bits.unit())

    def close(self, i: int) -> float:
        noise = mix(self.key, i) / 2.0**64
        x = (
            self.amp * math.sin(self.w1 * i + self.ph1)
            + 0.06 * math.sin(self.w2 * i + self.ph2)
            + 0.01 * (2 * noise - 1)
        )
        return round(self.base * math.exp(x), 4)

    def bar(self, i: int) -> tuple[float, ...]:
        close, pre = self.close(i), self.close(i - 1)
        z = mix(self.key ^ 0x1DB, i)
        u = [((z >> s) & 0xFFFF) / 65536 for s in (0, 16, 32, 48)]
        open_ = round(pre * (1 + 0.01 * (u[0] - 0.5)), 4)
        high = round(max(open_, close) * (1 + 0.008 * u[1]), 4)
        low = round(min(open_, close) * (1 - 0.008 * u[2]), 4)
        vol = round(self.vol * (0.6 + 0.8 * u[3]), 2)
        amount = round(vol * (open_ + close) / 2 / 1000, 4)
        change = round(close - pre, 4)
        return close, open_, high, low, pre, change, round(change / pre * 100, 4), vol, amount


@lru_cache(maxsize=128)
def _level(seed: int, ts_code: str) -> _Level:
    return _Level(seed, _BY_CODE[ts_code])


def _index_days(idx: _Index, params: Mapping[str, Any]) -> list[int]:
    """Open-day indexes of the query on which the index was published, newest first."""
    cal = calendar()
    first = max(idx.list_date, CALENDAR_START)
    last = idx.exp_date or CALENDAR_END
    trade_date = date_param(params, "trade_date")
    start = max(first, trade_date or date_param(params, "start_date") or CALENDAR_START)
    end = min(last, trade_date or date_param(params, "end_date") or CALENDAR_END)
    lo = bisect.bisect_left(cal.open_dates, start)
    hi = bisect.bisect_right(cal.open_dates, end)
    return list(range(hi - 1, lo - 1, -1))


def _index_daily_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    days = calendar().open_dates
    for code in codes_param(params) or []:
        idx = _BY_CODE.get(code)
        # Shenwan industry indices are not in index_daily (Tushare serves them elsewhere).
        if idx is None or idx.market == "SW":
            continue
        level = _level(ds.seed, code)
        for i in _index_days(idx, params):
            yield dict(zip(INDEX_DAILY_FIELDS, (code, days[i], *level.bar(i)), strict=True))


# -- index_dailybasic --

INDEX_DAILYBASIC_FIELDS: tuple[str, ...] = (
    "ts_code",
    "trade_date",
    "total_mv",
    "float_mv",
    "total_share",
    "float_share",
    "free_share",
    "turnover_rate",
    "turnover_rate_f",
    "pe",
    "pe_ttm",
    "pb",
)


def _index_dailybasic_rows(
    ds: SandboxDataset, params: Mapping[str, Any]
) -> Iterator[dict[str, Any]]:
    cal = calendar()
    codes = codes_param(params)
    chosen = [c for c in DAILYBASIC_INDICES if codes is None or c in codes]
    per_day: dict[int, list[str]] = {}
    for code in chosen:
        for i in _index_days(_BY_CODE[code], params):
            per_day.setdefault(i, []).append(code)
    for i in sorted(per_day, reverse=True):
        day = cal.open_dates[i]
        for code in per_day[i]:
            level = _level(ds.seed, code)
            close = level.close(i)
            z = mix(level.key ^ 0xDB1, i)
            years = (i / 243.0) + 1
            total_share = round(level.vol * 400 * (1 + 0.05 * years), 2)
            float_share = round(total_share * 0.78, 2)
            free_share = round(float_share * 0.55, 2)
            mv = total_share * close / level.base * 8
            turnover = 0.3 + 1.5 * ((z & 0xFFFF) / 65536)
            pe = 8 + 30 * (close / level.base) ** 1.2 / 3
            yield {
                "ts_code": code,
                "trade_date": day,
                "total_mv": round(mv, 2),
                "float_mv": round(mv * 0.78, 2),
                "total_share": total_share,
                "float_share": float_share,
                "free_share": free_share,
                "turnover_rate": round(turnover, 2),
                "turnover_rate_f": round(turnover / 0.55, 2),
                "pe": round(pe, 2),
                "pe_ttm": round(pe * (0.95 + 0.1 * ((z >> 16) & 0xFFFF) / 65536), 2),
                "pb": round(pe / 8.5, 2),
            }


# -- index_weight --

INDEX_WEIGHT_FIELDS: tuple[str, ...] = ("index_code", "con_code", "trade_date", "weight")

_POOLS = {
    "SSE": lambda r: r["exchange"] == "SSE",
    "STAR": lambda r: r["market"] == "科创板",
    "SZSE": lambda r: r["exchange"] == "SZSE",
    "GEM": lambda r: r["market"] == "创业板",
    "A": lambda r: r["exchange"] in ("SSE", "SZSE"),
}


@lru_cache(maxsize=1)
def weight_dates() -> tuple[str, ...]:
    """The first open day of every month: the days weights are published on."""
    out: list[str] = []
    for day in calendar().open_dates:
        if not out or out[-1][:6] != day[:6]:
            out.append(day)
    return tuple(out)


def constituents(ds: SandboxDataset, index_code: str, day: str) -> list[tuple[str, float]]:
    """(con_code, weight) of an index on a weight date, by con_code; weights sum to ~100."""
    idx = _BY_CODE.get(index_code)
    if idx is None or idx.members is None or day < idx.list_date:
        return []
    pool, lo, hi = idx.members
    listing = ds.listing()
    table = profiles(listing)
    keep = _POOLS[pool]
    seasoned = shift_days(day, -90)
    month = int(day[:4]) * 12 + int(day[4:6])
    scored = []
    for row in listing.listed:
        if not keep(row) or row["list_date"] > seasoned:
            continue
        if row["delist_date"] is not None and row["delist_date"] <= day:
            continue
        p = table[row["ts_code"]]
        # Size drifts a little month to month, so constituents change at the edges.
        score = p.size + 0.25 * math.sin(month * (0.05 + (p.key % 97) / 970) + p.key % 628)
        scored.append((score, row["ts_code"]))
    scored.sort(reverse=True)
    chosen = scored[lo:hi]
    if not chosen:
        return []
    top = chosen[0][0]
    raw = [(code, math.exp(0.8 * (score - top))) for score, code in chosen]
    total = sum(w for _, w in raw)
    return sorted((code, round(100 * w / total, 4)) for code, w in raw)


def _index_weight_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    index_code = (param(params, "index_code") or "").upper()
    trade_date = date_param(params, "trade_date")
    start = trade_date or date_param(params, "start_date") or CALENDAR_START
    end = trade_date or date_param(params, "end_date") or CALENDAR_END
    for day in reversed(weight_dates()):
        if not start <= day <= end:
            continue
        for con_code, weight in constituents(ds, index_code, day):
            yield {"index_code": index_code, "con_code": con_code, "trade_date": day,
                   "weight": weight}  # fmt: skip


register_api(
    ApiSpec(
        "index_basic",
        INDEX_BASIC_FIELDS,
        _index_basic_rows,
        INDEX_BASIC_DEFAULT_FIELDS,
        unique_key=("ts_code",),
    )
)
register_api(
    ApiSpec(
        "index_daily",
        INDEX_DAILY_FIELDS,
        _index_daily_rows,
        unique_key=("ts_code", "trade_date"),
    )
)
register_api(
    ApiSpec(
        "index_weight",
        INDEX_WEIGHT_FIELDS,
        _index_weight_rows,
        unique_key=("index_code", "con_code", "trade_date"),
        cache=True,
    )
)
register_api(
    ApiSpec(
        "index_dailybasic",
        INDEX_DAILYBASIC_FIELDS,
        _index_dailybasic_rows,
        simple_required=(("trade_date", "ts_code"),),
        note="Fidelity simple requires trade_date or ts_code; the documentation requires none.",
        unique_key=("ts_code", "trade_date"),
    )
)
