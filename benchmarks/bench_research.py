"""Research benchmark: years of daily + adj_factor loaded into SQLite, DuckDB and PostgreSQL, then
read back as a forward-adjusted close panel and a point-in-time fina_indicator join.

The sandbox's answers (full market: every listed stock on every open day) for --years years
ending with --end-year are generated once into a Parquet cache (--cache, reused by later runs;
two processes, untimed). Then, day by day, each day's daily and adj_factor answers are validated
once (untimed) and written by ATM's write path into every target, timed per target: per trade
date one upsert interval per dataset, each one transaction that also saves the task's checkpoint
in `ingestion_state` (as a sync with --use-db-state does). fina_indicator (every quarter of the
same years) goes in the same way, timed apart. The baselines are DuckDB's own bulk loads of
the same typed Arrow rows: one `INSERT … SELECT` per trade date and dataset (each its own
commit: what a sync that checkpoints every partition cannot go below), and one per year.

Reads, median of --repeat on each target: `read_panel(close, qfq, wide)` for the last
--panel-years years × every stock (pro_bar's forward adjustment, computed in the database), and
`read_point_in_time(fina_indicator, roe, eps)` for every stock on every day of the same window.
The answers are compared across targets. Results go to docs/bench_research.json.

    python benchmarks/bench_research.py --years 10 --url postgresql+psycopg://postgres@127.0.0.1/postgres
    python benchmarks/bench_research.py --years 1 --panel-years 1        # a quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
from atm_writes import AtmLoader

from atm_assets.core.catalog import catalog
from atm_assets.core.datasets import ADJ_FACTOR, DAILY, SYNC_COMMIT, SYNCED_AT, TableSpec
from atm_assets.core.db import Database
from atm_assets.core.readers import read_panel, read_point_in_time
from atm_assets.core.settings import DatabaseSection
from atm_assets.core.validation import validate_rows
from atm_assets.core.writer import TableWriter
from atm_assets.sandbox.dataset import SandboxDataset

ROOT = Path(__file__).resolve().parent.parent
FINA = catalog()["fina_indicator"]
MARKET = (DAILY, ADJ_FACTOR)


# -- the cache of answers --


def _year_answers(args: tuple[str, int]) -> int:
    """Every open day's daily and adj_factor answers of `year` into the cache; rows written."""
    cache, year = args
    sandbox = SandboxDataset()
    cal = sandbox.trade_cal("SSE", f"{year}0101", f"{year}1231", is_open=1)
    days = sorted(r["cal_date"] for r in cal)
    written = 0
    for spec in MARKET:
        rows = [r for day in days for r in getattr(sandbox, spec.name)(trade_date=day)]
        frame = pd.DataFrame(rows, columns=list(spec.fields))
        frame.to_parquet(Path(cache) / spec.name / f"{year}.parquet", index=False)
        written += len(frame)
    return written


def _fina_answers(args: tuple[str, int, int]) -> int:
    cache, first, last = args
    sandbox = SandboxDataset()
    rows: list[dict[str, Any]] = []
    for year in range(first, last + 1):
        for mmdd in ("0331", "0630", "0930", "1231"):
            rows += sandbox.rows(FINA.api_name, {"period": f"{year}{mmdd}"})
    frame = pd.DataFrame(rows, columns=list(FINA.fields))
    frame.to_parquet(Path(cache) / FINA.name / "all.parquet", index=False)
    return len(frame)


def build_cache(cache: Path, years: list[int]) -> None:
    missing = [y for y in years if not (cache / "adj_factor" / f"{y}.parquet").exists()]
    marker = cache / FINA.name / f"{years[0]}-{years[-1]}"
    for spec in (*MARKET, FINA):
        (cache / spec.name).mkdir(parents=True, exist_ok=True)
    if not missing and marker.exists():
        return
    began = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:
        jobs = [pool.submit(_year_answers, (str(cache), y)) for y in missing]
        if not marker.exists():
            jobs.append(pool.submit(_fina_answers, (str(cache), years[0], years[-1])))
        rows = sum(j.result() for j in jobs)
    for old in (cache / FINA.name).glob("*-*"):
        old.unlink()
    marker.touch()
    print(f"cache: {rows:,} rows generated in {time.perf_counter() - began:.0f} s ({cache})")


def answer_days(cache: Path, spec: TableSpec, year: int) -> Iterator[tuple[str, pd.DataFrame]]:
    frame = pd.read_parquet(cache / spec.name / f"{year}.parquet")
    for day, rows in frame.groupby("trade_date", sort=True):
        yield str(day), rows.reset_index(drop=True)


