"""The stock listing behind stock_basic: code allocation per board, names, dates, revisions."""

from __future__ import annotations

import bisect
import random
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from atm_assets.sandbox.generators.common import Bits, digest
from atm_assets.sandbox.generators.prices import Tradable
from atm_assets.sandbox.generators.vocab import (
    _ACT_ENT_TYPES,
    _AREAS,
    _CO_LTD,
    _FOREIGN_OWNERS,
    _GIVEN_NAMES,
    _INDUSTRIES,
    _PREFIXES,
    _SUFFIXES,
    _SURNAMES,
)
from atm_assets.sandbox.query import ApiSpec, codes_param, param, register_api
from atm_assets.sandbox.tradecal import CALENDAR_START, calendar, parse_date, shift_days

if TYPE_CHECKING:
    from atm_assets.sandbox.dataset import SandboxDataset

_T = TypeVar("_T")

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

LAST_BASELINE_DATE = "20251231"
# Rows added by revision k >= 2 list from this date + 30 * (k - 2) days on.
REVISION_LISTINGS_START = "20260105"

SUFFIX = {"SSE": "SH", "SZSE": "SZ", "BSE": "BJ"}

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


# Bucketed by permille // 50 so the per-row lookup is a tuple index.
_ACT_ENT_BY_BUCKET: tuple[str, ...] = tuple(
    next(t for t, cum in _ACT_ENT_TYPES if bucket * 50 < cum) for bucket in range(20)
)


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
    ts_code = f"{symbol}.{SUFFIX[exchange]}"
    bits = Bits(digest(seed, ts_code))
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
        start = shift_days(REVISION_LISTINGS_START, 30 * (born - 2))
        list_date = _pick_date(start, shift_days(start, 25), frac)
    elif status == "D":
        list_date = _pick_date(board.min_list_date, "20211231", frac)
        lo = max(shift_days(list_date, 365), CALENDAR_START)
        delist_date = _pick_date(min(lo, LAST_BASELINE_DATE), LAST_BASELINE_DATE, bits.unit())
    else:
        list_date = _pick_date(board.min_list_date, LAST_BASELINE_DATE, frac**0.7)

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


def born_revision(row: Mapping[str, Any]) -> int:
    """The revision that added this row (rows of revision k >= 2 list from 2026 on)."""
    list_date = row["list_date"]
    if not list_date or list_date < REVISION_LISTINGS_START:
        return 1
    days = (parse_date(list_date) - parse_date(REVISION_LISTINGS_START)).days
    return 2 + days // 30


def names_by_revision(seed: int, row: Mapping[str, Any], revision: int) -> list[tuple[int, str]]:
    """(revision, short name) for the row's first name and each later revision's rename."""
    exchange, born = row["exchange"], born_revision(row)
    board = next(b for b in _BOARDS[exchange] if b.market == row["market"])
    code, status = int(row["symbol"]), row["list_status"]
    out = [(born, _make_row(seed, exchange, board, code, status, born, born)["name"])]
    for k in range(born + 1, revision + 1):
        if _revision_variant(seed, row["ts_code"], k - 1, k):
            name = _make_row(seed, exchange, board, code, status, born, k)["name"]
            if name != out[-1][1]:
                out.append((k, name))
    return out


class Listing:
    """All stock_basic rows of one (seed, sizes, revision), plus lazily built price models."""

    def __init__(self, seed: int, sizes: Mapping[tuple[str, str], int], revision: int) -> None:
        self.seed = seed
        self.revision = revision
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
        self._tradables: list[Tradable] | None = None
        self._tradable_by_code: dict[str, Tradable] = {}
        self._memo: dict[str, Any] = {}
        self.by_code: dict[str, dict[str, Any]] = {
            r["ts_code"]: r for rows in self.parts.values() for r in rows
        }
        # Every stock that ever listed (L, D and P), sorted by ts_code: the companies.
        self.listed: list[dict[str, Any]] = sorted(
            (r for r in self.by_code.values() if r["list_date"]), key=lambda r: r["ts_code"]
        )

    def tradables(self) -> list[Tradable]:
        with self._lock:
            if self._tradables is None:
                # Paused stocks are left out of daily data, like long suspensions.
                rows = sorted(
                    (r for st in ("L", "D") for r in self.by_status[st] if r["list_date"]),
                    key=lambda r: r["ts_code"],
                )
                self._tradables = [Tradable(self.seed, r) for r in rows]
                self._tradable_by_code = {t.ts_code: t for t in self._tradables}
            return self._tradables

    def tradable(self, ts_code: str) -> Tradable | None:
        self.tradables()
        return self._tradable_by_code.get(ts_code)

    def memo(self, name: str, factory: Callable[[], _T]) -> _T:
        """A value derived from this listing, built once (a racing duplicate is discarded)."""
        with self._lock:
            if name in self._memo:
                return self._memo[name]
        value = factory()
        with self._lock:
            return self._memo.setdefault(name, value)


@lru_cache(maxsize=8)
def build_listing(
    seed: int, sizes_key: tuple[tuple[tuple[str, str], int], ...], revision: int
) -> Listing:
    return Listing(seed, dict(sizes_key), revision)


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


def _stock_basic_rows(ds: SandboxDataset, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    listing = ds.listing()
    status = (param(params, "list_status") or "L").upper()
    exchange = param(params, "exchange")
    codes = codes_param(params)
    name = param(params, "name")
    market = param(params, "market")
    is_hs = param(params, "is_hs")
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


register_api(
    ApiSpec(
        "stock_basic",
        STOCK_BASIC_FIELDS,
        _stock_basic_rows,
        STOCK_BASIC_DEFAULT_FIELDS,
        unique_key=("ts_code",),
    )
)
