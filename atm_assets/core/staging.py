"""Fetched partitions kept on disk until written, so a resumed run never fetches them again."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import pandas as pd

from atm_assets.core.state import validate_task_name


class Staging:
    """One file per task and run chain under `directory`: written atomically (temp file and
    rename: a killed process leaves the whole file or none), read back only by a run of the same
    chain, deleted once the partition is written. Not fsynced: after a power cut a torn or lost
    file only means the partition is fetched again."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory).absolute()

    def _path(self, task_name: str, chain: str) -> Path:
        return self.dir / f"{validate_task_name(task_name)}.{chain}.pickle"

    def save(self, task_name: str, chain: str, frame: pd.DataFrame) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{task_name}.", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(frame, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self._path(task_name, chain))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self, task_name: str, chain: str) -> pd.DataFrame | None:
        """The partition a run of `chain` fetched, if it is still waiting; files other chains
        left for this task are stale (a new run fetches afresh) and removed."""
        mine = self._path(task_name, chain)
        for path in self.dir.glob(f"{task_name}.*.pickle"):
            if path != mine:
                path.unlink(missing_ok=True)
        try:
            with mine.open("rb") as f:
                # Only ATM writes these files, in its own storage directory.
                frame = pickle.load(f)  # noqa: S301
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - a torn file is a cache miss, not an error
            mine.unlink(missing_ok=True)
            return None
        return frame if isinstance(frame, pd.DataFrame) else None

    def drop(self, task_name: str, chain: str) -> None:
        self._path(task_name, chain).unlink(missing_ok=True)
