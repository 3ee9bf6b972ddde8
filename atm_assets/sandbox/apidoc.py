"""Renders the API registry as the tables in README.md (the README test keeps them equal)."""

from __future__ import annotations

from pathlib import Path

from atm_assets.sandbox.dataset import SandboxDataset  # noqa: F401  (registers every API)
from atm_assets.sandbox.query import API_SPECS, ApiSpec

README = Path(__file__).with_name("README.md")
START, END = "<!-- api-table:start -->", "<!-- api-table:end -->"


def _required(spec: ApiSpec) -> str:
    if not spec.required:
        return "—"
    return "; ".join(" **or** ".join(f"`{p}`" for p in group) for group in spec.required)


def _optional(spec: ApiSpec) -> str:
    required = {p for group in spec.required for p in group}
    rest = [f"`{p}`" for p in spec.params if p not in required]
    return ", ".join(rest) or "—"


def _doc(spec: ApiSpec) -> str:
    if spec.doc_id is None:
        return "—"
    return f"[{spec.doc_id}](https://tushare.pro/document/2?doc_id={spec.doc_id})"


def render_api_table() -> str:
    """The summary table and the field lists, in API name order."""
    lines = [
        "| API | Required (each group: at least one) | Other params | Unique key | Cap "
        "| Offset paging | Tushare doc |",
        "| --- | --- | --- | --- | ---: | --- | --- |",
    ]
    for name, spec in sorted(API_SPECS.items()):
        paging = "yes" if spec.offset_paging else "**no** (offset ignored)"
        key = ", ".join(spec.unique_key)
        lines.append(
            f"| `{name}` | {_required(spec)} | {_optional(spec)} | {key} | {spec.max_rows} "
            f"| {paging} | {_doc(spec)} |"
        )
    lines += ["", "Fields in answer order; `*` marks a field left out of the default set.", ""]
    for name, spec in sorted(API_SPECS.items()):
        default = set(spec.default_fields or spec.fields)
        fields = ", ".join(f + ("" if f in default else "*") for f in spec.fields)
        note = f" — {spec.note}" if spec.note else ""
        lines.append(f"- `{name}` ({len(spec.fields)}): {fields}{note}")
    return "\n".join(lines)


def readme_block(text: str) -> str:
    return text[text.index(START) + len(START) : text.index(END)].strip("\n")


def update_readme() -> None:
    text = README.read_text(encoding="utf-8")
    head, tail = text[: text.index(START) + len(START)], text[text.index(END) :]
    README.write_text(f"{head}\n{render_api_table()}\n{tail}", encoding="utf-8")


if __name__ == "__main__":
    update_readme()
