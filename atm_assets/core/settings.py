"""Every ATM setting, declared once: type, default, range, environment variable, file key."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from atm_assets.core.errors import ConfigError

DEFAULT_CONFIG_PATH = "config/data_ingestor.yaml"
CONFIG_ENV = "ATM_CONFIG"
# The endpoint the tushare client itself posts to (tushare/pro/client.py, DataApi.__http_url).
DEFAULT_API_URL = "http://api.waditu.com/dataapi"

Mode = Literal["upsert", "append"]
MODES: tuple[str, ...] = get_args(Mode)
LockKind = Literal["file", "db"]
LOCK_KINDS: tuple[str, ...] = get_args(LockKind)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Env:
    """The environment variable a setting is read from (field metadata)."""

    name: str


def validate_identifier(value: str, what: str) -> str:
    """A schema/table name must be a plain identifier: ATM quotes nothing it did not check."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ConfigError(
            f"{what} {value!r} is not a plain identifier (letters, digits, underscore; "
            "must not start with a digit; at most 63 characters)"
        )
    return value


class Section(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", coerce_numbers_to_str=True, validate_by_name=True
    )


class RetrySettings(Section):
    """Backoff of one Tushare call on transient faults (5xx, timeouts, 40203 per minute)."""

    max_attempts: Annotated[
        int,
        Field(ge=1, le=100, description="Attempts per call on transient faults"),
        Env("TUSHARE_MAX_ATTEMPTS"),
    ] = 5
    base_delay: Annotated[
        float,
        Field(gt=0, description="First backoff (s) after 5xx / timeout / refused connection"),
        Env("TUSHARE_RETRY_BASE_DELAY"),
    ] = 1.0
    # Tushare counts calls per minute, so a rate-limited call needs a longer first wait.
    rate_limit_base_delay: Annotated[
        float,
        Field(gt=0, description="First backoff (s) after a 40203 rate limit"),
        Env("TUSHARE_RATE_LIMIT_DELAY"),
    ] = 10.0
    max_delay: Annotated[
        float, Field(gt=0, description="Longest single backoff (s)"), Env("TUSHARE_RETRY_MAX_DELAY")
    ] = 60.0
    budget_seconds: Annotated[
        float,
        Field(gt=0, description="Total waiting allowed per call (s)"),
        Env("TUSHARE_RETRY_BUDGET_SECONDS"),
    ] = 300.0


class TushareSettings(Section):
    api_url: Annotated[
        str,
        Field(description="Base URL; the client posts to `<url>/<api_name>`"),
        Env("TUSHARE_API_URL"),
    ] = DEFAULT_API_URL
    timeout_seconds: Annotated[
        float, Field(gt=0, description="HTTP timeout per call (s)"), Env("TUSHARE_TIMEOUT")
    ] = 30.0
    # Tushare grants each API a number of calls per minute by the account's points.
    points: Annotated[
        int,
        Field(
            ge=120,
            description="The account's points tier: 120 → 50, 2000 → 200, 5000 → 500 calls "
            "per minute to each API",
        ),
        Env("TUSHARE_POINTS"),
    ] = 120
    calls_per_minute: Annotated[
        int | None,
        Field(
            gt=0,
            description="Calls per minute to each API, instead of the points tier's (unset: "
            "from `tushare.points`)",
        ),
        Env("TUSHARE_CALLS_PER_MINUTE"),
    ] = None
    api_limits: Annotated[
        str | None,
        Field(
            description="Per-API budgets `api=PER_MIN[/PER_DAY]`, comma-separated, e.g. "
            "`daily=500,stk_limit=200/10000` (`api=/PER_DAY`: a daily quota only)"
        ),
        Env("TUSHARE_API_LIMITS"),
    ] = None
    rate_window_seconds: Annotated[
        float,
        Field(gt=0, description="The rate window (s); Tushare's is a minute (tests use less)"),
        Env("TUSHARE_RATE_WINDOW"),
    ] = 60.0
    max_in_flight: Annotated[
        int,
        Field(
            ge=1,
            le=64,
            description="Calls in flight at once per run (partitions and pages fetched "
            "concurrently; 1: one at a time)",
        ),
        Env("TUSHARE_MAX_IN_FLIGHT"),
    ] = 8
    governor_path: Annotated[
        str,
        Field(
            description="The rate governor's SQLite file, shared by every ATM process of the "
            "host (with a PostgreSQL target it lives in that database, shared by every host)"
        ),
        Env("ATM_GOVERNOR_PATH"),
    ] = "storage/governor.db"
    retry: RetrySettings = RetrySettings()

    @field_validator("api_limits")
    @classmethod
    def _parsable_limits(cls, value: str | None) -> str | None:
        try:
            parse_api_limits(value)
        except ConfigError as e:
            raise ValueError(str(e)) from None
        return value

    def api_budgets(self) -> dict[str, tuple[int | None, int | None]]:
        """`api_limits` by API: (per minute, per day), None where not given."""
        return parse_api_limits(self.api_limits)


