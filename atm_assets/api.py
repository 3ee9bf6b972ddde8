"""The original script's Python API: `StockIngestorService`, every sync run through Dagster."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from atm_assets.core.errors import ConfigError, DataCheckError, TaskLockError
from atm_assets.core.legacy import CombinedState, combine, successors
from atm_assets.core.settings import Settings, load_settings
from atm_assets.core.state import (
    DbStateStore,
    FileStateStore,
    TaskState,
    Totals,
    validate_task_name,
)
from atm_assets.launch import as_exception, open_resources, state_stores, sync

__all__ = ["IngestStats", "StockIngestorService", "TaskStats"]

# db_config keys as the original's DatabaseConfig and DB_* variables spell them.
_DB_KEYS = {
    "host": "database.host",
    "port": "database.port",
    "user": "database.user",
    "name": "database.name",
    "database": "database.name",
    "dbname": "database.name",
    "schema": "database.schema",
    "db_schema": "database.schema",
    "sqlite_path": "database.sqlite_path",
    "duckdb_path": "database.duckdb_path",
}
_DB_SECRETS = {"password": "DB_PASSWORD", "url": "ATM_DATABASE_URL"}


@dataclass(frozen=True)
class TaskStats:
    """What one task (one partition) did in a run, and its totals so far."""

    task_name: str
    total_fetched: int
    total_saved: int
    saved_this_run: int
    total_errors: int
    inserted: int
    updated: int
    unchanged: int
    resumed_from: str | None = None


@dataclass(frozen=True)
class IngestStats(Totals):
    """The stats of one ingest call: totals over its tasks, and each task's own. Readable as
    attributes or, like the original's dict, by key (`stats["total_saved"]`)."""

    run_id: str
    dataset: str
    tasks: dict[str, TaskStats] = field(default_factory=dict)
    skipped_completed: int = 0

    def _parts(self) -> Iterable[TaskStats]:
        return self.tasks.values()

    @property
    def inserted(self) -> int:
        return self.total("inserted")

    @property
    def updated(self) -> int:
        return self.total("updated")

    @property
    def unchanged(self) -> int:
        return self.total("unchanged")

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "dataset": self.dataset,
            "total_fetched": self.total_fetched,
            "total_saved": self.total_saved,
            "total_errors": self.total_errors,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped_completed": self.skipped_completed,
            "tasks": {name: asdict(t) for name, t in self.tasks.items()},
        }

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]


