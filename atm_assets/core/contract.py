"""The catalog checked against the live service: one small call per dataset, and what its
answer says about the declaration (fields, key, cap, access)."""

from __future__ import annotations

import datetime as dt
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


def sample_request(spec: TableSpec, open_day: dt.date, index_code: str) -> dict[str, str]:
    """A request of one partition, the way a sync makes it: the last open day, the report
    period two quarters back (surely published), the first index, one exchange."""
    scheme = spec.scheme
    day = tushare_date(open_day)
    if scheme in ("trade_date", "week", "month"):
        request = {"trade_date": day}
    elif scheme == "period":
        # Two quarter ends back: the last quarter's reports may still be coming in.
        end = open_day
        for _ in range(2):
            end = dt.date(end.year, 3 * ((end.month - 1) // 3) + 1, 1) - dt.timedelta(days=1)
        request = {(spec.value_param or "period"): tushare_date(end)}
    elif scheme == "index_month":
        request = {"index_code": index_code, "start_date": f"{day[:6]}01", "end_date": day}
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
