"""Writer benchmark: ATM's upsert/append against raw COPY and pandas.to_sql on PostgreSQL.

Each measurement runs in a fresh process (so peak RSS is its own) against a fresh table with the
stock_basic shape and primary key. Prints a table and, with --json, writes the numbers.

    python benchmarks/bench_writer.py --rows 5000,100000,1000000
"""

import argparse
import datetime as dt
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import pandas as pd
from atm_writes import QUIET

from atm_assets.core.db import Database

DEFAULT_URL = os.environ.get(
    "ATM_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
METHODS = [
    "copy",
    "atm_upsert_empty",
    "atm_upsert_update",
    "atm_append",
    "to_sql",
    "to_sql_multi",
]


def build_frame(n: int, raw: bool = False) -> pd.DataFrame:
    """n rows of the stock_basic shape (Chinese text, quotes, NULLs, dates), deterministic: as
    the API returns them (`raw`, dates as YYYYMMDD) or as they are written."""
    from atm_assets.core.datasets import STOCK_BASIC
    from atm_assets.core.validation import normalize_frame
    from atm_assets.sandbox import SandboxDataset

    base = SandboxDataset().stock_basic()
    rows = []
    for i in range(n):
        row = dict(base[i % len(base)])
        row["ts_code"] = f"{i:08d}.SH"
        row["symbol"] = f"{i:08d}"
        # Distinct string objects per row, as a real result has (shared ones would flatter RSS).
        for field in ("name", "fullname", "enname", "cnspell"):
            if row[field] is not None:
                row[field] = f"{row[field]}{i % 97}"
        rows.append(row)
    frame = pd.DataFrame(rows, columns=STOCK_BASIC.fields)
    return frame if raw else normalize_frame(frame, STOCK_BASIC)


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mb() -> float:
    return _status_mb("VmRSS")


def reset_peak_rss() -> None:
    """Start the high-water mark afresh, so the peak is the writer's, not the frame builder's."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mb() -> float:
    return _status_mb("VmHWM")


def measure(method: str, n: int, url: str, batch_size: int, checkpoint_every: int) -> dict:
    from atm_assets.core.datasets import STOCK_BASIC
    from atm_assets.core.engine import SyncJob
    from atm_assets.core.locks import LockManager
    from atm_assets.core.settings import SyncOptions
    from atm_assets.core.staging import Staging
    from atm_assets.core.state import FileStateStore, Target
    from atm_assets.core.writer import TableWriter

    frame = build_frame(n)
    data_mb = frame.memory_usage(deep=True).sum() / 2**20
    engine = Database(url=url).create_engine()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    writer = TableWriter(engine, STOCK_BASIC, schema)
    writer.ensure_table()
    quiet = QUIET
    try:
        if method == "atm_upsert_update":
            _copy_all(writer, frame)  # the table is full; every row will change
            frame = frame.assign(name=frame["name"].map(lambda v: (v or "") + "*"))
        with tempfile.TemporaryDirectory() as tmp:
            if method.startswith("atm_"):
                # The real write path: a job whose "fetch" hands over the frame, prepared (locked,
                # resumed, validated) before the clock starts; only the write is timed.
                options = SyncOptions(
                    mode="append" if method == "atm_append" else "upsert",
                    batch_size=batch_size,
                    checkpoint_every=checkpoint_every,
                    resume=False,
                )
                raw = build_frame(n, raw=True)
                if method == "atm_upsert_update":
                    raw = raw.assign(name=frame["name"])
                # Handed over once, then dropped: the job holds its validated copy, as in a sync.
                handed = [raw]
                del raw
                job = SyncJob(
                    spec=STOCK_BASIC,
                    fetch=lambda _client, _params: handed.pop(),
                    writer=writer,
                    store=FileStateStore(tmp),
                    locks=LockManager(lock_dir=tmp),
                    options=options,
                    staging=Staging(tmp),
                    target=Target(writer.table_id, writer.qualified_name, "benchmark"),
                )
                (task,) = job.tasks([{}], "bench")
                part = job.prepare(task, _Source(), job.lock(task))
            reset_peak_rss()
            base_rss = rss_mb()
            began = time.perf_counter()
            if method == "copy":
                _copy_all(writer, frame, batch_size * checkpoint_every)
            elif method.startswith("atm_"):
                result = job.write(part, quiet)
                expected_updates = n if method == "atm_upsert_update" else 0
                assert result.counts.updated == expected_updates, result.counts
            elif method == "to_sql":
                frame.assign(synced_at=pd.Timestamp.now(tz="UTC")).to_sql(
                    "stock_basic", engine, schema=schema, if_exists="append", index=False
                )
            elif method == "to_sql_multi":
                frame.assign(synced_at=pd.Timestamp.now(tz="UTC")).to_sql(
                    "stock_basic",
                    engine,
                    schema=schema,
                    if_exists="append",
                    index=False,
                    method="multi",
                    chunksize=1000,
                )
            seconds = time.perf_counter() - began
        assert writer.count() == n
        return {
            "method": method,
            "rows": n,
            "seconds": seconds,
            "rows_per_s": n / seconds,
            "data_mb": data_mb,
            "base_rss_mb": base_rss,
            "peak_rss_mb": peak_rss_mb(),
        }
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()


def _copy_all(writer: Any, frame: pd.DataFrame, chunk: int = 50_000) -> None:
    """Raw COPY, the limit: the frame through ATM's own COPY, in chunks, in one
    transaction."""
    from atm_assets.core.pg_copy import copy_csv

    stamp = [("synced_at", dt.datetime.now(dt.UTC))]
    with writer.engine.begin() as conn:
        for start in range(0, len(frame), chunk):
            part = frame.iloc[start : start + chunk]
            copy_csv(conn, writer.sql_name, writer.copy_columns, part, stamp)


class _Source:
    """Stands in for the Tushare client: the benchmark's frame is the "fetched" data."""

    calls = 0
    nul_seen = True
    caps: dict[str, int] = {}  # never written: the benchmark fetches nothing

    def view(self, log: Any) -> "_Source":
        return self


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="5000,100000,1000000")
    parser.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL SQLAlchemy URL")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument(
        "--to-sql-max",
        type=int,
        default=100_000,
        help="skip to_sql above this many rows (it is slow)",
    )
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per measurement; the median run is reported (shared machines)",
    )
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        method, n = args.one.split(":")
        result = measure(method, int(n), args.url, args.batch_size, args.checkpoint_every)
        print(json.dumps(result))
        return
    results = []
    for n in [int(x) for x in args.rows.split(",")]:
        for method in args.methods.split(","):
            if method.startswith("to_sql") and n > args.to_sql_max:
                continue
            runs = []
            for _ in range(1 if method.startswith("to_sql") else args.repeat):
                command = [
                    sys.executable,
                    __file__,
                    "--one",
                    f"{method}:{n}",
                    "--url",
                    args.url,
                    "--batch-size",
                    str(args.batch_size),
                    "--checkpoint-every",
                    str(args.checkpoint_every),
                ]
                proc = subprocess.run(command, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    sys.stderr.write(proc.stderr)
                    raise SystemExit(f"{method} at {n} rows failed")
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            runs.sort(key=lambda r: r["seconds"])
            r = runs[len(runs) // 2]  # the median run
            r["all_seconds"] = [round(x["seconds"], 2) for x in runs]
            results.append(r)
            sys.stderr.write(f"  {method:<18} {n:>9,} rows  {r['all_seconds']} s\n")
    print(report(results, args.batch_size, args.checkpoint_every))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


def report(results: list[dict], batch_size: int, checkpoint_every: int) -> str:
    copy = {r["rows"]: r["rows_per_s"] for r in results if r["method"] == "copy"}
    lines = [
        f"ATM writer benchmark (PostgreSQL; ATM batch_size={batch_size}, "
        f"checkpoint_every={checkpoint_every})",
        "",
        "| rows | method | seconds (median) | rows/s | × raw COPY | peak RSS MB | data MB | "
        "peak / data | (peak − base) / data |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = r["rows_per_s"] / copy[r["rows"]] if r["rows"] in copy else float("nan")
        grow = (r["peak_rss_mb"] - r["base_rss_mb"]) / r["data_mb"] if r["data_mb"] else 0
        lines.append(
            f"| {r['rows']:,} | {r['method']} | {r['seconds']:.2f} | {r['rows_per_s']:,.0f} | "
            f"{ratio:.2f} | {r['peak_rss_mb']:.0f} | {r['data_mb']:.0f} | "
            f"{r['peak_rss_mb'] / r['data_mb']:.2f} | {grow:.2f} |"
        )
    by = {(r["method"], r["rows"]): r["rows_per_s"] for r in results}
    lines.append("")
    for n in sorted(copy):
        checks = []
        for method, floor in (
            ("atm_upsert_empty", 0.7),
            ("atm_upsert_update", 0.5),
            ("atm_append", 0.7),
        ):
            if (method, n) in by:
                ratio = by[(method, n)] / copy[n]
                checks.append(
                    f"{method} {ratio:.2f}× COPY ({'ok' if ratio >= floor else 'BELOW'} {floor})"
                )
        if ("to_sql", n) in by and ("atm_upsert_empty", n) in by:
            speedup = by[("atm_upsert_empty", n)] / by[("to_sql", n)]
            checks.append(
                f"atm_upsert {speedup:.1f}× to_sql ({'ok' if speedup >= 4 else 'BELOW'} 4)"
            )
        lines.append(f"{n:,} rows: " + "; ".join(checks))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
