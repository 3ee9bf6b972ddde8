"""Deterministic synthetic Tushare Pro data and the API query engine behind the sandbox."""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from itertools import islice
from typing import Any

EXCHANGES: tuple[str, ...] = ("SSE", "SZSE", "BSE")
LIST_STATUSES: tuple[str, ...] = ("L", "D", "P", "G")

DEFAULT_SIZES: dict[tuple[str, str], int] = {
    ("SSE", "L"): 2300,
    ("SSE", "D"): 200,
    ("SSE", "P"): 5,
    ("SSE", "G"): 8,
    ("SZSE", "L"): 2900,
    ("SZSE", "D"): 150,
    ("SZSE", "P"): 4,
    ("SZSE", "G"): 10,
    ("BSE", "L"): 280,
    ("BSE", "D"): 10,
    ("BSE", "P"): 1,
    ("BSE", "G"): 3,
}

# Revisions share one pre-allocated code pool so that rows keep their ts_code across revisions.
MAX_REVISION = 9
MAX_PARTITION_ROWS = 200_000
MAX_ROWS_PER_CALL = 6000

CALENDAR_START = "20100101"
CALENDAR_END = "20271231"
# Rows listed before the calendar starts still need a pretrade_date for the first day.
_PRE_CALENDAR_OPEN = "20091231"
_LAST_BASELINE_DATE = "20251231"
_FIRST_LISTING = "19901219"

_SUFFIX = {"SSE": "SH", "SZSE": "SZ", "BSE": "BJ"}
_CAL_EXCHANGES = frozenset({"SSE", "SZSE", "BSE", "CFFEX", "SHFE", "CZCE", "DCE", "INE", "GFEX"})

STOCK_BASIC_FIELDS: tuple[str, ...] = (
    "ts_code",
    "symbol",
    "name",
    "area",
    "industry",
    "fullname",
    "enname",
    "cnspell",
    "market",
    "exchange",
    "curr_type",
    "list_status",
    "list_date",
    "delist_date",
    "is_hs",
    "act_name",
    "act_ent_type",
)
STOCK_BASIC_DEFAULT_FIELDS: tuple[str, ...] = (
    "ts_code",
    "symbol",
    "name",
    "area",
    "industry",
    "cnspell",
    "market",
    "list_date",
    "act_name",
    "act_ent_type",
)
TRADE_CAL_FIELDS: tuple[str, ...] = ("exchange", "cal_date", "is_open", "pretrade_date")
DAILY_FIELDS: tuple[str, ...] = (
    "ts_code",
    "trade_date",
    "open",
    "high",
    "low",
    "close",
    "pre_close",
    "change",
    "pct_chg",
    "vol",
    "amount",
)
ADJ_FACTOR_FIELDS: tuple[str, ...] = ("ts_code", "trade_date", "adj_factor")


class ParamError(ValueError):
    """A request parameter the sandbox cannot interpret."""


class UnknownApiError(KeyError):
    """The requested api_name is not served by the sandbox."""


# ---------------------------------------------------------------------------
# Vocabulary for generated rows
# ---------------------------------------------------------------------------

_PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("浦发", "pf", "Pufa"), ("华夏", "hx", "Huaxia"), ("东方", "df", "Dongfang"),
    ("中信", "zx", "Zhongxin"), ("海通", "ht", "Haitong"), ("招商", "zs", "Zhaoshang"),
    ("万科", "wk", "Wanke"), ("格力", "gl", "Geli"), ("美的", "md", "Meidi"),
    ("长江", "cj", "Changjiang"), ("黄河", "hh", "Huanghe"), ("南方", "nf", "Nanfang"),
    ("北方", "bf", "Beifang"), ("西部", "xb", "Xibu"), ("华东", "hd", "Huadong"),
    ("金桥", "jq", "Jinqiao"), ("天宇", "ty", "Tianyu"), ("恒瑞", "hr", "Hengrui"),
    ("新华", "xh", "Xinhua"), ("光明", "gm", "Guangming"), ("宏达", "hd", "Hongda"),
    ("永泰", "yt", "Yongtai"), ("国金", "gj", "Guojin"), ("申达", "sd", "Shenda"),
    ("红星", "hx", "Hongxing"), ("青松", "qs", "Qingsong"), ("银河", "yh", "Yinhe"),
    ("华远", "hy", "Huayuan"), ("泰山", "ts", "Taishan"), ("鹏博", "pb", "Pengbo"),
    ("同方", "tf", "Tongfang"), ("紫光", "zg", "Ziguang"), ("瑞丰", "rf", "Ruifeng"),
    ("盛和", "sh", "Shenghe"), ("凯乐", "kl", "Kaile"), ("晨光", "cg", "Chenguang"),
    ("中科", "zk", "Zhongke"), ("航天", "ht", "Hangtian"), ("海信", "hx", "Haixin"),
    ("鲁信", "lx", "Luxin"), ("川化", "ch", "Chuanhua"), ("粤电", "yd", "Yuedian"),
    ("湘电", "xd", "Xiangdian"), ("赣能", "gn", "Ganneng"), ("闽东", "md", "Mindong"),
    ("浙能", "zn", "Zheneng"), ("苏宁", "sn", "Suning"), ("京能", "jn", "Jingneng"),
    ("津滨", "jb", "Jinbin"), ("渝开", "yk", "Yukai"), ("龙头", "lt", "Longtou"),
    ("金龙", "jl", "Jinlong"), ("大洋", "dy", "Dayang"), ("远东", "yd", "Yuandong"),
    ("华邦", "hb", "Huabang"), ("天山", "ts", "Tianshan"), ("三峡", "sx", "Sanxia"),
    ("新湖", "xh", "Xinhu"), ("宝钢", "bg", "Baogang"), ("春秋", "cq", "Chunqiu"),
)  # fmt: skip

