"""Fixed costs: one large stock_basic partition end to end, against a plain script and
Dagster's own floor, with the start-up phases and the per-call costs of the governor and the
pager — for this checkout and, with --before, another one, in the same run.

The sandbox runs in its own process with SSE|L at 172,000 rows (29 pages of 6,000) and keeps
its answers (warmed untimed first), so the source is fast and local: what is measured is the
client side. Every measurement runs in a fresh child process on the code under test.

    python benchmarks/bench_fixed_costs.py --url postgresql+psycopg://postgres@127.0.0.1/postgres
    git worktree add /tmp/before 245552f && python benchmarks/bench_fixed_costs.py \\
        --url … --before /tmp/before --json docs/bench_fixed_costs.json
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

from bench_rate import ROOT, start_sandbox

ROWS = 172_000
TOKEN = "bench-token"

# A plain script: the tushare client, one page at a time, then one binary COPY.
PLAIN = """
import json, sys, time
import psycopg, sqlalchemy as sa
began = time.perf_counter()
import tushare.pro.client as client
api = client.DataApi(token=TOKEN, timeout=30)
api._DataApi__http_url = URL
fields = FIELDS
pages, offset = [], 0
t0 = time.perf_counter()
while True:
    page = api.query("stock_basic", fields=",".join(fields), exchange="SSE", list_status="L",
                     limit=6000, offset=offset)
    pages.append(page)
    if len(page) < 6000:
        break
    offset += 6000
import pandas as pd
frame = pd.concat(pages, ignore_index=True)
fetch = time.perf_counter() - t0
t1 = time.perf_counter()
url = sa.engine.make_url(DB).set(drivername="postgresql")
with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
    cols = ", ".join(f'"{c}" text' for c in fields)
    conn.execute(f'CREATE TABLE "{TABLE}" ({cols}, PRIMARY KEY (ts_code))')
    with conn.cursor().copy(f'COPY "{TABLE}" FROM STDIN') as copy:
        # Python objects first: pandas 3 holds the text as Arrow strings, and iterating rows
        # of those costs ~1.5 s here instead of ~0.15 s, which would flatter ATM's ratio.
        for row in frame.astype(object).itertuples(index=False, name=None):
            copy.write_row(row)
write = time.perf_counter() - t1
print(json.dumps({"rows": len(frame), "fetch": fetch, "write": write,
                  "run": time.perf_counter() - t0, "in_process": time.perf_counter() - began}))
"""

# Dagster's floor: the same process shape, one trivial asset materialised in process against an
# instance on disk.
FLOOR = """
import json, time
began = time.perf_counter()
from dagster import DagsterInstance, asset, in_process_executor, materialize
@asset
def nothing() -> int:
    return 1
imported = time.perf_counter() - began
t0 = time.perf_counter()
with DagsterInstance.get() as instance:
    opened = time.perf_counter() - t0
    assert materialize([nothing], instance=instance).success
run = time.perf_counter() - t0
print(json.dumps({"import": imported, "instance": opened, "run": run,
                  "in_process": time.perf_counter() - began}))
"""

# ATM: start-up phases, then the partition through the controller's own path (launch.sync).
ATM = """
import json, time
began = time.perf_counter()
import dagster
t_dagster = time.perf_counter() - began
t0 = time.perf_counter()
from atm_assets.definitions import defs
t_defs = time.perf_counter() - t0
from atm_assets.core.settings import load_settings
from atm_assets import launch
t0 = time.perf_counter()
options = {"batch_size": 6000, "checkpoint_every": 10}
sync = getattr(launch, "sync", None)
if sync is not None:
    chosen, run = sync("stock_basic", {"exchange": "SSE", "list_status": "L"}, options,
                       launched_by="bench", settings=load_settings(), log_level="WARNING")
else:  # the checkout before launch.sync: the same call the controller made
    run = launch.run_sync("stock_basic_job", ["stock_basic"], ["SSE|L"], options,
                          {"atm/launched_by": "bench"},
                          {"atm_console": {"config": {"log_level": "WARNING"}}})
