"""Parquet exports: typed, hive-partitioned, read back equal by pyarrow, DuckDB and polars;
incremental; atomic; the controller's `export`."""

import datetime as dt
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from atm_assets.api import StockIngestorService
from atm_assets.core.catalog import BUILTIN
from atm_assets.core.datasets import DAILY, STOCK_BASIC
from atm_assets.core.errors import ConfigError
from atm_assets.core.export import MANIFEST, Exporter, export_dataset, layout
from atm_assets_tests.conftest import ALL_TARGETS
from atm_assets_tests.helpers import PROJECT_ROOT, controller

BY_NAME = {s.name: s for s in BUILTIN}
SMALL = {
    f"{e}:{s}": n for e in ("SSE", "SZSE", "BSE") for s, n in zip("LDPG", (4, 1, 0, 0), strict=True)
}


@pytest.fixture
def home(workdir) -> str:
    shutil.copy(PROJECT_ROOT / "dagster.yaml", Path(workdir) / "dagster.yaml")
    return workdir


def sync_days(start: str, end: str) -> None:
    with StockIngestorService(log_level="WARNING") as ingestor:
        ingestor.ingest("trade_cal", exchange="SSE")
        ingestor.ingest("daily", start_date=start, end_date=end)


def table_records(target, spec) -> list[dict]:
    rows = target.writer(spec).read()[spec.fields].to_dict("records")
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in spec.key))


def by_key(records: list[dict], spec) -> list[dict]:
    return sorted(records, key=lambda r: tuple(str(r[k]) for k in spec.key))


def mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*.parquet")}


@pytest.mark.pure
def test_layouts_follow_the_partition_scheme():
    assert layout(DAILY).date_column == "trade_date" and layout(DAILY).monthly
    assert layout(BY_NAME["daily_hfq"]).monthly
    assert (layout(BY_NAME["monthly"]).date_column, layout(BY_NAME["monthly"]).monthly) == (
        "trade_date",
        False,
    )
    fina = layout(BY_NAME["fina_indicator"])
    assert (fina.date_column, fina.monthly) == ("end_date", False)
    assert layout(STOCK_BASIC).date_column is None
    assert layout(DAILY).widen(dt.date(2024, 2, 7), dt.date(2024, 2, 9)) == (
        dt.date(2024, 2, 1),
        dt.date(2024, 2, 29),
    )
    assert layout(DAILY).bounds("year=2024/month=12") == (
        dt.date(2024, 12, 1),
        dt.date(2024, 12, 31),
    )


@pytest.mark.parametrize("target", ALL_TARGETS, indirect=True)
def test_export_reads_back_equal_and_only_changed_months_are_rewritten(target, sb, atm_env, home):
    sb.set_sizes(SMALL)
    sync_days("20240125", "20240202")
    out = Path(home) / "export"
    engine = target.engine()
    first = export_dataset(engine, DAILY, out, target.schema, chunk_rows=7)
    expected = table_records(target, DAILY)
    assert (first.written, first.unchanged, first.removed) == (2, 0, 0)
    assert first.rows_written == first.rows_total == len(expected) > 0
    root = out / "daily"
    assert sorted(mtimes(root)) == [
        "year=2024/month=01/part-0.parquet",
        "year=2024/month=02/part-0.parquet",
    ]
    # Typed columns, not text.
    schema = pq.read_schema(root / "year=2024/month=01/part-0.parquet")
    assert schema.field("trade_date").type == pa.date32()
    assert schema.field("close").type == pa.float64()
    assert schema.field("ts_code").type == pa.string()

    # pyarrow (hive partitioning), DuckDB and polars read the directory as it is.
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table()
    assert set(table.column("year").to_pylist()) == {2024}
    assert by_key(table.select(DAILY.fields).to_pylist(), DAILY) == expected
    import duckdb

    rel = duckdb.sql(
        f"SELECT {', '.join(DAILY.fields)} FROM read_parquet('{root}/**/*.parquet', "
        "hive_partitioning = true)"
    )
    got = [dict(zip(DAILY.fields, row, strict=True)) for row in rel.fetchall()]
    assert by_key(got, DAILY) == expected
    import polars as pl

    frame = pl.scan_parquet(f"{root}/**/*.parquet", hive_partitioning=True).collect()
    assert by_key(frame.select(DAILY.fields).to_dicts(), DAILY) == expected

    # Nothing changed: nothing rewritten.
    before = mtimes(root)
    again = export_dataset(engine, DAILY, out, target.schema)
    assert (again.written, again.unchanged) == (0, 2)
    assert mtimes(root) == before

    # One new day in February: only February's file is written again.
    sync_days("20240205", "20240205")
    third = export_dataset(engine, DAILY, out, target.schema)
    assert (third.written, third.unchanged, third.groups) == (1, 1, ["year=2024/month=02"])
    after = mtimes(root)
    jan, feb = "year=2024/month=01/part-0.parquet", "year=2024/month=02/part-0.parquet"
    assert after[jan] == before[jan] and after[feb] != before[feb]
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table()
    assert by_key(table.select(DAILY.fields).to_pylist(), DAILY) == table_records(target, DAILY)


