"""Is the process that holds something (a lock, a run) gone? Answered only for this host."""

from __future__ import annotations

import os
import socket
from typing import Any


def this_host() -> str:
    return socket.gethostname()


def gone(host: Any, pid: Any) -> bool:
    """True only when `pid` ran on this host and no longer exists: another host's process, an
    unreadable pid, this very process or one we may not signal all count as alive."""
    if host != this_host():
        return False
    try:
        number = int(pid)
    except (TypeError, ValueError):
        return False
    if number == os.getpid():
        return False
    try:
        os.kill(number, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
