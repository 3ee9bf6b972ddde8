"""The staging area: an answer staged is taken back whole, by its own run chain only."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from atm_assets.core.staging import Staging

pytestmark = pytest.mark.pure

HOSTILE = ["", " lead", "引号\"'`", "back\\slash", "new\nline\ttab", "emoji 😀", "\u2028sep"]


def answer(texts: list[str | None]) -> pd.DataFrame:
    """An answer as the tushare client builds it: a frame from the rows' lists."""
    rows = [[t, i, i / 3 if i % 2 else None] for i, t in enumerate(texts)]
    return pd.DataFrame(rows, columns=["name", "count", "value"])


def cells(frame: pd.DataFrame) -> list[list[object]]:
    """The frame's values as plain Python, a missing value as None (NaN or None alike)."""
    out = []
    for row in frame.itertuples(index=False, name=None):
        out.append([None if v is None or (isinstance(v, float) and math.isnan(v)) else v
                    for v in row])  # fmt: skip
    return out


def staged_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


def test_an_answer_comes_back_whole(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    frame = answer([*HOSTILE, None])
    staging.save("daily_sync_20240102", "chain1", frame)
    assert staged_files(tmp_path) == ["daily_sync_20240102.chain1.arrow"]
    back = staging.load("daily_sync_20240102", "chain1")
    assert back is not None
    assert list(back.columns) == ["name", "count", "value"]
    assert cells(back) == cells(frame)
    assert back["name"].tolist()[: len(HOSTILE)] == HOSTILE


def test_an_answer_arrow_cannot_type_is_staged_as_json(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    # A column mixing numbers and text: Arrow refuses it, the JSON columns keep it.
    frame = pd.DataFrame({"code": ["a", 7, None], "n": [1, 2, 3]}, dtype=object)
    staging.save("t", "c1", frame)
    assert staged_files(tmp_path) == ["t.c1.json"]
    back = staging.load("t", "c1")
    assert back is not None and cells(back) == [["a", 1], [7, 2], [None, 3]]
    # Staged again in the other format: only the newest file stays.
    staging.save("t", "c1", answer(["x"]))
    assert staged_files(tmp_path) == ["t.c1.arrow"]
    again = staging.load("t", "c1")
    assert again is not None and cells(again) == [["x", 0, None]]


def test_only_its_own_chain_reads_it_and_other_chains_files_go(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    staging.save("t", "old", answer(["a"]))
    assert staging.load("t", "new") is None
    assert staged_files(tmp_path) == []
    staging.save("t", "new", answer(["b"]))
    staging.drop("t", "new")
    assert staging.load("t", "new") is None


def test_a_torn_file_is_a_miss_and_removed(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    staging.save("t", "c", answer(["a", "b"]))
    path = tmp_path / "t.c.arrow"
    path.write_bytes(path.read_bytes()[:40])
    assert staging.load("t", "c") is None
    assert not path.exists()