def parse_api_limits(text: str | None) -> dict[str, tuple[int | None, int | None]]:
    """`daily=500,stk_limit=200/10000,report_rc=/100` as {api: (per minute, per day)}."""
    limits: dict[str, tuple[int | None, int | None]] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        api, sep, value = (part.strip() for part in item.partition("="))
        minute, _, day = (part.strip() for part in value.partition("/"))
        try:
            if not sep or not _IDENTIFIER.match(api) or not (minute or day):
                raise ValueError
            per_minute = int(minute) if minute else None
            per_day = int(day) if day else None
            if any(n is not None and n <= 0 for n in (per_minute, per_day)):
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"API limit {item!r} is not `api=PER_MIN`, `api=PER_MIN/PER_DAY` or "
                "`api=/PER_DAY` with positive whole numbers"
            ) from None
        limits[api] = (per_minute, per_day)
    return limits


class DatabaseSection(Section):
    """Where the synced tables live: SQLite unless a host, a DuckDB file (or ATM_DATABASE_URL)
    is given."""

    host: Annotated[
        str | None,
        Field(description="PostgreSQL host; setting it switches to PostgreSQL (unset: SQLite)"),
        Env("DB_HOST"),
    ] = None
    port: Annotated[int, Field(ge=1, le=65535, description="PostgreSQL port"), Env("DB_PORT")] = (
        5432
    )
    user: Annotated[str, Field(description="PostgreSQL user"), Env("DB_USER")] = "quant"
    name: Annotated[str, Field(description="PostgreSQL database"), Env("DB_NAME")] = "quant_db"
    # "schema" would shadow a BaseModel attribute; the file key is still database.schema.
    db_schema: Annotated[
        str,
        Field(alias="schema", description="PostgreSQL schema of every ATM table"),
        Env("DB_SCHEMA"),
    ] = "quant"
    sqlite_path: Annotated[
        str, Field(description="Embedded database file"), Env("ATM_SQLITE_PATH")
    ] = "storage/atm.db"
    duckdb_path: Annotated[
        str | None,
        Field(
            description="Embedded DuckDB file (columnar, one writing process at a time); "
            "setting it switches to DuckDB (unset: SQLite)"
        ),
        Env("ATM_DUCKDB_PATH"),
    ] = None

    @field_validator("db_schema")
    @classmethod
    def _plain_schema(cls, value: str) -> str:
        try:
            return validate_identifier(value, "schema")
        except ConfigError as e:
            raise ValueError(str(e)) from None


class StateSection(Section):
    state_dir: Annotated[
        str, Field(description="Task state files (`--state-dir`)"), Env("ATM_STATE_DIR")
    ] = "storage/state"
    use_db_state: Annotated[
        bool,
        Field(description="Task state in table `ingestion_state` (`--use-db-state`)"),
        Env("ATM_USE_DB_STATE"),
    ] = False


