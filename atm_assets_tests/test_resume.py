"""Resume after SIGKILL: the next run continues from the checkpoint and the table is exact."""

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from atm_assets.core.state import DbStateStore, FileStateStore
from atm_assets_tests.conftest import source_rows
from atm_assets_tests.helpers import controller, latest_materialization_metadata

pytestmark = pytest.mark.cli

ROWS = 24_000
BATCH = 40
EVERY = 10  # 400 rows per checkpoint interval
TASK = "stock_basic_sync_SSE_L"
SYNC = [
    "sync",
    "stock-basic",
    "--exchange",
    "SSE",
    "--list-status",
    "L",
    "--batch-size",
    str(BATCH),
]

# (database, state store, mode, kill point): every combination of the first three, each killed
# at a different point of the write: mid-interval (rows staged, not committed), right after an
# interval committed but before a file checkpoint was saved, and right after a checkpoint.
CASES = [
    ("sqlite", "file", "upsert", "after_batch:123"),
    ("sqlite", "file", "append", "after_commit:17"),
    ("sqlite", "db", "upsert", "after_checkpoint:31"),
    ("sqlite", "db", "append", "after_batch:455"),
    ("postgresql", "file", "upsert", "after_checkpoint:5"),
    ("postgresql", "file", "append", "after_commit:44"),
    ("postgresql", "db", "upsert", "after_batch:77"),
    ("postgresql", "db", "append", "after_commit:29"),
    ("duckdb", "file", "upsert", "after_commit:21"),
    ("duckdb", "db", "append", "after_batch:237"),
]


def store_for(target, kind: str, workdir: str):
    if kind == "db":
        return DbStateStore(target.engine(), target.schema)
    return FileStateStore(Path(workdir) / "storage/state")


@pytest.mark.parametrize(
    "target,store_kind,mode,kill_at",
    CASES,
    indirect=["target"],
    ids=[f"{c[0]}-{c[1]}-{c[2]}-{c[3].replace(':', '')}" for c in CASES],
)
def test_sigkill_mid_write_then_resume(target, store_kind, mode, kill_at, sb, atm_env, workdir):
    sb.set_sizes({"SSE:L": ROWS})
    flags = [*SYNC, "--mode", mode, "--checkpoint-every", str(EVERY)]
    if store_kind == "db":
        flags.append("--use-db-state")

    killed = controller(*flags, cwd=workdir, env={"ATM_FAULT_INJECT": kill_at})
    assert killed.returncode == -9, killed.stderr[-2000:]

    store = store_for(target, store_kind, workdir)
    state = store.get(TASK)
    assert state is not None and state.status == "running"
    point, count = kill_at.split(":")
    committed_intervals = int(count) if point != "after_batch" else (int(count) - 1) // EVERY
    table_rows = len(target.rows())
    assert table_rows == committed_intervals * BATCH * EVERY  # whole intervals only
    if not (store_kind == "file" and point == "after_commit"):
        assert state.total_saved == table_rows
        assert state.last_processed_key == target.rows()[-1]["ts_code"]
    else:
        # The interval committed but its checkpoint was not saved yet: it is pending.
        assert state.total_saved == table_rows - BATCH * EVERY
        assert state.pending_commit is not None

    resumed = controller(*flags, cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr[-3000:] + resumed.stdout[-3000:]
    assert "Resuming task stock_basic_sync_SSE_L after last_processed_key=" in resumed.stdout
    meta = latest_materialization_metadata(workdir)
    assert meta["saved_this_run"] == ROWS - table_rows  # did not start over
    assert meta["total_saved"] == ROWS
    assert json.loads(json.dumps(meta["resumed_from"]))[TASK]

    rows = target.rows()
    assert rows == source_rows(sb, "SSE", "L")  # nothing lost, nothing doubled
    final = store.get(TASK)
    assert final.status == "completed" and final.last_processed_key is None
    assert final.total_saved == final.total_fetched == ROWS


def test_external_sigkill_at_an_arbitrary_moment_then_resume(pg_target, sb, atm_env, workdir):
    import os
    import signal
    import subprocess
    import sys
    import time

    sb.set_sizes({"SSE:L": ROWS})
    home = Path(workdir)
    (home / "dagster.yaml").write_text((Path(__file__).parents[1] / "dagster.yaml").read_text())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "atm_assets.cli",
            *SYNC,
            "--mode",
            "append",
            "--batch-size",
            "20",
            "--checkpoint-every",
            "5",
        ],
        cwd=workdir,
        env={**os.environ, "DAGSTER_HOME": workdir},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    engine = pg_target.engine()
    table = f'"{pg_target.schema}".stock_basic'
    deadline = time.monotonic() + 120
    count = 0
    while time.monotonic() < deadline:
        try:
            with engine.connect() as conn:
                count = conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
        except sa.exc.ProgrammingError:
            count = 0
        if count >= ROWS // 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert 0 < count < ROWS, "the sync finished before it could be killed"
    resumed = controller(*SYNC, "--mode", "append", cwd=workdir)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-2000:]
    assert pg_target.rows() == source_rows(sb, "SSE", "L")
    assert latest_materialization_metadata(workdir)["saved_this_run"] < ROWS
