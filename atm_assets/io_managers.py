"""IO manager that writes sync plans into database tables and reads tables back as frames."""

import datetime as dt
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from dagster import (
    AssetMaterialization,
    ConfigurableIOManager,
    DagsterExecutionInterruptedError,
    InputContext,
    MetadataValue,
    MultiPartitionKey,
    OutputContext,
)
from pydantic import PrivateAttr

from atm_assets.core.catalog import build_catalog
from atm_assets.core.datasets import TableSpec
from atm_assets.core.engine import PROGRESS_LOG, HandOver, SyncSummary, TaskResult
from atm_assets.core.errors import DataValidationError, SyncInterrupted
from atm_assets.core.writer import TableWriter
from atm_assets.partitions import trade_date_of
from atm_assets.resources import DatabaseResource

PROGRESS_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"


class TableIOManager(ConfigurableIOManager):
    """Upserts/appends what a sync hands over, in checkpointed batches; rewrites derived
    partitions; loads tables back for downstream assets."""

    database: DatabaseResource
    # The user's dataset declarations (None: none): with the built-ins, the one registry of
    # every table this IO manager reads or writes.
    datasets_file: str | None = None
    _catalog: dict[str, TableSpec] | None = PrivateAttr(default=None)

    def spec(self, context: InputContext | OutputContext) -> TableSpec:
        """The dataset of the asset being read or written, from the catalog."""
        if self._catalog is None:
            self._catalog = build_catalog(self.datasets_file)
        name = context.asset_key.path[-1]
        found = self._catalog.get(name)
        if found is None:
            raise DataValidationError(
                f"{name} is not a dataset of the catalog: TableIOManager reads and writes "
                "catalog tables only (declare it, or give the asset another io_manager_key)"
            )
        return found

    def handle_output(self, context: OutputContext, obj: HandOver | pd.DataFrame) -> None:
        if isinstance(obj, pd.DataFrame):
            self._replace_derived(context, obj)
            return
        if not isinstance(obj, HandOver):
            raise TypeError(
                f"TableIOManager stores synced partitions or derived DataFrames, got "
                f"{type(obj).__name__}; use another io_manager_key for this asset"
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
        except Exception:
            _record_written(context, obj, written)
            raise
        summary = SyncSummary(obj.job.writer.qualified_name, obj.job.options, results)
        for line in summary.closing_lines():
            context.log.info(line)
        metadata = output_metadata(summary, time.perf_counter() - began)
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

    def _replace_derived(self, context: OutputContext, frame: pd.DataFrame) -> None:
        """A derived table's partitions are rewritten whole from the frame."""
        spec = self.spec(context)
        writer = TableWriter(self.database.engine(), spec, self.database.schema_name)
        column, values = _partition_filter(context, spec)
        if column is None:
            raise TypeError(f"{spec.name}: derived tables are partitioned by trade date")
        began = time.perf_counter()
        counts = writer.replace_rows(frame, column, values)
        context.log.info(
            f"Replaced {len(values)} {column} partition(s) of {writer.qualified_name} with "
            f"{counts.inserted} rows"
        )
        context.add_output_metadata(
            {
                "table": writer.qualified_name,
                "rows_written": counts.inserted,
                "write_seconds": round(time.perf_counter() - began, 3),
            }
        )

    def load_input(self, context: InputContext) -> pd.DataFrame:
        spec = self.spec(context)
        writer = TableWriter(self.database.engine(), spec, self.database.schema_name)
        if not writer.exists():
            raise DataValidationError(
                f"{spec.name} has no table yet ({writer.qualified_name}): materialise "
                f"{spec.name} before what reads it"
            )
        column, values = _partition_filter(context, spec)
        if column is not None:
            # Trade-date partitions: filter in SQL, the tables hold years of them.
            frame = writer.read(where={column: values})
        else:
            frame = writer.read()
        if column is None and context.has_asset_partitions and spec.partition_columns:
            cols = list(spec.partition_columns)
            wanted = {_dimensions(k, cols) for k in context.asset_partition_keys}
            mask = [tuple(r) in wanted for r in frame[cols].itertuples(False, None)]
            frame = frame[mask].reset_index(drop=True)
        # add_input_metadata cannot be used here: it requires a single upstream partition.
        context.log.info(f"Loaded {len(frame)} rows from {writer.qualified_name}")
        return frame


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


def _dimensions(key: str | MultiPartitionKey, columns: list[str]) -> tuple[str, ...]:
    """A partition key's values, in the order of the table's partition columns."""
    if isinstance(key, MultiPartitionKey):
        return tuple(key.keys_by_dimension[c] for c in columns)
    return (str(key),)


def _partition_filter(
    context: InputContext | OutputContext, spec: TableSpec
) -> tuple[str | None, list[dt.date]]:
    """("trade_date", dates) for a trade-date partitioned table, (None, []) otherwise."""
    if spec.partition_columns != ("trade_date",) or not context.has_asset_partitions:
        return None, []
    return "trade_date", sorted(trade_date_of(k) for k in context.asset_partition_keys)


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
        "fetch_seconds": round(sum(r.fetch_seconds for r in results), 3),
        "write_seconds": round(sum(r.write_seconds for r in results), 3),
        "duration_seconds": round(seconds, 3),
    }
