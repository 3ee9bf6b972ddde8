"""Renders apis.yaml and the registry as README.md's API tables (a test keeps them equal)."""

from __future__ import annotations

from pathlib import Path

from atm_assets.sandbox.apidocs import ApiDoc
from atm_assets.sandbox.dataset import SandboxDataset  # noqa: F401  (registers every API)
from atm_assets.sandbox.query import API_SPECS, ApiSpec

README = Path(__file__).with_name("README.md")
START, END = "<!-- api-table:start -->", "<!-- api-table:end -->"


def _groups(groups: tuple[tuple[str, ...], ...]) -> str:
    if not groups:
        return "—"
    return "; ".join(" **or** ".join(f"`{p}`" for p in group) for group in groups)


def _required(spec: ApiSpec) -> str:
    doc = spec.documented
    out = _groups(doc.required)
    if spec.required != doc.required:
        out += f" (simple: {_groups(spec.required)})"
    return out


def _optional(spec: ApiSpec) -> str:
    return ", ".join(f"`{p}`" for p in spec.documented.optional) or "—"


def _cap(doc: ApiDoc) -> str:
    out = str(doc.cap)
    if not doc.cap_documented:
        out += " (undocumented"
        out += f"; real: {doc.real_cap})" if doc.real_cap is not None else ")"
    return out


def _doc(doc: ApiDoc) -> str:
    if doc.doc_id is None:
        return "—"
    return f"[{doc.doc_id}]({doc.url})"


def render_api_table() -> str:
    """The summary table and the field lists, in API name order, from apis.yaml."""
    lines = [
        "| API | Tushare doc | Points | Required (each group: at least one) | Other params "
        "| Cap | Offset paging | Published by | Unique key (simple) |",
        "| --- | --- | ---: | --- | --- | --- | --- | --- | --- |",
    ]
    for name, spec in sorted(API_SPECS.items()):
        doc = spec.documented
        paging = "yes" if doc.offset_paging else "**no** (offset ignored)"
        key = ", ".join(spec.unique_key)
        points = "—" if doc.points is None else str(doc.points)
        lines.append(
            f"| `{name}` | {_doc(doc)} | {points} | {_required(spec)} | {_optional(spec)} "
            f"| {_cap(doc)} | {paging} | {doc.publication_key or '—'} | {key} |"
        )
    lines += [
        "",
        "Documented fields in the documentation's order; `*` marks a field left out of the "
        "default set. Where the sandbox generates only some, those are **bold** (the others "
        "answer null).",
        "",
    ]
    for name, spec in sorted(API_SPECS.items()):
        doc = spec.documented
        notes = [*doc.notes, *([spec.note] if spec.note else [])]
        tail = "".join(f" {n}" for n in notes)
        if doc.vip_of is not None:
            lines.append(f"- `{name}`: the fields of `{doc.vip_of}`.{tail}")
            continue
        generated = set(spec.fields)
        default = set(doc.default_fields)
        words = [
            (f"**{f}**" if f in generated and len(generated) < len(doc.fields) else f)
            + ("" if f in default else "*")
            for f in doc.fields
        ]
        head = f"- `{name}` ({len(doc.fields)}, {len(generated)} generated): "
        lines.append(head + ", ".join(words) + ("." if not tail else "." + tail))
    return "\n".join(lines)


def readme_block(text: str) -> str:
    return text[text.index(START) + len(START) : text.index(END)].strip("\n")


def update_readme() -> None:
    text = README.read_text(encoding="utf-8")
    head, tail = text[: text.index(START) + len(START)], text[text.index(END) :]
    README.write_text(f"{head}\n{render_api_table()}\n{tail}", encoding="utf-8")


if __name__ == "__main__":
    update_readme()
