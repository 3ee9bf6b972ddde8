"""Fault injection through the engine's hooks (setting extensions.sync_hooks): tests name the
exact moment to SIGKILL, raise or pause, in this process or in a controller subprocess."""

import os
import signal
import time

from atm_assets.core.engine import Hooks

# "after_batch:N", "after_commit:N", "after_checkpoint:N" (per task) or "after_partition:N"
# (the Nth partition of a run written): SIGKILL there; "raise@…" raises; "pause@…" sleeps for
# ATM_FAULT_PAUSE_SECONDS, first creating the file ATM_FAULT_MARK if set (a test then knows
# the sync is inside the pause, e.g. to send it a signal there). ATM_FAULT_TASK limits the
# per-task points to one task.
FAULT_ENV = "ATM_FAULT_INJECT"
MARK_ENV = "ATM_FAULT_MARK"
HOOKS = "atm_assets_tests.faults:from_env"


class InjectedFault(RuntimeError):
    """Raised at an injection point."""


class FaultHooks(Hooks):
    def __init__(self, fault: str | None, pause: float) -> None:
        self.fault = fault
        self.pause = pause

    def _at(self, point: str, count: int) -> None:
        if not self.fault:
            return
        if self.fault == f"{point}:{count}":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.fault == f"raise@{point}:{count}":
            raise InjectedFault(f"injected fault at {point}:{count}")
        if self.fault == f"pause@{point}:{count}":
            mark = os.environ.get(MARK_ENV)
            if mark:
                with open(mark, "w") as f:
                    f.write(f"{point}:{count}")
            time.sleep(self.pause)

    def _for(self, task: str) -> bool:
        only = os.environ.get("ATM_FAULT_TASK")
        return not only or only == task

    def after_batch(self, task: str, batches: int) -> None:
        if self._for(task):
            self._at("after_batch", batches)

    def after_commit(self, task: str, commits: int) -> None:
        if self._for(task):
            self._at("after_commit", commits)

    def after_checkpoint(self, task: str, checkpoints: int) -> None:
        if self._for(task):
            self._at("after_checkpoint", checkpoints)

    def after_partition(self, partitions: int) -> None:
        self._at("after_partition", partitions)


def from_env() -> FaultHooks:
    return FaultHooks(
        os.environ.get(FAULT_ENV), float(os.environ.get("ATM_FAULT_PAUSE_SECONDS", "5"))
    )
