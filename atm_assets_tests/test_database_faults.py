"""The database goes away mid-sync: the run fails cleanly, the checkpoint stays consistent with
the table, and the next run resumes and completes with nothing lost or doubled."""

import re
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from atm_assets.core.state import DbStateStore, FileStateStore
from atm_assets_tests.conftest import source_rows
from atm_assets_tests.helpers import (
    controller,
    latest_materialization_metadata,
    start_controller,
    wait_for,
)

pytestmark = pytest.mark.cli

ROWS = 20_000
TASK = "stock_basic_sync_SSE_L"
SYNC = ["sync", "stock-basic", "--exchange", "SSE", "--list-status", "L", "--batch-size", "40"]


@pytest.fixture
def own_server(pg_server):
    """The suite's own server: the only one a test may restart."""
    if pg_server is None:
        pytest.skip(
            "ATM_TEST_PG_ADMIN_URL points at a server this suite did not start, and tests never "
            "restart such a server; unset it to run this test on the suite's own server"
        )
    return pg_server


def terminate_sessions(engine: sa.Engine, application: str) -> int:
    with engine.connect() as conn:
        killed = conn.exec_driver_sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE application_name = '{application}' AND pid <> pg_backend_pid()"
        ).scalar()
        conn.commit()
    return int(killed or 0)


def _assert_consistent(target, store) -> int:
    """The checkpoint names exactly what the table holds: whole intervals, nothing beyond."""
    rows = target.rows()
    state = store.get(TASK)
    assert state is not None and state.status in ("running", "failed")
    assert state.total_saved == len(rows) > 0
    assert state.last_processed_key == rows[-1]["ts_code"]
    assert len(rows) % 400 == 0
    return len(rows)


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_postgres_restart_mid_sync_then_resume(pg_target, own_server, sb, atm_env, workdir, mode):
    sb.set_sizes({"SSE:L": ROWS})
    flags = [*SYNC, "--mode", mode, "--use-db-state"]
    # Pause inside the 13th checkpoint interval (rows sent, not committed): restart then.
    run = start_controller(
        *flags,
        cwd=workdir,
        env={"ATM_FAULT_INJECT": "pause@after_batch:123", "ATM_FAULT_PAUSE_SECONDS": "6"},
    )
    store = DbStateStore(pg_target.engine(), pg_target.schema)

    def paused() -> bool:
        try:
            state = store.get(TASK)
        except sa.exc.DBAPIError:
            return False
        return state is not None and state.total_saved == 4800

    wait_for(paused, timeout=120, what="the sync to reach its 12th checkpoint")
    time.sleep(0.5)
    own_server.restart()
    out, err = run.communicate(timeout=120)
    assert run.returncode == 1, err[-2000:]
    # The restart ended the run's sessions: its lock's first (the lock is checked before the
    # checkpoint commits) or its writer's.
    (line,) = err.splitlines()
    checkpoint = pg_target.rows()[4799]["ts_code"]
    assert line == f"Error: lock on task {TASK} lost: its database session ended" or re.fullmatch(
        rf"Error: lost the target database while writing task {TASK} \(.+\); the checkpoint "
        rf"stands at {re.escape(checkpoint)} and the next run resumes from it",
        line,
    ), line
    saved = _assert_consistent(pg_target, store)
    assert saved == 4800

    resumed = controller(*flags, cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"after last_processed_key={pg_target.rows()[saved - 1]['ts_code']}" in resumed.stdout
    assert latest_materialization_metadata(workdir)["saved_this_run"] == ROWS - saved
    assert pg_target.rows() == source_rows(sb, "SSE", "L")


def test_a_lost_connection_mid_sync_with_file_state_then_resume(pg_target, sb, atm_env, workdir):
    sb.set_sizes({"SSE:L": ROWS})
    flags = [*SYNC, "--mode", "append"]
    run = start_controller(
        *flags,
        cwd=workdir,
        env={"ATM_FAULT_INJECT": "pause@after_batch:203", "ATM_FAULT_PAUSE_SECONDS": "5"},
    )
    store = FileStateStore(Path(workdir) / "storage/state")
    wait_for(
        lambda: (s := store.get(TASK)) is not None and s.total_saved == 8000,
        timeout=120,
        what="the sync to reach its 20th checkpoint",
    )
    assert terminate_sessions(pg_target.engine(), "atm") >= 1
    out, err = run.communicate(timeout=120)
    assert run.returncode == 1
    assert _assert_consistent(pg_target, store) == 8000
    resumed = controller(*flags, cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert latest_materialization_metadata(workdir)["saved_this_run"] == ROWS - 8000
    assert pg_target.rows() == source_rows(sb, "SSE", "L")