_SUFFIXES: tuple[tuple[str, str, str], ...] = (
    ("银行", "yh", "Bank"), ("科技", "kj", "Technology"), ("股份", "gf", "Holdings"),
    ("电子", "dz", "Electronics"), ("医药", "yy", "Pharmaceutical"), ("能源", "ny", "Energy"),
    ("实业", "sy", "Industrial"), ("控股", "kg", "Holding"), ("集团", "jt", "Group"),
    ("发展", "fz", "Development"), ("电气", "dq", "Electric"), ("材料", "cl", "Materials"),
    ("化工", "hg", "Chemical"), ("证券", "zq", "Securities"), ("地产", "dc", "Real Estate"),
    ("传媒", "cm", "Media"), ("汽车", "qc", "Automobile"), ("环保", "hb", "Environmental"),
    ("智能", "zn", "Intelligent"), ("信息", "xx", "Information"), ("生物", "sw", "Biotech"),
    ("食品", "sp", "Foods"), ("重工", "zg", "Heavy Industry"), ("物流", "wl", "Logistics"),
    ("矿业", "ky", "Mining"), ("钢铁", "gt", "Steel"), ("新材", "xc", "New Materials"),
    ("光电", "gd", "Optoelectronics"), ("软件", "rj", "Software"),
    ("通信", "tx", "Communications"),
)  # fmt: skip

# (area as Tushare spells it, administrative suffix used in government owner names)
_AREAS: tuple[tuple[str, str], ...] = (
    ("深圳", "市"), ("北京", "市"), ("上海", "市"), ("广东", "省"), ("浙江", "省"),
    ("江苏", "省"), ("山东", "省"), ("福建", "省"), ("四川", "省"), ("湖北", "省"),
    ("湖南", "省"), ("安徽", "省"), ("河南", "省"), ("河北", "省"), ("辽宁", "省"),
    ("吉林", "省"), ("黑龙江", "省"), ("陕西", "省"), ("山西", "省"), ("江西", "省"),
    ("广西", "壮族自治区"), ("云南", "省"), ("贵州", "省"), ("重庆", "市"), ("天津", "市"),
    ("新疆", "维吾尔自治区"), ("内蒙", "古自治区"), ("甘肃", "省"), ("海南", "省"),
    ("宁夏", "回族自治区"), ("青海", "省"), ("西藏", "自治区"),
)  # fmt: skip

_INDUSTRIES: tuple[str, ...] = (
    "银行", "证券", "保险", "全国地产", "区域地产", "软件服务", "互联网", "通信设备", "元器件",
    "半导体", "电气设备", "化学制药", "生物制药", "中成药", "医疗保健", "汽车配件", "汽车整车",
    "食品", "白酒", "家用电器", "专用机械", "机械基件", "化工原料", "塑料", "钢加工", "普钢",
    "小金属", "铜", "煤炭开采", "石油开采", "火力发电", "水力发电", "新型电力", "建筑工程",
    "装修装饰", "水泥", "环境保护", "物流", "港口", "机场", "航空", "影视音像", "出版业",
    "广告包装", "服饰", "纺织", "农业综合", "种植业", "渔业", "饲料", "旅游景点", "酒店餐饮",
    "商品城", "百货", "超市连锁", "IT设备",
)  # fmt: skip

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN_NAMES: tuple[str, ...] = (
    "建国", "伟", "芳", "敏", "静", "强", "磊", "军", "洋", "勇",
    "艳", "杰", "涛", "明", "超", "秀英", "华", "平", "刚", "桂英",
)  # fmt: skip
_FOREIGN_OWNERS: tuple[str, ...] = ("Patrick O'Neil", "Maria Schmidt", "Kenji Sato", "Ahmed Ali")
_ACT_ENT_TYPES: tuple[tuple[str, int], ...] = (
    # (type, cumulative permille)
    ("民营企业", 500),
    ("地方国企", 750),
    ("中央国企", 870),
    ("外资企业", 900),
    ("集体企业", 920),
    ("其他", 950),
    ("无", 1000),
)
_CO_LTD = ("Co.,Ltd.", "Co., Ltd.", "Corporation Limited", "Group Co.,Ltd.")


@dataclass(frozen=True)
class _Board:
    market: str
    weight: float
    ranges: tuple[tuple[int, int], ...]
    min_list_date: str

    @property
    def capacity(self) -> int:
        return sum(hi - lo for lo, hi in self.ranges)


