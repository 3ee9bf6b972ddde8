"""The README's generated tables, from the declarations: `python -m atm_assets.docs [--write]`."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from atm_assets.core.settings import META, SECRETS, declared

README = Path(__file__).resolve().parent.parent / "README.md"


def _default(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, dt.date):
        return f"`{value.isoformat()}`"
    return f"`{value}`"


def _range(constraints: dict[str, Any]) -> str:
    if "ge" in constraints and "le" in constraints:
        return f" ({constraints['ge']:,}–{constraints['le']:,})"
    if constraints.get("gt") == 0:
        return " (> 0)"
    return ""


def settings_table() -> str:
    """Every setting: variable, file key, default, meaning (secrets and meta settings too)."""
    rows = ["| Environment variable | Config file key | Default | Meaning |", "|---|---|---|---|"]
    rows += [f"| `{env}` | — (secret) | — | {doc} |" for env, doc in SECRETS.items()]
    for d in declared():
        env = f"`{d.env}`" if d.env else "—"
        meaning = d.description + _range(d.constraints)
        rows.append(f"| {env} | `{d.key}` | {_default(d.default)} | {meaning} |")
    rows += [f"| `{env}` | — | — | {doc} |" for env, doc in META.items()]
    return "\n".join(rows)


def _partitions(spec: Any) -> str:
    from atm_assets.launch import takes

    flags = " ".join(f"`--{a.replace('_', '-')}`" for a in takes(spec))
    return f"{spec.scheme.replace('_', ' ')}" + (f" ({flags})" if flags else "")


_UNITS = {
    "trade_date": "trade date",
    "week": "week",
    "month": "month",
    "period": "report period",
    "index_month": "month",
    "index_year": "year",
}


def _revision(spec: Any) -> str:
    """How long a partition may still change, and how long an empty day waits."""
    parts = []
    if spec.revision_window:
        unit = _UNITS.get(spec.scheme, "partition")
        plural = "s" if spec.revision_window > 1 else ""
        parts.append(f"last {spec.revision_window} {unit}{plural}")
    if spec.publication_lag_days:
        parts.append(f"empty day final after {spec.publication_lag_days} d")
    return "; ".join(parts) or "—"


def _write(spec: Any) -> str:
    if spec.replaces:
        return "replaced whole (no natural key)"
    return ", ".join(spec.key)


def datasets_table() -> str:
    """Every built-in dataset: table, API and its documentation, group, partitions and the
    controller's flags, key (or replace semantics), publication and revision window, points."""
    from atm_assets.core.catalog import BUILTIN

    rows = [
        "| Table (`sync` name) | Tushare API (doc) | Group | Partitions (controller flags) | "
        "Key / write | Published | Revisions (`--recent`) | Points |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spec in BUILTIN:
        if not spec.fetched:
            continue
        published = (spec.publication or "—").replace("_", " ")
        doc = (
            f" ([{spec.doc_id}](https://tushare.pro/document/2?doc_id={spec.doc_id}))"
            if spec.doc_id
            else ""
        )
        rows.append(
            f"| `{spec.name}` (`{spec.name.replace('_', '-')}`) | `{spec.api_name}`{doc} | "
            f"{spec.group} | {_partitions(spec)} | {_write(spec)} | {published} | "
            f"{_revision(spec)} | {spec.points if spec.points is not None else 'not stated'} |"
        )
    return "\n".join(rows)


GENERATED: dict[str, Callable[[], str]] = {"settings": settings_table, "datasets": datasets_table}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- BEGIN {name} .*?-->\n)(.*?)(<!-- END {name} -->)", re.DOTALL | re.MULTILINE
    )


def _replacement(body: str) -> Callable[[re.Match[str]], str]:
    return lambda m: m.group(1) + body + "\n" + m.group(3)


def render(text: str) -> str:
    """`text` with every generated block replaced by what the declarations say now."""
    for name, make in GENERATED.items():
        pattern = _block(name)
        if not pattern.search(text):
            raise ValueError(f"README has no generated block {name!r}")
        # A callable replacement: the generated text is taken literally (no backslash escapes).
        text = pattern.sub(_replacement(make()), text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m atm_assets.docs", description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite README.md in place")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    new = render(text)
    if args.write:
        README.write_text(new, encoding="utf-8")
        return 0
    if new != text:
        sys.stderr.write("README.md is out of date: run python -m atm_assets.docs --write\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
