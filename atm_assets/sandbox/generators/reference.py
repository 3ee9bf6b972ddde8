"""Reference data about companies: name change history (namechange) and company facts
(stock_company), both consistent with the stock listing of the same revision."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from atm_assets.sandbox.generators.common import Bits, digest, mix
from atm_assets.sandbox.generators.listing import (
    LAST_BASELINE_DATE,
    REVISION_LISTINGS_START,
    names_by_revision,
)
from atm_assets.sandbox.generators.profiles import profiles
from atm_assets.sandbox.generators.vocab import _GIVEN_NAMES, _SURNAMES
from atm_assets.sandbox.query import ApiSpec, codes_param, date_param, param, register_api
from atm_assets.sandbox.tradecal import calendar, shift_days

if TYPE_CHECKING:
    from atm_assets.sandbox.dataset import SandboxDataset
    from atm_assets.sandbox.generators.listing import Listing

# -- namechange --

NAMECHANGE_FIELDS: tuple[str, ...] = (
    "ts_code",
    "name",
    "start_date",
    "end_date",
    "ann_date",
    "change_reason",
)


def _core_name(row: Mapping[str, Any], name: str) -> str:
    """The name without ST marks; delisting names fall back to the registered name."""
    for mark in ("*ST", "ST"):
        if name.startswith(mark):
            return name[len(mark) :]
    if name.startswith("退市"):
        full, area = row["fullname"], row["area"]
        return full[len(area) : -len("股份有限公司")][:4]
    return name


def _day_between(lo: str, hi: str, frac: float) -> str | None:
    """An open day (a weekday before 2010) in [lo, hi]; None when there is none."""
    days = calendar().listing_days
    i, j = bisect.bisect_left(days, lo), bisect.bisect_right(days, hi) - 1
    return days[i + int(frac * (j - i))] if j >= i else None


def _history(seed: int, row: Mapping[str, Any], revision: int) -> list[dict[str, Any]]:
    """One company's names, oldest first, each with its start, announcement and reason."""
    bits = Bits(digest(seed, row["ts_code"], "names"))
    names = names_by_revision(seed, row, revision)
    first = names[0][1]
    list_date = row["list_date"]
    events: list[tuple[str, str, str]] = []  # (start, name, reason)
    core = _core_name(row, first)
    horizon = min(LAST_BASELINE_DATE, REVISION_LISTINGS_START)
    late = shift_days(horizon, -45)
    past = None  # the baseline history before the current first name, when it fits
    if first.startswith("退市"):
        stop = shift_days(row["delist_date"] or horizon, -40)
        a = _day_between(list_date, stop, 0.99)
        past = a and [(list_date, core, "其他"), (a, first, "终止上市")]
    elif first.startswith(("ST", "*ST")):
        a = _day_between(shift_days(list_date, 400), late, bits.unit())
        b = a and _day_between(shift_days(a, 200), late, bits.unit())
        if first.startswith("*ST") and a and b and bits.take(2):
            past = [(list_date, core, "其他"), (a, "ST" + core, "ST"), (b, first, "*ST")]
        elif a:
            past = [(list_date, core, "其他"), (a, first, "ST" if first[0] == "S" else "*ST")]
    else:
        roll = bits.take(100)
        a = _day_between(shift_days(list_date, 400), late, bits.unit())
        b = a and _day_between(shift_days(a, 300), late, bits.unit())
        if roll < 5 and a:
            older = core[:2] + ("科技" if not core.endswith("科技") else "实业")
            past = [(list_date, older, "其他"), (a, first, "改名")]
        elif roll < 8 and a and b:
            past = [(list_date, core, "其他"), (a, "ST" + core, "ST"), (b, first, "撤销ST")]
    events += past or [(list_date, first, "其他")]
    for k, name in names[1:]:
        start = shift_days(REVISION_LISTINGS_START, 30 * (k - 2) + 3 + bits.take(20))
        events.append((calendar().next_open(start), name, "改名"))
    # Keep strictly increasing starts: a squeezed event (a late listing) is dropped.
    kept: list[tuple[str, str, str]] = []
    for event in events:
        if not kept or event[0] > kept[-1][0]:
            kept.append(event)
    out = []
    for n, (start, name, reason) in enumerate(kept):
        end = shift_days(kept[n + 1][0], -1) if n + 1 < len(kept) else None
        ann: str | None = shift_days(start, -1 - bits.take(3))
        if n == 0 and bits.take(10) < 3:
            ann = None  # old listing records often have no announcement date
        out.append(
            {
                "ts_code": row["ts_code"],
                "name": name,
                "start_date": start,
                "end_date": end,
                "ann_date": ann,
                "change_reason": reason,
            }
        )
    return out


def _all_histories(listing: Listing) -> list[dict[str, Any]]:
    """Every company's history: ts_code ascending, newest name first within a company."""

    def build() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for row in listing.listed:
            out.extend(reversed(_history(listing.seed, row, listing.revision)))
        return out

    return listing.memo("namechange", build)


def _namechange_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    codes = codes_param(params)
    start = date_param(params, "start_date")
    end = date_param(params, "end_date")
    wanted = set(codes) if codes is not None else None
    repeat = ds.fidelity.repeated_rows
    for row in _all_histories(ds.listing()):
        if wanted is not None and row["ts_code"] not in wanted:
            continue
        # start_date/end_date bound the announcement date, not the name's own dates.
        if start or end:
            ann = row["ann_date"]
            if ann is None or (start and ann < start) or (end and ann > end):
                continue
        yield row
        # Tushare serves some current (open-ended) names twice, identical (fidelity real).
        if repeat and row["end_date"] is None and mix(_code_key(row["ts_code"]), 0x4E3) % 100 < 3:
            yield dict(row)