# The first board of each exchange also absorbs whatever the others cannot hold.
_BOARDS: dict[str, tuple[_Board, ...]] = {
    "SSE": (
        _Board("主板", 0.72, ((600000, 606000),), "19901219"),
        _Board("科创板", 0.28, ((688000, 690000),), "20190722"),
    ),
    "SZSE": (
        _Board("主板", 0.52, ((1, 4000),), "19910403"),
        _Board("创业板", 0.48, ((300000, 302000),), "20091030"),
    ),
    "BSE": (
        _Board(
            "北交所",
            1.0,
            ((430000, 430500), (830000, 840000), (870000, 874000), (920000, 921000)),
            "20200727",
        ),
    ),
}
# Oversized test partitions spill into the rest of the 6-digit space, most plausible first;
# together with the natural ranges each exchange can hold ~990,000 distinct codes.
_OVERFLOW: dict[str, tuple[tuple[int, int], ...]] = {
    "SSE": (
        (606000, 688000),
        (690000, 700000),
        (500000, 600000),
        (900000, 1000000),
        (0, 500000),
        (700000, 900000),
    ),
    "SZSE": ((4000, 300000), (302000, 1000000)),
    "BSE": (
        (430500, 830000),
        (840000, 870000),
        (874000, 920000),
        (921000, 1000000),
        (0, 430000),
    ),
}


# ---------------------------------------------------------------------------
# Trading calendar
# ---------------------------------------------------------------------------

# Lunar holidays as (month, day) of the festival itself, 2010..2027; approximate is fine.
_SPRING_FESTIVAL = {
    2010: (2, 14), 2011: (2, 3), 2012: (1, 23), 2013: (2, 10), 2014: (1, 31), 2015: (2, 19),
    2016: (2, 8), 2017: (1, 28), 2018: (2, 16), 2019: (2, 5), 2020: (1, 25), 2021: (2, 12),
    2022: (2, 1), 2023: (1, 22), 2024: (2, 10), 2025: (1, 29), 2026: (2, 17), 2027: (2, 6),
}  # fmt: skip
_DRAGON_BOAT = {
    2010: (6, 16), 2011: (6, 6), 2012: (6, 23), 2013: (6, 12), 2014: (6, 2), 2015: (6, 20),
    2016: (6, 9), 2017: (5, 30), 2018: (6, 18), 2019: (6, 7), 2020: (6, 25), 2021: (6, 14),
    2022: (6, 3), 2023: (6, 22), 2024: (6, 10), 2025: (5, 31), 2026: (6, 19), 2027: (6, 9),
}  # fmt: skip
_MID_AUTUMN = {
    2010: (9, 22), 2011: (9, 12), 2012: (9, 30), 2013: (9, 19), 2014: (9, 8), 2015: (9, 27),
    2016: (9, 15), 2017: (10, 4), 2018: (9, 24), 2019: (9, 13), 2020: (10, 1), 2021: (9, 21),
    2022: (9, 10), 2023: (9, 29), 2024: (9, 17), 2025: (10, 6), 2026: (9, 25), 2027: (9, 15),
}  # fmt: skip


def _fmt(d: date) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def _parse(s: str) -> date:
    return date(int(s[:4]), int(s[4:6]), int(s[6:8]))


def _holidays() -> set[date]:
    out: set[date] = set()
    for year in range(2010, 2028):
        out.add(date(year, 1, 1))
        spring = date(year, *_SPRING_FESTIVAL[year])
        out.update(spring + timedelta(days=k) for k in range(-1, 6))
        out.add(date(year, 4, 4 if year % 4 in (0, 1) else 5))
        out.update(date(year, 5, day) for day in range(1, 6 if year >= 2020 else 4))
        out.add(date(year, *_DRAGON_BOAT[year]))
        mid_autumn = date(year, *_MID_AUTUMN[year])
        out.add(mid_autumn)
        out.update(date(year, 10, day) for day in range(1, 8))
        if mid_autumn.month == 10:
            out.add(date(year, 10, 8))
    return out


class _Calendar:
    """SSE calendar; the sandbox uses it for every exchange."""

    def __init__(self) -> None:
        holidays = _holidays()
        self.dates: list[str] = []
        self.is_open: list[int] = []
        self.pretrade: list[str] = []
        self.open_dates: list[str] = []
        prev = _PRE_CALENDAR_OPEN
        d, end = _parse(CALENDAR_START), _parse(CALENDAR_END)
        while d <= end:
            s = _fmt(d)
            is_open = d.weekday() < 5 and d not in holidays
            self.dates.append(s)
            self.is_open.append(int(is_open))
            self.pretrade.append(prev)
            if is_open:
                self.open_dates.append(s)
                prev = s
            d += timedelta(days=1)
        self.open_index = {s: i for i, s in enumerate(self.open_dates)}
        early, d = [], _parse(_FIRST_LISTING)
        while _fmt(d) < CALENDAR_START:
            if d.weekday() < 5:
                early.append(_fmt(d))
            d += timedelta(days=1)
        self.listing_days: list[str] = early + self.open_dates

    def next_open(self, s: str) -> str:
        """First open date on or after s (the last open date when s is past the end)."""
        if s < CALENDAR_START:
            return s
        i = bisect.bisect_left(self.open_dates, s)
        return self.open_dates[min(i, len(self.open_dates) - 1)]

    def open_between(self, start: str, end: str) -> list[str]:
        lo = bisect.bisect_left(self.open_dates, start)
        hi = bisect.bisect_right(self.open_dates, end)
        return self.open_dates[lo:hi]

    def index_on_or_after(self, s: str) -> int:
        return bisect.bisect_left(self.open_dates, s)


