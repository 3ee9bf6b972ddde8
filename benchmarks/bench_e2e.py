"""End-to-end benchmark: materialise stock_basic from the sandbox through Dagster, and split each
run's wall time into fetch, write and Dagster's own overhead.

    python benchmarks/bench_e2e.py [--db sqlite|postgresql]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid

PG_URL = os.environ.get(
    "ATM_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def in_process(partition: str | tuple[str, str]) -> dict:
    from dagster import DagsterInstance

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from atm_assets_tests.helpers import materialization_metadata, run_stock_basic

    with DagsterInstance.ephemeral() as instance:
        began = time.perf_counter()
        result = run_stock_basic(partition, instance=instance)
        wall = time.perf_counter() - began
    assert result.success
    meta = materialization_metadata(result)[0]
    return {
        "wall": wall,
        "fetch": meta["fetch_seconds"],
        "write": meta["write_seconds"],
        "rows": meta["total_saved"],
        "calls": meta["api_calls"],
    }


def cli(args: list[str], cwd: str) -> float:
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dagster", *args], cwd=cwd, check=True, capture_output=True
    )
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    args = parser.parse_args()
    from atm_assets.sandbox import SandboxServer

    workdir = tempfile.mkdtemp(prefix="atm-bench-")
    os.chdir(workdir)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with SandboxServer(token="bench") as sb:
        env = {
            "TUSHARE_TOKEN": "bench",
            "TUSHARE_API_URL": sb.url,
            "TUSHARE_CALLS_PER_MINUTE": "100000",
        }
        if args.db == "postgresql":
            from sqlalchemy.engine import make_url

            url = make_url(PG_URL)
            env.update(
                DB_HOST=url.host or "127.0.0.1",
                DB_PORT=str(url.port or 5432),
                DB_USER=url.username or "postgres",
                DB_NAME=url.database or "postgres",
                DB_SCHEMA=schema,
                DB_PASSWORD=url.password or "x",
            )
        os.environ.update(env)
        rows = []
        runs: list[tuple[str, str | tuple[str, str]]] = [
            ("one partition (SSE\\|L), first run", "SSE|L"),
            ("one partition (SSE\\|L), unchanged re-run", "SSE|L"),
            ("all 12 partitions, one run", ("SSE|L", "BSE|G")),
            ("all 12 partitions, unchanged re-run", ("SSE|L", "BSE|G")),
        ]
        for label, partition in runs:
            r = in_process(partition)
            # Partitions are fetched several at once (tushare.max_in_flight) while earlier ones
            # are written: their fetch times overlap each other and the writes, so only a
            # one-partition run's wall splits into fetch, write and the rest.
            if isinstance(partition, str):
                overhead = r["wall"] - r["fetch"] - r["write"]
                rest = f"{overhead:.2f} ({overhead / r['wall']:.0%})"
            else:
                rest = "(fetches overlap)"
            rows.append(
                f"| {label} | {r['rows']:,} | {r['calls']} | {r['wall']:.2f} | {r['fetch']:.2f} | "
                f"{r['write']:.2f} | {rest} |"
            )
        cold = cli(
            [
                "asset",
                "materialize",
                "-m",
                "atm_assets",
                "--select",
                "stock_basic",
                "--partition",
                "SZSE|L",
            ],
            workdir,
        )
    print(f"End to end against the sandbox ({args.db} target; in-process executor)\n")
    print(
        "| run | rows | API calls | wall s | fetch s (summed over partitions) | write s "
        "| rest: Dagster, lock, state s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(
        f"\n`dagster asset materialize` of one partition, cold process: {cold:.1f} s wall "
        "(interpreter, imports, definitions load and run)."
    )
    if args.db == "postgresql":
        import sqlalchemy as sa

        with sa.create_engine(PG_URL).begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