# -- targets --


class Target:
    """One database loaded by ATM's write path (see AtmLoader), its size, its load times."""

    def __init__(
        self, name: str, db: Database, size: Callable[[], float], interval: int, tmp: Path
    ) -> None:
        self.name = name
        self.db = db
        self.size = size
        self.loader = AtmLoader(db, [*MARKET, FINA], interval, tmp, name)
        self.seconds = {"market": 0.0, FINA.name: 0.0}

    @property
    def groups(self) -> dict[str, list[list[str]]]:
        return self.loader.groups

    def write(
        self, phase: str, spec: TableSpec, partition: dict[str, str], frame: pd.DataFrame
    ) -> None:
        self.seconds[phase] += self.loader.add(spec, partition, frame)

    def flush(self, phase: str, spec: TableSpec) -> None:
        self.seconds[phase] += self.loader.flush(spec)

    def close(self) -> None:
        self.loader.close()


def file_size(path: str) -> Callable[[], float]:
    def size() -> float:
        files = [Path(path), Path(path + ".wal"), Path(path + "-wal")]
        return sum(f.stat().st_size for f in files if f.exists()) / 1e6

    return size


def pg_size(db: Database) -> Callable[[], float]:
    def size() -> float:
        engine = db.create_engine()
        with engine.connect() as conn:
            total = conn.execute(
                sa.text(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = :s AND c.relkind = 'r'"
                ),
                {"s": db.schema},
            ).scalar_one()
        engine.dispose()
        return int(total) / 1e6

    return size


def _typed(raw: pa.Table, spec: TableSpec) -> pa.Table:
    columns = []
    for column in spec.columns:
        values = raw[column.name]
        if column.type == "date":
            values = pc.cast(pc.strptime(values, "%Y%m%d", "s"), pa.date32())
        elif column.type == "float":
            values = pc.cast(values, pa.float64())
        columns.append(values)
    return pa.table(columns, names=list(spec.fields))


def duckdb_bulk_load(
    path: str, cache: Path, years: list[int], split: str, groups: dict[str, list[list[str]]]
) -> float:
    """DuckDB's own bulk load of the same rows into the same tables (keys included), typing
    untimed: one INSERT … SELECT over the typed Arrow rows per year and dataset (`split`
    "year"), per trade date and dataset ("day": each its own commit), or per group of trade
    dates ATM's DuckDB load committed together ("group": the same transactions); seconds."""
    db = Database(DatabaseSection(duckdb_path=path))
    engine = db.create_engine()
    for spec in MARKET:
        TableWriter(engine, spec).ensure_table()
    engine.dispose()
    conn = duckdb.connect(path)
    seconds = 0.0
    for spec in MARKET:
        cols = ", ".join(f'"{c}"' for c in [*spec.fields, SYNCED_AT, SYNC_COMMIT])
        insert = f"INSERT INTO {spec.name} ({cols}) SELECT *, now(), 'bulk' FROM batch"
        for batch in _bulk_batches(cache, years, spec, split, groups.get(spec.name, [])):  # noqa: B007 - scanned by name
            began = time.perf_counter()
            conn.execute(insert)
            seconds += time.perf_counter() - began
    conn.close()
    return seconds


def _bulk_batches(
    cache: Path, years: list[int], spec: TableSpec, split: str, groups: list[list[str]]
) -> Iterator[pa.Table]:
    """The typed rows of `spec`, batch by batch, in the order of the load."""
    typed: dict[int, pa.Table] = {}

    def year(y: int) -> pa.Table:
        if y not in typed:
            typed.clear()  # groups go forward in time: one year (or two) held at once
            typed[y] = _typed(pq.read_table(cache / spec.name / f"{y}.parquet"), spec)
        return typed[y]

    if split == "group":
        for tasks in groups:
            days = sorted(dt.datetime.strptime(t.rsplit("_", 1)[1], "%Y%m%d").date() for t in tasks)
            parts = []
            for y in sorted({d.year for d in days}):
                rows = year(y)
                parts.append(rows.filter(pc.is_in(rows["trade_date"], pa.array(days, pa.date32()))))
            yield pa.concat_tables(parts)
        return
    for y in years:
        rows = year(y)
        if split == "year":
            yield rows
            continue
        for day in pc.unique(rows["trade_date"]).sort():
            yield rows.filter(pc.equal(rows["trade_date"], day))


# -- reads --


