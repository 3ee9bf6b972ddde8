"""Secrets never land anywhere: logs, errors, run config, tags, metadata, state, event log."""

import os
from pathlib import Path

import pytest

from atm_assets_tests.conftest import TEST_DB_PASSWORD, TEST_TOKEN, files_with_secrets
from atm_assets_tests.helpers import controller, instance_at

pytestmark = pytest.mark.cli


def test_a_day_of_operations_leaves_no_secret_behind(pg_target, sb, atm_env, workdir, monkeypatch):
    token = os.environ.pop("TUSHARE_TOKEN")
    monkeypatch.delenv("TUSHARE_TOKEN", raising=False)
    outputs = []
    for args, env in [
        (["sync", "stock-basic", "--exchange", "BSE", "--tushare-token", token], {}),
        (
            [
                "sync",
                "stock-basic",
                "--exchange",
                "SZSE",
                "--list-status",
                "D",
                "--use-db-state",
                "--tushare-token",
                token,
            ],
            {},
        ),
        (
            ["sync", "stock-basic", "--exchange", "SSE", "--list-status", "P"],
            {"TUSHARE_TOKEN": "tok-secret-9f3KqLmW-wrong"},
        ),  # a failing run, bad token
        (
            ["sync", "stock-basic", "--exchange", "SSE"],
            {"TUSHARE_TOKEN": token, "DB_PORT": "1"},
        ),  # a failing run, database down
        (
            [
                "sync",
                "stock-basic",
                "--exchange",
                "SSE",
                "--list-status",
                "G",
                "--tushare-token",
                token,
            ],
            {"ATM_FAULT_INJECT": "raise@after_batch:1"},
        ),  # a failing write
        (["state", "list"], {}),
        (["state", "show", "stock_basic_sync_BSE_L"], {}),
        (["storage", "status"], {}),
        (["storage", "status"], {"DB_PORT": "1"}),
    ]:
        proc = controller(*args, cwd=workdir, env=env)
        outputs.append(proc.stdout + proc.stderr)
    assert "Synchronization Completed" in outputs[0]
    assert "Error: Tushare refused the token" in outputs[2]
    assert "Error: cannot reach the target database" in outputs[3]
    for text in outputs:
        assert TEST_TOKEN not in text and TEST_DB_PASSWORD not in text

    # Files: task state, locks, the Dagster instance (event logs, run storage, compute logs).
    assert (Path(workdir) / ".dagster").is_dir() and (Path(workdir) / "storage/state").is_dir()
    assert files_with_secrets(workdir) == []

    # The instance's own view: run config, tags and every event's metadata.
    old = os.getcwd()
    os.chdir(workdir)
    try:
        with instance_at(workdir) as instance:
            runs = instance.get_runs()
            assert len(runs) >= 4
            for run in runs:
                blob = repr(run.run_config) + repr(run.tags)
                for record in instance.all_logs(run.run_id):
                    blob += repr(record)
                assert TEST_TOKEN not in blob and TEST_DB_PASSWORD not in blob
    finally:
        os.chdir(old)

    # The database: no secret in ATM's tables either.
    with pg_target.engine().connect() as conn:
        for table in ("stock_basic", "ingestion_state", "ingestion_lock"):
            rows = conn.exec_driver_sql(f'SELECT * FROM "{pg_target.schema}".{table}').fetchall()
            assert TEST_TOKEN not in repr(rows) and TEST_DB_PASSWORD not in repr(rows)
