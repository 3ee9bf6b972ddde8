"""A checkpoint belongs to one table: after a switch of database or schema, a table emptied
since, or a change of mode, the same command never resumes into the wrong place."""

import json
import signal
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from atm_assets_tests.conftest import (
    TEST_DB_PASSWORD,
    Target,
    _pg_target,
    duckdb_target_at,
    source_rows,
    sqlite_db,
)
from atm_assets_tests.helpers import controller, start_controller, wait_for

pytestmark = [pytest.mark.cli, pytest.mark.usefixtures("atm_env")]

# SSE|L is written whole first, then SSE|D is stopped after 200 of its 3,000 rows.
SIZES = {"SSE:L": 300, "SSE:D": 3000, "SSE:P": 0, "SSE:G": 0}
SYNC = ["sync", "stock-basic", "--exchange", "SSE", "--list-status", "",
        "--batch-size", "50", "--checkpoint-every", "2"]  # fmt: skip
STOPPED = "stock_basic_sync_SSE_D"


def stop_mid_write(
    workdir: str, how: str, env: dict[str, str], flags: list[str], sync: list[str] = SYNC
) -> None:
    """Run the sync and stop it with 200 rows of SSE|D committed: Ctrl-C inside its 2nd
    interval (which is finished first) or SIGKILL inside its 3rd."""
    mark = Path(workdir) / f"mark-{uuid.uuid4().hex[:6]}"
    fault = "pause@after_batch:3" if how == "sigint" else "after_batch:5"
    env = {**env, "ATM_FAULT_INJECT": fault, "ATM_FAULT_MARK": str(mark),
           "ATM_FAULT_PAUSE_SECONDS": "3", "ATM_FAULT_TASK": STOPPED}  # fmt: skip
    proc = start_controller(*sync, *flags, cwd=workdir, env=env)
    try:
        if how == "sigint":
            wait_for(lambda: mark.exists() or proc.poll() is not None, 120, "the pause")
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == (130 if how == "sigint" else -9), err


def sqlite_env(workdir: str) -> dict[str, str]:
    return {"ATM_SQLITE_PATH": str(Path(workdir) / "storage/atm.db")}


def pg(url: sa.engine.URL) -> Target:
    return _pg_target(url)


def unset_pg(monkeypatch) -> None:
    for var in ("DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME", "DB_SCHEMA"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize(
    "switch,state,how",
    [("sqlite-to-postgresql", "file", "sigint"), ("sqlite-to-postgresql", "db", "sigkill"),
     ("schema-a-to-b", "file", "sigkill"), ("schema-a-to-b", "db", "sigint"),
     ("sqlite-to-duckdb", "file", "sigkill")],
)  # fmt: skip
def test_switching_target_never_resumes_into_the_wrong_table(
    switch, state, how, sb, workdir, pg_database, monkeypatch
):
    sb.set_sizes(SIZES)
    unset_pg(monkeypatch)
    flags = ["--use-db-state"] if state == "db" else []
    if switch == "sqlite-to-postgresql":
        first_env = sqlite_env(workdir)
        second = pg(pg_database)
        first_rows = Target("sqlite", sqlite_db(workdir)).rows
    elif switch == "sqlite-to-duckdb":
        first_env = sqlite_env(workdir)
        second = duckdb_target_at(workdir)
        first_rows = Target("sqlite", sqlite_db(workdir)).rows
    else:
        first = pg(pg_database)
        first_env = first.env
        second = pg(pg_database)
        first_rows = first.rows
    stop_mid_write(workdir, how, first_env, flags)
    assert len(first_rows()) == 300 + 200  # SSE|L whole, SSE|D up to its checkpoint

    again = controller(*SYNC, *flags, cwd=workdir, env=second.env)
    assert again.returncode == 0, again.stderr
    # Everything lands in the new table: no row skipped because the old one had it.
    assert second.rows() == source_rows(sb, "SSE")
    if state == "file":
        assert f"Task {STOPPED}: its checkpoint (200 rows saved) belongs to table " in again.stdout
        assert "starting the task over" in again.stdout
    shown = controller("state", "show", STOPPED, *flags, cwd=workdir, env=second.env)
    body = json.loads(shown.stdout)
    assert body["status"] == "completed" and body["total_saved"] == 3000
    assert body["target"]["table"] == second.writer().qualified_name


def test_a_table_emptied_since_the_checkpoint_is_noticed(sqlite_target, sb, workdir):
    sb.set_sizes(SIZES)
    only_d = [*SYNC[:5], "D", *SYNC[6:]]
    stop_mid_write(workdir, "sigint", sqlite_env(workdir), [], only_d)
    with sqlite_target.engine().begin() as conn:
        conn.exec_driver_sql("DELETE FROM stock_basic")
    again = controller(*only_d, cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert "is not in stock_basic (emptied or replaced since?)" in again.stdout
    assert sqlite_target.rows() == source_rows(sb, "SSE", "D")


def test_a_dropped_and_recreated_table_is_another_table(pg_target, sb, workdir):
    sb.set_sizes(SIZES)
    stop_mid_write(workdir, "sigkill", pg_target.env, [])
    with pg_target.engine().begin() as conn:
        conn.exec_driver_sql(f'DROP TABLE "{pg_target.schema}".stock_basic')
    again = controller(*SYNC, cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert f"Task {STOPPED}: its checkpoint (200 rows saved) belongs to table" in again.stdout
    assert pg_target.rows() == source_rows(sb, "SSE")


def test_a_change_of_mode_starts_over_and_a_refusal_changes_no_state(sqlite_target, sb, workdir):
    sb.set_sizes(SIZES)
    stop_mid_write(workdir, "sigint", sqlite_env(workdir), [])
    before = json.loads(controller("state", "show", STOPPED, cwd=workdir).stdout)
    assert before["status"] == "interrupted" and before["total_saved"] == 200
    appended = controller(*SYNC, "--mode", "append", cwd=workdir)
    # SSE|L was completed into this very table: skipped. SSE|D's checkpoint was made in upsert
    # mode: the task starts over, and appending its first 200 rows again is refused.
    assert appended.returncode == 1
    assert "was made in upsert mode, this run writes in append" in appended.stdout
    assert "append into stock_basic refused: 200 key(s) already exist" in appended.stderr
    after = json.loads(controller("state", "show", STOPPED, cwd=workdir).stdout)
    assert {k: after[k] for k in ("status", "total_saved", "last_processed_key", "target")} == {
        k: before[k] for k in ("status", "total_saved", "last_processed_key", "target")
    }
    done = controller(*SYNC, cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert sqlite_target.rows() == source_rows(sb, "SSE")


def test_the_wrong_checkpoint_costs_no_password(pg_target, sb, workdir):
    """The line naming the old and new table shows hosts and schemas, never the password."""
    sb.set_sizes(SIZES)
    stop_mid_write(workdir, "sigkill", pg_target.env, [])
    other = {**pg_target.env, "DB_SCHEMA": f"s_{uuid.uuid4().hex[:10]}"}
    again = controller(*SYNC, cwd=workdir, env=other)
    assert again.returncode == 0, again.stderr
    assert "belongs to table" in again.stdout
    assert TEST_DB_PASSWORD not in again.stdout + again.stderr
