"""The catalog checked against the live service: one small call per dataset, and what its
answer says about the declaration (fields, key, cap, access)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from atm_assets.core.datasets import TableSpec
from atm_assets.core.dates import tushare_date
from atm_assets.core.errors import TushareError
from atm_assets.core.governor import ApiPermissionDeniedError, DailyQuotaExhaustedError
from atm_assets.core.tushare_client import TushareClient


@dataclass
class Contract:
    """What one call showed about a dataset's declaration; `ok` when nothing disagrees."""

    dataset: str
    api: str
    request: dict[str, str]
    access: str = "ok"
    rows: int | None = None
    has_more: bool | None = None
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    reordered: bool = False
    repeated_keys: int = 0
    cap: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.access == "ok" and not self.missing and not self.repeated_keys

    def as_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "api": self.api,
            "request": self.request,
            "ok": self.ok,
            "access": self.access,
            "rows": self.rows,
            "has_more": self.has_more,
            "cap": self.cap,
            "missing_fields": self.missing,
            "extra_fields": self.extra,
            "order_differs": self.reordered,
            "repeated_keys": self.repeated_keys,
            "notes": self.notes,
        }


# index_weight lists constituents of indices that have them (a composite such as 000001.SH,
# the first of the default index_codes, need not): the sample asks for the CSI 300's.
CONSTITUENT_INDEX = "000300.SH"


def sample_day(scheme: str, open_days: Sequence[dt.date], today: dt.date) -> dt.date:
    """The day a sample of `scheme` asks for: the last open day, or for weeks and months the
    last open day of the last completed one (Tushare dates its bars so; the current week's or
    month's last open day is still ahead). `open_days` are the open days before today."""
    if scheme == "week":
        end = today - dt.timedelta(days=today.weekday() + 1)  # the Sunday before today
    elif scheme == "month":
        end = today.replace(day=1) - dt.timedelta(days=1)  # the last day of last month
    else:
        end = today - dt.timedelta(days=1)
    # No open day between it and the period's end: the period's last open day.
    earlier = [d for d in open_days if d <= end]
    return max(earlier) if earlier else end


def sample_request(
    spec: TableSpec, open_days: Sequence[dt.date], today: dt.date, index_code: str
) -> dict[str, str]:
    """A request of one partition, the way a sync makes it: the last open day (of the last
    completed week or month for those), the report period two quarters back (surely
    published), the last completed month of an index with constituents, the first index's
    year, one exchange."""
    scheme = spec.scheme
    sampled = sample_day(scheme, open_days, today)
    day = tushare_date(sampled)
    if scheme in ("trade_date", "week", "month"):
        request = {"trade_date": day}
    elif scheme == "period":
        # Two quarter ends back: the last quarter's reports may still be coming in.
        end = sampled
        for _ in range(2):
            end = dt.date(end.year, 3 * ((end.month - 1) // 3) + 1, 1) - dt.timedelta(days=1)
        request = {(spec.value_param or "period"): tushare_date(end)}
    elif scheme == "index_month":
        # The whole month, as a sync asks for it: weights are dated once a month.
        last = today.replace(day=1) - dt.timedelta(days=1)
        request = {
            "index_code": CONSTITUENT_INDEX,
            "start_date": f"{tushare_date(last)[:6]}01",
            "end_date": tushare_date(last),
        }
    elif scheme == "index_year":
        request = {"ts_code": index_code, "start_date": f"{day[:4]}0101", "end_date": day}
    elif scheme in ("exchange", "exchange_list_status"):
        request = {"exchange": "SSE", **({"list_status": "L"} if "status" in scheme else {})}
    elif scheme == "values":
        request = {spec.value_param: spec.values[0]}
    else:
        request = {}
    request.update(dict(spec.variants[0]) if spec.variants else {})
    return {**dict(spec.params), **request}


def check(client: TushareClient, spec: TableSpec, request: dict[str, str]) -> Contract:
    """One call of `spec`'s API with `request`, asking for the declared fields."""
    found = Contract(spec.name, spec.api_name, request, cap=spec.max_rows)
    try:
        page = client.probe(spec.api_name, spec.fields, limit=spec.max_rows, **request)
    except ApiPermissionDeniedError as e:
        found.access = f"no permission ({spec.points or '?'} points documented): {e}"
        return found
    except DailyQuotaExhaustedError as e:
        found.access = f"day quota spent: {e}"
        return found
    except TushareError as e:
        found.access = f"{type(e).__name__}: {e}"
        return found
    frame, answered = page.frame, [str(c) for c in page.frame.columns]
    found.rows, found.has_more = len(frame), page.has_more
    found.missing = [f for f in spec.fields if f not in answered]
    found.extra = [f for f in answered if f not in spec.fields]
    found.reordered = [f for f in answered if f in spec.fields] != [
        f for f in spec.fields if f in answered
    ]
    if spec.key and not found.missing and len(frame):
        found.repeated_keys = int(frame.duplicated(list(spec.key)).sum())
    if not spec.key:
        found.notes.append("no natural key: partitions replaced whole")
    if found.rows == 0:
        found.notes.append("no rows: a closed or unpublished day, or nothing to answer")
    elif page.has_more and found.rows < spec.max_rows:
        found.notes.append(f"answers at most {found.rows} rows a call (catalog: {spec.max_rows})")
    elif found.rows >= spec.max_rows and not spec.offset_paging:
        found.notes.append("at its cap and cannot page: the partition would be cut short")
    return found