class LockSection(Section):
    kind: Annotated[
        LockKind | None,
        Field(description="`file` (one host) or `db` (several hosts); unset: `db` with DB state"),
        Env("ATM_LOCK_KIND"),
    ] = None
    dir: Annotated[str, Field(description="File locks"), Env("ATM_LOCK_DIR")] = "storage/locks"
    timeout_minutes: Annotated[
        float,
        Field(gt=0, description="When a silent lock row counts as stale"),
        Env("ATM_LOCK_TIMEOUT_MINUTES"),
    ] = 30.0


class SyncOptions(Section):
    """How a task writes; per-run config (launchpad, controller flags) overrides these."""

    batch_size: Annotated[
        int,
        Field(ge=1, le=1_000_000, description="Rows per saved batch (`--batch-size`)"),
        Env("ATM_BATCH_SIZE"),
    ] = 100
    checkpoint_every: Annotated[
        int,
        Field(
            ge=1,
            le=10_000,
            description="Batches per checkpoint (= per transaction; with the database state "
            "store, prepared partitions that fit in one share it)",
        ),
        Env("ATM_CHECKPOINT_EVERY"),
    ] = 10
    mode: Annotated[Mode, Field(description="`upsert` or `append` (`--mode`)"), Env("ATM_MODE")] = (
        "upsert"
    )
    # Per run only: not read from the environment or the file.
    resume: Annotated[bool, Field(description="Continue after the saved checkpoint")] = True


class ScheduleSection(Section):
    cron: Annotated[
        str, Field(description="Daily stock_basic schedule"), Env("ATM_SCHEDULE_CRON")
    ] = "0 2 * * *"
    timezone: Annotated[str, Field(description="Its time zone"), Env("ATM_SCHEDULE_TIMEZONE")] = (
        "Asia/Shanghai"
    )
    # Tushare publishes the day's bars and factors between 15:00 and 17:00 Beijing time.
    market_cron: Annotated[
        str,
        Field(description="Post-close market data schedule (Asia/Shanghai)"),
        Env("ATM_MARKET_SCHEDULE_CRON"),
    ] = "30 17 * * 1-5"
    market_start: Annotated[
        dt.date,
        Field(
            description="First trade-date partition of the daily datasets; calendars start on "
            "January 1st of that year"
        ),
        Env("ATM_MARKET_START"),
    ] = dt.date(2024, 1, 1)


class CatalogSection(Section):
    datasets_file: Annotated[
        str | None,
        Field(
            description="Your own dataset declarations (YAML); unset: config/datasets.yaml if "
            "it exists"
        ),
        Env("ATM_DATASETS"),
    ] = None
    index_codes: Annotated[
        tuple[str, ...],
        Field(
            min_length=1,
            description="Indices whose bars and weights index_daily / index_weight sync "
            "(comma-separated in the variable)",
        ),
        Env("ATM_INDEX_CODES"),
    ] = ("000001.SH", "000300.SH", "000905.SH", "000852.SH", "399001.SZ", "399006.SZ")
    # adj_factor and daily_basic are known to arrive (or change) after the first post-close run.
    refetch_days: Annotated[
        int,
        Field(
            ge=0,
            le=30,
            description="Trade dates before today the post-close schedule re-syncs for "
            "late datasets (adj_factor, daily_basic)",
        ),
        Env("ATM_REFETCH_DAYS"),
    ] = 3

    @field_validator("index_codes", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("index_codes")
    @classmethod
    def _codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not re.match(r"^[0-9A-Z]{6}\.[A-Z]{2,3}$", v)]
        if bad:
            raise ValueError(f"not index codes like 000300.SH: {', '.join(bad)}")
        return value


