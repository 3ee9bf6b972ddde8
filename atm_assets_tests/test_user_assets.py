"""Users' own assets on ATM's data: every dataset loads by its partition scheme's meaning, a
returned DataFrame becomes a table, and a module named in config joins the code location."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetIn, AssetKey, InMemoryIOManager, asset, materialize

from atm_assets.assets.derived import daily_hfq, stock_universe
from atm_assets.assets.fetched import fetched_asset
from atm_assets.core.catalog import BUILTIN, build_catalog
from atm_assets.core.datasets import TableSpec
from atm_assets.core.errors import ConfigError
from atm_assets.core.settings import load_settings
from atm_assets.core.writer import TableWriter
from atm_assets.definitions import build_definitions, build_resources
from atm_assets.partitions import partitions_for, row_bounds
from atm_assets.user_assets import USER_GROUP
from atm_assets_tests.helpers import CYQ, PROJECT_ROOT, controller

# -- each scheme's meaning --


@pytest.mark.pure
def test_a_partition_key_means_the_rows_its_scheme_puts_there():
    specs = build_catalog(None)
    day = dt.date
    # A week is keyed by its Monday and dated by its last trade day: every day of it counts.
    assert row_bounds(specs["weekly"], ["2024-01-08"]) == [
        {"trade_date": (day(2024, 1, 8), day(2024, 1, 14))}
    ]
    assert row_bounds(specs["monthly"], ["2024-02-01"]) == [
        {"trade_date": (day(2024, 2, 1), day(2024, 2, 29))}
    ]
    # A report period is keyed by the quarter's first day; its rows carry the quarter's end.
    assert row_bounds(specs["income"], ["2024-04-01"]) == [
        {"end_date": (day(2024, 6, 30), day(2024, 6, 30))}
    ]
    assert row_bounds(specs["index_weight"], ["000300.SH|2024-01-01"]) == [
        {"index_code": ("000300.SH", "000300.SH"),
         "trade_date": (day(2024, 1, 1), day(2024, 1, 31))}
    ]  # fmt: skip
    assert row_bounds(specs["index_daily"], ["000300.SH|2024-01-01"]) == [
        {"ts_code": ("000300.SH", "000300.SH"),
         "trade_date": (day(2024, 1, 1), day(2024, 12, 31))}
    ]  # fmt: skip
    assert row_bounds(specs["stock_basic"], ["SZSE|D"]) == [
        {"exchange": ("SZSE", "SZSE"), "list_status": ("D", "D")}
    ]
    assert row_bounds(specs["index_basic"], ["CSI"]) == [{"market": ("CSI", "CSI")}]
    assert row_bounds(specs["daily"], ["2024-01-02"]) == [
        {"trade_date": (day(2024, 1, 2), day(2024, 1, 2))}
    ]


def _value(column, i: int, where: dict):
    if column.name in where:
        lo, hi = where[column.name]
        return hi if i == 1 else lo
    if column.type == "date":
        return dt.date(2024, 1, 2) + dt.timedelta(days=i)
    if column.type == "int":
        return i
    if column.type == "float":
        return 0.5 + i
    return f"v{i}"


def _outside(where: dict) -> dict:
    out = {}
    for column, (lo, _) in where.items():
        out[column] = (
            (lo - dt.timedelta(days=400),) * 2 if isinstance(lo, dt.date) else ("ZZZ",) * 2
        )
    return out


def sample(spec: TableSpec, key: str | None) -> tuple[pd.DataFrame, int]:
    """Rows of the table for a test: one or two inside partition `key` (two when its key
    leaves room), one outside. Returns the frame and how many are inside."""
    where = row_bounds(spec, [key])[0] if key is not None else {}
    point_key = all(k in where and where[k][0] == where[k][1] for k in spec.key)
    inside = 1 if point_key else 2
    rows = [{c.name: _value(c, i, where) for c in spec.columns} for i in range(inside)]
    if key is not None:
        rows.append({c.name: _value(c, 2, _outside(where)) for c in spec.columns})
    return pd.DataFrame(rows, dtype=object), inside if key is not None else len(rows)


# The derived tables too: a user's asset may build on ATM's own results.
DERIVED = {"daily_hfq": daily_hfq, "stock_universe": stock_universe}
CATALOG = [s for s in BUILTIN if s.fetched] + [build_catalog(None)[name] for name in DERIVED]


@pytest.mark.parametrize("spec", CATALOG, ids=[s.name for s in CATALOG])
def test_every_dataset_loads_for_a_downstream_asset(spec, sqlite_target, monkeypatch):
    """A user's asset with the dataset's partitions reads exactly that partition's rows (an
    unpartitioned one: the whole table), through ATM's IO manager."""
    definition = partitions_for(spec)
    key = str(definition.get_partition_keys()[-1]) if definition is not None else None
    frame, inside = sample(spec, key)
    writer = TableWriter(sqlite_target.engine(), spec)
    writer.ensure_table()
    with writer.engine.begin() as conn:
        # A dataset without a natural key is written the way ATM writes it: replaced.
        writer.intervals("upsert" if spec.key else "replace").write(conn, frame, "seed")
    upstream = fetched_asset(spec) if spec.fetched else DERIVED[spec.name]

    @asset(
        name=f"reads_{spec.name}",
        partitions_def=definition,
        ins={"table": AssetIn(key=AssetKey(spec.name))},
        io_manager_key="memory",
    )
    def reader(table: pd.DataFrame) -> pd.DataFrame:
        return table

    memory = InMemoryIOManager()
    result = materialize(
        [upstream.to_source_asset(), reader],
        partition_key=key,
        resources={**build_resources(load_settings()), "memory": memory},
    )
    assert result.success
    loaded = result.output_for_node(f"reads_{spec.name}")
    assert len(loaded) == inside, loaded
    if key is not None:
        (bounds,) = row_bounds(spec, [key])
        for column, (lo, hi) in bounds.items():
            assert loaded[column].map(lambda v, lo=lo, hi=hi: lo <= v <= hi).all()


