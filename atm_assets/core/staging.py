"""Fetched partitions kept on disk until written, so a resumed run never fetches them again."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import orjson
import pandas as pd

from atm_assets.core.state import validate_task_name


class Staging:
    """One file per task and run chain under `directory`: the partition's rows as the API
    answered them (validated before they were staged, validated again when taken back),
    written atomically (temp file and rename: a killed process leaves the whole file or none),
    read back only by a run of the same chain, deleted once the partition is written. JSON
    columns through orjson: ~10x faster than pickling a validated frame of Python objects
    (a 172,000-row partition: 0.13 s against 1.3 s). Not fsynced: after a power cut a torn or
    lost file only means the partition is fetched again."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory).absolute()

    def _path(self, task_name: str, chain: str) -> Path:
        return self.dir / f"{validate_task_name(task_name)}.{chain}.json"

    def save(self, task_name: str, chain: str, frame: pd.DataFrame) -> None:
        """Stage `frame`, the API's answer (str, int, float and missing values only)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        body = {
            "columns": [str(c) for c in frame.columns],
            # orjson writes NaN (a missing value in a text column) as null.
            "data": [frame[c].tolist() for c in frame.columns],
        }
        fd, tmp = tempfile.mkstemp(prefix=f".{task_name}.", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(orjson.dumps(body))
            os.replace(tmp, self._path(task_name, chain))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self, task_name: str, chain: str) -> pd.DataFrame | None:
        """The answer a run of `chain` fetched for the task, if it is still waiting; files
        other chains left for this task are stale (a new run fetches afresh) and removed."""
        mine = self._path(task_name, chain)
        for path in self.dir.glob(f"{task_name}.*"):
            if path != mine:
                path.unlink(missing_ok=True)
        try:
            body = orjson.loads(mine.read_bytes())
            columns, data = body["columns"], body["data"]
            return pd.DataFrame(dict(zip(columns, data, strict=True)), columns=columns)
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - a torn file is a cache miss, not an error
            mine.unlink(missing_ok=True)
            return None

    def drop(self, task_name: str, chain: str) -> None:
        self._path(task_name, chain).unlink(missing_ok=True)
