"""Test helpers: run the real job with real resources, read metadata back."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    in_process_executor,
)

from atm_assets.core.settings import load_settings
from atm_assets.definitions import build_resources, defs

ALL_RANGE = ("SSE|L", "BSE|G")


# A user's YAML dataset: chip distribution statistics of one stock, by trade date.
CYQ = """
datasets:
  cyq_perf:
    api: cyq_perf
    partition: trade_date
    params: {ts_code: 600000.SH}
    key: [ts_code, trade_date]
    columns:
      ts_code: str
      trade_date: date
      his_low: float
      winner_rate: float
    description: Chip distribution statistics
"""


def project_defs() -> Definitions:
    """The project's assets and jobs with resources resolved from the current environment
    (the code location reads them once, at import; tests change the environment per test)."""
    return Definitions(
        assets=defs.assets,
        jobs=defs.jobs,
        resources=build_resources(load_settings()),
        executor=in_process_executor,
    )


def run_stock_basic(
    partition: str | tuple[str, str],
    config: dict[str, Any] | None = None,
    instance: DagsterInstance | None = None,
) -> ExecuteInProcessResult:
    """One partition ("SSE|L") or a range ("SSE|L", "BSE|G") in a single run."""
    return run_job("stock_basic_job", partition, {"stock_basic": config or {}}, instance)


def run_job(
    job_name: str,
    partition: str | tuple[str, str],
    config: dict[str, dict[str, Any]] | None = None,
    instance: DagsterInstance | None = None,
    tags: dict[str, str] | None = None,
    assets: list[str] | None = None,
) -> ExecuteInProcessResult:
    """Any project job for one partition or a range, in one in-process run.

    `config` maps asset names to their SyncConfig."""
    if isinstance(partition, tuple):
        range_tags = {
            "dagster/asset_partition_range_start": partition[0],
            "dagster/asset_partition_range_end": partition[1],
        }
    else:
        range_tags = {"dagster/partition": partition}
    job = project_defs().resolve_job_def(job_name)
    ops = {name: {"config": c} for name, c in (config or {}).items()}
    return job.execute_in_process(
        run_config={"ops": ops},
        instance=instance,
        tags={**range_tags, **(tags or {})},
        asset_selection=[AssetKey(a) for a in assets] if assets else None,
        raise_on_error=False,
    )


def materialization_metadata(result: ExecuteInProcessResult) -> list[dict[str, Any]]:
    out = []
    for event in result.asset_materializations_for_node("stock_basic"):
        out.append({k: getattr(v, "value", v) for k, v in event.metadata.items()})
    return out


def failure_message(result: ExecuteInProcessResult) -> str:
    """The step failure's error text (with causes), for asserting clear errors."""
    parts = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.step_failure_data.error
            while error is not None:
                parts.append(f"{error.cls_name}: {error.message}")
                error = error.cause
    return "\n".join(parts)


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def controller(
    *args: str, cwd: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run the controller (scripts/controller.sh's entry point) in a subprocess from `cwd`.

    `cwd` gets a copy of the project's dagster.yaml, so it is the Dagster instance home.
    """
    home = Path(cwd)
    if not (home / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    full_env = {**os.environ, "DAGSTER_HOME": str(home), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "atm_assets.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def instance_at(home: str) -> DagsterInstance:
    from dagster._core.instance.ref import InstanceRef

    return DagsterInstance.from_ref(InstanceRef.from_dir(home))


def latest_materialization_metadata(home: str, asset: str = "stock_basic") -> dict[str, Any]:
    """Metadata of the newest materialisation recorded in the instance at `home`."""
    old = os.getcwd()
    os.chdir(home)  # dagster.yaml storage paths are relative to the project directory
    try:
        with instance_at(home) as instance:
            event = instance.get_latest_materialization_event(AssetKey(asset))
            assert event is not None, f"no materialisation of {asset} in {home}"
            mat = event.asset_materialization
            assert mat is not None
            return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    finally:
        os.chdir(old)


def start_controller(
    *args: str, cwd: str, env: dict[str, str] | None = None, new_session: bool = False
) -> subprocess.Popen:
    """Start the controller in the background (same setup as `controller`). `new_session`: in
    a process group of its own, led by it, as a shell puts a command it runs in a terminal (so
    the test can signal the whole group as the terminal's Ctrl-C does)."""
    home = Path(cwd)
    if not (home / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    return subprocess.Popen(
        [sys.executable, "-m", "atm_assets.cli", *args],
        cwd=cwd,
        env={**os.environ, "DAGSTER_HOME": str(home), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
    )


def group_members(pgid: int) -> list[str]:
    """The live processes of process group `pgid` ("pid command" each; zombies left out: they
    only wait to be reaped)."""
    members = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue  # ended while listed
        # Fields after the command (which may hold spaces): state, ppid, pgrp, …
        state, _ppid, pgrp = stat.rpartition(")")[2].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(f"{proc.name} {cmdline}")
    return members


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def market_data_job_def():
    """market_data_job for `reconstructable` (re-execution needs a module-level function)."""
    return project_defs().resolve_job_def("market_data_job")