def test_a_period_loads_every_version_or_the_latest(sqlite_target):
    spec = build_catalog(None)["income"]
    frame, _ = sample(spec, "2024-04-01")
    first = frame.iloc[[0]].copy()
    later = first.copy()
    later["f_ann_date"] = first["f_ann_date"].iloc[0] + dt.timedelta(days=30)
    later["ann_date"] = later["f_ann_date"]
    rows = pd.concat([first, later], ignore_index=True)
    writer = TableWriter(sqlite_target.engine(), spec)
    writer.ensure_table()
    with writer.engine.begin() as conn:
        writer.intervals("upsert").write(conn, rows, "seed")
    upstream = fetched_asset(spec)
    outputs = {}
    for name, meta in (("every", {}), ("latest", {"atm/versions": "latest"})):

        @asset(
            name=f"income_{name}",
            partitions_def=upstream.partitions_def,
            ins={"income": AssetIn(metadata=meta)},
            io_manager_key="memory",
        )
        def reader(income: pd.DataFrame) -> pd.DataFrame:
            return income

        result = materialize(
            [upstream.to_source_asset(), reader],
            partition_key="2024-04-01",
            resources={**build_resources(load_settings()), "memory": InMemoryIOManager()},
        )
        assert result.success
        outputs[name] = result.output_for_node(f"income_{name}")
    assert len(outputs["every"]) == 2
    (only,) = outputs["latest"].to_dict("records")
    assert only["f_ann_date"] == later["f_ann_date"].iloc[0]


