"""Backfill benchmark: daily + adj_factor over a range of trade dates in one run, from the sandbox.

Starts the sandbox (full-size stock list unless --stocks-per-partition), syncs the SSE calendar,
then materialises market_data_job over the range as a single run and reports rows/s and
partitions/min, with the fetch/write split from the materialisation metadata.

    python benchmarks/bench_backfill.py --start 2024-01-01 --end 2024-03-31
    python benchmarks/bench_backfill.py --url postgresql+psycopg2://postgres@127.0.0.1/postgres
"""

import argparse
import json
import os
import sys
import tempfile
import time
import uuid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2024-01-01")
    parser.add_argument("--end", default="2024-03-31")
    parser.add_argument("--url", help="PostgreSQL SQLAlchemy URL (default: a temp SQLite file)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--stocks-per-partition", type=int, help="shrink the stock list")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    from atm_assets.sandbox import SandboxServer

    workdir = tempfile.mkdtemp(prefix="atm-bench-")
    os.chdir(workdir)
    schema = None
    with SandboxServer(token="bench-token") as sandbox:
        if args.stocks_per_partition is not None:
            n = args.stocks_per_partition
            sandbox.set_sizes({f"{e}:{s}": n for e in ("SSE", "SZSE", "BSE") for s in "LDPG"})
        os.environ.update(
            TUSHARE_TOKEN=sandbox.token,
            TUSHARE_API_URL=sandbox.url,
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
        began = time.perf_counter()
        result = job.execute_in_process(tags=tags)
        wall = time.perf_counter() - began
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

    partitions = per_asset["daily"]["partitions"]
    rows = sum(a["total_fetched"] for a in per_asset.values())
    fetch = sum(a["fetch_seconds"] for a in per_asset.values())
    write = sum(a["write_seconds"] for a in per_asset.values())
    report = {
        "range": [args.start, args.end],
        "database": "postgresql" if args.url else "sqlite",
        "partitions_per_asset": partitions,
        "open_days": partitions - per_asset["daily"]["closed_days"],
        "rows": rows,
        "wall_seconds": round(wall, 2),
        "rows_per_second": round(rows / wall),
        "partitions_per_minute": round(2 * partitions / wall * 60),
        "fetch_seconds": round(fetch, 2),
        "write_seconds": round(write, 2),
        "other_seconds": round(wall - fetch - write, 2),
        "assets": per_asset,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
