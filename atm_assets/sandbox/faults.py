"""Injectable faults: their kinds, the per-api queue that hands them out, and payload mangling."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from atm_assets.sandbox.query import QueryResult

HTTP_FAULTS: dict[str, int] = {
    "http_500": 500,
    "http_502": 502,
    "http_503": 503,
    "http_404": 404,
    "http_429": 429,
}
FAULT_KINDS: tuple[str, ...] = (
    *HTTP_FAULTS,
    "rate_limit",
    "no_permission",
    "bad_token",
    "timeout",
    "reset",
    "malformed_json",
    "truncated_json",
    "missing_data",
    "wrong_fields",
    "empty_page",
    "short_page",
    "api_error",
    "bad_value",
    "duplicate_row",
)


@dataclass
class Fault:
    kind: str
    api: str
    remaining: int  # negative: never used up
    opts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "api": self.api, "remaining": self.remaining, **self.opts}


class FaultQueue:
    """Faults in injection order; not thread-safe on its own (the server holds its lock)."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, kind: str, api: str = "*", times: int = 1, **opts: Any) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        times = int(times)
        if times == 0:
            return
        self._faults.append(Fault(kind, api or "*", times, dict(opts)))

    def take(self, api_name: str) -> Fault | None:
        for i, fault in enumerate(self._faults):
            if fault.api in ("*", api_name):
                if fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        del self._faults[i]
                return fault
        return None

    def listing(self) -> list[dict[str, Any]]:
        return [f.as_dict() for f in self._faults]

    def clear(self) -> None:
        self._faults.clear()


def mangle(result: QueryResult, kind: str | None, opts: Mapping[str, Any]) -> QueryResult:
    """Apply payload-level faults to an otherwise correct answer."""
    if kind == "empty_page":
        return QueryResult(result.fields, [], False)
    if kind == "short_page":
        keep = int(len(result.items) * float(opts.get("keep", 0.5)))
        return QueryResult(result.fields, result.items[:keep], False)
    if kind == "wrong_fields":
        fields = list(result.fields)
        if opts.get("mode") == "extra":
            # The service added a field (schema drift): answered to every caller, asked or not.
            name = str(opts.get("field", "new_field"))
            items = [[*row, "x"] for row in result.items]
            return QueryResult([*fields, name], items, result.has_more)
        if opts.get("mode", "drop") == "rename" or len(fields) < 2:
            fields[-1] = f"{fields[-1]}_x"
            return QueryResult(fields, result.items, result.has_more)
        return QueryResult(fields[:-1], [row[:-1] for row in result.items], result.has_more)
    if kind == "bad_value" and result.items:
        # One field of one row replaced: an unparseable date, a row from another partition…
        field = str(opts.get("field", "list_date"))
        if field in result.fields:
            items = [list(row) for row in result.items]
            items[int(opts.get("row", 0)) % len(items)][result.fields.index(field)] = opts.get(
                "value", "2024-13-45"
            )
            return QueryResult(result.fields, items, result.has_more)
    if kind == "duplicate_row" and result.items:
        return QueryResult(result.fields, [*result.items, result.items[0]], result.has_more)
    return result
