"""End to end through Dagster's own commands, in a subprocess, against the sandbox."""

import json
import os
import subprocess
import sys

import pytest

from atm_assets_tests.conftest import source_rows

pytestmark = [pytest.mark.cli, pytest.mark.usefixtures("atm_env")]


def dagster(*args: str, cwd: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    return subprocess.run(
        [sys.executable, "-m", "dagster", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_job_execute_with_a_partition_tag(target, sb, workdir):
    proc = dagster(
        "job",
        "execute",
        "-m",
        "atm_assets",
        "-j",
        "stock_basic_job",
        "--tags",
        json.dumps({"dagster/partition": "SZSE|D"}),
        cwd=workdir,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert target.rows() == source_rows(sb, "SZSE", "D")


def test_asset_materialize_one_partition(target, sb, workdir):
    proc = dagster(
        "asset",
        "materialize",
        "-m",
        "atm_assets",
        "--select",
        "stock_basic",
        "--partition",
        "BSE|L",
        cwd=workdir,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert target.rows() == source_rows(sb, "BSE", "L")
    assert "Total Saved: 280" in proc.stderr + proc.stdout


def test_asset_materialize_a_partition_range_in_one_run(target, sb, workdir):
    proc = dagster(
        "asset",
        "materialize",
        "-m",
        "atm_assets",
        "--select",
        "stock_basic",
        "--partition-range",
        "SSE|L...BSE|G",
        cwd=workdir,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert target.rows() == source_rows(sb)
    assert len([c for c in sb.calls() if c["api_name"] == "stock_basic"]) == 12


def test_a_swapped_partition_key_fails_with_a_clear_error(target, sb, workdir):
    proc = dagster(
        "job",
        "execute",
        "-m",
        "atm_assets",
        "-j",
        "stock_basic_job",
        "--tags",
        json.dumps({"dagster/partition": "L|SSE"}),
        cwd=workdir,
    )
    assert proc.returncode != 0
    assert "L|SSE" in proc.stderr + proc.stdout
    assert sb.calls() == []
    assert target.rows() == []


def test_a_reversed_partition_range_fails_and_records_nothing(sqlite_target, sb, workdir):
    proc = dagster(
        "asset",
        "materialize",
        "-m",
        "atm_assets",
        "--select",
        "stock_basic",
        "--partition-range",
        "BSE|G...SSE|L",
        cwd=workdir,
    )
    assert proc.returncode != 0
    assert "BSE|G...SSE|L selects no partition" in proc.stderr + proc.stdout
    assert sb.calls() == [] and sqlite_target.rows() == []
    assert "ASSET_MATERIALIZATION" not in proc.stderr + proc.stdout


def test_no_beta_warnings_from_the_project(sqlite_target, sb, workdir):
    proc = dagster(
        "asset", "materialize", "-m", "atm_assets", "--select", "stock_basic",
        "--partition", "BSE|P", cwd=workdir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "BetaWarning" not in proc.stderr