@lru_cache(maxsize=1)
def calendar() -> _Calendar:
    return _Calendar()


# ---------------------------------------------------------------------------
# stock_basic rows
# ---------------------------------------------------------------------------


class _Bits:
    """Draws small integers from one big hash so each row costs a single digest."""

    __slots__ = ("v",)

    def __init__(self, digest: bytes) -> None:
        self.v = int.from_bytes(digest, "big")

    def take(self, n: int) -> int:
        self.v, r = divmod(self.v, n)
        return r

    def unit(self) -> float:
        return self.take(1_000_000) / 1_000_000


# Bucketed by permille // 50 so the per-row lookup is a tuple index.
_ACT_ENT_BY_BUCKET: tuple[str, ...] = tuple(
    next(t for t, cum in _ACT_ENT_TYPES if bucket * 50 < cum) for bucket in range(20)
)


def _digest(*parts: object) -> bytes:
    return hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=32).digest()


def _ranges_index(ranges: tuple[tuple[int, int], ...], idx: int) -> int:
    for lo, hi in ranges:
        if idx < hi - lo:
            return lo + idx
        idx -= hi - lo
    raise IndexError(idx)


def _allocate_codes(seed: int, exchange: str, total: int) -> list[tuple[int, _Board]]:
    rng = random.Random(f"atm-sandbox:{seed}:{exchange}:codes")
    boards = _BOARDS[exchange]
    counts = [min(round(total * b.weight), b.capacity) for b in boards[1:]]
    counts.insert(0, total - sum(counts))
    out: list[tuple[int, _Board]] = []
    for board, n in zip(boards, counts, strict=True):
        natural = min(n, board.capacity)
        picks = rng.sample(range(board.capacity), natural)
        out.extend((_ranges_index(board.ranges, i), board) for i in picks)
        spill = n - natural
        for lo, hi in _OVERFLOW[exchange]:
            if spill <= 0:
                break
            take = min(spill, hi - lo)
            out.extend((code, board) for code in range(lo, lo + take))
            spill -= take
        if spill > 0:
            raise ValueError(f"too many rows for exchange {exchange}: {total}")
    rng.shuffle(out)
    return out


def _extra_count(listed: int) -> int:
    return max(1, round(listed / 100)) if listed else 0


@lru_cache(maxsize=256)
def _day_bounds(lo: str, hi: str) -> tuple[int, int]:
    days = calendar().listing_days
    i = min(bisect.bisect_left(days, lo), len(days) - 1)
    return i, max(i, bisect.bisect_right(days, hi) - 1)


def _pick_date(lo: str, hi: str, frac: float) -> str:
    """A plausible listing day in [lo, hi]: a weekday before 2010, an open day after."""
    i, j = _day_bounds(lo, hi)
    return calendar().listing_days[i + int(frac * (j - i))]


def _shift_days(s: str, days: int) -> str:
    return _fmt(_parse(s) + timedelta(days=days))


def _revision_variant(seed: int, ts_code: str, born: int, revision: int) -> int:
    """How many later revisions touched this row (stable hash % 10 == 0 per revision)."""
    return sum(
        1
        for k in range(born + 1, revision + 1)
        if zlib.crc32(f"{seed}:{ts_code}:r{k}".encode()) % 10 == 0
    )