class ExtensionSection(Section):
    sync_hooks: Annotated[
        str | None,
        Field(
            description="`module:callable` returning an object told of each batch, commit, "
            "checkpoint and partition (monitoring; the tests inject faults through it)"
        ),
        Env("ATM_SYNC_HOOKS"),
    ] = None
    staging_dir: Annotated[
        str,
        Field(description="Fetched partitions waiting to be written (resume without refetching)"),
        Env("ATM_STAGING_DIR"),
    ] = "storage/staging"
    user_assets: Annotated[
        str | None,
        Field(
            description="Your own Dagster assets: Python modules (comma-separated, importable "
            "from the project directory) whose assets join ATM's code location, reading "
            "synced datasets as inputs"
        ),
        Env("ATM_USER_ASSETS"),
    ] = None


class FreshnessSection(Section):
    # A schedule ticks at the publication time; its run needs a while to land the data.
    grace_minutes: Annotated[
        int,
        Field(
            ge=0,
            le=1440,
            description="Minutes after a dataset's publication time (its schedule's tick) "
            "before its newest partition counts as expected",
        ),
        Env("ATM_FRESHNESS_GRACE_MINUTES"),
    ] = 60


class AlertsSection(Section):
    # Target URLs carry tokens (a Slack webhook's path, DingTalk's access_token): SecretStr
    # keeps them out of every repr, log line and dump; only alerts.py reads the value.
    webhook_url: Annotated[
        SecretStr | None,
        Field(
            description="JSON POST on a failed run (after its last retry), a failed data check "
            "and a dataset turning stale (never logged: it may carry a token)"
        ),
        Env("ATM_ALERT_WEBHOOK_URL"),
    ] = None
    apprise_urls: Annotated[
        SecretStr | None,
        Field(
            description="Chat and mail targets through Apprise, comma- or space-separated: "
            "`dingtalk://…`, `wecombot://…`, `lark://…` (Feishu), `slack://…`, `mailto://…` "
            "(never logged)"
        ),
        Env("ATM_ALERT_APPRISE_URLS"),
    ] = None
    ui_url: Annotated[
        str,
        Field(description="The Dagster UI's base URL, for links to runs in alerts"),
        Env("ATM_UI_URL"),
    ] = "http://127.0.0.1:3000"
    timeout_seconds: Annotated[
        float,
        Field(gt=0, description="HTTP timeout of one alert delivery (s)"),
        Env("ATM_ALERT_TIMEOUT"),
    ] = 10.0


class ExportSettings(Section):
    dir: Annotated[
        str | None,
        Field(
            description="Parquet exports as Dagster assets (group `exports`, one per dataset, "
            "downstream of it) written under this directory (unset: no export assets; "
            "`controller.sh export` works either way)"
        ),
        Env("ATM_EXPORT_DIR"),
    ] = None


class Settings(Section):
    """Everything but secrets (TUSHARE_TOKEN, DB_PASSWORD, ATM_DATABASE_URL): those are read
    from the environment only, where they are needed, and never stored here."""

    tushare: TushareSettings = TushareSettings()
    database: DatabaseSection = DatabaseSection()
    state: StateSection = StateSection()
    lock: LockSection = LockSection()
    sync: SyncOptions = SyncOptions()
    schedule: ScheduleSection = ScheduleSection()
    catalog: CatalogSection = CatalogSection()
    extensions: ExtensionSection = ExtensionSection()
    freshness: FreshnessSection = FreshnessSection()
    alerts: AlertsSection = AlertsSection()
    export: ExportSettings = ExportSettings()
    # Files the values came from (for `storage status`), not a setting itself.
    source: tuple[str, ...] = ()

    @property
    def lock_kind(self) -> str:
        return effective_lock_kind(self.lock.kind, self.state.use_db_state)


def effective_lock_kind(kind: str | None, use_db_state: bool) -> str:
    """Locks live where the state does unless a kind is set."""
    return kind or ("db" if use_db_state else "file")


