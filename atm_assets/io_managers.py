"""The IO manager: writes syncs and DataFrames into database tables, reads tables back."""

import datetime as dt
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pandas as pd
from dagster import (
    AssetMaterialization,
    ConfigurableIOManager,
    DagsterExecutionInterruptedError,
    InputContext,
    MetadataValue,
    OutputContext,
    TimeWindowPartitionsDefinition,
)
from pydantic import PrivateAttr

from atm_assets.core.catalog import build_catalog
from atm_assets.core.datasets import TableSpec
from atm_assets.core.engine import PROGRESS_LOG, HandOver, SyncSummary, TaskResult
from atm_assets.core.errors import ConfigError, DataValidationError, SyncInterrupted
from atm_assets.core.readers import latest_versions
from atm_assets.core.tables import Bounds
from atm_assets.core.user_tables import as_stored, frame_spec, reflected_spec
from atm_assets.core.writer import TableWriter
from atm_assets.partitions import row_bounds
from atm_assets.resources import DatabaseResource
from atm_assets.runs import no_retry_if_permanent

PROGRESS_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"


# Metadata of a user's asset (its definition metadata) the table writer reads.
KEY_META = "atm/key"
PARTITION_COLUMN_META = "atm/partition_column"
# Metadata of an input (AssetIn(metadata=…)) the loader reads, for an unpartitioned reader.
SINCE_META, LAST_DAYS_META, VERSIONS_META = "atm/since", "atm/last_days", "atm/versions"
# The date column a window applies to, in this order of preference.
DATE_COLUMNS = ("trade_date", "end_date", "cal_date", "ann_date", "date")


