"""The door for users' own assets: modules named in `extensions.user_assets` join the code
location, reading ATM's tables as pandas DataFrames and writing theirs the same way."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    PartitionsDefinition,
    load_asset_checks_from_modules,
    load_assets_from_modules,
)

from atm_assets.automation import default_condition
from atm_assets.core.errors import ConfigError
from atm_assets.core.paths import setting_label

# Where users' assets appear in the UI unless they name a group of their own.
USER_GROUP = "user_assets"
_SETTING = "extensions.user_assets"


def module_names(spec: str | None) -> list[str]:
    return [m.strip() for m in (spec or "").split(",") if m.strip()]


def _import(name: str) -> ModuleType:
    # As Dagster does for a code location: the project directory is importable.
    here = str(Path.cwd())
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        return importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - any import failure is the user's to fix
        raise ConfigError(
            f"{setting_label(_SETTING)}: cannot import {name}: {type(e).__name__}: {e}"
        ) from None


def _with_default_automation(
    item: AssetsDefinition, partitions: Mapping[AssetKey, PartitionsDefinition | None]
) -> AssetsDefinition:
    """Assets that declare no automation condition get ATM's: built after their inputs, and
    never over an input partition whose blocking check failed (unless the user opts out)."""

    def apply(spec: AssetSpec) -> AssetSpec:
        if spec.automation_condition is not None:
            return spec
        inputs = {d.asset_key: partitions.get(d.asset_key) for d in spec.deps}
        condition = default_condition(spec.partitions_def, inputs)
        return spec.replace_attributes(automation_condition=condition)

    return item.map_asset_specs(apply) if item.is_executable else item


def load_user_assets(
    spec: str | None,
    taken: Sequence[str],
    partitions: Mapping[AssetKey, PartitionsDefinition | None] | None = None,
) -> tuple[list[Any], list[Any]]:
    """The assets and asset checks of the user's modules; assets without a group go to
    USER_GROUP, those without an automation condition get `default_condition` (`partitions`:
    ATM's assets' partitions, to tell the inputs read whole). A module that does not import,
    defines no asset, or reuses one of `taken` (ATM's asset names) is a ConfigError naming
    it."""
    names = module_names(spec)
    if not names:
        return [], []
    modules = [_import(n) for n in names]
    assets = list(load_assets_from_modules(modules))
    checks = list(load_asset_checks_from_modules(modules))
    if not assets:
        raise ConfigError(
            f"{setting_label(_SETTING)}: {', '.join(names)} define(s) no Dagster asset"
        )
    known = dict(partitions or {})
    for item in assets:
        if isinstance(item, AssetsDefinition):
            known.update({s.key: s.partitions_def for s in item.specs})
    out: list[Any] = []
    for item in assets:
        if not isinstance(item, AssetsDefinition):
            out.append(item)
            continue
        clash = [k.to_user_string() for k in item.keys if k.to_user_string() in taken]
        if clash:
            raise ConfigError(
                f"{setting_label(_SETTING)}: asset {clash[0]} of {', '.join(names)} has the "
                "name of one of ATM's own assets; rename it"
            )
        grouped = {k: USER_GROUP for k, g in item.group_names_by_key.items() if g == "default"}
        item = item.with_attributes(group_names_by_key=grouped) if grouped else item
        out.append(_with_default_automation(item, known))
    return out, checks
