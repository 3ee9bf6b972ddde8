"""The query engine: API declarations, parameter parsing, field projection and paging."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from atm_assets.sandbox.dataset import SandboxDataset

MAX_ROWS_PER_CALL = 6000


class ParamError(ValueError):
    """A request parameter the sandbox cannot interpret."""


class UnknownApiError(KeyError):
    """The requested api_name is not served by the sandbox."""


def param(params: Mapping[str, Any], key: str) -> str | None:
    """Absent, None and "" all mean "no filter", as on the real service."""
    value = params.get(key)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def date_param(params: Mapping[str, Any], key: str) -> str | None:
    value = param(params, key)
    if value is not None and not (len(value) == 8 and value.isdigit()):
        raise ParamError(f"{key} 格式错误，应为YYYYMMDD: {value}")
    return value


def codes_param(params: Mapping[str, Any]) -> list[str] | None:
    value = param(params, "ts_code")
    if value is None:
        return None
    return sorted({c.strip().upper() for c in value.split(",") if c.strip()})


def int_param(params: Mapping[str, Any], key: str) -> int | None:
    value = param(params, key)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        raise ParamError(f"{key} 必须是整数: {value}") from None


RowsFn = Callable[["SandboxDataset", Mapping[str, Any]], Iterable[Mapping[str, Any]]]

# Parameters every API takes for paging; never passed on to the row filters' documentation.
PAGING_PARAMS = ("limit", "offset")


def missing_param_message(names: tuple[str, ...]) -> str:
    if len(names) == 1:
        return f"必填参数{names[0]}不能为空"
    return f"参数{'、'.join(names)}至少需要输入一个"


@dataclass(frozen=True)
class ApiSpec:
    """One served API: fields, default fields, parameter rules, row cap, paging and unique key.

    `required` holds groups of parameter names: each group needs at least one non-empty
    member (a one-name group is a plain required parameter).
    """

    name: str
    fields: tuple[str, ...]
    rows: RowsFn
    default_fields: tuple[str, ...] | None = None
    max_rows: int = MAX_ROWS_PER_CALL
    params: tuple[str, ...] = ()
    required: tuple[tuple[str, ...], ...] = ()
    offset_paging: bool = True
    unique_key: tuple[str, ...] = ()
    doc_id: int | None = None
    # Where the cap or a parameter rule is not from Tushare's documentation, why.
    note: str = ""
    # Keep whole answers of slow generators so that paging through them stays cheap.
    cache: bool = False

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

    def check_required(self, params: Mapping[str, Any]) -> None:
        for group in self.required:
            if not any(param(params, name) is not None for name in group):
                raise ParamError(missing_param_message(group))


API_SPECS: dict[str, ApiSpec] = {}


def register_api(spec: ApiSpec) -> ApiSpec:
    API_SPECS[spec.name] = spec
    return spec


def get_spec(api_name: str) -> ApiSpec:
    spec = API_SPECS.get(api_name)
    if spec is None:
        raise UnknownApiError(api_name)
    return spec


@dataclass(frozen=True)
class QueryResult:
    fields: list[str]
    items: list[list[Any]]
    has_more: bool


def execute(
    dataset: SandboxDataset, api_name: str, params: Mapping[str, Any], fields: object = ""
) -> QueryResult:
    """Answer one API call: check, filter, project and page (limit capped at the API's cap).

    APIs without offset paging ignore `offset` and always answer from the first row, as
    Tushare's daily does.
    """
    spec = get_spec(api_name)
    spec.check_required(params)
    names = spec.resolve_fields(fields)
    limit = int_param(params, "limit")
    limit = spec.max_rows if limit is None or limit <= 0 else min(limit, spec.max_rows)
    offset = max(0, int_param(params, "offset") or 0) if spec.offset_paging else 0
    if spec.cache:
        source: Iterable[Mapping[str, Any]] = _cached_rows(spec.name, dataset, _params_key(params))
    else:
        source = spec.rows(dataset, params)
    page = list(islice(source, offset, offset + limit + 1))
    has_more = len(page) > limit
    items = [[row.get(f) for f in names] for row in page[:limit]]
    return QueryResult(names, items, has_more)


def _params_key(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in params.items() if k not in PAGING_PARAMS))


@lru_cache(maxsize=16)
def _cached_rows(
    api_name: str, dataset: SandboxDataset, key: tuple[tuple[str, str], ...]
) -> tuple[Mapping[str, Any], ...]:
    return tuple(API_SPECS[api_name].rows(dataset, dict(key)))
