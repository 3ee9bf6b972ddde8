"""Rate benchmark: a daily backfill from a slow, rate-limited sandbox, sequential vs in flight.

Starts the sandbox in its own process (each daily answer after --latency seconds, --limit calls
per 60 s window per API), syncs the SSE calendar, then runs `controller sync daily` over the
first --days open days of 2024, once per --in-flight value (a fresh sandbox and workdir each
time), and prints the controller's wall time, the span of the daily calls and the ideal: the
time the limit itself allows (full windows, plus one answer). By default the sandbox first
answers the same sync untimed and keeps those answers, so that in the timed run every answer
takes --latency, as the real service's would, rather than --latency plus the sandbox's own CPU
(which shares this machine's cores with ATM); --cold skips that.

    python benchmarks/bench_rate.py                       # 100 days, 1.5 s, 60/min: 1 vs 8
    python benchmarks/bench_rate.py --days 30 --in-flight 1 4 8
    python benchmarks/bench_rate.py --in-flight 8 --instance-url postgresql://postgres@127.0.0.1/postgres

`--instance-url` keeps the Dagster instance (runs, events) in a fresh database on that server
through deploy/postgres/dagster.yaml, as a deployment does, instead of the quick start's SQLite
files; the synced data stays in SQLite either way.
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-rate-token"
# Instance databases made by --instance-url, dropped at the end.
CREATED: list[str] = []


def start_sandbox(
    latency: float | None,
    limit: int | None,
    window: float | None,
    stocks: int | None,
    token: str = TOKEN,
    cache: bool = False,
    sizes: dict[str, int] | None = None,
) -> tuple[subprocess.Popen, str]:
    """This checkout's sandbox in a process of its own; `daily` answers after `latency`
    seconds and refuses more than `limit` calls per `window` when they are given."""
    command = [sys.executable, "-m", "atm_assets.sandbox", "--port", "0", "--token", token]
    if cache:
        command.append("--cache-answers")
    if latency is not None:
        command += ["--api-latency", f"daily={latency}"]
    if limit is not None:
        command += ["--api-rate-limit", f"daily={limit}", "--rate-window", str(window or 60)]
    if stocks is not None:
        command += [f"--size={e}:{s}={stocks}" for e in ("SSE", "SZSE", "BSE") for s in "LDPG"]
    command += [f"--size={part}={n}" for part, n in (sizes or {}).items()]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"the sandbox did not start: {line!r}")
    # Keep reading what it prints, so a full pipe never stalls it.
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, line.rsplit(" ", 1)[1].strip()


def controller(*args: str, cwd: str, env: dict[str, str]) -> float:
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "atm_assets.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"controller {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - began


def open_days(db: str, count: int) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT cal_date FROM trade_cal WHERE exchange = 'SSE' AND is_open = 1 "
            "AND cal_date >= '2024-01-01' ORDER BY cal_date LIMIT ?",
            (count,),
        ).fetchall()
    return [str(r[0])[:10] for r in rows]


def workspace(url: str, in_flight: int, args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    """A fresh project directory (instance, SQLite target, governor) and the controller's env."""
    workdir = tempfile.mkdtemp(prefix="atm-bench-rate-")
    instance = instance_database(args.instance_url) if args.instance_url else {}
    config = "deploy/postgres/dagster.yaml" if args.instance_url else "dagster.yaml"
    subprocess.run(["cp", str(ROOT / config), workdir], check=True)
    env = {
        **os.environ,
        **instance,
        "DAGSTER_HOME": workdir,
        "PYTHONPATH": str(ROOT),
        "TUSHARE_TOKEN": TOKEN,
        "TUSHARE_API_URL": url,
        "TUSHARE_CALLS_PER_MINUTE": str(args.limit),
        "TUSHARE_MAX_IN_FLIGHT": str(in_flight),
        "TUSHARE_RATE_WINDOW": str(args.window),
        "ATM_BATCH_SIZE": "1000",
    }
    controller("sync", "trade-cal", "--exchange", "SSE", cwd=workdir, env=env)
    return workdir, env