# Read from the environment only, never from files or run config; listed for the docs.
SECRETS: dict[str, str] = {
    "TUSHARE_TOKEN": "Tushare Pro token (controller: `--tushare-token`)",
    "DB_PASSWORD": "PostgreSQL password (default `quant123`, the original script's)",
    "ATM_DATABASE_URL": "SQLAlchemy URL of the target database; overrides every `DB_*` setting",
}
# Settings of settings, also for the docs.
META: dict[str, str] = {
    CONFIG_ENV: f"Config file path (`--config`); default `{DEFAULT_CONFIG_PATH}`",
    "DAGSTER_HOME": "Dagster instance directory (holds `dagster.yaml`); controller default: "
    "the project root",
}
# Not settings: keys only the per-run config may set.
_RUN_ONLY = {"sync.resume"}


@dataclass(frozen=True)
class Declared:
    """One setting as declared: its file key, variable, type, default, range and meaning."""

    key: str
    env: str | None
    annotation: Any
    default: Any
    description: str
    constraints: dict[str, Any]


def declared(model: type[BaseModel] = Settings, prefix: str = "") -> Iterator[Declared]:
    """Every setting, in declaration order (the docs tables are generated from this)."""
    for name, info in model.model_fields.items():
        if name == "source":
            continue
        key = f"{prefix}{info.alias or name}"
        if isinstance(info.annotation, type) and issubclass(info.annotation, Section):
            yield from declared(info.annotation, f"{key}.")
            continue
        if key in _RUN_ONLY:
            continue
        env = next((m.name for m in info.metadata if isinstance(m, Env)), None)
        constraints = {
            k: getattr(m, k)
            for m in info.metadata
            for k in ("ge", "gt", "le", "lt")
            if getattr(m, k, None) is not None
        }
        yield Declared(key, env, info.annotation, info.default, info.description or "", constraints)


_DECLARED = {d.key: d for d in declared()}
_BY_ENV = {d.env: d for d in _DECLARED.values() if d.env}


def env_name(key: str) -> str | None:
    """The environment variable of the setting at file key `key`, if it has one."""
    setting = _DECLARED.get(key)
    return setting.env if setting else None


def _set(tree: dict[str, Any], key: str, value: Any) -> None:
    *sections, name = key.split(".")
    for section in sections:
        tree = tree.setdefault(section, {})
    tree[name] = value


def _sections(prefix: str) -> list[str]:
    names = {k[len(prefix) :].split(".")[0] for k in _DECLARED if k.startswith(prefix)}
    return sorted(n for n in names if any(k.startswith(f"{prefix}{n}.") for k in _DECLARED))