def timed(repeat: int, read: Callable[[], pd.DataFrame]) -> tuple[float, list[float], Any]:
    runs, answer = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        answer = read()
        runs.append(time.perf_counter() - began)
    return statistics.median(runs), runs, answer


def digest(frame: pd.DataFrame) -> str:
    """Shape and rounded sums: equal answers from different databases agree on these."""
    values = frame.select_dtypes("number").to_numpy(dtype="float64")
    rows, cols = frame.shape
    return f"{rows}x{cols} sum={np.nansum(values):.4f} nan={np.isnan(values).sum()}"


def measure_reads(
    name: str,
    db: Database,
    repeat: int,
    window: tuple[dt.date, dt.date],
    results: dict[str, Any],
    digests: dict[str, dict[str, str]],
) -> None:
    """The qfq close panel and the point-in-time join on `db`, into `results[name]`."""
    start, end = window
    engine = db.create_engine()
    schema = db.schema
    seconds, runs, panel = timed(
        repeat, partial(read_panel, engine, ["close"], start, end, "qfq", None, schema, True)
    )
    print(f"{name}: panel {seconds:.2f} s", flush=True)
    out = results.setdefault(name, {})
    out["panel_s"] = round(seconds, 2)
    out["panel_runs"] = [round(r, 2) for r in runs]
    out["panel_shape"] = list(panel.shape)
    digests["panel"][name] = digest(panel)
    seconds, runs, pit = timed(
        repeat,
        partial(read_point_in_time, engine, FINA.name, ["roe", "eps"], start, end, None, schema),
    )
    out["pit_s"] = round(seconds, 2)
    out["pit_runs"] = [round(r, 2) for r in runs]
    out["pit_rows"] = len(pit)
    digests["pit"][name] = digest(pit[["roe", "eps"]])
    engine.dispose()
    print(f"{name}: {out}", flush=True)