class TableIOManager(ConfigurableIOManager):
    """Upserts/appends what a sync hands over, in checkpointed batches; rewrites the partitions
    of a derived table or of a user's asset from the DataFrame it returns; loads tables back
    for downstream assets by each partition scheme's meaning."""

    database: DatabaseResource
    # The user's dataset declarations (None: none): with the built-ins, the one registry of
    # every catalog table this IO manager reads or writes.
    datasets_file: str | None = None
    _catalog: dict[str, TableSpec] | None = PrivateAttr(default=None)

    def catalog_spec(self, name: str) -> TableSpec | None:
        """The catalog's dataset of that name, if it is one."""
        if self._catalog is None:
            self._catalog = build_catalog(self.datasets_file)
        return self._catalog.get(name)

    def handle_output(self, context: OutputContext, obj: HandOver | pd.DataFrame) -> None:
        if isinstance(obj, pd.DataFrame):
            self._replace(context, obj)
            return
        if not isinstance(obj, HandOver):
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned a {type(obj).__name__}: ATM's "
                "IO manager stores pandas DataFrames as tables (and the syncs it runs); give "
                "this asset io_manager_key='fs_io_manager' to store other objects as files"
            )
        began = time.perf_counter()
        written: list[TaskResult] = []
        try:
            with console_progress():
                results = obj.write(context.log, written.append)
        except SyncInterrupted as stop:
            _record_written(context, obj, written)
            context.log.warning(f"Interrupted: {stop}; run the same command to resume")
            # Canceling, so that Dagster records the run as canceled rather than failed.
            context.step_context.instance.report_run_canceling(
                context.step_context.dagster_run, message=f"Interrupted: {stop}"
            )
            raise DagsterExecutionInterruptedError(str(stop)) from stop
        except Exception as error:
            _record_written(context, obj, written)
            step = context.step_context
            no_retry_if_permanent(step.instance, step.run_id, error)
            raise
        summary = SyncSummary(obj.job.writer.qualified_name, obj.job.options, results)
        for line in summary.closing_lines():
            context.log.info(line)
        metadata = output_metadata(summary, time.perf_counter() - began)
        unpublished = sorted(r.unpublished for r in results if r.unpublished)
        if unpublished:
            context.log.warning(
                f"Not published yet: {obj.job.spec.name} {', '.join(unpublished)} answered no "
                "rows; the next run fetches them again"
            )
        metadata["unpublished"] = MetadataValue.json(unpublished)
        keys = [obj.keys.get(r.task_name) for r in results]
        partitions = context.asset_partition_keys if context.has_asset_partitions else []
        if len(partitions) > 1 and None not in keys:
            # Many partitions: each one's materialisation carries its own task's stats and all
            # of them the run's totals (every task's stats on every one grows with the square).
            for result, key in zip(results, keys, strict=True):
                context.step_context.add_asset_metadata(task_metadata([result]), partition_key=key)
        else:
            metadata.update(task_metadata(results))
        context.add_output_metadata(
            {**metadata, **obj.notes, "skipped_completed": obj.stream.skipped}
        )

    # -- DataFrames: derived tables and users' assets --

    def _replace(self, context: OutputContext, frame: pd.DataFrame) -> None:
        """The asset's partitions (its whole table when it has none) rewritten from `frame`
        in one transaction: a function of its inputs, never merged."""
        name = context.asset_key.path[-1]
        spec = self.catalog_spec(name)
        meta = context.definition_metadata or {}
        engine, schema = self.database.engine(), self.database.schema_name
        bounds: list[Bounds] | None
        if spec is None:
            spec = frame_spec(name, frame, _key_of(meta))
            frame = as_stored(frame, spec)
            stored = reflected_spec(engine, schema, name)
            if stored is not None and [c.name for c in stored.columns] != spec.fields:
                if context.has_asset_partitions:
                    raise DataValidationError(
                        f"{name}: the frame's columns {spec.fields} differ from the table's "
                        f"{[c.name for c in stored.columns]}; a partitioned table keeps its "
                        "columns (drop the table to change them)"
                    )
                TableWriter(engine, stored, schema).drop()
            bounds = _user_bounds(context, meta)
        else:
            missing = [f for f in spec.fields if f not in frame.columns]
            if missing:
                raise DataValidationError(f"{name}: the frame lacks column(s) {missing}")
            stored = reflected_spec(engine, schema, name)
            if stored is not None and [c.name for c in stored.columns] != spec.fields:
                # A derived table is a function of its inputs: rebuilt whole, never altered.
                raise DataValidationError(
                    f"{name}: the table's columns {[c.name for c in stored.columns]} are an "
                    f"older version's (now {spec.fields}); drop the table and materialise "
                    f"{name} again"
                )
            frame = frame[spec.fields]
            bounds = (
                row_bounds(spec, [str(k) for k in context.asset_partition_keys])
                if context.has_asset_partitions
                else None
            )
        writer = TableWriter(engine, spec, schema)
        began = time.perf_counter()
        # Named by partition key: a run's time window is one bounds entry for all its days,
        # and must still exclude a run of any one of them.
        keys = [str(k) for k in context.asset_partition_keys] if bounds is not None else None
        counts = writer.replace(frame, bounds, keys)
        what = f"{len(bounds)} partition(s)" if bounds is not None else "the whole table"
        context.log.info(f"Replaced {what} of {writer.qualified_name} with {counts.inserted} rows")
        context.add_output_metadata(
            {
                "table": writer.qualified_name,
                "rows_written": counts.inserted,
                "write_seconds": round(time.perf_counter() - began, 3),
            }
        )

    # -- reading tables back --

    def load_input(self, context: InputContext) -> pd.DataFrame:
        """The upstream table's rows: the partitions this step reads, by their scheme's
        meaning (every row when it reads them all); an unpartitioned reader may narrow the
        window (`atm/since`, `atm/last_days`) and, for point-in-time datasets, ask for the
        latest version of each fact only (`atm/versions: latest`)."""
        name = context.asset_key.path[-1]
        engine, schema = self.database.engine(), self.database.schema_name
        spec = self.catalog_spec(name) or reflected_spec(engine, schema, name)
        writer = TableWriter(engine, spec, schema) if spec is not None else None
        if spec is None or writer is None or not writer.exists():
            where = f"{schema}.{name}" if schema else name
            raise DataValidationError(
                f"{name} has no table yet ({where}): materialise {name} before what reads it"
            )
        meta = context.definition_metadata or {}
        bounds = self._input_bounds(context, spec)
        frame = writer.read(bounds=bounds, since=_window(meta, spec))
        if _value(meta.get(VERSIONS_META)) == "latest":
            frame = latest_versions(frame, spec)
        # add_input_metadata cannot be used here: it requires a single upstream partition.
        context.log.info(f"Loaded {len(frame)} rows from {writer.qualified_name}")
        return frame

    def _input_bounds(self, context: InputContext, spec: TableSpec) -> list[Bounds] | None:
        if not context.has_asset_partitions:
            return None
        keys = [str(k) for k in context.asset_partition_keys]
        definition = context.asset_partitions_def
        if definition is not None and len(keys) >= len(definition.get_partition_keys()):
            return None  # every partition: the whole table, without a key list
        if spec.api_name or spec.scheme == "derived":
            return row_bounds(spec, keys)
        upstream = context.upstream_output
        meta = (upstream.definition_metadata if upstream is not None else None) or {}
        return _user_bounds(context, meta)


def _value(item: Any) -> Any:
    """A metadata entry's plain value (Dagster may hand it over wrapped)."""
    return getattr(item, "value", item)


def _key_of(meta: Mapping[str, Any]) -> tuple[str, ...]:
    key = _value(meta.get(KEY_META)) or ()
    return (key,) if isinstance(key, str) else tuple(key)


