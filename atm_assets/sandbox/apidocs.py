"""Loads apis.yaml: each served API as Tushare documents it (fields, parameters, caps, paging)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

APIS_FILE = Path(__file__).with_name("apis.yaml")
DOC_URL = "https://tushare.pro/document/2?doc_id={}"
# Answer orders: the request's field order, or the documentation's whatever was asked.
REQUEST_ORDER, DOCUMENTED_ORDER = "request", "documented"


@dataclass(frozen=True)
class ApiDoc:
    """One API as its Tushare documentation describes it (see apis.yaml for each key)."""

    name: str
    doc_id: int | None
    title: str
    points: int | None
    required: tuple[tuple[str, ...], ...]
    optional: tuple[str, ...]
    fields: tuple[str, ...]
    default_fields: tuple[str, ...]
    cap: int
    cap_source: str
    offset_paging: bool = True
    # A cap assumed for the real world where Tushare documents none (None: `cap`).
    real_cap: int | None = None
    # The column a day's publication is keyed on (None: published whole, once).
    publication_key: str | None = None
    answer_order: str = REQUEST_ORDER
    notes: tuple[str, ...] = ()
    vip_of: str | None = None

    @property
    def params(self) -> tuple[str, ...]:
        """Every documented parameter: the required groups' members, then the optional ones."""
        required = [p for group in self.required for p in group]
        return tuple(dict.fromkeys([*required, *self.optional]))

    @property
    def cap_documented(self) -> bool:
        return self.cap_source != "undocumented"

    @property
    def url(self) -> str | None:
        return None if self.doc_id is None else DOC_URL.format(self.doc_id)


def _groups(raw: Any) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(str(p) for p in group) for group in raw or ())


def _entry(name: str, raw: Mapping[str, Any], base: Mapping[str, Any]) -> ApiDoc:
    """One YAML entry; a *_vip entry inherits what it does not state from `vip_of`."""
    merged = {**base, **raw}
    words = str(merged["fields"]).split()
    return ApiDoc(
        name=name,
        doc_id=merged.get("doc_id"),
        title=str(merged.get("title", "")),
        points=merged.get("points"),
        required=_groups(merged.get("required")),
        # A vip variant's optional parameters are its base's, less those it requires.
        optional=tuple(
            p
            for p in (merged.get("optional") or ())
            if p not in {q for group in _groups(merged.get("required")) for q in group}
        ),
        fields=tuple(w.rstrip("*") for w in words),
        default_fields=tuple(w for w in words if not w.endswith("*")),
        cap=int(merged["cap"]),
        cap_source=str(merged.get("cap_source", "undocumented")),
        offset_paging=bool(merged.get("offset_paging", True)),
        real_cap=raw.get("real_cap"),
        publication_key=merged.get("publication_key"),
        answer_order=str(merged.get("answer_order", REQUEST_ORDER)),
        notes=tuple(str(n) for n in raw.get("notes") or ()),
        vip_of=raw.get("vip_of"),
    )


@cache
def api_docs(path: Path = APIS_FILE) -> dict[str, ApiDoc]:
    """Every entry of apis.yaml by API name."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    out: dict[str, ApiDoc] = {}
    for name, raw in data.items():
        base = data[raw["vip_of"]] if "vip_of" in raw else {}
        # Notes and a real-world cap belong to the entry that states them, not its variants.
        inherited = {k: v for k, v in base.items() if k not in ("notes", "real_cap")}
        out[name] = _entry(name, raw, inherited)
    return out
