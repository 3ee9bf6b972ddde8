"""ATM settings: CLI flags over environment over config file over defaults, in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from atm_assets.core.db import (
    DEFAULT_SQLITE_PATH,
    PG_DEFAULTS,
    DatabaseSettings,
    validate_identifier,
)
from atm_assets.core.errors import ConfigError
from atm_assets.core.locks import DEFAULT_LOCK_TIMEOUT_MINUTES, LOCK_KINDS
from atm_assets.core.sync import MAX_BATCH_SIZE, MAX_CHECKPOINT_EVERY, SyncOptions
from atm_assets.core.tushare_client import DEFAULT_API_URL, RetryPolicy
from atm_assets.core.writer import MODES

DEFAULT_CONFIG_PATH = "config/data_ingestor.yaml"
CONFIG_ENV = "ATM_CONFIG"


@dataclass(frozen=True)
class Settings:
    """Everything but secrets. Secrets (TUSHARE_TOKEN, DB_PASSWORD, ATM_DATABASE_URL) are
    read from the environment only, where they are needed, and never stored here."""

    db_host: str | None = None
    db_port: int = PG_DEFAULTS["port"]
    db_user: str = PG_DEFAULTS["user"]
    db_name: str = PG_DEFAULTS["name"]
    db_schema: str = PG_DEFAULTS["schema"]
    sqlite_path: str = DEFAULT_SQLITE_PATH
    state_dir: str = "storage/state"
    use_db_state: bool = False
    lock_kind: str | None = None
    lock_dir: str = "storage/locks"
    lock_timeout_minutes: float = DEFAULT_LOCK_TIMEOUT_MINUTES
    batch_size: int = 100
    checkpoint_every: int = 10
    mode: str = "upsert"
    api_url: str = DEFAULT_API_URL
    timeout_seconds: float = 30.0
    calls_per_minute: int | None = 50
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    source: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.lock_kind is not None and self.lock_kind not in LOCK_KINDS:
            raise ConfigError(
                f"lock kind must be one of {', '.join(LOCK_KINDS)}, got {self.lock_kind!r}"
            )
        SyncOptions(self.mode, self.batch_size, self.checkpoint_every)
        if self.calls_per_minute is not None and self.calls_per_minute <= 0:
            raise ConfigError("tushare calls_per_minute must be positive (or null for no limit)")
        if self.timeout_seconds <= 0:
            raise ConfigError("tushare timeout_seconds must be positive")
        if self.retry.max_attempts < 1:
            raise ConfigError("tushare retry max_attempts must be at least 1")

    @property
    def effective_lock_kind(self) -> str:
        return self.lock_kind or ("db" if self.use_db_state else "file")

    def database(self, env: Mapping[str, str] | None = None) -> DatabaseSettings:
        env = os.environ if env is None else env
        return DatabaseSettings(
            url=env.get("ATM_DATABASE_URL") or None,
            host=self.db_host,
            port=self.db_port,
            user=self.db_user,
            password=env.get("DB_PASSWORD"),
            name=self.db_name,
            schema=self.db_schema,
            sqlite_path=self.sqlite_path,
        )


# file section/key -> (Settings field, type); the file format is the documented surface.
_FILE_KEYS: dict[str, dict[str, tuple[str, type]]] = {
    "database": {
        "host": ("db_host", str),
        "port": ("db_port", int),
        "user": ("db_user", str),
        "name": ("db_name", str),
        "schema": ("db_schema", str),
        "sqlite_path": ("sqlite_path", str),
    },
    "state": {"use_db_state": ("use_db_state", bool), "state_dir": ("state_dir", str)},
    "lock": {
        "kind": ("lock_kind", str),
        "dir": ("lock_dir", str),
        "timeout_minutes": ("lock_timeout_minutes", float),
    },
    "sync": {
        "batch_size": ("batch_size", int),
        "checkpoint_every": ("checkpoint_every", int),
        "mode": ("mode", str),
    },
    "tushare": {
        "api_url": ("api_url", str),
        "timeout_seconds": ("timeout_seconds", float),
        "calls_per_minute": ("calls_per_minute", int),
    },
    "retry": {
        "max_attempts": ("retry.max_attempts", int),
        "base_delay": ("retry.base_delay", float),
        "rate_limit_base_delay": ("retry.rate_limit_base_delay", float),
        "max_delay": ("retry.max_delay", float),
        "budget_seconds": ("retry.budget_seconds", float),
    },
}

ENV_KEYS: dict[str, tuple[str, type]] = {
    "DB_HOST": ("db_host", str),
    "DB_PORT": ("db_port", int),
    "DB_USER": ("db_user", str),
    "DB_NAME": ("db_name", str),
    "DB_SCHEMA": ("db_schema", str),
    "ATM_SQLITE_PATH": ("sqlite_path", str),
    "ATM_STATE_DIR": ("state_dir", str),
    "ATM_USE_DB_STATE": ("use_db_state", bool),
    "ATM_LOCK_KIND": ("lock_kind", str),
    "ATM_LOCK_DIR": ("lock_dir", str),
    "ATM_LOCK_TIMEOUT_MINUTES": ("lock_timeout_minutes", float),
    "ATM_BATCH_SIZE": ("batch_size", int),
    "ATM_CHECKPOINT_EVERY": ("checkpoint_every", int),
    "ATM_MODE": ("mode", str),
    "TUSHARE_API_URL": ("api_url", str),
    "TUSHARE_TIMEOUT": ("timeout_seconds", float),
    "TUSHARE_CALLS_PER_MINUTE": ("calls_per_minute", int),
    "TUSHARE_MAX_ATTEMPTS": ("retry.max_attempts", int),
    "TUSHARE_RETRY_BUDGET_SECONDS": ("retry.budget_seconds", float),
    "TUSHARE_RETRY_BASE_DELAY": ("retry.base_delay", float),
    "TUSHARE_RATE_LIMIT_DELAY": ("retry.rate_limit_base_delay", float),
    "TUSHARE_RETRY_MAX_DELAY": ("retry.max_delay", float),
}

_SECRET_KEYS = {"password", "token", "url"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _positive(value: Any) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"must be positive, got {value!r}")


def _in(choices: tuple[str, ...]) -> Any:
    def check(value: Any) -> None:
        if value is not None and value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")

    return check


def _between(low: int, high: int) -> Any:
    def check(value: Any) -> None:
        if not low <= value <= high:
            raise ValueError(f"must be in {low}..{high:,}, got {value!r}")

    return check


def _identifier(value: Any) -> None:
    validate_identifier(value, "schema")


# Checked where the value is read, so the error names the file key or variable it came from.
_VALUE_CHECKS: dict[str, Any] = {
    "mode": _in(MODES),
    "lock_kind": _in(LOCK_KINDS),
    "batch_size": _between(1, MAX_BATCH_SIZE),
    "checkpoint_every": _between(1, MAX_CHECKPOINT_EVERY),
    "db_port": _between(1, 65535),
    "db_schema": _identifier,
    "calls_per_minute": _positive,
    "timeout_seconds": _positive,
    "lock_timeout_minutes": _positive,
    "retry.max_attempts": _between(1, 100),
    "retry.base_delay": _positive,
    "retry.rate_limit_base_delay": _positive,
    "retry.max_delay": _positive,
    "retry.budget_seconds": _positive,
}


def _checked(name: str, value: Any, kind: type, where: str) -> Any:
    value = _coerce(value, kind, where)
    check = _VALUE_CHECKS.get(name)
    if check is not None and value is not None:
        try:
            check(value)
        except (ValueError, ConfigError) as e:
            raise ConfigError(f"{where}: {e}") from None
    return value


def _coerce(value: Any, kind: type, where: str) -> Any:
    if value is None:
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}: expected {'an integer' if kind is int else 'a number'}, got {value!r}"
            ) from None
        if kind is int and isinstance(value, float) and value != int(value):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return number
    if not isinstance(value, str | int | float):
        raise ConfigError(f"{where}: expected a string, got {type(value).__name__}")
    return str(value)


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse and check the YAML file; unknown sections or keys are errors naming file and key."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p}: expected a mapping of sections at the top level")
    values: dict[str, Any] = {}
    for section, body in data.items():
        if section == "tushare" and isinstance(body, dict) and "retry" in body:
            body = dict(body)
            retry = body.pop("retry")
            if not isinstance(retry, dict):
                raise ConfigError(f"config file {p}: tushare.retry must be a mapping")
            values.update(_section(p, "retry", retry, "tushare.retry"))
        values.update(_section(p, section, body, section))
    return values


def _section(p: Path, section: str, body: Any, label: str) -> dict[str, Any]:
    if section not in _FILE_KEYS:
        raise ConfigError(
            f"config file {p}: unknown section {label!r} (known: {', '.join(sorted(_FILE_KEYS))})"
        )
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ConfigError(f"config file {p}: section {label!r} must be a mapping")
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in _SECRET_KEYS:
            raise ConfigError(
                f"config file {p}: key {label}.{key} is not allowed: secrets stay out of files "
                "(use the environment: DB_PASSWORD, TUSHARE_TOKEN, ATM_DATABASE_URL)"
            )
        if key not in _FILE_KEYS[section]:
            raise ConfigError(
                f"config file {p}: unknown key {label}.{key} "
                f"(known in {label}: {', '.join(sorted(_FILE_KEYS[section]))})"
            )
        name, kind = _FILE_KEYS[section][key]
        out[name] = _checked(name, value, kind, f"config file {p}: {label}.{key}")
    return out


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve settings: `overrides` (CLI flags) > environment > config file > defaults.

    The file is `config_path`, else $ATM_CONFIG, else config/data_ingestor.yaml if it exists;
    a file named explicitly must exist.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: list[str] = []
    explicit = config_path or env.get(CONFIG_ENV)
    path = Path(explicit) if explicit else Path(DEFAULT_CONFIG_PATH)
    if explicit or path.exists():
        values.update(read_config_file(path))
        sources.append(str(path))
    for var, (name, kind) in ENV_KEYS.items():
        raw = env.get(var)
        if raw is not None and raw != "":
            values[name] = _checked(name, raw, kind, f"environment variable {var}")
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    retry_values = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("retry.")}
    plain = {k: v for k, v in values.items() if not k.startswith("retry.")}
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(plain) - known)
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}")
    try:
        return Settings(
            retry=replace(RetryPolicy(), **retry_values), source=tuple(sources), **plain
        )
    except TypeError as e:
        raise ConfigError(f"invalid settings: {e}") from None