def _user_bounds(
    context: InputContext | OutputContext, meta: Mapping[str, Any]
) -> list[Bounds] | None:
    """A user table's rows of the partitions at hand: its partition column (metadata
    `atm/partition_column`, else trade_date) within the time window, or equal to each key."""
    if not context.has_asset_partitions:
        return None
    column = _value(meta.get(PARTITION_COLUMN_META)) or "trade_date"
    if isinstance(context.asset_partitions_def, TimeWindowPartitionsDefinition):
        window = context.asset_partitions_time_window
        last = window.end - dt.timedelta(microseconds=1)
        return [{column: (window.start.date(), last.date())}]
    return [{column: (str(k), str(k))} for k in context.asset_partition_keys]


def _window(meta: Mapping[str, Any], spec: TableSpec) -> tuple[str, Any] | None:
    """An unpartitioned reader's window: `atm/since` (a date) or `atm/last_days` (N days
    back from today) on the table's date column."""
    since, days = _value(meta.get(SINCE_META)), _value(meta.get(LAST_DAYS_META))
    if since is None and days is None:
        return None
    column = next((c for c in DATE_COLUMNS if c in spec.fields), None)
    if column is None:
        raise ConfigError(f"{spec.name} has no date column to take a window of")
    if since is not None:
        return column, dt.date.fromisoformat(str(since))
    return column, dt.date.today() - dt.timedelta(days=int(days))


def _record_written(context: OutputContext, obj: HandOver, written: list[TaskResult]) -> None:
    """The partitions a failed or interrupted run did write are materialised (their tables
    hold them), each with its task's stats."""
    for result in written:
        key = obj.keys.get(result.task_name)
        if key is None and context.has_asset_partitions:
            continue
        context.log_event(
            AssetMaterialization(
                asset_key=context.asset_key,
                partition=key,
                metadata={"table": obj.job.writer.qualified_name, **task_metadata([result])},
            )
        )


@contextmanager
def console_progress() -> Iterator[None]:
    """Per-batch lines go to stdout (the run's compute log, the controller's console), not to
    the event log, where thousands of them per sync would cost more than the writes."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(PROGRESS_FORMAT, "%Y-%m-%d %H:%M:%S"))
    PROGRESS_LOG.addHandler(handler)
    previous = PROGRESS_LOG.level
    PROGRESS_LOG.setLevel(logging.INFO)
    try:
        yield
    finally:
        PROGRESS_LOG.removeHandler(handler)
        PROGRESS_LOG.setLevel(previous)


def task_metadata(results: list[TaskResult]) -> dict[str, Any]:
    """Per task: its name, what the Python API returns as its stats, and a table row."""
    rows = "\n".join(
        f"| {r.task_name} | {r.total_fetched} | {r.total_saved} | {r.counts.inserted} | "
        f"{r.counts.updated} | {r.counts.unchanged} | {r.resumed_from or ''} |"
        for r in results
    )
    return {
        "tasks": MetadataValue.json([r.task_name for r in results]),
        "task_stats": MetadataValue.json(
            {
                r.task_name: {
                    "total_fetched": r.total_fetched,
                    "total_saved": r.total_saved,
                    "saved_this_run": r.saved_this_run,
                    "total_errors": r.total_errors,
                    "inserted": r.counts.inserted,
                    "updated": r.counts.updated,
                    "unchanged": r.counts.unchanged,
                    "resumed_from": r.resumed_from,
                }
                for r in results
            }
        ),
        "partitions": MetadataValue.md(
            "| task | fetched | saved | inserted | updated | unchanged | resumed from |\n"
            "|---|---|---|---|---|---|---|\n" + rows
        ),
    }


def output_metadata(summary: SyncSummary, seconds: float) -> dict[str, Any]:
    """The run's settings and totals."""
    results, counts = summary.results, summary.counts
    return {
        "table": summary.table,
        "mode": summary.options.mode,
        "batch_size": summary.options.batch_size,
        "checkpoint_every": summary.options.checkpoint_every,
        "total_fetched": summary.total("total_fetched"),
        "total_saved": summary.total("total_saved"),
        "saved_this_run": summary.total("saved_this_run"),
        "total_errors": summary.total("total_errors"),
        "inserted": counts.inserted,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
        "last_processed_key": summary.last_processed_key or "",
        "resumed_from": MetadataValue.json(summary.resumed_from),
        "batches": summary.total("batches"),
        "checkpoints": summary.total("checkpoints"),
        "api_calls": summary.total("api_calls"),
        "observed_caps": MetadataValue.json(summary.observed_caps),
        "fetch_seconds": round(sum(r.fetch_seconds for r in results), 3),
        "write_seconds": round(sum(r.write_seconds for r in results), 3),
        "duration_seconds": round(seconds, 3),
    }
