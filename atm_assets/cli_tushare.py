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
