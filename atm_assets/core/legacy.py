"""The original script's task names for several exchanges or statuses, and what they became."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from atm_assets.core.datasets import EXCHANGES, LIST_STATUSES
from atm_assets.core.state import TaskState, Totals

# The original ran `stock_basic_sync_<exchange or all>_<status or all>` as one task; ATM runs one
# task per exchange × list status partition, named the same way with real values.
_LEGACY = re.compile(
    rf"^stock_basic_sync_(all|{'|'.join(EXCHANGES)})_(all|{'|'.join(LIST_STATUSES)})$"
)


def successors(task_name: str) -> list[str] | None:
    """The partition tasks an old multi-partition task became, or None for any other name."""
    match = _LEGACY.match(task_name)
    if not match or "all" not in match.groups():
        return None
    exchange, status = match.groups()
    exchanges = EXCHANGES if exchange == "all" else (exchange,)
    statuses = LIST_STATUSES if status == "all" else (status,)
    return [f"stock_basic_sync_{e}_{s}" for e in exchanges for s in statuses]


@dataclass
class CombinedState(Totals):
    """An old task name's state, read from the partition tasks it became: the original's
    fields (status, totals, last key, timestamps), plus `tasks`, each task's own state."""

    task_name: str
    names: list[str] = field(default_factory=list)
    tasks: list[TaskState] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """running if any runs, failed if any failed, completed only when every one is."""
        statuses = {t.status for t in self.tasks}
        for status in ("running", "failed"):
            if status in statuses:
                return status
        return "completed" if not self.missing else "partial"

    def _parts(self) -> list[TaskState]:
        return self.tasks

    @property
    def last_processed_key(self) -> str | None:
        """The checkpoint of the task still running or failed, if one is."""
        unfinished = [t for t in self.tasks if t.status != "completed" and t.last_processed_key]
        return unfinished[0].last_processed_key if unfinished else None

    @property
    def last_error(self) -> str | None:
        errors = [f"{t.task_name}: {t.last_error}" for t in self.tasks if t.last_error]
        return "; ".join(errors) or None

    @property
    def started_at(self) -> str | None:
        return min((t.started_at for t in self.tasks if t.started_at), default=None)

    @property
    def updated_at(self) -> str | None:
        return max((t.updated_at for t in self.tasks if t.updated_at), default=None)

    @property
    def finished_at(self) -> str | None:
        if self.status != "completed":
            return None
        return max((t.finished_at for t in self.tasks if t.finished_at), default=None)

    def to_dict(self) -> dict[str, object]:
        return {
            "task_name": self.task_name,
            "note": "an original-script task name: ATM syncs it as one task per partition",
            "became": self.names,
            "status": self.status,
            "total_fetched": self.total_fetched,
            "total_saved": self.total_saved,
            "total_errors": self.total_errors,
            "last_processed_key": self.last_processed_key,
            "last_error": self.last_error,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
            "never_run": self.missing,
            "tasks": [t.to_dict() for t in self.tasks],
        }


def combine(task_name: str, names: Sequence[str], found: Sequence[TaskState]) -> CombinedState:
    """`task_name`'s state from the states `found` among its successor tasks `names`."""
    by_name = {t.task_name: t for t in found}
    return CombinedState(
        task_name,
        names=list(names),
        tasks=[by_name[n] for n in names if n in by_name],
        missing=[n for n in names if n not in by_name],
    )
