"""ATM's write path for the load benchmarks: partitions handed to the engine's writer as a sync
hands them over when every partition is prepared ahead of the writer."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import pandas as pd

from atm_assets.core.datasets import TableSpec
from atm_assets.core.db import Database
from atm_assets.core.engine import BufferedLog, Prepared, SyncJob, Task
from atm_assets.core.locks import LockManager
from atm_assets.core.settings import SyncOptions
from atm_assets.core.staging import Staging
from atm_assets.core.state import DbStateStore, TaskState
from atm_assets.core.state import Target as StateTarget
from atm_assets.core.writer import TableWriter


class _Quiet:
    def info(self, *a: Any, **k: Any) -> None: ...
    def warning(self, *a: Any, **k: Any) -> None: ...
    def error(self, *a: Any, **k: Any) -> None: ...


QUIET = _Quiet()


class AtmLoader:
    """One database loaded by ATM's writer: per dataset a sync job with a checkpoint interval
    of `interval` rows (batch size 1,000 × checkpoint_every) and a database state store (as
    --use-db-state). Partitions that fit share one transaction (group commit: their states are
    saved in it as completed); a larger one goes interval by interval. The rows come validated
    and are typed for the database as `SyncJob.prepare` does on its worker threads; only the
    writes are timed (`seconds`). One connection is held around the writes, as a run does."""

    def __init__(
        self, db: Database, specs: list[TableSpec], interval: int, tmp: Path, name: str
    ) -> None:
        self.engine = db.create_engine()
        self.seconds = 0.0
        store = DbStateStore(self.engine, db.schema)
        store.ensure()
        self.jobs: dict[str, SyncJob] = {}
        for spec in specs:
            writer = TableWriter(self.engine, spec, db.schema)
            writer.ensure_table()
            self.jobs[spec.name] = SyncJob(
                spec=spec,
                fetch=lambda _client, _params: pd.DataFrame(),  # rows come validated
                writer=writer,
                store=store,
                locks=LockManager(lock_dir=tmp / name / "locks"),
                options=SyncOptions(batch_size=1000, checkpoint_every=max(1, interval // 1000)),
                staging=Staging(tmp / name / "staging"),
                target=StateTarget(writer.table_id, writer.qualified_name, name),
            )
        # Partitions waiting for their group's transaction, by dataset; the groups written
        # (task names), by dataset.
        self.pending: dict[str, list[Prepared]] = {spec.name: [] for spec in specs}
        self.groups: dict[str, list[list[str]]] = {spec.name: [] for spec in specs}
        self.session = contextlib.ExitStack()
        self.session.enter_context(self.jobs[specs[0].name].writer.session())

    def add(self, spec: TableSpec, partition: dict[str, str], frame: pd.DataFrame) -> float:
        """The partition joins its dataset's group, which is written first if it would not
        fit (the engine's rule); seconds spent writing."""
        job = self.jobs[spec.name]
        name = "_".join([f"{spec.name}_sync", *partition.values()])
        part = Prepared(Task(name, partition), None, BufferedLog(), TaskState(name), frame)
        pending = self.pending[spec.name]
        spent = 0.0
        if pending and not job.fits(pending, part):
            spent += self.flush(spec)
        if job.groupable(part):
            pending.append(job.for_group(part))  # as prepare() does, untimed
            return spent
        began = time.perf_counter()
        job.write(part, QUIET)
        alone = time.perf_counter() - began
        self.seconds += alone
        self.groups[spec.name].append([name])
        return spent + alone

    def flush(self, spec: TableSpec) -> float:
        """The dataset's waiting group written; seconds."""
        pending = self.pending[spec.name]
        if not pending:
            return 0.0
        began = time.perf_counter()
        self.jobs[spec.name].write_group(pending, QUIET)
        spent = time.perf_counter() - began
        self.seconds += spent
        self.groups[spec.name].append([p.task.name for p in pending])
        pending.clear()
        return spent

    def close(self) -> None:
        self.session.close()
        self.engine.dispose()