def test_a_killed_export_leaves_the_old_file_and_no_half_file(sqlite_target, sb, atm_env, home):
    sb.set_sizes(SMALL)
    sync_days("20240102", "20240103")
    out = Path(home) / "export"
    engine = sqlite_target.engine()
    export_dataset(engine, DAILY, out)
    file = out / "daily/year=2024/month=01/part-0.parquet"
    before = file.read_bytes()

    exporter = Exporter(engine, DAILY, out, chunk_rows=3)
    chunks = exporter._chunks

    def dies_after_one_chunk(group):
        for i, batch in enumerate(chunks(group)):
            if i == 1:
                raise KeyboardInterrupt
            yield batch

    exporter._chunks = dies_after_one_chunk
    with pytest.raises(KeyboardInterrupt):
        exporter.export(full=True)
    assert file.read_bytes() == before
    assert [p.name for p in file.parent.iterdir()] == ["part-0.parquet"]


def test_a_removed_month_loses_its_file_and_ranges_cover_whole_months(
    sqlite_target, sb, atm_env, home
):
    import sqlalchemy as sa

    sb.set_sizes(SMALL)
    sync_days("20240130", "20240201")
    out = Path(home) / "export"
    engine = sqlite_target.engine()
    # A range inside February exports all of February and leaves January alone.
    only_feb = export_dataset(
        engine, DAILY, out, start=dt.date(2024, 2, 1), end=dt.date(2024, 2, 1)
    )
    assert only_feb.groups == ["year=2024/month=02"]
    export_dataset(engine, DAILY, out)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM daily WHERE trade_date >= '2024-02-01'"))
    gone = export_dataset(engine, DAILY, out)
    assert (gone.written, gone.unchanged, gone.removed) == (0, 1, 1)
    assert sorted(mtimes(out / "daily")) == ["year=2024/month=01/part-0.parquet"]
    assert (out / "daily" / MANIFEST).is_file()


def test_export_of_a_table_never_synced_is_one_error(sqlite_target, home):
    with pytest.raises(ConfigError, match="table daily does not exist: sync daily first"):
        export_dataset(sqlite_target.engine(), DAILY, Path(home) / "x")


@pytest.mark.cli
def test_controller_export_prints_one_line_and_refuses_bad_input(sqlite_target, sb, atm_env, home):
    sb.set_sizes(SMALL)
    sync_days("20240102", "20240103")
    done = controller(
        "export", "daily", "--format", "parquet", "--out", "out",
        "--start-date", "20240102", "--end-date", "20240103", cwd=home,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Exported daily to ")
    assert "1 file(s) written, 0 unchanged, 0 removed" in done.stdout
    assert (Path(home) / "out/daily/year=2024/month=01/part-0.parquet").is_file()
    for args, message in (
        (("daily", "--format", "csv", "--out", "o"), "unknown export format 'csv'"),
        (("nope", "--out", "o"), "unknown dataset 'nope'"),
        (("daily", "--out", "o", "--start-date", "2024-13-01"), "not a date"),
    ):
        bad = controller("export", *args, cwd=home)
        assert bad.returncode == 2, bad.stderr
        assert bad.stderr.count("\n") == 1 and message in bad.stderr, bad.stderr


def test_export_assets_are_opt_in_and_write_the_same_files(
    sqlite_target, sb, atm_env, home, monkeypatch
):
    from dagster import materialize

    from atm_assets.assets.exports import EXPORT_GROUP, export_asset
    from atm_assets.core.settings import load_settings
    from atm_assets.definitions import build_definitions
    from atm_assets.resources import DatabaseResource

    def export_keys() -> dict[str, str]:
        defs = build_definitions(load_settings())
        graph = defs.resolve_asset_graph()
        return {
            k.to_user_string(): graph.get(k).group_name
            for k in graph.get_all_asset_keys()
            if k.to_user_string().startswith("export_")
        }

    monkeypatch.delenv("ATM_EXPORT_DIR", raising=False)
    assert export_keys() == {}
    out = Path(home) / "exports"
    monkeypatch.setenv("ATM_EXPORT_DIR", str(out))
    keys = export_keys()
    assert keys["export_daily"] == keys["export_daily_hfq"] == EXPORT_GROUP

    sb.set_sizes(SMALL)
    sync_days("20240102", "20240103")
    database = DatabaseResource.from_settings(load_settings().database)
    result = materialize([export_asset(DAILY, str(out))], resources={"database": database})
    assert result.success
    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    assert meta["files_written"].value == 1 and meta["rows_written"].value > 0
    table = ds.dataset(out / "daily", format="parquet", partitioning="hive").to_table()
    assert by_key(table.select(DAILY.fields).to_pylist(), DAILY) == table_records(
        sqlite_target, DAILY
    )
    again = materialize([export_asset(DAILY, str(out))], resources={"database": database})
    (event,) = again.get_asset_materialization_events()
    assert event.materialization.metadata["files_unchanged"].value == 1