def yaml_problem(error: Exception) -> str:
    """A YAML error as one line with its place: "line 3, column 9: mapping values are not
    allowed here" (PyYAML's own message spans lines)."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or (str(error).splitlines() or [""])[0]
    problem = problem or type(error).__name__
    if mark is None:
        return problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file's values by key ("sync.batch_size"); unknown or secret keys are errors."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as e:
        # PyYAML raises ValueError for date-like scalars that are no dates (2024-13-01).
        raise ConfigError(f"config file {p} is not valid YAML: {yaml_problem(e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p}: expected a mapping of sections at the top level")
    values: dict[str, Any] = {}
    pending: list[tuple[str, Any]] = [(str(k), v) for k, v in data.items()]
    while pending:
        key, value = pending.pop(0)
        if key in _DECLARED:
            values[key] = value
            continue
        section = key.rsplit(".", 1)[0] if "." in key else ""
        if key.split(".")[-1] in ("password", "token", "url") and key != "tushare.api_url":
            raise ConfigError(
                f"config file {p}: key {key} is not allowed: secrets stay out of files "
                "(use the environment: DB_PASSWORD, TUSHARE_TOKEN, ATM_DATABASE_URL)"
            )
        if key in _sections("") or any(k.startswith(f"{key}.") for k in _DECLARED):
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"config file {p}: {key} must be a mapping")
            pending[:0] = [(f"{key}.{k}", v) for k, v in value.items()]
            continue
        if not section:
            raise ConfigError(
                f"config file {p}: unknown section {key!r} (known: {', '.join(_sections(''))})"
            )
        known = sorted(k.rsplit(".", 1)[1] for k in _DECLARED if k.rsplit(".", 1)[0] == section)
        raise ConfigError(
            f"config file {p}: unknown key {key} (known in {section}: {', '.join(known)})"
        )
    return values


def _problem(error: Mapping[str, Any], setting: Declared | None) -> str:
    """A pydantic error as a short phrase: "must be an integer in 1..1,000,000, got 0"."""
    kind, value = error["type"], error.get("input")
    bounds = setting.constraints if setting else {}
    if kind in ("greater_than_equal", "less_than_equal") and {"ge", "le"} <= set(bounds):
        return f"must be an integer in {bounds['ge']:,}..{bounds['le']:,}, got {value!r}"
    if kind in ("greater_than", "greater_than_equal"):
        return f"must be positive, got {value!r}"
    if kind == "literal_error":
        choices = ", ".join(get_args(_literal(setting.annotation))) if setting else ""
        return f"must be one of {choices}, got {value!r}"
    if kind.startswith("int_"):
        return f"expected an integer, got {value!r}"
    if kind.startswith("float_"):
        return f"expected a number, got {value!r}"
    if kind.startswith("bool_"):
        return f"expected true/false, got {value!r}"
    if kind.startswith("date_"):
        return f"expected a date like 2024-01-01, got {value!r}"
    return str(error["msg"]).removeprefix("Value error, ")


def _literal(annotation: Any) -> Any:
    for arg in get_args(annotation) or (annotation,):
        if get_args(arg) and all(isinstance(a, str) for a in get_args(arg)):
            return arg
    return annotation


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve settings: `overrides` (flags, by key) > environment > config file > defaults.

    The file is `config_path`, else $ATM_CONFIG, else config/data_ingestor.yaml if it exists;
    a file named explicitly must exist. Every error names the variable or file key at fault.
    """
    env = os.environ if env is None else env
    layers: list[tuple[str, dict[str, Any]]] = []
    sources: list[str] = []
    explicit = config_path or env.get(CONFIG_ENV)
    path = Path(explicit) if explicit else Path(DEFAULT_CONFIG_PATH)
    if explicit or path.exists():
        layers.append((f"config file {path}: ", read_config_file(path)))
        sources.append(str(path))
    from_env = {_BY_ENV[k].key: v for k, v in env.items() if k in _BY_ENV and v != ""}
    layers.append(("environment variable ", from_env))
    unknown = sorted(set(overrides or {}) - set(_DECLARED))
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}")
    layers.append(("", {k: v for k, v in (overrides or {}).items() if v is not None}))
    # Validate layer by layer, so an error names where the bad value came from.
    tree: dict[str, Any] = {}
    for where, values in layers:
        for key, value in values.items():
            _set(tree, key, value)
            try:
                Settings.model_validate(tree)
            except ValidationError as e:
                setting = _DECLARED[key]
                label = setting.env if where.startswith("environment") else key
                raise ConfigError(f"{where}{label}: {_problem(e.errors()[0], setting)}") from None
    return Settings.model_validate({**tree, "source": tuple(sources)})


def check_sync_options(base: SyncOptions, **changes: Any) -> SyncOptions:
    """Per-run options over the configured ones, checked against the same declaration."""
    values = {**base.model_dump(), **{k: v for k, v in changes.items() if v is not None}}
    try:
        return SyncOptions.model_validate(values)
    except ValidationError as e:
        error = e.errors()[0]
        name = str(error["loc"][0])
        raise ConfigError(f"{name}: {_problem(error, _DECLARED.get(f'sync.{name}'))}") from None


@cache
def current() -> Settings:
    """The settings of this process (definitions, partitions and schedules read them once)."""
    return load_settings()