def reads_only(args: argparse.Namespace) -> None:
    """Measure the reads again on the files a full run kept in --workdir (research-STAMP.*),
    updating the reads in --out; the loads' figures stay those of that run."""
    work = Path(args.workdir)
    out = json.loads(Path(args.out).read_text())
    start, end = (dt.date.fromisoformat(d) for d in out["panel_window"])
    digests = out["digests"]
    for name, suffix, key in (("sqlite", "db", "sqlite_path"), ("duckdb", "duckdb", "duckdb_path")):
        path = str(work / f"research-{args.reads_only}.{suffix}")
        section = DatabaseSection(**{key: path})
        out["results"][name]["size_mb"] = round(file_size(path)(), 1)
        measure_reads(name, Database(section), args.repeat, (start, end), out["results"], digests)
    for name in out["results"]:
        if name in ("sqlite", "duckdb"):
            out["results"][name]["reads_measured"] = "again, after the load (--reads-only)"
    out["answers_agree"] = {kind: len(set(d.values())) == 1 for kind, d in digests.items()}
    duck, lite = out["results"]["duckdb"], out["results"]["sqlite"]
    out["panel_sqlite_over_duckdb"] = round(lite["panel_s"] / duck["panel_s"], 1)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--end-year", type=int, default=2024)
    parser.add_argument("--panel-years", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", help="also PostgreSQL (a SQLAlchemy URL; a new schema is used)")
    parser.add_argument(
        "--checkpoint-rows",
        type=int,
        default=500_000,
        help="ATM's checkpoint interval in rows (batch size 1,000 × checkpoint_every): small "
        "partitions that fit share one transaction",
    )
    parser.add_argument(
        "--targets", default="sqlite,duckdb", help="embedded targets to load (comma-separated)"
    )
    parser.add_argument("--cache", default=str(ROOT / ".bench-cache" / "research"))
    parser.add_argument("--workdir", help="keep the database files here (default: a temp dir)")
    parser.add_argument("--out", default=str(ROOT / "docs/bench_research.json"))
    parser.add_argument(
        "--reads-only",
        metavar="STAMP",
        help="only measure the reads again, on the files research-STAMP.* in --workdir",
    )
    args = parser.parse_args()
    if args.reads_only:
        reads_only(args)
        return

    years = list(range(args.end_year - args.years + 1, args.end_year + 1))
    cache = Path(args.cache)
    build_cache(cache, years)
    tmp = tempfile.TemporaryDirectory()
    work = Path(args.workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    stamp = uuid.uuid4().hex[:8]
    targets = []
    interval = args.checkpoint_rows
    for name, section in (
        ("sqlite", DatabaseSection(sqlite_path=str(work / f"research-{stamp}.db"))),
        ("duckdb", DatabaseSection(duckdb_path=str(work / f"research-{stamp}.duckdb"))),
    ):
        if name not in args.targets.split(","):
            continue
        path = section.duckdb_path if name == "duckdb" else section.sqlite_path
        assert path is not None
        targets.append(Target(name, Database(section), file_size(path), interval, work))
    pg_db = None
    if args.url:
        pg_db = Database(DatabaseSection(db_schema=f"bench_research_{stamp}"), url=args.url)
        targets.append(Target("postgresql", pg_db, pg_size(pg_db), interval, work))

    rows = {spec.name: 0 for spec in (*MARKET, FINA)}
    codes: set[str] = set()
    began = time.perf_counter()
    for year in years:
        for (day, bars), (_, factors) in zip(
            answer_days(cache, DAILY, year), answer_days(cache, ADJ_FACTOR, year), strict=True
        ):
            for spec, answer in ((DAILY, bars), (ADJ_FACTOR, factors)):
                frame = validate_rows(answer, spec, {"trade_date": day})
                rows[spec.name] += len(frame)
                for target in targets:
                    target.write("market", spec, {"trade_date": day}, frame)
            codes.update(bars["ts_code"])
        print(
            f"{year}: {rows['daily']:,} daily rows so far; "
            + ", ".join(f"{t.name} {t.seconds['market']:.0f} s" for t in targets)
            + f" ({time.perf_counter() - began:.0f} s)",
            flush=True,
        )
    for target in targets:
        for spec in MARKET:
            target.flush("market", spec)
    fina = pd.read_parquet(cache / FINA.name / "all.parquet")
    for period, answer in fina.groupby("end_date", sort=True):
        frame = validate_rows(answer.reset_index(drop=True), FINA, {"period": str(period)})
        rows[FINA.name] += len(frame)
        for target in targets:
            target.write(FINA.name, FINA, {"period": str(period)}, frame)
    for target in targets:
        target.flush(FINA.name, FINA)
        target.close()

    market_rows = rows["daily"] + rows["adj_factor"]
    results: dict[str, Any] = {}
    for target in targets:
        results[target.name] = {
            "load_s": round(target.seconds["market"], 1),
            "load_rows_per_s": round(market_rows / target.seconds["market"]),
            "fina_load_s": round(target.seconds[FINA.name], 1),
            "size_mb": round(target.size(), 1),
        }
    groups = next((t.groups for t in targets if t.name == "duckdb"), {})
    for split in ("year", "group", "day"):
        name = f"duckdb_bulk_per_{split}"
        bulk_path = str(work / f"{name}-{stamp}.duckdb")
        bulk = duckdb_bulk_load(bulk_path, cache, years, split, groups)
        results[name] = {
            "load_s": round(bulk, 1),
            "load_rows_per_s": round(market_rows / bulk),
            "size_mb": round(file_size(bulk_path)(), 1),
        }
        print(f"{name}: {results[name]}", flush=True)

    end = dt.date(args.end_year, 12, 31)
    start = dt.date(args.end_year - args.panel_years + 1, 1, 1)
    digests: dict[str, dict[str, str]] = {"panel": {}, "pit": {}}
    for target in targets:
        measure_reads(target.name, target.db, args.repeat, (start, end), results, digests)
    agree = {kind: len(set(d.values())) == 1 for kind, d in digests.items()}
    if pg_db is not None:
        engine = pg_db.create_engine()
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{pg_db.schema}" CASCADE'))
        engine.dispose()

    out: dict[str, Any] = {
        "years": [years[0], years[-1]],
        "panel_window": [start.isoformat(), end.isoformat()],
        "rows": rows,
        "stocks": len(codes),
        "checkpoint_rows": interval,
        "market_transactions": {
            t.name: sum(len(t.groups[spec.name]) for spec in MARKET) for t in targets
        },
        "repeat": args.repeat,
        "results": results,
        "answers_agree": agree,
        "digests": digests,
    }
    if "duckdb" in results:
        for split in ("year", "group", "day"):
            out[f"duckdb_load_over_bulk_per_{split}"] = round(
                results["duckdb"]["load_s"] / results[f"duckdb_bulk_per_{split}"]["load_s"], 2
            )
    if "duckdb" in results and "sqlite" in results:
        out["panel_sqlite_over_duckdb"] = round(
            results["sqlite"]["panel_s"] / results["duckdb"]["panel_s"], 1
        )
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
