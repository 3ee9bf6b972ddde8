"""`controller.sh freshness`: each dataset's newest partition held against the newest expected."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any

from atm_assets.core.freshness import FRESH, NEVER, STALE, Freshness, parse_as_of
from atm_assets.core.settings import Settings

# Some synced dataset is behind the calendar (never-synced ones do not count).
EXIT_STALE = 3


def add_parser(commands: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = commands.add_parser(
        "freshness",
        help="each dataset's newest partition held against the newest expected now; "
        f"exit {EXIT_STALE} when a synced one is stale",
    )
    p.add_argument("datasets", nargs="*", help="datasets to look at (default: every one)")
    p.add_argument("--json", action="store_true", help="print JSON, one object per dataset")
    p.add_argument(
        "--as-of",
        help="judge at this time instead of now: 2024-01-05T20:00 (Asia/Shanghai unless an "
        "offset is given)",
    )
    add_common(p)


def report(settings: Settings, names: Sequence[str], as_of: str | None) -> list[Freshness]:
    """The freshness of the named datasets (all fetched ones when none), at `as_of` or now."""
    from atm_assets.core.catalog import catalog_for, find
    from atm_assets.core.db import Database
    from atm_assets.core.freshness import assess_all

    now = parse_as_of(as_of) if as_of else dt.datetime.now(dt.UTC)
    specs = [find(n) for n in names] if names else list(catalog_for(settings).values())
    database = Database.from_environment(settings.database)
    engine = database.create_engine()
    try:
        grace = dt.timedelta(minutes=settings.freshness.grace_minutes)
        return assess_all(specs, engine, database.schema, now, grace)
    finally:
        engine.dispose()


def _behind(f: Freshness) -> str:
    if f.state == NEVER:
        return ""
    return f"{f.behind} {f.unit if f.behind != 1 else f.unit.removesuffix('s')}"


def render(rows: Sequence[Freshness]) -> str:
    table = [("DATASET", "NEWEST HELD", "NEWEST EXPECTED", "STATE", "BEHIND BY", "NOTE")]
    table += [
        (f.dataset, f.held or "—", f.expected or "—", f.state, _behind(f), f.note) for f in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    stale = sum(f.state == STALE for f in rows)
    fresh = sum(f.state == FRESH for f in rows)
    never = sum(f.state == NEVER for f in rows)
    lines.append(f"{fresh} fresh, {stale} stale, {never} never synced")
    return "\n".join(lines)


def command(
    settings: Settings,
    names: Sequence[str],
    as_json: bool,
    as_of: str | None,
    out: Callable[[str], None] = print,
) -> int:
    rows = report(settings, names, as_of)
    if as_json:
        out(json.dumps([r.as_dict() for r in rows], ensure_ascii=False, indent=2))
    else:
        out(render(rows))
    return EXIT_STALE if any(r.state == STALE for r in rows) else 0