def test_an_unpartitioned_reader_narrows_its_window(target):
    """`atm/since` and `atm/last_days` on an unpartitioned asset's input load only the rows
    dated from that day on (the table's trade_date), and no window loads the whole table."""
    spec = build_catalog(None)["daily"]
    today = dt.date.today()
    days = [dt.date(2023, 12, 28), dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    days += [today - dt.timedelta(days=n) for n in (40, 5, 1)]
    rows = [
        {c.name: _value(c, i, {"trade_date": (day, day), "ts_code": (code, code)})
         for c in spec.columns}
        for day in days
        for i, code in enumerate(("000001.SZ", "600000.SH"))
    ]  # fmt: skip
    seeded = pd.DataFrame(rows, dtype=object)
    writer = TableWriter(target.engine(), spec, target.schema)
    writer.ensure_table()
    with writer.engine.begin() as conn:
        writer.intervals("upsert").write(conn, seeded, "seed")
    assert len(writer.read()) == len(days) * 2
    upstream = fetched_asset(spec)
    windows = {
        "whole": ({}, days[0]),
        "since": ({"atm/since": "2024-01-02"}, dt.date(2024, 1, 2)),
        "last_days": ({"atm/last_days": 10}, today - dt.timedelta(days=10)),
    }
    for name, (meta, first) in windows.items():

        @asset(
            name=f"window_{name}", ins={"daily": AssetIn(metadata=meta)}, io_manager_key="memory"
        )
        def reader(daily: pd.DataFrame) -> pd.DataFrame:
            return daily

        result = materialize(
            [upstream.to_source_asset(), reader],
            resources={**build_resources(load_settings()), "memory": InMemoryIOManager()},
        )
        assert result.success
        loaded = result.output_for_node(f"window_{name}")
        dates = pd.to_datetime(loaded["trade_date"]).dt.date
        expected = seeded[seeded["trade_date"] >= first]
        assert len(loaded) == len(expected), name
        assert dates.min() == expected["trade_date"].min(), name
        assert dates.max() == today - dt.timedelta(days=1), name
    # The windows did narrow: 12 rows in the table, 10 since 2024-01-02, 4 in the last 10 days.
    assert [len(seeded[seeded["trade_date"] >= f]) for _, f in windows.values()] == [12, 10, 4]


# -- the door: a module named in config --


def test_a_module_that_does_not_import_is_named(sqlite_target, monkeypatch):
    monkeypatch.setenv("ATM_USER_ASSETS", "no_such_package.factors")
    with pytest.raises(ConfigError) as caught:
        build_definitions(load_settings())
    assert str(caught.value).startswith(
        "ATM_USER_ASSETS (extensions.user_assets): cannot import no_such_package.factors: "
        "ModuleNotFoundError"
    )


def test_an_asset_named_like_a_dataset_is_refused(sqlite_target, tmp_path, monkeypatch):
    (tmp_path / "clash.py").write_text(
        "from dagster import asset\n\n@asset\ndef daily():\n    return 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ATM_USER_ASSETS", "clash")
    with pytest.raises(ConfigError, match="asset daily of clash has the name of one of ATM's"):
        build_definitions(load_settings())


def test_user_assets_join_under_their_own_group(sqlite_target, monkeypatch):
    monkeypatch.setenv("ATM_USER_ASSETS", "examples.my_factors")
    monkeypatch.syspath_prepend(str(PROJECT_ROOT))
    defs = build_definitions(load_settings())
    graph = {a.key.to_user_string(): a for a in defs.assets if hasattr(a, "group_names_by_key")}
    for name in ("chip_signal", "chip_breadth"):
        assert graph[name].group_names_by_key[AssetKey(name)] == USER_GROUP
    assert {k.to_user_string() for k in graph["chip_signal"].dependency_keys} == {"cyq_perf"}


DOWNSTREAM_OF_DAILY = """
import pandas as pd
from dagster import AllPartitionMapping, AssetIn, asset

from atm_assets.partitions import trade_date_partitions


@asset(
    partitions_def=trade_date_partitions,
    ins={"stock_basic": AssetIn(partition_mapping=AllPartitionMapping())},
)
def listed_movers(daily: pd.DataFrame, stock_basic: pd.DataFrame) -> pd.DataFrame:
    return daily[daily["ts_code"].isin(stock_basic["ts_code"])]
"""


def test_a_user_asset_is_held_back_by_a_failed_blocking_check_by_default(
    sqlite_target, atm_env, sb, tmp_path, monkeypatch
):
    """A user's asset downstream of daily, declaring no automation condition, is not requested
    for a day whose rows_complete check failed, and is once the day is synced whole and passes;
    the stock list it reads whole neither holds it back nor rebuilds every day."""
    from dagster import DagsterInstance, Definitions, evaluate_automation_conditions

    from atm_assets_tests.helpers import ALL_RANGE, failure_message, run_job

    (tmp_path / "my_movers.py").write_text(DOWNSTREAM_OF_DAILY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ATM_USER_ASSETS", "my_movers")
    settings = load_settings()
    mine = Definitions(
        assets=build_definitions(settings).assets, resources=build_resources(settings)
    )
    movers = AssetKey("listed_movers")
    assert run_job("trade_cal_job", "SSE").success
    assert run_job("stock_basic_job", ALL_RANGE).success
    sb.set_publication("daily", "20241008", "partial", fraction=0.3)
    with DagsterInstance.ephemeral() as instance:
        tick = evaluate_automation_conditions(mine, instance=instance)
        week = ("2024-09-30", "2024-10-09")
        synced = run_job("market_data_job", week, instance=instance, assets=["daily", "adj_factor"])
        assert "blocking asset check" in failure_message(synced)
        tick = evaluate_automation_conditions(mine, instance=instance, cursor=tick.cursor)
        requested = tick.get_requested_partitions(movers)
        assert "2024-10-08" not in requested
        assert {"2024-09-30", "2024-10-09"} <= requested

        sb.clear_publication("daily")
        again = run_job("market_data_job", "2024-10-08", instance=instance, assets=["daily"])
        assert again.success, failure_message(again)
        tick = evaluate_automation_conditions(mine, instance=instance, cursor=tick.cursor)
        assert tick.get_requested_partitions(movers) == {"2024-10-08"}

        assert run_job("stock_basic_job", "SSE|L", instance=instance).success
        tick = evaluate_automation_conditions(mine, instance=instance, cursor=tick.cursor)
        assert tick.get_num_requested(movers) == 0


@pytest.mark.cli
def test_the_readme_door_end_to_end(sqlite_target, sb, atm_env, workdir):
    """A YAML dataset synced, a user module declared as the README says: its asset reads every
    row of the dataset's partition through `dagster asset materialize`, writes its own table,
    and an unpartitioned asset reads that whole table."""
    Path(workdir, "config").mkdir()
    Path(workdir, "config/datasets.yaml").write_text(CYQ)
    env = {"ATM_USER_ASSETS": "examples.my_factors"}
    assert controller("sync", "trade-cal", "--exchange", "SSE", cwd=workdir).returncode == 0
    synced = controller(
        "sync", "cyq-perf", "--start-date", "20240102", "--end-date", "20240103", cwd=workdir
    )
    assert synced.returncode == 0, synced.stderr
    run_env = {**os.environ, "DAGSTER_HOME": workdir, **env}
    dagster = [sys.executable, "-m", "dagster", "asset"]
    for args in (
        ["materialize", "-m", "atm_assets", "--select", "chip_signal", "--partition", "2024-01-03"],
        ["materialize", "-m", "atm_assets", "--select", "chip_signal", "--partition", "2024-01-02"],
        ["materialize", "-m", "atm_assets", "--select", "chip_breadth"],
    ):
        done = subprocess.run(
            [*dagster, *args], cwd=workdir, env=run_env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
    source = {
        d: sb.dataset.rows("cyq_perf", {"trade_date": d, "ts_code": "600000.SH"})
        for d in ("20240102", "20240103")
    }
    with sqlite_target.engine().connect() as conn:
        signal = pd.read_sql("SELECT * FROM chip_signal ORDER BY trade_date, ts_code", conn)
        breadth = pd.read_sql("SELECT * FROM chip_breadth ORDER BY trade_date", conn)
    assert len(signal) == sum(len(v) for v in source.values())  # every row, once
    expected = sorted((r["ts_code"], r["winner_rate"]) for r in source["20240103"])
    day3 = signal[signal["trade_date"] == "2024-01-03"]
    assert sorted(zip(day3["ts_code"], day3["winner_rate"], strict=True)) == expected
    assert breadth["stocks"].tolist() == [len(source["20240102"]), len(source["20240103"])]
    listed = subprocess.run(
        [*dagster, "list", "-m", "atm_assets"], cwd=workdir, env=run_env, capture_output=True,
        text=True,
    )  # fmt: skip
    assert {"chip_signal", "chip_breadth", "cyq_perf"} <= set(listed.stdout.split())
    status = controller("storage", "status", cwd=workdir)
    assert "Table cyq_perf: " in status.stdout
    for spec in BUILTIN:
        assert f"Table {spec.name}: " in status.stdout


# -- writes: one replace of a partition at a time --


def test_two_replaces_of_one_partition_leave_its_rows_once(target):
    """While another transaction replaces a partition of a user asset's table (no key, so
    nothing else would stop repeated rows), the asset's own replace of that partition waits
    for it to commit and then replaces its rows: 2 rows, not 4. On PostgreSQL this is the
    replace's advisory lock; SQLite has one writer at a time."""
    import threading

    from atm_assets.core.user_tables import reflected_spec
    from atm_assets.partitions import trade_date_partitions

    day = "2024-01-03"

    @asset(partitions_def=trade_date_partitions)
    def day_factor() -> pd.DataFrame:
        return pd.DataFrame(
            {"ts_code": ["000001.SZ", "600000.SH"], "trade_date": [dt.date(2024, 1, 3)] * 2}
        )

    done = []

    def run() -> None:
        result = materialize(
            [day_factor], partition_key=day, resources=build_resources(load_settings())
        )
        done.append(result.success)

    run()  # the table exists, with the day's two rows
    engine = target.engine()
    spec = reflected_spec(engine, target.schema, "day_factor")
    assert spec is not None
    writer = TableWriter(engine, spec, target.schema)
    bounds = [{"trade_date": (dt.date(2024, 1, 3), dt.date(2024, 1, 3))}]
    other = pd.DataFrame(
        {"ts_code": ["000002.SZ", "600001.SH"], "trade_date": [dt.date(2024, 1, 3)] * 2}
    )
    second = threading.Thread(target=run)
    with engine.begin() as conn:
        writer.replace_in(conn, other, bounds, "other-run", [day])
        second.start()
        second.join(timeout=3)
        # Still waiting: without the lock it would have inserted beside the uncommitted rows.
        assert second.is_alive()
    second.join(timeout=60)
    assert done == [True, True]
    rows = sorted(r["ts_code"] for r in writer.read().to_dict("records"))
    assert rows == ["000001.SZ", "600000.SH"]


def test_a_run_of_many_partitions_excludes_a_run_of_one_of_them(pg_target):
    """A run's partitions are locked by key, not by its bounds (one time window for all its
    days), so a replace of one of its days waits for it; past 64 partitions the run locks the
    whole table, which still excludes every replace of a day. A disjoint day does not wait."""
    import threading

    from atm_assets.core.user_tables import frame_spec

    frame = pd.DataFrame({"ts_code": ["000001.SZ"], "trade_date": [dt.date(2024, 1, 3)]})
    engine = pg_target.engine()
    writer = TableWriter(engine, frame_spec("many_days", frame, ()), pg_target.schema)
    writer.ensure_table()
    year = [dt.date(2024, 1, 1) + dt.timedelta(days=n) for n in range(366)]

    def waits(held: list[dt.date], day: dt.date) -> bool:
        """Whether a replace of `day` waits while a run replacing `held` is uncommitted.
        Nothing of `day` is stored, so only the lock can make it wait (not a row lock)."""
        bounds = [{"trade_date": (day, day)}]
        later = threading.Thread(
            target=writer.replace, args=(frame.iloc[:0], bounds, [day.isoformat()])
        )
        with engine.begin() as conn:
            window = [{"trade_date": (held[0], held[-1])}]
            writer.replace_in(conn, frame, window, "held", [d.isoformat() for d in held])
            later.start()
            later.join(timeout=2)
            waiting = later.is_alive()
        later.join(timeout=30)
        assert not later.is_alive()
        return waiting

    assert waits(year[:10], dt.date(2024, 1, 3))
    assert not waits(year[:10], dt.date(2024, 6, 1))
    assert waits(year, dt.date(2024, 6, 1))  # 366 keys: the table's lock
