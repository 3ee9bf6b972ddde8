"""What the user reads when something is off: one line naming the setting or value at fault,
retries as they happen, and `state list` telling what is true after each kind of stop."""

import logging
import subprocess
from pathlib import Path

import pytest
from dagster import DagsterEventType

from atm_assets_tests.helpers import PROJECT_ROOT, controller, instance_at, start_controller

pytestmark = [pytest.mark.cli, pytest.mark.usefixtures("atm_env")]

SYNC = ["sync", "stock-basic", "--exchange", "BSE", "--list-status", "L"]


def error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    "variable,key",
    [
        ("ATM_SQLITE_PATH", "database.sqlite_path"),
        ("ATM_STATE_DIR", "state.state_dir"),
        ("ATM_LOCK_DIR", "lock.dir"),
        ("ATM_STAGING_DIR", "extensions.staging_dir"),
        ("ATM_GOVERNOR_PATH", "tushare.governor_path"),
    ],
)
def test_an_unwritable_path_names_its_setting_before_any_call(
    sqlite_target, sb, workdir, variable, key
):
    # A path under a plain file can be created by nobody, root included.
    blocker = Path(workdir) / "a-file"
    blocker.write_text("not a directory")
    bad = blocker / "sub" / ("x.db" if variable.endswith("PATH") else "dir")
    proc = controller(*SYNC, cwd=workdir, env={variable: str(bad)})
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc)
    assert line.startswith(f"Error: {variable} ({key}) is {bad}") or line.startswith(
        f"Error: {variable} ({key}) is {bad.parent}"
    ), line
    assert "cannot write there" in line or "not writable" in line, line
    assert sb.calls() == []  # refused before the first API call


def test_storage_status_on_a_bad_sqlite_path_is_one_line(sqlite_target, workdir):
    blocker = Path(workdir) / "a-file"
    blocker.write_text("x")
    proc = controller("storage", "status", cwd=workdir, env={"ATM_SQLITE_PATH": f"{blocker}/db"})
    assert proc.returncode == 2
    assert error_line(proc).startswith("Error: ATM_SQLITE_PATH (database.sqlite_path) is ")


def listed(workdir: str, task: str = "stock_basic_sync_BSE_L") -> list[str]:
    """The task's row of `state list`: STATUS, SAVED, FETCHED, ERRORS, …, then DETAIL."""
    listing = controller("state", "list", cwd=workdir)
    assert listing.returncode == 0, listing.stderr
    (row,) = [line for line in listing.stdout.splitlines() if line.startswith(f"{task} ")]
    return row.split()[1:]


def test_a_wrong_url_fails_at_once_not_after_retries(sqlite_target, sb, workdir):
    proc = controller(*SYNC, cwd=workdir, env={"TUSHARE_API_URL": f"{sb.url}/wrong/prefix"})
    assert proc.returncode == 1
    line = error_line(proc)
    assert "HTTP 404 Not Found from" in line
    assert "not retried: check TUSHARE_API_URL" in proc.stderr
    assert "retrying in" not in proc.stdout
    # state list names the failure whole, what to check included (it ends the long line).
    reason = line.removeprefix("Error: ")
    assert len(reason) > 100 and reason.endswith("(not retried: check TUSHARE_API_URL)"), reason
    row = listed(workdir)
    assert row[0] == "failed"
    assert " ".join(row).endswith(reason)