def _code_key(ts_code: str) -> int:
    return int.from_bytes(ts_code.encode("ascii"), "big") & 0xFFFFFFFFFFFF


# -- stock_company --

STOCK_COMPANY_FIELDS: tuple[str, ...] = (
    "ts_code",
    "com_name",
    "com_id",
    "exchange",
    "chairman",
    "manager",
    "secretary",
    "reg_capital",
    "setup_date",
    "province",
    "city",
    "introduction",
    "website",
    "email",
    "office",
    "employees",
    "main_business",
    "business_scope",
)
STOCK_COMPANY_DEFAULT_FIELDS = tuple(
    f
    for f in STOCK_COMPANY_FIELDS
    if f not in ("introduction", "office", "main_business", "business_scope")
)

_CITIES = {
    "深圳": "深圳市", "北京": "北京市", "上海": "上海市", "广东": "广州市", "浙江": "杭州市",
    "江苏": "南京市", "山东": "济南市", "福建": "福州市", "四川": "成都市", "湖北": "武汉市",
    "湖南": "长沙市", "安徽": "合肥市", "河南": "郑州市", "河北": "石家庄市", "辽宁": "沈阳市",
    "吉林": "长春市", "黑龙江": "哈尔滨市", "陕西": "西安市", "山西": "太原市", "江西": "南昌市",
    "广西": "南宁市", "云南": "昆明市", "贵州": "贵阳市", "重庆": "重庆市", "天津": "天津市",
    "新疆": "乌鲁木齐市", "内蒙": "呼和浩特市", "甘肃": "兰州市", "海南": "海口市",
    "宁夏": "银川市", "青海": "西宁市", "西藏": "拉萨市",
}  # fmt: skip
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_BUSINESS = ("研发、生产和销售", "设计、制造与服务", "投资、建设与运营", "开发、销售及技术服务")
_SCOPE_TAIL = "（依法须经批准的项目，经相关部门批准后方可开展经营活动）"


def _person(bits: Bits) -> str:
    return _SURNAMES[bits.take(len(_SURNAMES))] + _GIVEN_NAMES[bits.take(len(_GIVEN_NAMES))]


def _company(seed: int, row: Mapping[str, Any], total_share: float) -> dict[str, Any]:
    bits = Bits(digest(seed, row["ts_code"], "company"))
    area = row["area"]
    city = _CITIES.get(area, f"{area}市")
    spell = row["cnspell"].strip("*").replace("*", "")
    chairman = _person(bits)
    manager = chairman if bits.take(5) == 0 else _person(bits)
    secretary = None if bits.take(50) == 0 else _person(bits)
    com_id = None
    if bits.take(40):
        body = "".join(_USCC_CHARS[bits.take(len(_USCC_CHARS))] for _ in range(16))
        com_id = "91" + body
    industry = row["industry"] or "综合"
    product = f"{row['name']}{industry}产品"
    intro_roll = bits.take(100)
    introduction = (
        f"{row['fullname']}成立于{row['list_date'][:4]}年前后，主营{industry}相关业务。\n"
        f"公司坚持“创新、协调、绿色”的发展理念，产品远销海内外。"
    )
    if intro_roll < 3:
        introduction += '\n\t他们称之为"第二增长曲线"\\路径 🚀'
    elif intro_roll < 6:
        introduction += "\r\n公司简称：" + row["name"]
    setup_year = max(1980, int(row["list_date"][:4]) - 1 - bits.take(15))
    setup_date = f"{setup_year}{1 + bits.take(12):02d}{1 + bits.take(28):02d}"
    return {
        "ts_code": row["ts_code"],
        "com_name": row["fullname"],
        "com_id": com_id,
        "exchange": row["exchange"],
        "chairman": chairman,
        "manager": manager,
        "secretary": secretary,
        "reg_capital": round(total_share * (0.9 + 0.1 * bits.unit()), 4),
        "setup_date": setup_date,
        "province": area,
        "city": city,
        "introduction": introduction,
        "website": None if bits.take(20) == 0 else f"www.{spell}.com.cn",
        "email": None if bits.take(20) == 0 else f"ir@{spell}.com.cn",
        "office": f"{area}{city}{row['name'][:2]}路{1 + bits.take(999)}号",
        "employees": None if bits.take(30) == 0 else int(10 ** (1.7 + 3.3 * bits.unit())),
        "main_business": f"{product}的{_BUSINESS[bits.take(len(_BUSINESS))]}。",
        "business_scope": f"{industry}产品的研发；技术咨询；货物进出口；{product}销售。"
        + _SCOPE_TAIL,
    }


def _stock_company_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    listing = ds.listing()
    table = profiles(listing)
    exchange = (param(params, "exchange") or "").upper() or None
    codes = codes_param(params)
    wanted = set(codes) if codes is not None else None
    for row in listing.listed:
        if exchange and row["exchange"] != exchange:
            continue
        if wanted is not None and row["ts_code"] not in wanted:
            continue
        yield _company(listing.seed, row, table[row["ts_code"]].total_share)


register_api(
    ApiSpec(
        "namechange",
        NAMECHANGE_FIELDS,
        _namechange_rows,
        unique_key=("ts_code", "start_date"),
        note="The key holds in fidelity simple only: real repeats some open-ended rows.",
    )
)
register_api(
    ApiSpec(
        "stock_company",
        STOCK_COMPANY_FIELDS,
        _stock_company_rows,
        STOCK_COMPANY_DEFAULT_FIELDS,
        unique_key=("ts_code",),
    )
)
