"""`controller.sh tushare status|clear`: the account's shared call budgets across processes."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from atm_assets.core.db import Database
from atm_assets.core.errors import DatabaseUnavailableError
from atm_assets.core.governor import ApiStatus, Governor, per_minute_for_points
from atm_assets.core.governor.shared import governor_for
from atm_assets.core.settings import Settings


def add_parser(commands: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    tushare = commands.add_parser(
        "tushare", help="the account's call budgets, shared by every ATM process"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    status = tushare.add_parser(
        "status",
        help="tier, each API's budget, calls in the last window and today across processes, "
        "APIs refused for the day or without permission",
    )
    add_common(status)
    clear = tushare.add_parser(
        "clear", help="forget the refusals recorded for an API (after the account gains points)"
    )
    clear.add_argument("api", help="Tushare API name, e.g. daily")
    add_common(clear)
    check = tushare.add_parser(
        "check",
        help="one small call per dataset: fields, key, cap and access against the catalog "
        "(the first thing to run with a new account)",
    )
    check.add_argument("datasets", nargs="*", help="datasets to check (default: every one)")
    check.add_argument("--json", action="store_true", help="print JSON, one object per dataset")
    check.add_argument("--tushare-token", help="Tushare token (default: $TUSHARE_TOKEN)")
    add_common(check)


def _governor(settings: Settings) -> Governor:
    return governor_for(settings.tushare, Database.from_environment(settings.database))


def _when(moment: dt.datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment is not None else "?"


def _state(s: ApiStatus) -> str:
    notes = []
    if s.denied_at is not None:
        notes.append(
            f"NO PERMISSION since {_when(s.denied_at)}, not retried before "
            f"{_when(s.denied_until)} ({s.denied_message})"
        )
    if s.exhausted_until is not None:
        notes.append(
            f"DAY QUOTA EXHAUSTED until {_when(s.exhausted_until)} ({s.exhausted_message})"
        )
    if s.paused_until is not None:
        notes.append(f"paused after a refusal until {_when(s.paused_until)}")
    if s.minute_limit_seen is not None:
        notes.append(f"service said {s.minute_limit_seen}/min today")
    return "; ".join(notes) or "ok"


def status(settings: Settings, out: Callable[[str], None] = print) -> None:
    tushare = settings.tushare
    governor = _governor(settings)
    tier = per_minute_for_points(tushare.points)
    rate = (
        f"{tushare.calls_per_minute} calls/min per API (tushare.calls_per_minute)"
        if tushare.calls_per_minute is not None
        else f"{tier} calls/min per API"
    )
    out(f"Account: {tushare.points} points tier, {rate}")
    if tushare.api_limits:
        out(f"Per-API limits: {tushare.api_limits}")
    out(f"Governor: {governor.store.describe()}, window {tushare.rate_window_seconds:g}s")
    try:
        seen = {s.api_name: s for s in governor.status()}
    except sa.exc.DBAPIError as e:
        reason = str(getattr(e, "orig", e)).strip().splitlines()[0]
        raise DatabaseUnavailableError(
            f"cannot read the governor ({governor.store.describe()}): {reason}"
        ) from None
    apis = sorted(set(seen) | set(tushare.api_budgets()))
    if not apis:
        out("No Tushare call recorded yet")
        return
    out(
        f"{'API':<20} {'PER MIN':>7} {'PER DAY':>7} {'WINDOW':>6} {'IN FLIGHT':>9} "
        f"{'TODAY':>6}  STATUS (times Asia/Shanghai)"
    )
    for api in apis:
        s = seen.get(api)
        budget = governor.budgets.for_api(api)
        window = s.calls_in_window if s else 0
        flight = s.in_flight if s else 0
        today = s.calls_today if s else 0
        out(
            f"{api:<20} {budget.per_minute or '-':>7} {budget.per_day or '-':>7} {window:>6} "
            f"{flight:>9} {today:>6}  {_state(s) if s else 'ok'}"
        )


def clear(settings: Settings, api: str, out: Callable[[str], None] = print) -> None:
    governor = _governor(settings)
    if governor.clear(api):
        out(f"Cleared the refusals recorded for API {api} ({governor.store.describe()})")
    else:
        out(f"No refusal recorded for API {api} ({governor.store.describe()})")


def contract_check(settings: Settings, names: list[str], as_json: bool) -> bool:
    """`tushare check`: the catalog against the live service, one call per dataset; True
    when nothing disagrees."""
    import json
    import os
    import sys

    from atm_assets.core.catalog import catalog_for, find
    from atm_assets.core.contract import check, sample_request
    from atm_assets.core.dates import parse_tushare_date, shanghai_today, tushare_date
    from atm_assets.core.errors import ConfigError
    from atm_assets.core.tushare_client import TushareClient

    token = os.environ.get("TUSHARE_TOKEN")
    if not token:
        raise ConfigError("TUSHARE_TOKEN is not set: tushare check calls the service")
    specs = [find(n) for n in names] or [s for s in catalog_for(settings).values() if s.fetched]
    client = TushareClient(token, settings.tushare, governor=_governor(settings))
    today = shanghai_today()
    # Back far enough to hold last month's last open day behind a long holiday.
    days = client.query(
        "trade_cal",
        ["cal_date", "is_open"],
        exchange="SSE",
        start_date=tushare_date(today - dt.timedelta(days=60)),
        end_date=tushare_date(today - dt.timedelta(days=1)),
    )
    open_days = [
        day
        for d, o in zip(days["cal_date"], days["is_open"], strict=True)
        if int(o) and (day := parse_tushare_date(str(d))) is not None
    ]
    results = []
    for spec in specs:
        request = sample_request(spec, open_days, today, settings.catalog.index_codes[0])
        results.append(check(client, spec, request))
    if as_json:
        json.dump([r.as_dict() for r in results], sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return all(r.ok for r in results)
    out = sys.stdout.write
    out(f"{'DATASET':<18} {'API':<20} {'RESULT':<6} {'ROWS':>6} {'CAP':>6}  FINDINGS\n")
    for r in results:
        findings = []
        if r.access != "ok":
            findings.append(r.access)
        if r.missing:
            findings.append(f"fields missing from the answer: {', '.join(r.missing)}")
        if r.extra:
            findings.append(f"fields the catalog does not request: {', '.join(r.extra)}")
        if r.reordered:
            findings.append("answered in another column order (mapped by name)")
        if r.repeated_keys:
            findings.append(f"{r.repeated_keys} row(s) repeat the catalog's key")
        findings += r.notes
        rows = "-" if r.rows is None else str(r.rows)
        out(
            f"{r.dataset:<18} {r.api:<20} {'ok' if r.ok else 'FAIL':<6} {rows:>6} {r.cap:>6}  "
            f"{'; '.join(findings) or 'as declared'}\n"
        )
    return all(r.ok for r in results)
