"""Dead workers' runs are failed and their Tushare slots freed; every fetch waits in the pool."""

import subprocess
import sys
import uuid

import pytest
from dagster import AssetsDefinition, DagsterRun, DagsterRunStatus, instance_for_test

from atm_assets.core.catalog import catalog_for
from atm_assets.core.processes import this_host
from atm_assets.core.settings import current
from atm_assets.definitions import defs
from atm_assets.runs import fail_dead_runs
from atm_assets.tags import HOST_TAG, PID_TAG, TUSHARE_POOL, WORKER_RUN_TAG


def _started(instance, host: str, pid: int, worker_run: str | None = None) -> str:
    """A run the instance shows started, its worker `pid` on `host` (as launch.py tags it)."""
    run_id = str(uuid.uuid4())
    tags = {HOST_TAG: host, PID_TAG: str(pid), WORKER_RUN_TAG: worker_run or run_id}
    instance.add_run(
        DagsterRun(job_name="daily_job", run_id=run_id, status=DagsterRunStatus.STARTED, tags=tags)
    )
    return run_id


@pytest.mark.integration  # a real instance's storage, and child processes for their pids
def test_a_dead_workers_run_is_failed_and_a_live_ones_is_not():
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()  # reaped: its pid names no process now
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with instance_for_test() as instance:
            dead = _started(instance, this_host(), exited.pid)
            live = _started(instance, this_host(), alive.pid)
            # Another host's pid cannot be judged from here; a retry still carrying its
            # parent's worker tags says nothing about its own worker.
            elsewhere = _started(instance, "another-host", exited.pid)
            retry = _started(instance, this_host(), exited.pid, worker_run="its-parent")
            # The dead run held one of the account's slots.
            instance.event_log_storage.set_concurrency_slots(TUSHARE_POOL, 2)
            claim = instance.event_log_storage.claim_concurrency_slot(TUSHARE_POOL, dead, "daily")
            assert claim.is_claimed

            assert fail_dead_runs(instance) == [dead]
            status = {r: instance.get_run_by_id(r).status for r in (dead, live, elsewhere, retry)}
            assert status == {
                dead: DagsterRunStatus.FAILURE,
                live: DagsterRunStatus.STARTED,
                elsewhere: DagsterRunStatus.STARTED,
                retry: DagsterRunStatus.STARTED,
            }
            info = instance.event_log_storage.get_concurrency_info(TUSHARE_POOL)
            assert info.active_slot_count == 0
            failure = instance.get_records_for_run(dead).records[-1].event_log_entry
            assert f"pid {exited.pid}" in failure.dagster_event.message
            assert fail_dead_runs(instance) == []  # failed once, not on every tick
    finally:
        alive.kill()
        alive.wait()


@pytest.mark.pure
def test_every_step_that_calls_tushare_is_in_the_tushare_pool():
    """The UI's Concurrency page shows who waits for the account: every fetched asset's step is
    in pool `tushare`, what is derived from tables in none."""
    pools = {
        key.to_user_string(): asset.op.pool
        for asset in defs.assets
        if isinstance(asset, AssetsDefinition)
        for key in asset.keys
    }
    fetched = [s.name for s in catalog_for(current()).values() if s.fetched]
    assert len(fetched) >= 28
    assert {name: pools[name] for name in fetched} == dict.fromkeys(fetched, TUSHARE_POOL)
    assert pools["daily_hfq"] is pools["stock_universe"] is pools["stock_basic_summary"] is None
