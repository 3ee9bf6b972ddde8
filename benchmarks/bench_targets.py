"""Target benchmark: the same days of sandbox `daily` loaded by ATM into SQLite and DuckDB.

The sandbox's `daily` rows for the first N open days of 2024 (full market, ~5,000 rows a day)
are generated and validated once, untimed. Then, each in a fresh database file (and a fresh
PostgreSQL schema with --url), ATM's write path loads them with a checkpoint interval of
`--batch-size` × `--checkpoint-every` rows: the days that fit in one interval share one
transaction that also saves each one's state in `ingestion_state` (group commit, as a sync with
`--use-db-state` does), a larger day goes interval by interval; upsert into an empty table.
The baseline is DuckDB's own bulk load of the same rows into the same table: one
`INSERT … SELECT` over one typed columnar frame (numpy arrays, which DuckDB scans natively as it
does Arrow; pyarrow is not a dependency of ATM). Reports seconds (median of --repeat), rows/s,
and the file size after the load. Results go to docs/bench_targets.json.

    python benchmarks/bench_targets.py --days 60
    python benchmarks/bench_targets.py --days 60 --url postgresql+psycopg://postgres@127.0.0.1/db
"""

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
from atm_writes import AtmLoader

from atm_assets.core.datasets import DAILY, SYNC_COMMIT, SYNCED_AT
from atm_assets.core.db import Database
from atm_assets.core.settings import DatabaseSection
from atm_assets.core.validation import validate_rows
from atm_assets.core.writer import TableWriter
from atm_assets.sandbox.dataset import SandboxDataset

ROOT = Path(__file__).resolve().parent.parent


def days_of(dataset: SandboxDataset, count: int) -> list[str]:
    cal = dataset.trade_cal("SSE", "20240101", "20241231", is_open=1)
    return sorted(r["cal_date"] for r in cal)[:count]


def load_frames(days: list[str]) -> list[tuple[str, pd.DataFrame]]:
    dataset = SandboxDataset()
    frames = []
    for day in days:
        answer = pd.DataFrame(dataset.daily(trade_date=day), columns=DAILY.fields)
        frames.append((day, validate_rows(answer, DAILY, {"trade_date": day})))
    return frames


def atm_load(db: Database, frames: list[tuple[str, pd.DataFrame]], per_interval: int) -> float:
    """ATM's write path, as a sync with --use-db-state runs it (see AtmLoader); seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        loader = AtmLoader(db, [DAILY], per_interval, Path(tmp), "bench")
        for day, frame in frames:
            loader.add(DAILY, {"trade_date": day}, frame)
        loader.flush(DAILY)
        loader.close()
    return loader.seconds


def duckdb_bulk_load(path: str, frames: list[tuple[str, pd.DataFrame]]) -> float:
    """DuckDB's own bulk load of the same rows into the same table; seconds."""
    import duckdb

    db = Database(DatabaseSection(duckdb_path=path))
    engine = db.create_engine()
    TableWriter(engine, DAILY).ensure_table()
    engine.dispose()
    rows = pd.concat([f for _, f in frames], ignore_index=True)
    typed: dict[str, Any] = {}
    for column in DAILY.columns:
        values = rows[column.name]
        if column.type == "float":
            typed[column.name] = values.astype("float64").to_numpy()
        elif column.type == "date":
            typed[column.name] = pd.to_datetime(values).to_numpy()
        else:
            typed[column.name] = values.to_numpy(dtype=object)
    frame = pd.DataFrame(typed)  # noqa: F841 - scanned by name below
    cols = ", ".join(f'"{c}"' for c in [*DAILY.fields, SYNCED_AT, SYNC_COMMIT])
    picked = ", ".join(
        f'CAST("{c.name}" AS DATE)' if c.type == "date" else f'"{c.name}"' for c in DAILY.columns
    )
    conn = duckdb.connect(path)
    began = time.perf_counter()
    conn.execute(
        f"INSERT INTO daily ({cols}) SELECT {picked}, now(), 'bulk' FROM frame"  # noqa: S608
    )
    seconds = time.perf_counter() - began
    conn.close()
    return seconds


def size_mb(path: str) -> float:
    files = [Path(path), *Path(path).parent.glob(Path(path).name + ".wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", help="also PostgreSQL (a SQLAlchemy URL)")
    parser.add_argument("--out", default=str(ROOT / "docs/bench_targets.json"))
    args = parser.parse_args()

    days = days_of(SandboxDataset(), args.days)
    began = time.perf_counter()
    frames = load_frames(days)
    rows = sum(len(f) for _, f in frames)
    print(
        f"{len(days)} days, {rows} rows generated and validated in "
        f"{time.perf_counter() - began:.1f}s"
    )
    per_interval = args.batch_size * args.checkpoint_every
    results: list[dict[str, Any]] = []

    def record(method: str, runs: list[float], size: float | None) -> None:
        seconds = statistics.median(runs)
        results.append(
            {"method": method, "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds),
             "runs": [round(r, 3) for r in runs], "size_mb": size}
        )  # fmt: skip
        where = f", {size:.1f} MB" if size is not None else ""
        print(f"{method:<48} {seconds:7.2f} s  {rows / seconds:>9,.0f} rows/s{where}")

    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("sqlite", "duckdb"):
            runs, size = [], 0.0
            for i in range(args.repeat):
                path = f"{tmp}/{kind}-{i}.db"
                section = (
                    DatabaseSection(sqlite_path=path)
                    if kind == "sqlite"
                    else DatabaseSection(duckdb_path=path)
                )
                runs.append(atm_load(Database(section), frames, per_interval))
                size = size_mb(path)
            record(f"ATM → {kind}", runs, round(size, 1))
        bulk = []
        for i in range(args.repeat):
            path = f"{tmp}/bulk-{i}.duckdb"
            bulk.append(duckdb_bulk_load(path, frames))
        record("DuckDB's own bulk load (INSERT … SELECT)", bulk, round(size_mb(path), 1))
        if args.url:
            runs = []
            for _ in range(args.repeat):
                schema = f"bench_{uuid.uuid4().hex[:8]}"
                runs.append(
                    atm_load(Database(DatabaseSection(db_schema=schema), url=args.url), frames,
                             per_interval)
                )  # fmt: skip
            record("ATM → postgresql", runs, None)
    atm_duck = next(r for r in results if r["method"] == "ATM → duckdb")["seconds"]
    native = next(r for r in results if r["method"].startswith("DuckDB's own"))["seconds"]
    ratio = atm_duck / native
    print(f"ATM's DuckDB load / DuckDB's own bulk load: {ratio:.2f}x (goal: 1.2x)")
    out = {
        "days": len(days),
        "rows": rows,
        "batch_size": args.batch_size,
        "checkpoint_every": args.checkpoint_every,
        "repeat": args.repeat,
        "results": results,
        "atm_duckdb_over_bulk": round(ratio, 2),
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
