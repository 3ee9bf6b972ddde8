"""Backfill benchmark: daily + adj_factor over a range of trade dates in one run, from the sandbox.

Starts the sandbox in its own process (full-size stock list unless --stocks-per-partition), as
the real service would be, syncs the SSE calendar, then materialises market_data_job over the
range as a single run and reports rows/s and partitions/min, with the fetch/write split from the
materialisation metadata. --code benchmarks another checkout of ATM (say the commit before a
change) against the same sandbox: before and after in one session.

By default the sandbox keeps its answers and the range is synced once untimed (then its tables
dropped) before the timed run, which so measures ATM alone: generating ~5,000 bars per call
takes the sandbox about as much CPU as ATM needs to store them, and the real service spends
that on its own machines. --cold times the first run instead, the generators sharing the
machine's cores with ATM.

    python benchmarks/bench_backfill.py --start 2024-01-01 --end 2024-03-31
    python benchmarks/bench_backfill.py --url postgresql+psycopg://postgres@127.0.0.1/postgres
    git worktree add /tmp/before HEAD~3 && python benchmarks/bench_backfill.py --code /tmp/before
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench_rate import ROOT, start_sandbox


def cpu_seconds(pid: int) -> float:
    """User + system CPU a live process has used (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def drop_tables(url: str, schema: str | None) -> None:
    """Drop the warm-up's tables, so the timed run starts from empty ones as the first did."""
    import sqlalchemy as sa

    qualified = f'"{schema}".' if schema else ""
    with sa.create_engine(url).begin() as conn:
        for table in ("daily", "adj_factor"):
            conn.exec_driver_sql(f'DROP TABLE {qualified}"{table}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2024-01-01")
    parser.add_argument("--end", default="2024-03-31")
    parser.add_argument("--url", help="PostgreSQL SQLAlchemy URL (default: a temp SQLite file)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--stocks-per-partition", type=int, help="shrink the stock list")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--code", default=str(ROOT), help="the ATM checkout to benchmark")
    parser.add_argument("--cold", action="store_true", help="time the first run (no warm-up)")
    args = parser.parse_args()
    output = Path(args.json).resolve() if args.json else None
    # The code under test comes first on the path; the sandbox is always this checkout's.
    sys.path.insert(0, str(Path(args.code).resolve()))

    workdir = tempfile.mkdtemp(prefix="atm-bench-")
    os.chdir(workdir)
    schema = None
    sandbox, url = start_sandbox(
        None, None, None, args.stocks_per_partition, "bench-token", cache=not args.cold
    )
    try:
        os.environ.update(
            TUSHARE_TOKEN="bench-token",
            TUSHARE_API_URL=url,
            TUSHARE_CALLS_PER_MINUTE="100000",
            ATM_BATCH_SIZE=str(args.batch_size),
        )
        if args.url:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            os.environ.update(ATM_DATABASE_URL=args.url, DB_SCHEMA=schema)
        # Resources read the environment when the code location is imported.
        from atm_assets.definitions import defs

        calendar = defs.resolve_job_def("trade_cal_job").execute_in_process(
            tags={"dagster/partition": "SSE"}
        )
        assert calendar.success
        job = defs.resolve_job_def("market_data_job")
        tags = {
            "dagster/asset_partition_range_start": args.start,
            "dagster/asset_partition_range_end": args.end,
        }
        if not args.cold:
            assert job.execute_in_process(tags=tags).success
            drop_tables(args.url or f"sqlite:///{workdir}/storage/atm.db", schema)
        cpu_before = cpu_self()
        sandbox_before = cpu_seconds(sandbox.pid)
        began = time.perf_counter()
        result = job.execute_in_process(tags=tags)
        wall = time.perf_counter() - began
        atm_cpu = cpu_self() - cpu_before
        assert result.success
        per_asset: dict[str, dict[str, float]] = {}
        for node in ("daily", "adj_factor"):
            mats = result.asset_materializations_for_node(node)
            meta = next(m.metadata for m in mats if "total_fetched" in m.metadata)
            per_asset[node] = {
                k: float(meta[k].value)  # type: ignore[arg-type]
                for k in ("total_fetched", "api_calls", "fetch_seconds", "write_seconds")
            } | {"closed_days": float(meta["closed_days"].value), "partitions": len(mats)}  # type: ignore[arg-type]
        if schema:
            import sqlalchemy as sa

            with sa.create_engine(args.url).begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        sandbox_cpu = cpu_seconds(sandbox.pid) - sandbox_before
    finally:
        sandbox.terminate()
        sandbox.wait(10)

    partitions = per_asset["daily"]["partitions"]
    rows = sum(a["total_fetched"] for a in per_asset.values())
    fetch = sum(a["fetch_seconds"] for a in per_asset.values())
    write = sum(a["write_seconds"] for a in per_asset.values())
    report = {
        "code": args.code,
        "sandbox": "cold" if args.cold else "warm (answers cached)",
        "range": [args.start, args.end],
        "database": "postgresql" if args.url else "sqlite",
        "partitions_per_asset": partitions,
        "open_days": partitions - per_asset["daily"]["closed_days"],
        "rows": rows,
        "wall_seconds": round(wall, 2),
        "rows_per_second": round(rows / wall),
        "partitions_per_minute": round(2 * partitions / wall * 60),
        # Summed over partitions: with partitions fetched in flight and written meanwhile,
        # these overlap each other and the wall time.
        "fetch_seconds": round(fetch, 2),
        "write_seconds": round(write, 2),
        # Where the machine's cores went in the timed run: ATM's process (all its threads), the
        # sandbox's.
        "atm_cpu_seconds": round(atm_cpu, 1),
        "sandbox_cpu_seconds": round(sandbox_cpu, 1),
        "assets": per_asset,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    if output is not None:
        with output.open("w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
