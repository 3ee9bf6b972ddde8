"""Dagster freshness policies of the fetched assets, from each dataset's publication time."""

import datetime as dt
from collections.abc import Sequence
from functools import cache

from dagster import AssetsDefinition, AssetSpec, FreshnessPolicy, apply_freshness_policy

from atm_assets.core.datasets import TableSpec
from atm_assets.core.freshness import PUBLICATION_TIMES
from atm_assets.core.settings import Settings

SHANGHAI = "Asia/Shanghai"
# Reference data (stock lists aside), synced weekly by its schedule: the UI warns once a
# week's sync was missed (a day's slack for the run itself) and fails it after a month.
REFERENCE_FAIL = dt.timedelta(days=31)
REFERENCE_WARN = dt.timedelta(days=8)


def _deadline(when: dt.time, grace_minutes: int) -> tuple[int, int]:
    """(hour, minute) of the publication time plus the grace, kept within the day (a cron's
    weekdays must stay those of the publication)."""
    minutes = min(when.hour * 60 + when.minute + grace_minutes, 23 * 60 + 59)
    return divmod(minutes, 60)


def _shifted(cron: str, grace_minutes: int) -> str | None:
    """`cron` with the grace added, when its minute and hour are plain numbers."""
    fields = cron.split()
    if len(fields) != 5 or not (fields[0].isdigit() and fields[1].isdigit()):
        return None
    hour, minute = _deadline(dt.time(int(fields[1]), int(fields[0])), grace_minutes)
    return " ".join([str(minute), str(hour), *fields[2:]])


def freshness_policy(spec: TableSpec, settings: Settings) -> FreshnessPolicy | None:
    """A deadline after each publication (the schedule's tick plus `freshness.grace_minutes`),
    Asia/Shanghai: trade dates, report periods and index data each weekday, weekly bars on
    Fridays, monthly bars on the 1st; the asset fails its policy when it was not materialised
    in the interval before a deadline. Dagster's cron knows no holidays: on a closed weekday
    the UI may call a trade-date asset late where `controller.sh freshness` (trade_cal) does
    not."""
    grace = settings.freshness.grace_minutes
    if spec.name == "stock_basic":
        cron = _shifted(settings.schedule.cron, grace)
        if cron is None:
            return None
        return _cron_policy(cron, dt.timedelta(hours=24), settings.schedule.timezone)
    if spec.scheme in ("snapshot", "values", "exchange", "exchange_list_status"):
        return FreshnessPolicy.time_window(fail_window=REFERENCE_FAIL, warn_window=REFERENCE_WARN)
    hour, minute = _deadline(PUBLICATION_TIMES[spec.slot], grace)
    if spec.scheme == "week":
        cron, window = f"{minute} {hour} * * 5", dt.timedelta(days=7)
    elif spec.scheme == "month":
        # Monthly bars come on the month's last trade day: due by the evening of the 1st.
        cron, window = f"{minute} {hour} 1 * *", dt.timedelta(days=28)
    else:
        cron, window = f"{minute} {hour} * * 1-5", dt.timedelta(hours=24)
    return _cron_policy(cron, window, SHANGHAI)


@cache
def _cron_policy(cron: str, window: dt.timedelta, timezone: str) -> FreshnessPolicy:
    """One policy per deadline: Dagster checks a cron policy by walking its cron's ticks
    (~10 ms each), and two dozen datasets share a handful of deadlines."""
    return FreshnessPolicy.cron(deadline_cron=cron, lower_bound_delta=window, timezone=timezone)


def with_freshness(
    assets: Sequence[AssetsDefinition], specs: Sequence[TableSpec], settings: Settings
) -> list[AssetsDefinition]:
    """The fetched assets, each with its dataset's freshness policy (visible in the UI)."""
    by_name = {s.name: s for s in specs}

    def apply(asset_spec: AssetSpec) -> AssetSpec:
        spec = by_name.get(asset_spec.key.to_user_string())
        policy = freshness_policy(spec, settings) if spec is not None else None
        return apply_freshness_policy(asset_spec, policy) if policy is not None else asset_spec

    return [a.map_asset_specs(apply) for a in assets]