def _on_server(url: str, *statements: str) -> None:
    """Run `statements` outside a transaction (CREATE/DROP DATABASE) on the server at `url`."""
    import sqlalchemy as sa

    admin = sa.create_engine(sa.engine.make_url(url).set(drivername="postgresql+psycopg"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    admin.dispose()


def instance_database(url: str) -> dict[str, str]:
    """A fresh database for a Dagster instance on the server at `url`; the DAGSTER_PG_* env
    deploy/postgres/dagster.yaml reads."""
    import sqlalchemy as sa

    server = sa.engine.make_url(url)
    name = f"atm_bench_instance_{uuid.uuid4().hex[:8]}"
    _on_server(url, f'CREATE DATABASE "{name}"')
    CREATED.append(name)
    return {
        "DAGSTER_PG_HOST": server.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(server.port or 5432),
        "DAGSTER_PG_USER": server.username or "postgres",
        "DAGSTER_PG_PASSWORD": server.password or "",
        "DAGSTER_PG_DB": name,
    }


def drop_instances(url: str | None) -> None:
    if url and CREATED:
        _on_server(url, *(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in CREATED))


def measure(in_flight: int, args: argparse.Namespace) -> dict[str, float]:
    from atm_assets.sandbox import RemoteSandbox

    warm = not args.cold
    if warm:
        # Answers cached by an untimed sync first, then the latency and limit set: each call
        # of the timed run is answered after exactly --latency seconds, whatever the cost of
        # generating 5,000 bars (CPU the real service does not spend on this machine).
        sandbox, url = start_sandbox(None, None, None, args.stocks_per_partition, cache=True)
    else:
        sandbox, url = start_sandbox(
            args.latency, args.limit, args.window, args.stocks_per_partition
        )
    try:
        remote = RemoteSandbox(url)
        workdir, env = workspace(url, in_flight, args)
        days = open_days(os.path.join(workdir, "storage/atm.db"), args.days)
        assert len(days) == args.days, f"only {len(days)} open days"
        sync = ("sync", "daily", "--start-date", days[0], "--end-date", days[-1])
        if warm:
            controller(*sync, cwd=workdir, env={**env, "TUSHARE_CALLS_PER_MINUTE": "100000"})
            remote.set_latency(args.latency, api="daily")
            remote.set_rate_limit(args.limit, args.window, api="daily")
            workdir, env = workspace(url, in_flight, args)
        remote.clear_calls()
        started = time.time()
        wall = controller(*sync, cwd=workdir, env=env)
        calls = [c for c in remote.calls() if c["api_name"] == "daily"]
        refused = sum(1 for c in calls if c["code"] != 0)
        times = sorted(c["time"] for c in calls)
        return {
            "in_flight": in_flight,
            "wall_seconds": round(wall, 1),
            "daily_calls": len(calls),
            "refused": refused,
            "calls_span_seconds": round(times[-1] - times[0] + args.latency, 1),
            # The controller's own time around the calls (the sandbox stamps arrivals with
            # this host's clock): start-up before the first, writes and exit after the last.
            "before_first_call_seconds": round(times[0] - started, 1),
            "after_last_answer_seconds": round(started + wall - times[-1] - args.latency, 1),
            "arrivals": [round(t - times[0], 2) for t in times] if args.arrivals else [],
        }
    finally:
        sandbox.terminate()
        sandbox.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--latency", type=float, default=1.5)
    parser.add_argument("--limit", type=int, default=60, help="calls per window to daily")
    parser.add_argument("--window", type=float, default=60.0, help="the rate window (s)")
    parser.add_argument("--arrivals", action="store_true", help="list each call's arrival")
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--stocks-per-partition", type=int, help="shrink the stock list")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--instance-url", help="the Dagster instance in PostgreSQL (a server URL)")
    parser.add_argument(
        "--cold", action="store_true", help="no untimed warm-up: the sandbox generates each answer"
    )
    args = parser.parse_args()
    # Full windows of `limit` calls, then the last answer's latency.
    ideal = (args.days - 1) // args.limit * args.window + args.latency
    try:
        results = [measure(n, args) for n in args.in_flight]
    finally:
        drop_instances(args.instance_url)
    report = {
        "days": args.days,
        "latency": args.latency,
        "limit_per_window": args.limit,
        "window": args.window,
        "ideal_seconds": round(ideal, 1),
        "sequential_floor_seconds": round(args.days * args.latency, 1),
        "sandbox": "cold" if args.cold else "warm (answers cached, then latency and limit set)",
        "instance": "PostgreSQL" if args.instance_url else "SQLite files",
        "runs": results,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