def test_retries_are_logged_as_they_happen(sqlite_target, sb, workdir):
    """With the source failing, each retry reaches the console (and the run's event log) while
    the sync is still waiting, and also when the partition finally fails."""
    sb.inject("http_503", api="stock_basic", times=-1)
    env = {"TUSHARE_RETRY_BASE_DELAY": "1.5", "TUSHARE_RETRY_MAX_DELAY": "3",
           "TUSHARE_MAX_ATTEMPTS": "3"}  # fmt: skip
    proc = start_controller(*SYNC, cwd=workdir, env=env)
    assert proc.stdout is not None
    seen_while_running = []
    out = []
    try:
        for line in proc.stdout:
            out.append(line)
            if "retrying in" in line:
                seen_while_running.append(proc.poll() is None)
        proc.wait(timeout=60)
        err = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    assert seen_while_running == [True, True]  # attempts 1 and 2, before the run ended
    assert proc.returncode == 1
    assert "gave up after 3 attempts" in err

    # The run's event log has them too, as WARNING events stamped when each attempt failed
    # (1.5 s and 3 s apart), not replayed together when the partition failed.
    (run_id,) = [line.split()[1] for line in out if line.startswith("Run ")]
    with instance_at(workdir) as instance:
        logs = instance.all_logs(run_id)
    retries = [e for e in logs if "retrying in" in e.user_message]
    assert [e.user_message.split("failed:")[0].split()[-2:] for e in retries] == [
        ["attempt", "1/3"],
        ["attempt", "2/3"],
    ]
    assert all(e.level == logging.WARNING and not e.is_dagster_event for e in retries)
    (failure,) = [e for e in logs if e.dagster_event_type == DagsterEventType.STEP_FAILURE]
    assert logs.index(retries[-1]) < logs.index(failure)
    assert retries[1].timestamp - retries[0].timestamp > 1
    assert failure.timestamp - retries[1].timestamp > 2


def test_invalid_yaml_is_named_with_its_line(sqlite_target, workdir):
    config = Path(workdir) / "bad.yaml"
    config.write_text("sync:\n  batch_size: 10\n  mode: [upsert\n")
    proc = controller("state", "list", "--config", str(config), cwd=workdir)
    assert proc.returncode == 2
    line = error_line(proc)
    assert f"config file {config} is not valid YAML: line " in line, line


def test_a_broken_datasets_file_blocks_only_what_needs_it(sqlite_target, sb, workdir):
    assert controller(*SYNC, cwd=workdir).returncode == 0
    datasets = Path(workdir) / "config/datasets.yaml"
    datasets.parent.mkdir()
    datasets.write_text("datasets:\n  mine:\n    api: x\n   key: [a]\n")
    listing = controller("state", "list", cwd=workdir)
    assert listing.returncode == 0, listing.stderr
    assert "stock_basic_sync_BSE_L" in listing.stdout
    sync = controller(*SYNC, cwd=workdir)
    assert sync.returncode == 2
    line = error_line(sync)
    assert "config/datasets.yaml: not valid YAML: line 4, column" in line, line


def test_a_reversed_period_range_shows_both_values(sqlite_target, workdir):
    proc = controller(
        "sync", "income", "--start-period", "20240630", "--end-period", "20240331", cwd=workdir
    )
    assert proc.returncode == 2
    assert error_line(proc) == "Error: --end-period 20240331 is before --start-period 20240630"


def test_the_instance_guard_stays_out_of_the_project_root(sqlite_target, sb, workdir):
    assert controller(*SYNC, cwd=workdir).returncode == 0
    assert not (Path(workdir) / ".atm-instance.lock").exists()
    assert (Path(workdir) / ".dagster" / "atm-instance.lock").exists()
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".dagster/atm-instance.lock"], cwd=PROJECT_ROOT
    )
    assert ignored.returncode == 0


def test_state_list_tells_the_truth_after_a_kill_and_a_failure(sqlite_target, sb, workdir):
    sb.set_sizes({"BSE:L": 2000})
    flags = [*SYNC, "--batch-size", "50"]  # 500 rows per checkpoint interval

    killed = controller(*flags, cwd=workdir, env={"ATM_FAULT_INJECT": "after_checkpoint:1"})
    assert killed.returncode == -9
    # Saved "running" by a process that is gone: shown as interrupted, with its rows (SAVED of
    # FETCHED: the whole partition was fetched before the first write).
    row = listed(workdir)
    assert row[:4] == ["interrupted", "500", "2000", "0"] and "process gone" in " ".join(row)
    failed = controller(*flags, cwd=workdir, env={"ATM_FAULT_INJECT": "raise@after_checkpoint:1"})
    assert failed.returncode == 1
    # Failed, with the reason, and the rows it did save (it resumed, then wrote 500 more).
    row = listed(workdir)
    assert row[:4] == ["failed", "1000", "2000", "0"]
    assert " ".join(row).endswith("InjectedFault: injected fault at after_checkpoint:1")
    done = controller(*flags, cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert listed(workdir)[:4] == ["completed", "2000", "2000", "0"]