def _db_overrides(db_config: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """(settings overrides, secret environment) from a mapping or an object with attributes."""
    if db_config is None:
        return {}, {}
    if isinstance(db_config, str):
        return {}, {"ATM_DATABASE_URL": db_config}
    if isinstance(db_config, Mapping):
        values = dict(db_config)
    else:
        values = {k: v for k, v in vars(db_config).items() if not k.startswith("_")}
    unknown = sorted(set(values) - set(_DB_KEYS) - set(_DB_SECRETS))
    if unknown:
        known = ", ".join(sorted({*_DB_KEYS, *_DB_SECRETS}))
        raise ConfigError(f"db_config: unknown key(s) {', '.join(unknown)} (known: {known})")
    overrides = {_DB_KEYS[k]: v for k, v in values.items() if k in _DB_KEYS and v is not None}
    secrets = {_DB_SECRETS[k]: str(v) for k, v in values.items() if k in _DB_SECRETS and v}
    return overrides, secrets


def _state_overrides(state_repo: Any) -> dict[str, Any]:
    if state_repo is None:
        return {}
    if isinstance(state_repo, FileStateStore):
        return {"state.use_db_state": False, "state.state_dir": str(state_repo.dir)}
    if isinstance(state_repo, DbStateStore) or state_repo == "db":
        return {"state.use_db_state": True}
    if state_repo == "file":
        return {"state.use_db_state": False}
    raise ConfigError(
        f"state_repo: expected a FileStateStore, a DbStateStore, 'file' or 'db', got {state_repo!r}"
    )


class StockIngestorService:
    """Syncs Tushare datasets through Dagster (the runs show in the instance's UI; task locks
    and checkpoints apply) and reads or resets task state, as the original script's service did.

    Settings come from the same places as everywhere else (config file, environment); the
    arguments override them. Secrets given here (`db_config` password or URL, `tushare_token`)
    are put in this process's environment only while the service works, never in run config.

        with StockIngestorService() as ingestor:
            stats = ingestor.ingest_stock_basic(exchange="SSE", list_status="L")
            print(stats.total_saved, ingestor.get_task_state("stock_basic_sync_SSE_L").status)
    """

    def __init__(
        self,
        db_config: Mapping[str, Any] | str | Any | None = None,
        state_repo: FileStateStore | DbStateStore | str | None = None,
        *,
        config_file: str | os.PathLike[str] | None = None,
        tushare_token: str | None = None,
        state_dir: str | None = None,
        use_db_state: bool | None = None,
        dagster_home: str | os.PathLike[str] | None = None,
        log_level: str = "INFO",
    ) -> None:
        overrides, self._secrets = _db_overrides(db_config)
        overrides.update(_state_overrides(state_repo))
        if state_dir is not None:
            overrides["state.state_dir"] = state_dir
        if use_db_state is not None:
            overrides["state.use_db_state"] = use_db_state
        if tushare_token:
            self._secrets["TUSHARE_TOKEN"] = tushare_token
        home = dagster_home or os.environ.get("DAGSTER_HOME")
        if not home:
            if not Path("dagster.yaml").is_file():
                raise ConfigError(
                    "DAGSTER_HOME is not set and there is no dagster.yaml here: pass "
                    "dagster_home= (the ATM project directory) or set DAGSTER_HOME"
                )
            home = Path.cwd()
        self.dagster_home = str(Path(home).absolute())
        if log_level.upper() not in logging.getLevelNamesMapping():
            raise ConfigError(f"log_level: unknown level {log_level!r}")
        self.log_level = log_level.upper()
        with self._environment():
            self.settings: Settings = load_settings(config_file, overrides=overrides)

    def __repr__(self) -> str:  # never show a secret
        return f"StockIngestorService(dagster_home={self.dagster_home!r})"

    def __enter__(self) -> StockIngestorService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing is held between calls; kept for the original's `with` usage."""

    @contextmanager
    def _environment(self) -> Iterator[None]:
        """DAGSTER_HOME and the given secrets in os.environ for the duration of one call."""
        wanted = {"DAGSTER_HOME": getattr(self, "dagster_home", None), **self._secrets}
        saved = {k: os.environ.get(k) for k in wanted}
        try:
            for key, value in wanted.items():
                if value is not None:
                    os.environ[key] = value
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    # -- syncing --

    def ingest_stock_basic(
        self,
        exchange: str = "",
        list_status: str = "L",
        batch_size: int | None = None,
        mode: str | None = None,
        task_name: str | None = None,
        resume: bool = True,
        checkpoint_every: int | None = None,
    ) -> IngestStats:
        """Sync stock_basic for an exchange ("" = all) and a list status ("" = all), one task
        per exchange × status partition. `batch_size` and `mode` default to the settings
        (100, "upsert")."""
        return self.ingest(
            "stock_basic",
            exchange=exchange,
            list_status=list_status,
            batch_size=batch_size,
            mode=mode,
            task_name=task_name,
            resume=resume,
            checkpoint_every=checkpoint_every,
        )

    def ingest(
        self,
        dataset: str,
        *,
        batch_size: int | None = None,
        mode: str | None = None,
        task_name: str | None = None,
        resume: bool = True,
        checkpoint_every: int | None = None,
        **selection: str | None,
    ) -> IngestStats:
        """Sync any catalog dataset (stock_basic, trade_cal, daily, adj_factor, daily_basic,
        income, …, and the user's own) as one Dagster run, selected as `controller.sh sync`
        selects it: `exchange`, `list_status`, `start_date`/`end_date` (YYYYMMDD),
        `start_period`/`end_period` (report periods), `index_code`, or the dataset's value
        (index_basic: `market`). Returns the stats; raises the run's error (TaskLockError,
        AppendConflictError, …) if it failed, DataCheckError (its `failed` lines) if it wrote
        but a blocking data check failed. Bad arguments raise ConfigError before anything
        runs."""
        options = {
            "mode": mode,
            "batch_size": batch_size,
            "checkpoint_every": checkpoint_every,
            "resume": resume,
            "task_name": task_name,
        }
        with self._environment():
            chosen, run = sync(
                dataset,
                selection,
                options,
                launched_by="python-api",
                settings=self.settings,
                log_level=self.log_level,
            )
        if run.failed_checks:
            failed = DataCheckError(run.failed_checks)
            failed.run_id = run.run_id  # type: ignore[attr-defined]
            raise failed
        if not run.success:
            assert run.error is not None
            raise as_exception(run.error, run.run_id)
        return self._stats(run.run_id, chosen.asset, run.metadata.get(chosen.asset, []))

    @staticmethod
    def _stats(run_id: str, asset: str, materializations: list[dict[str, Any]]) -> IngestStats:
        # Every partition's materialisation carries the run's totals and its own tasks' stats
        # (all of them, when the run had one partition or the asset none).
        tasks = {
            name: TaskStats(task_name=name, **values)
            for meta in materializations
            for name, values in (meta.get("task_stats") or {}).items()
        }
        meta = materializations[0] if materializations else {}
        return IngestStats(run_id, asset, tasks, int(meta.get("skipped_completed") or 0))

    # -- task state --

    @contextmanager
    def _with_stores(self) -> Iterator[list[tuple[Any, Any]]]:
        with self._environment(), open_resources(self.settings) as res:
            yield state_stores(res.sync, None, None)

    def get_task_state(self, task_name: str) -> TaskState | CombinedState | None:
        """A task's state (status, totals, last_processed_key, last_error, timestamps), or
        None. An original all-exchange name (stock_basic_sync_all_L) answers with the states
        of the partition tasks it became, combined."""
        with self._with_stores() as stores:
            for store, _ in stores:
                state = store.get(task_name)
                if state is not None:
                    return state
            names = successors(task_name)
            if not names:
                return None
            found = [s for store, _ in stores for n in names if (s := store.get(n))]
            return combine(task_name, names, found) if found else None

    def list_task_states(self) -> list[TaskState]:
        """Every task's state, from the configured store and the other one if it holds any."""
        with self._with_stores() as stores:
            return [state for store, _ in stores for state in store.list()]

    def reset_task_state(self, task_name: str, force: bool = False) -> bool:
        """Delete a task's state (its checkpoint), so its next sync starts over. Refuses with
        TaskLockError while the task runs, unless `force`. An original all-exchange name resets
        every partition task it became. Returns whether any state was deleted."""
        validate_task_name(task_name)
        with self._with_stores() as stores:
            names = [task_name] if any(s.get(task_name) for s, _ in stores) else None
            names = names or successors(task_name) or [task_name]
            if not force:
                for name in names:
                    for _, locks in stores:
                        holder = locks.probe(name)
                        if holder is not None:
                            raise TaskLockError(name, holder)
            return any([store.reset(name) for store, _ in stores for name in names])

    # -- research: panels and Parquet exports, read straight from the target database --

    @contextmanager
    def _target(self) -> Iterator[tuple[Any, str | None]]:
        from atm_assets.core.db import Database

        with self._environment():
            db = Database.from_environment(self.settings.database)
            engine = db.create_engine()
            try:
                db.check(engine)
                yield engine, db.schema
            finally:
                engine.dispose()

    def read_panel(
        self,
        columns: Sequence[str],
        start_date: str,
        end_date: str,
        adjust: str = "none",
        codes: Sequence[str] | None = None,
        wide: bool = False,
    ) -> Any:
        """daily's `columns` for a window (YYYYMMDD), adjusted in the database as pro_bar
        adjusts (`qfq`, `hfq`) or not: a long DataFrame, or `wide` a date × ts_code panel."""
        from atm_assets.core.dates import parse_day
        from atm_assets.core.readers import read_panel

        start, end = parse_day(start_date), parse_day(end_date)
        with self._target() as (engine, schema):
            return read_panel(engine, columns, start, end, adjust, codes, schema, wide)

    def read_point_in_time(
        self,
        dataset: str,
        columns: Sequence[str],
        start_date: str,
        end_date: str,
        codes: Sequence[str] | None = None,
        report_type: str | None = "1",
        wide: bool = False,
    ) -> Any:
        """On every day a stock traded in the window, `columns` of the latest `dataset` report
        announced by then (fina_indicator, income, …; income & co. of one report type)."""
        from atm_assets.core.dates import parse_day
        from atm_assets.core.readers import read_point_in_time

        start, end = parse_day(start_date), parse_day(end_date)
        with self._target() as (engine, schema):
            return read_point_in_time(
                engine, dataset, columns, start, end, codes, schema, report_type, wide
            )

    def export(
        self,
        dataset: str,
        out: str | os.PathLike[str],
        start_date: str | None = None,
        end_date: str | None = None,
        full: bool = False,
        format: str = "parquet",
    ) -> Any:
        """`controller.sh export DATASET --out OUT [--format qlib]`: hive-partitioned Parquet,
        files whose rows did not change left alone; or (daily) a qlib provider directory.
        Returns the summary (written, unchanged, removed, …)."""
        from atm_assets.core.catalog import catalog_for
        from atm_assets.core.dates import parse_day
        from atm_assets.core.export import FORMATS, export_dataset
        from atm_assets.core.qlib_export import export_qlib

        if format not in FORMATS:
            raise ConfigError(f"unknown export format {format!r}: expected {', '.join(FORMATS)}")
        spec = catalog_for(self.settings).get(dataset.replace("-", "_"))
        if spec is None:
            raise ConfigError(f"unknown dataset {dataset!r}")
        if format == "qlib" and spec.name != "daily":
            raise ConfigError(f"format qlib writes daily bars, not {spec.name}")
        start = parse_day(start_date) if start_date else None
        end = parse_day(end_date) if end_date else None
        with self._target() as (engine, schema):
            if format == "qlib":
                return export_qlib(engine, out, schema, start, end, full)
            return export_dataset(engine, spec, out, schema, start, end, full)