wall = time.perf_counter() - t0
assert run.success, run.error
meta = run.metadata["stock_basic"][0]
print(json.dumps({"import_dagster": t_dagster, "definitions": t_defs,
                  "run": wall, "fetch": meta["fetch_seconds"], "write": meta["write_seconds"],
                  "rows": meta["total_saved"], "calls": meta["api_calls"],
                  "in_process": time.perf_counter() - began}))
# The process ends as the controller's does (a checkout before cli.exit_with: as it did).
import atm_assets.cli as cli
getattr(cli, "exit_with", lambda code: None)(0)
"""

# Per-call costs: admission through the governor (SQLite host store; PostgreSQL store when a
# URL is given), and the pager over the 29 pages at 4 in flight and 1.
CALLS = """
import json, os, statistics, tempfile, time
from atm_assets.core.settings import TushareSettings
from atm_assets.core.governor.shared import governor_for
from atm_assets.core.tushare_client import TushareClient
out = {}
settings = TushareSettings(api_url=URL, calls_per_minute=100000,
                           api_limits="stock_basic=100000",
                           governor_path=os.path.join(tempfile.mkdtemp(), "g.db"))
targets = [("sqlite", None)]
if DB:
    from atm_assets.core.db import Database
    from atm_assets.core.settings import DatabaseSection
    targets.append(("postgresql", Database(DatabaseSection(db_schema=SCHEMA), url=DB)))
for name, database in targets:
    governor = governor_for(settings, database)
    for _ in range(20):
        with governor.call("warm"):
            pass
    n = 300
    t0 = time.perf_counter()
    for _ in range(n):
        with governor.call("bench_api"):
            pass
    out[f"admission_ms_{name}"] = (time.perf_counter() - t0) / n * 1000
fields = FIELDS
for width in (4, 1):
    s = settings.model_copy(update={"max_in_flight": width})
    client = TushareClient(TOKEN, s, governor=governor_for(s, None))
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        frame = client.query_all("stock_basic", fields, exchange="SSE", list_status="L")
        times.append(time.perf_counter() - t0)
    assert len(frame) == ROWS
    out[f"pages_seconds_in_flight_{width}"] = statistics.median(times)
    out["calls_per_query"] = client.calls // 3