def _make_row(
    seed: int,
    exchange: str,
    board: _Board,
    code: int,
    status: str,
    born: int,
    revision: int,
) -> dict[str, Any]:
    symbol = f"{code:06d}"
    ts_code = f"{symbol}.{_SUFFIX[exchange]}"
    bits = _Bits(_digest(seed, ts_code))
    variant = _revision_variant(seed, ts_code, born, revision)

    prefix, prefix_spell, prefix_pinyin = _PREFIXES[bits.take(len(_PREFIXES))]
    si = bits.take(len(_SUFFIXES))
    # Revisions rename the short name only; the registered full and English names stay put.
    legal_suffix, _, suffix_english = _SUFFIXES[si]
    suffix, suffix_spell, _ = _SUFFIXES[(si + 7 * variant) % len(_SUFFIXES)]
    area, area_kind = _AREAS[bits.take(len(_AREAS))]
    ii = bits.take(len(_INDUSTRIES))
    industry: str | None = _INDUSTRIES[(ii + 3 * variant) % len(_INDUSTRIES)]
    # A revised row always gets an industry so the revision is visible on every touched row.
    if bits.take(1000) < 20 and variant == 0:
        industry = None

    core, spell = prefix + suffix, prefix_spell + suffix_spell
    name_roll = bits.take(1000)
    if status == "D" and name_roll < 500:
        name, spell = "退市" + prefix, "ts" + prefix_spell
    elif status in ("L", "P") and name_roll < 30:
        name, spell = "ST" + core, "st" + spell
    elif status in ("L", "P", "D") and name_roll < 50:
        name, spell = "*ST" + core, "*st" + spell
    elif exchange == "SZSE" and board.market == "主板" and name_roll < 80:
        name, spell = core + "Ａ", spell + "a"  # full-width letter, as in old SZSE names
    elif name_roll < 82:
        name = f"{prefix}'{suffix}"
    elif name_roll < 83:
        name = f'{prefix}"{suffix}'
    else:
        name = core

    fullname = f"{area}{prefix}{legal_suffix}股份有限公司"
    if bits.take(1000) < 3:
        fullname = f"{area}{prefix}\\{legal_suffix}股份有限公司"

    co = _CO_LTD[bits.take(len(_CO_LTD))]
    en_roll = bits.take(1000)
    enname: str | None
    if en_roll < 20:
        enname = f'{prefix_pinyin} "{suffix_english}" {co}'
    elif en_roll < 35:
        enname = f"{prefix_pinyin} {suffix_english} (Int'l) {co}"
    elif en_roll < 40:
        enname = f"{prefix_pinyin}\\{suffix_english} {co}"
    elif en_roll < 42:
        enname = f"{prefix_pinyin} {suffix_english} {co} \U0001f680"
    elif en_roll < 72:
        enname = None
    else:
        enname = f"{prefix_pinyin} {suffix_english} {co}"

    ent_roll = bits.take(1000)
    act_ent_type: str | None = _ACT_ENT_BY_BUCKET[ent_roll // 50]
    person = _SURNAMES[bits.take(len(_SURNAMES))] + _GIVEN_NAMES[bits.take(len(_GIVEN_NAMES))]
    act_name: str | None
    if act_ent_type == "地方国企":
        act_name = f"{area}{area_kind}人民政府国有资产监督管理委员会"
    elif act_ent_type == "中央国企":
        act_name = "国务院国有资产监督管理委员会"
    elif act_ent_type == "外资企业":
        act_name = _FOREIGN_OWNERS[bits.take(len(_FOREIGN_OWNERS))]
    elif act_ent_type == "集体企业":
        act_name = f"{area}{prefix}集体资产管理委员会"
    elif act_ent_type == "无":
        act_name = "无实际控制人"
    else:
        act_name = person
    if bits.take(1000) < 50:
        act_name = act_ent_type = None

    is_hs = "N"
    if status in ("L", "P") and exchange != "BSE":
        connected = bits.take(100) < 35
        if variant % 2 == 1:
            connected = not connected
        if connected:
            is_hs = "H" if exchange == "SSE" else "S"

    frac = bits.unit()
    list_date: str | None
    delist_date: str | None = None
    if status == "G":
        list_date = None
    elif born > 1:
        start = _shift_days("20260105", 30 * (born - 2))
        list_date = _pick_date(start, _shift_days(start, 25), frac)
    elif status == "D":
        list_date = _pick_date(board.min_list_date, "20211231", frac)
        lo = max(_shift_days(list_date, 365), CALENDAR_START)
        delist_date = _pick_date(min(lo, _LAST_BASELINE_DATE), _LAST_BASELINE_DATE, bits.unit())
    else:
        list_date = _pick_date(board.min_list_date, _LAST_BASELINE_DATE, frac**0.7)

    return {
        "ts_code": ts_code,
        "symbol": symbol,
        "name": name,
        "area": area,
        "industry": industry,
        "fullname": fullname,
        "enname": enname,
        "cnspell": spell,
        "market": board.market,
        "exchange": exchange,
        "curr_type": "CNY",
        "list_status": status,
        "list_date": list_date,
        "delist_date": delist_date,
        "is_hs": is_hs,
        "act_name": act_name,
        "act_ent_type": act_ent_type,
    }


class _Tradable:
    """Per-stock price parameters; every bar is a pure function of (stock, day index)."""

    __slots__ = (
        "ts_code",
        "list_date",
        "delist_date",
        "key",
        "base",
        "amp",
        "w1",
        "ph1",
        "w2",
        "ph2",
        "vol_base",
        "_adj",
    )

    def __init__(self, seed: int, row: Mapping[str, Any]) -> None:
        self.ts_code: str = row["ts_code"]
        self.list_date: str = row["list_date"]
        self.delist_date: str | None = row["delist_date"]
        bits = _Bits(_digest(seed, self.ts_code, "px"))
        self.key = bits.take(1 << 64)
        self.base = math.exp(math.log(2.0) + bits.unit() * (math.log(150.0) - math.log(2.0)))
        self.amp = 0.15 + 0.25 * bits.unit()
        self.w1 = 0.01 + 0.04 * bits.unit()
        self.ph1 = 2 * math.pi * bits.unit()
        self.w2 = 0.05 + 0.2 * bits.unit()
        self.ph2 = 2 * math.pi * bits.unit()
        self.vol_base = 10 ** (3 + 2.5 * bits.unit())
        self._adj: tuple[list[int], list[float]] | None = None

    def trades_on(self, day: str) -> bool:
        return self.list_date <= day and (self.delist_date is None or day < self.delist_date)

    def suspended(self, i: int) -> bool:
        return _mix(self.key ^ 0x5E5, i) % 1000 < 12

    def close(self, i: int) -> float:
        noise = _mix(self.key, i) / 2.0**64
        x = (
            self.amp * math.sin(self.w1 * i + self.ph1)
            + 0.08 * math.sin(self.w2 * i + self.ph2)
            + 0.015 * (2 * noise - 1)
        )
        return round(self.base * math.exp(x), 2)

    def bar(self, i: int) -> tuple[float, ...]:
        close, pre_close = self.close(i), self.close(i - 1)
        z = _mix(self.key ^ 0xBA5, i)
        u1, u2, u3, u4 = (((z >> s) & 0xFFFF) / 65536 for s in (0, 16, 32, 48))
        open_ = round(pre_close * (1 + 0.02 * (u1 - 0.5)), 2)
        high = max(round(max(open_, close) * (1 + 0.02 * u2), 2), open_, close)
        low = min(round(min(open_, close) * (1 - 0.02 * u3), 2), open_, close)
        vol = round(self.vol_base * (0.4 + 1.2 * u4), 2)
        amount = round(vol * (open_ + high + low + close) / 4 / 10, 3)
        change = round(close - pre_close, 2)
        pct_chg = round(change / pre_close * 100, 4)
        return open_, high, low, close, pre_close, change, pct_chg, vol, amount

    def adj_factor(self, i: int) -> float:
        if self._adj is None:
            self._adj = self._adj_events()
        idx, cum = self._adj
        return cum[bisect.bisect_right(idx, i)]

    def _adj_events(self) -> tuple[list[int], list[float]]:
        cal = calendar()
        listed = cal.index_on_or_after(self.list_date)
        idx: list[int] = []
        cum = [1.0]
        for year in range(2010, 2028):
            z = _mix(self.key ^ 0xAD7, year)
            if z % 10 >= 6:
                continue
            day = date(year, 6, 1) + timedelta(days=(z >> 8) % 61)
            i = cal.index_on_or_after(_fmt(day))
            if i <= listed or i >= len(cal.open_dates):
                continue
            idx.append(i)
            cum.append(round(cum[-1] * (1.005 + 0.06 * ((z >> 20) % 1000) / 1000), 3))
        return idx, cum


_M64 = (1 << 64) - 1


def _mix(key: int, i: int) -> int:
    """splitmix64 finaliser: cheap per-(stock, day) pseudo-randomness without state."""
    z = (key + 0x9E3779B97F4A7C15 * (i + 1)) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


class _Listing:
    """All stock_basic rows of one (seed, sizes, revision), plus lazily built price models."""

    def __init__(self, seed: int, sizes: Mapping[tuple[str, str], int], revision: int) -> None:
        self.seed = seed
        self.parts: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for exchange in EXCHANGES:
            n = {st: sizes[(exchange, st)] for st in LIST_STATUSES}
            extra = _extra_count(n["L"])
            codes = _allocate_codes(seed, exchange, sum(n.values()) + extra * (MAX_REVISION - 1))
            pos = 0
            for status in LIST_STATUSES:
                chunk = codes[pos : pos + n[status]]
                pos += n[status]
                self.parts[(exchange, status)] = [
                    _make_row(seed, exchange, board, code, status, 1, revision)
                    for code, board in chunk
                ]
            for born in range(2, revision + 1):
                # Fixed slots per revision keep rows added in revision 2 identical in revision 3.
                chunk = codes[pos + (born - 2) * extra : pos + (born - 1) * extra]
                self.parts[(exchange, "L")].extend(
                    _make_row(seed, exchange, board, code, "L", born, revision)
                    for code, board in chunk
                )
            for status in LIST_STATUSES:
                self.parts[(exchange, status)].sort(key=lambda r: r["ts_code"])
        self.by_status: dict[str, list[dict[str, Any]]] = {
            st: sorted(
                (r for ex in EXCHANGES for r in self.parts[(ex, st)]),
                key=lambda r: r["ts_code"],
            )
            for st in LIST_STATUSES
        }
        self._lock = threading.Lock()
        self._tradables: list[_Tradable] | None = None
        self._tradable_by_code: dict[str, _Tradable] = {}

    def tradables(self) -> list[_Tradable]:
        with self._lock:
            if self._tradables is None:
                # Paused stocks are left out of daily data, like long suspensions.
                rows = sorted(
                    (r for st in ("L", "D") for r in self.by_status[st] if r["list_date"]),
                    key=lambda r: r["ts_code"],
                )
                self._tradables = [_Tradable(self.seed, r) for r in rows]
                self._tradable_by_code = {t.ts_code: t for t in self._tradables}
            return self._tradables

    def tradable(self, ts_code: str) -> _Tradable | None:
        self.tradables()
        return self._tradable_by_code.get(ts_code)


@lru_cache(maxsize=8)
def _build_listing(
    seed: int, sizes_key: tuple[tuple[tuple[str, str], int], ...], revision: int
) -> _Listing:
    return _Listing(seed, dict(sizes_key), revision)


def parse_partition(key: str | tuple[str, str]) -> tuple[str, str]:
    """Accept ("SSE", "L") or "SSE:L" and validate it."""
    if isinstance(key, str):
        exchange, sep, status = key.partition(":")
        if not sep:
            raise ValueError(f"partition must look like SSE:L, got {key!r}")
    else:
        exchange, status = key
    exchange, status = exchange.strip().upper(), status.strip().upper()
    if exchange not in EXCHANGES or status not in LIST_STATUSES:
        raise ValueError(f"unknown partition {exchange}:{status}")
    return exchange, status


def parse_size_spec(spec: str) -> tuple[tuple[str, str], int]:
    """Parse the CLI form "SSE:L=40000"."""
    key, sep, value = spec.partition("=")
    if not sep:
        raise ValueError(f"size must look like SSE:L=40000, got {spec!r}")
    return parse_partition(key), int(value)


def resolve_sizes(
    sizes: Mapping[str, int] | Mapping[tuple[str, str], int] | None,
) -> dict[tuple[str, str], int]:
    out = dict(DEFAULT_SIZES)
    for key, value in (sizes or {}).items():
        count = int(value)
        if not 0 <= count <= MAX_PARTITION_ROWS:
            raise ValueError(f"partition size must be in 0..{MAX_PARTITION_ROWS}, got {count}")
        out[parse_partition(key)] = count
    return out


class SandboxDataset:
    """Immutable, seeded view of the sandbox data; cheap to construct, generated on first use."""

    def __init__(
        self,
        seed: int = 0,
        sizes: Mapping[str, int] | Mapping[tuple[str, str], int] | None = None,
        revision: int = 1,
    ) -> None:
        if not 1 <= int(revision) <= MAX_REVISION:
            raise ValueError(f"revision must be in 1..{MAX_REVISION}, got {revision}")
        self.seed = int(seed)
        self.revision = int(revision)
        self.sizes = resolve_sizes(sizes)
        self._sizes_key = tuple(sorted(self.sizes.items()))

    def __repr__(self) -> str:
        changed = {
            f"{ex}:{st}": n for (ex, st), n in self.sizes.items() if DEFAULT_SIZES[(ex, st)] != n
        }
        return (
            f"SandboxDataset(seed={self.seed}, sizes={changed or None}, revision={self.revision})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SandboxDataset):
            return NotImplemented
        return (self.seed, self._sizes_key, self.revision) == (
            other.seed,
            other._sizes_key,
            other.revision,
        )

    def __hash__(self) -> int:
        return hash((self.seed, self._sizes_key, self.revision))

    def with_revision(self, revision: int) -> SandboxDataset:
        return SandboxDataset(self.seed, self.sizes, revision)

    def with_sizes(
        self, sizes: Mapping[str, int] | Mapping[tuple[str, str], int] | None
    ) -> SandboxDataset:
        return SandboxDataset(self.seed, sizes, self.revision)

    def listing(self) -> _Listing:
        return _build_listing(self.seed, self._sizes_key, self.revision)

    # -- ground truth accessors (tests compare API answers with these) --

    def stock_basic(
        self, exchange: str | None = None, list_status: str | None = None
    ) -> list[dict[str, Any]]:
        """Full 17-field rows sorted by ts_code; None means every exchange / status."""
        listing = self.listing()
        statuses = [list_status] if list_status else list(LIST_STATUSES)
        rows = [
            r
            for st in statuses
            for r in listing.by_status.get(st, ())
            if not exchange or r["exchange"] == exchange
        ]
        rows.sort(key=lambda r: r["ts_code"])
        return [dict(r) for r in rows]

    def trade_cal(
        self,
        exchange: str = "SSE",
        start_date: str | None = None,
        end_date: str | None = None,
        is_open: int | str | None = None,
    ) -> list[dict[str, Any]]:
        params = {"exchange": exchange, "start_date": start_date, "end_date": end_date}
        params["is_open"] = is_open
        return list(_trade_cal_rows(self, params))

    def daily(
        self,
        ts_code: str | None = None,
        trade_date: str | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
    ) -> list[dict[str, Any]]:
        params = {
            "ts_code": ts_code,
            "trade_date": trade_date,
            "start_date": start_date,
            "end_date": end_date,
        }
        return list(_daily_rows(self, params))

    def adj_factor(
        self,
        ts_code: str | None = None,
        trade_date: str | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
    ) -> list[dict[str, Any]]:
        params = {
            "ts_code": ts_code,
            "trade_date": trade_date,
            "start_date": start_date,
            "end_date": end_date,
        }
        return list(_adj_factor_rows(self, params))

    def is_open(self, day: str) -> bool:
        return day in calendar().open_index

    def open_dates(self, start: str = CALENDAR_START, end: str = CALENDAR_END) -> list[str]:
        return calendar().open_between(start, end)


# ---------------------------------------------------------------------------
# API handlers: (dataset, params) -> rows in the API's order
# ---------------------------------------------------------------------------


def _param(params: Mapping[str, Any], key: str) -> str | None:
    """Absent, None and "" all mean "no filter", as on the real service."""
    value = params.get(key)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _date_param(params: Mapping[str, Any], key: str) -> str | None:
    value = _param(params, key)
    if value is not None and not (len(value) == 8 and value.isdigit()):
        raise ParamError(f"{key} 格式错误，应为YYYYMMDD: {value}")
    return value


def _codes_param(params: Mapping[str, Any]) -> list[str] | None:
    value = _param(params, "ts_code")
    if value is None:
        return None
    return sorted({c.strip().upper() for c in value.split(",") if c.strip()})


def int_param(params: Mapping[str, Any], key: str) -> int | None:
    value = _param(params, key)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        raise ParamError(f"{key} 必须是整数: {value}") from None


def _stock_basic_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    listing = ds.listing()
    status = (_param(params, "list_status") or "L").upper()
    exchange = _param(params, "exchange")
    codes = _codes_param(params)
    name = _param(params, "name")
    market = _param(params, "market")
    is_hs = _param(params, "is_hs")
    code_set = set(codes) if codes is not None else None
    for row in listing.by_status.get(status, ()):
        if exchange and row["exchange"] != exchange.upper():
            continue
        if code_set is not None and row["ts_code"] not in code_set:
            continue
        if name and row["name"] != name:
            continue
        if market and row["market"] != market:
            continue
        if is_hs and row["is_hs"] != is_hs:
            continue
        yield row


def _trade_cal_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    exchange = (_param(params, "exchange") or "SSE").upper()
    if exchange not in _CAL_EXCHANGES:
        return
    start = _date_param(params, "start_date") or CALENDAR_START
    end = _date_param(params, "end_date") or CALENDAR_END
    is_open = int_param(params, "is_open")
    cal = calendar()
    lo = bisect.bisect_left(cal.dates, start)
    hi = bisect.bisect_right(cal.dates, end)
    # The live service lists the newest date first.
    for i in range(hi - 1, lo - 1, -1):
        if is_open is not None and cal.is_open[i] != is_open:
            continue
        yield {
            "exchange": exchange,
            "cal_date": cal.dates[i],
            "is_open": cal.is_open[i],
            "pretrade_date": cal.pretrade[i],
        }


def _bar_days(params: Mapping[str, Any]) -> list[str]:
    cal = calendar()
    trade_date = _date_param(params, "trade_date")
    if trade_date is not None:
        return [trade_date] if trade_date in cal.open_index else []
    start = _date_param(params, "start_date") or CALENDAR_START
    end = _date_param(params, "end_date") or CALENDAR_END
    return cal.open_between(start, end)[::-1]


def _bar_stocks(ds: SandboxDataset, params: Mapping[str, Any]) -> list[_Tradable]:
    listing = ds.listing()
    codes = _codes_param(params)
    if codes is None:
        return listing.tradables()
    found = (listing.tradable(c) for c in codes)
    return [t for t in found if t is not None]


def _iter_bars(
    ds: SandboxDataset, params: Mapping[str, Any]
) -> Iterator[tuple[_Tradable, str, int]]:
    """(stock, day, day index) in API order: newest day first, ts_code ascending within a day."""
    stocks = _bar_stocks(ds, params)
    open_index = calendar().open_index
    for day in _bar_days(params):
        i = open_index[day]
        for t in stocks:
            if t.trades_on(day) and not t.suspended(i):
                yield t, day, i


def _daily_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for t, day, i in _iter_bars(ds, params):
        yield dict(zip(DAILY_FIELDS, (t.ts_code, day, *t.bar(i)), strict=True))


def _adj_factor_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for t, day, i in _iter_bars(ds, params):
        yield {"ts_code": t.ts_code, "trade_date": day, "adj_factor": t.adj_factor(i)}


RowsFn = Callable[[SandboxDataset, Mapping[str, Any]], Iterable[Mapping[str, Any]]]


@dataclass(frozen=True)
class ApiSpec:
    """One served API: its full field list, the default subset and a row generator."""

    name: str
    fields: tuple[str, ...]
    rows: RowsFn
    default_fields: tuple[str, ...] | None = None
    max_rows: int = MAX_ROWS_PER_CALL

    def resolve_fields(self, requested: object) -> list[str]:
        """Known requested fields in request order; the defaults when none are given."""
        if isinstance(requested, str):
            names = [f.strip() for f in requested.split(",")]
        elif isinstance(requested, list | tuple):
            names = [str(f).strip() for f in requested]
        else:
            names = []
        known = set(self.fields)
        out = list(dict.fromkeys(n for n in names if n in known))
        if not out:
            return list(self.default_fields or self.fields)
        return out


API_SPECS: dict[str, ApiSpec] = {}


def register_api(spec: ApiSpec) -> ApiSpec:
    API_SPECS[spec.name] = spec
    return spec


register_api(
    ApiSpec("stock_basic", STOCK_BASIC_FIELDS, _stock_basic_rows, STOCK_BASIC_DEFAULT_FIELDS)
)
register_api(ApiSpec("trade_cal", TRADE_CAL_FIELDS, _trade_cal_rows))
register_api(ApiSpec("daily", DAILY_FIELDS, _daily_rows))
register_api(ApiSpec("adj_factor", ADJ_FACTOR_FIELDS, _adj_factor_rows))


@dataclass(frozen=True)
class QueryResult:
    fields: list[str]
    items: list[list[Any]]
    has_more: bool


def execute(
    dataset: SandboxDataset, api_name: str, params: Mapping[str, Any], fields: object = ""
) -> QueryResult:
    """Answer one API call: filter, project, and page (limit capped at the API's max rows)."""
    spec = API_SPECS.get(api_name)
    if spec is None:
        raise UnknownApiError(api_name)
    names = spec.resolve_fields(fields)
    limit = int_param(params, "limit")
    limit = spec.max_rows if limit is None or limit <= 0 else min(limit, spec.max_rows)
    offset = max(0, int_param(params, "offset") or 0)
    page = list(islice(spec.rows(dataset, params), offset, offset + limit + 1))
    has_more = len(page) > limit
    items = [[row.get(f) for f in names] for row in page[:limit]]
    return QueryResult(names, items, has_more)
