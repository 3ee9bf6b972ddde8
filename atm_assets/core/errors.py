"""Typed errors of the core; each message names the problem and never carries a secret."""

from __future__ import annotations


class AtmError(Exception):
    """Base class for every error ATM raises on purpose."""


class ConfigError(AtmError, ValueError):
    """An option, flag, file or name is invalid."""


class DataValidationError(AtmError):
    """Rows that came back from the source break a promise (partition, key, fields, dates)."""


class AppendConflictError(AtmError):
    """Append mode met keys that already exist in the table."""

    def __init__(self, table: str, keys: list[str], total: int) -> None:
        shown = ", ".join(keys[:10]) + (f" … (+{total - 10} more)" if total > 10 else "")
        super().__init__(
            f"append into {table} refused: {total} key(s) already exist: {shown}. "
            "Nothing was written; use mode=upsert to update existing rows."
        )
        self.table = table
        self.keys = keys
        self.total = total


class TaskLockError(AtmError):
    """The task is already running somewhere else."""

    def __init__(self, task_name: str, holder: dict | None = None) -> None:
        detail = ""
        if holder:
            parts = [
                f"{k}={holder[k]}" for k in ("host", "pid", "run_id", "since") if holder.get(k)
            ]
            detail = f" (held by {', '.join(parts)})" if parts else ""
        super().__init__(f"Task {task_name} is already running{detail}")
        self.task_name = task_name
        self.holder = holder or {}


class SyncInterrupted(AtmError):
    """The sync stopped at a safe point because it was asked to (Ctrl-C, SIGTERM, a cancel):
    every interval committed before it is in the table and checkpointed."""

    def __init__(self, rows: int = 0, partitions: int = 0, completed: int = 0) -> None:
        self.rows, self.partitions, self.completed = rows, partitions, completed
        done = f", {completed} of them complete" if completed and completed != partitions else ""
        text = f"{rows} rows committed in {partitions} partition(s){done}"
        super().__init__(text if partitions else "nothing was committed")

    def plus(self, rows: int, partitions: int, completed: int) -> SyncInterrupted:
        """The same interruption with the run's earlier partitions counted in."""
        return SyncInterrupted(
            self.rows + rows, self.partitions + partitions, self.completed + completed
        )


class DataCheckError(AtmError):
    """A run wrote its partitions, but a blocking data check failed on what it wrote."""

    def __init__(self, failed: list[str]) -> None:
        super().__init__(
            f"{len(failed)} blocking data check(s) failed: "
            + "; ".join(failed[:5])
            + ("; …" if len(failed) > 5 else "")
        )
        self.failed = failed


class StateError(AtmError):
    """A saved task state cannot be read (corrupt, foreign or unreadable)."""


class DatabaseUnavailableError(AtmError):
    """The target database cannot be reached."""


class DatabaseInUseError(DatabaseUnavailableError):
    """An embedded database file is held by another process (DuckDB: one process per file)."""


class TushareError(AtmError):
    """Base class for errors from the Tushare API or the way to it."""

    retryable = False

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TushareAuthError(TushareError):
    """40101: the token was refused. Retrying cannot help."""


class TusharePermissionError(TushareError):
    """40203 (permission flavour): the account may not call this API."""


class TushareRateLimitError(TushareError):
    """40203 (rate flavour): too many calls per minute."""

    retryable = True


class TushareHTTPError(TushareError):
    """An HTTP error status; the tushare client hides it as an empty frame, ATM does not."""

    retryable = True


class TushareTransportError(TushareError):
    """Timeout, refused or reset connection."""

    retryable = True


class TushareProtocolError(TushareError):
    """The answer is not a valid Tushare response (bad JSON, missing data, wrong fields)."""


class TushareAPIError(TushareError):
    """Any other non-zero code from the API."""


def is_permanent(error: BaseException) -> bool:
    """Whether running the same again cannot mend `error` (bad input or token, no permission,
    the day's quota spent, an answer that breaks the data's rules): retrying it in a loop only
    spends calls. Network, database and rate troubles are not permanent."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(
            seen,
            ConfigError
            | AppendConflictError
            | DataValidationError
            | TushareAuthError
            | TusharePermissionError,
        ):
            return True
        if isinstance(seen, TushareRateLimitError) and not seen.retryable:
            return True  # the daily quota: it comes back at midnight, not in minutes
        seen = seen.__cause__
    return False
