"""The query engine: API declarations, parameter parsing, field projection and paging."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import islice
from typing import TYPE_CHECKING, Any

from atm_assets.sandbox.apidocs import DOCUMENTED_ORDER, ApiDoc, api_docs
from atm_assets.sandbox.world import Fidelity

if TYPE_CHECKING:
    from atm_assets.sandbox.dataset import SandboxDataset

SIMPLE = Fidelity()

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
    """One served API: its generator and the simple world's view of it, plus `doc`, the API as
    Tushare documents it (apis.yaml), which register_api attaches and the real world follows.

    `fields` are the columns the generator produces, in the simple world's answer order, and
    `default_fields` the simple world's default set (None: all). `simple_required` and
    `simple_params` override the documented parameter rules in the simple world only (None:
    as documented). `required` holds groups of parameter names: each group needs at least one
    non-empty member (a one-name group is a plain required parameter).
    """

    name: str
    fields: tuple[str, ...]
    rows: RowsFn
    default_fields: tuple[str, ...] | None = None
    unique_key: tuple[str, ...] = ()
    simple_required: tuple[tuple[str, ...], ...] | None = None
    simple_params: tuple[str, ...] | None = None
    # Where the simple world departs from the documentation, why.
    note: str = ""
    # Keep whole answers of slow generators so that paging through them stays cheap.
    cache: bool = False
    doc: ApiDoc | None = field(default=None, compare=False)

    @property
    def documented(self) -> ApiDoc:
        if self.doc is None:
            raise RuntimeError(f"{self.name} is not registered (register_api attaches its doc)")
        return self.doc

    # -- the simple world's rules (what the sandbox served before fidelity existed) --

    @property
    def required(self) -> tuple[tuple[str, ...], ...]:
        if self.simple_required is not None:
            return self.simple_required
        return self.documented.required

    @property
    def params(self) -> tuple[str, ...]:
        return self.documented.params if self.simple_params is None else self.simple_params

    @property
    def max_rows(self) -> int:
        return self.documented.cap

    @property
    def offset_paging(self) -> bool:
        return self.documented.offset_paging

    @property
    def doc_id(self) -> int | None:
        return self.documented.doc_id

    # -- per world --

    def served_fields(self, fidelity: Fidelity) -> tuple[str, ...]:
        """Every field the API answers in that world, in its answer order."""
        return self.documented.fields if fidelity.documented_fields else self.fields

    def defaults(self, fidelity: Fidelity) -> tuple[str, ...]:
        if fidelity.documented_fields:
            return self.documented.default_fields
        return self.default_fields or self.fields

    def required_groups(self, fidelity: Fidelity) -> tuple[tuple[str, ...], ...]:
        return self.documented.required if fidelity.documented_params else self.required

    def cap(self, fidelity: Fidelity) -> int:
        doc = self.documented
        if fidelity.undocumented_caps and doc.real_cap is not None:
            return doc.real_cap
        return doc.cap

    def resolve_fields(self, requested: object, fidelity: Fidelity | None = None) -> list[str]:
        """Known requested fields in request order (documented order where the real service
        keeps it); the defaults when none are given."""
        world = fidelity or SIMPLE
        if isinstance(requested, str):
            names = [f.strip() for f in requested.split(",")]
        elif isinstance(requested, list | tuple):
            names = [str(f).strip() for f in requested]
        else:
            names = []
        served = self.served_fields(world)
        known = set(served)
        out = list(dict.fromkeys(n for n in names if n in known))
        if not out:
            return list(self.defaults(world))
        if world.documented_order and self.documented.answer_order == DOCUMENTED_ORDER:
            position = {f: i for i, f in enumerate(self.documented.fields)}
            out.sort(key=position.__getitem__)
        return out

    def check_required(self, params: Mapping[str, Any], fidelity: Fidelity | None = None) -> None:
        for group in self.required_groups(fidelity or SIMPLE):
            if not any(param(params, name) is not None for name in group):
                raise ParamError(missing_param_message(group))


API_SPECS: dict[str, ApiSpec] = {}


def _undocumented(spec: ApiSpec) -> ApiDoc:
    """A stand-in doc for an API registered at run time that apis.yaml does not describe."""
    return ApiDoc(
        name=spec.name,
        doc_id=None,
        title="",
        points=None,
        required=spec.simple_required or (),
        optional=spec.simple_params or (),
        fields=spec.fields,
        default_fields=spec.default_fields or spec.fields,
        cap=MAX_ROWS_PER_CALL,
        cap_source="undocumented",
    )


def register_api(spec: ApiSpec) -> ApiSpec:
    """Serve `spec`, described by its apis.yaml entry (every generated field must be there)."""
    doc = api_docs().get(spec.name) or _undocumented(spec)
    unknown = [f for f in spec.fields if f not in doc.fields]
    if unknown:
        raise ValueError(f"{spec.name}: fields {unknown} are not in its documentation")
    spec = replace(spec, doc=doc)
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


# Filters that pick rows by code or date; what remains (report_type, type …) also applies to
# the whole day a partial publication is chosen from.
_IDENTITY_PARAMS = frozenset(
    {"ts_code", "trade_date", "start_date", "end_date", "ann_date", "f_ann_date", "period",
     "index_code", "cal_date", *PAGING_PARAMS}
)  # fmt: skip


def truth_rows(
    dataset: SandboxDataset, spec: ApiSpec, params: Mapping[str, Any]
) -> Iterable[Mapping[str, Any]]:
    """Every row of the answer, before publication, caps and paging."""
    if spec.cache:
        return _cached_rows(spec.name, dataset.truth(), _params_key(params))
    return spec.rows(dataset, params)


def published_rows(
    dataset: SandboxDataset, spec: ApiSpec, params: Mapping[str, Any]
) -> Iterable[Mapping[str, Any]]:
    """The rows the service gives out now: the truth less unpublished or partial days."""
    source = truth_rows(dataset, spec, params)
    publication = dataset.publication
    if not publication.for_api(spec.name):
        return source
    rest = {k: v for k, v in params.items() if k not in _IDENTITY_PARAMS}

    def day_rows(column: str, day: str) -> list[Mapping[str, Any]]:
        return list(truth_rows(dataset, spec, {**rest, column: day}))

    return publication.filter(spec.name, spec.documented.publication_key, source, day_rows)


def execute(
    dataset: SandboxDataset, api_name: str, params: Mapping[str, Any], fields: object = ""
) -> QueryResult:
    """Answer one API call: check, filter, project and page (limit capped at the API's cap).

    APIs without offset paging ignore `offset` and always answer from the first row, as
    Tushare's daily does. The dataset's fidelity decides fields, parameter rules and caps;
    its publication settings hide what is not out yet.
    """
    spec = get_spec(api_name)
    world = dataset.fidelity
    spec.check_required(params, world)
    names = spec.resolve_fields(fields, world)
    cap = spec.cap(world)
    limit = int_param(params, "limit")
    limit = cap if limit is None or limit <= 0 else min(limit, cap)
    offset = max(0, int_param(params, "offset") or 0) if spec.offset_paging else 0
    source = published_rows(dataset, spec, params)
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