print(json.dumps(out))
"""

FIELDS = [
    "ts_code", "symbol", "name", "area", "industry", "fullname", "enname", "cnspell", "market",
    "exchange", "curr_type", "list_status", "list_date", "delist_date", "is_hs", "act_name",
    "act_ent_type",
]  # fmt: skip


def child(code: str, script: str, env: dict[str, str], cwd: str, **names: object) -> dict:
    """Run `script` in a fresh interpreter on checkout `code`; its JSON line, and its wall."""
    prelude = "".join(f"{k} = {v!r}\n" for k, v in names.items())
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(script)],
        cwd=cwd,
        env={**env, "PYTHONPATH": code},
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"child failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process"] = wall
    return result


def measure(code: str, url: str, db: str, repeats: int) -> dict:
    """Every measurement for checkout `code`, each the median of `repeats` fresh runs."""
    runs: dict[str, list[dict]] = {"plain": [], "floor": [], "atm": []}
    # Bytecode for the checkout's modules, as an installed or once-run project has it: with
    # PYTHONDONTWRITEBYTECODE set (this machine sets it) every child would compile ATM's
    # ~60 modules again (~0.1 s), where Dagster's and pandas' come compiled by pip.
    subprocess.run([sys.executable, "-m", "compileall", "-q", f"{code}/atm_assets"], check=True)
    for _ in range(repeats):
        home = tempfile.mkdtemp(prefix="atm-bench-home-")
        (Path(home) / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        env = {
            **os.environ,
            "DAGSTER_HOME": home,
            "TUSHARE_TOKEN": TOKEN,
            "TUSHARE_API_URL": url,
            "TUSHARE_CALLS_PER_MINUTE": "100000",
            # stock_basic's own default is Tushare's 50 a minute: not what is measured here.
            "TUSHARE_API_LIMITS": "stock_basic=100000",
            "ATM_DATABASE_URL": db,
            "DB_SCHEMA": schema,
        }
        table = f"plain_{uuid.uuid4().hex[:8]}"
        runs["plain"].append(
            child(code, PLAIN, env, home, TOKEN=TOKEN, URL=url, FIELDS=FIELDS, DB=db, TABLE=table)
        )
        runs["floor"].append(child(code, FLOOR, env, home))
        runs["atm"].append(child(code, ATM, env, home))
        drop(db, schema, table)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    calls = child(
        code, CALLS, dict(os.environ), tempfile.mkdtemp(), URL=url, TOKEN=TOKEN, DB=db,
        SCHEMA=schema, FIELDS=FIELDS, ROWS=ROWS,
    )  # fmt: skip
    drop(db, schema, None)
    median = {
        name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()
    }
    plain, floor, atm = median["plain"], median["floor"], median["atm"]
    return {
        "code": code,
        "plain": plain,
        "dagster_floor": floor,
        "atm": atm,
        "calls": calls,
        # The goal: ATM's run within 1.1x of a plain fetch + COPY plus Dagster's own run.
        "ratio_in_process": atm["run"] / (plain["run"] + floor["run"]),
        "ratio_processes": atm["process"] / (plain["process"] + floor["process"]),
    }


def drop(db: str, schema: str, table: str | None) -> None:
    import sqlalchemy as sa

    with sa.create_engine(db).begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        if table:
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}"')


def table(results: list[dict]) -> str:
    lines = [
        "| | " + " | ".join(Path(r["code"]).name or r["code"] for r in results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    rows = [
        ("plain script: fetch 29 pages one by one + COPY, s", lambda r: r["plain"]["run"]),
        ("Dagster's own one-asset run in process (instance included), s",
         lambda r: r["dagster_floor"]["run"]),
        ("ATM: the partition's run in process, s", lambda r: r["atm"]["run"]),
        ("— of which fetch (29 calls), s", lambda r: r["atm"]["fetch"]),
        ("— of which write, s", lambda r: r["atm"]["write"]),
        ("ratio ATM / (plain + Dagster's floor)", lambda r: r["ratio_in_process"]),
        ("start-up: import dagster, s", lambda r: r["atm"]["import_dagster"]),
        ("start-up: load ATM's definitions, s", lambda r: r["atm"]["definitions"]),
        ("start-up: open the instance (in either run), s",
         lambda r: r["dagster_floor"]["instance"]),
        ("whole ATM process, s", lambda r: r["atm"]["process"]),
        ("whole plain process, s", lambda r: r["plain"]["process"]),
        ("whole Dagster floor process, s", lambda r: r["dagster_floor"]["process"]),
        ("ratio of the processes: ATM / (plain + floor)", lambda r: r["ratio_processes"]),
        ("governor admission per call, SQLite store, ms",
         lambda r: r["calls"]["admission_ms_sqlite"]),
        ("governor admission per call, PostgreSQL store, ms",
         lambda r: r["calls"].get("admission_ms_postgresql", float("nan"))),
        ("pager, 29 pages, 4 in flight, s", lambda r: r["calls"]["pages_seconds_in_flight_4"]),
        ("pager, 29 pages, one at a time, s", lambda r: r["calls"]["pages_seconds_in_flight_1"]),
    ]  # fmt: skip
    for label, get in rows:
        lines.append(f"| {label} | " + " | ".join(f"{get(r):.2f}" for r in results) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL SQLAlchemy URL (the plain script COPYs there too)",
    )
    parser.add_argument("--before", help="another checkout of ATM, measured in the same run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    sandbox, url = start_sandbox(None, None, None, None, TOKEN, cache=True, sizes={"SSE:L": ROWS})
    try:
        # Warm the sandbox's answer cache: 29 pages generated once, untimed.
        child(str(ROOT), CALLS, dict(os.environ), tempfile.mkdtemp(), URL=url, TOKEN=TOKEN,
              DB="", SCHEMA="", FIELDS=FIELDS, ROWS=ROWS)  # fmt: skip
        codes = [str(Path(args.before).resolve())] if args.before else []
        results = [measure(c, url, args.url, args.repeats) for c in [*codes, str(ROOT)]]
    finally:
        sandbox.terminate()
        sandbox.wait(10)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
