"""A run's outcome as the user reads it: the error unwrapped from Dagster's own."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Errors that mean "fix your input", as opposed to "something failed".
USAGE_ERRORS = ("ConfigError", "TushareAuthError")


@dataclass(frozen=True)
class UserError:
    """The error a user needs to read, unwrapped from Dagster's step and run errors."""

    cls_name: str
    message: str

    @property
    def is_usage_error(self) -> bool:
        return self.cls_name in USAGE_ERRORS


def user_error(error: Any) -> UserError | None:
    """The innermost error that is not Dagster's own wrapping, with its message alone."""
    if error is None:
        return None
    while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
        error = error.cause
    message = (error.message or "").strip()
    # The message repeats the class, qualified: "atm_assets.core.errors.TaskLockError: …".
    message = re.sub(rf"^([\w.]*\.)?{re.escape(error.cls_name or '')}:\s*", "", message)
    # One line: the rest (a driver's hints, a traceback) is in the run's event log.
    message = message.splitlines()[0] if message else message
    return UserError(error.cls_name or "Error", message)
