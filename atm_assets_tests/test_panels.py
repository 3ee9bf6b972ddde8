"""Panels on read: bars adjusted in the database as pro_bar adjusts them, point-in-time
financials on every trading day; the same answers from SQLite, PostgreSQL and DuckDB."""

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from atm_assets.api import StockIngestorService
from atm_assets.core.catalog import BUILTIN
from atm_assets.core.datasets import ADJ_FACTOR
from atm_assets.core.dates import parse_day
from atm_assets.core.errors import ConfigError
from atm_assets.core.readers import (
    _wide,
    pro_bar_round_array,
    read_panel,
    read_point_in_time,
    write_frame,
)
from atm_assets.core.writer import TableWriter
from atm_assets_tests.conftest import ALL_TARGETS
from atm_assets_tests.helpers import PROJECT_ROOT, controller

BY_NAME = {s.name: s for s in BUILTIN}
# Eight listed stocks per exchange: six factor changes between mid-June and July 2024.
SIZES = {
    f"{e}:{s}": n for e in ("SSE", "SZSE", "BSE") for s, n in zip("LDPG", (8, 1, 0, 0), strict=True)
}
START, END = "20240617", "20240731"
PRICES = ["open", "high", "low", "close", "pre_close"]
FINA_COLUMNS = ["roe", "eps"]


@pytest.fixture
def home(workdir) -> str:
    shutil.copy(PROJECT_ROOT / "dagster.yaml", Path(workdir) / "dagster.yaml")
    return workdir


def day(text: str) -> dt.date:
    return parse_day(text)


# -- pro_bar, written out from tushare/pro/data_pro.py (1.4.29) on the sandbox's answers --


def FORMAT(x):  # noqa: N802 - pro_bar's own name
    return "%.2f" % x  # noqa: UP031 - pro_bar's own formatting


def pro_bar(daily: pd.DataFrame, fcts: pd.DataFrame, adj: str) -> pd.DataFrame:
    """One stock, as pro_bar computes it: Tushare answers newest first; the factors of the
    range are merged onto the bars, bfilled, and prices formatted to 2 decimals."""
    data = daily.sort_values("trade_date", ascending=False).reset_index(drop=True)
    fcts = fcts.sort_values("trade_date", ascending=False).reset_index(drop=True)
    data = data.set_index("trade_date", drop=False).merge(
        fcts.set_index("trade_date")[["adj_factor"]], left_index=True, right_index=True, how="left"
    )
    data["adj_factor"] = data["adj_factor"].bfill()
    for col in PRICES:
        if adj == "hfq":
            data[col] = data[col] * data["adj_factor"]
        if adj == "qfq":
            data[col] = data[col] * data["adj_factor"] / float(fcts["adj_factor"][0])
        data[col] = data[col].map(FORMAT).astype(float)
    data["change"] = data["close"] - data["pre_close"]
    data["pct_chg"] = data["change"] / data["pre_close"] * 100
    data["pct_chg"] = data["pct_chg"].map(lambda x: FORMAT(x)).astype(float)
    return data.reset_index(drop=True)


def expected_bars(sb, adj: str, dropped: set[tuple[str, str]]) -> pd.DataFrame:
    window = {"start_date": START, "end_date": END}
    daily = pd.DataFrame(sb.dataset.rows("daily", window))
    factors = pd.DataFrame(sb.dataset.rows("adj_factor", window))
    keep = [(c, d) not in dropped for c, d in zip(factors.ts_code, factors.trade_date, strict=True)]
    factors = factors[keep]
    frames = [
        pro_bar(bars, factors[factors.ts_code == code], adj)
        for code, bars in daily.groupby("ts_code")
    ]
    out = pd.concat(frames, ignore_index=True)
    out["trade_date"] = out["trade_date"].map(day)
    return out.sort_values(["trade_date", "ts_code"]).reset_index(drop=True)


def expected_point_in_time(sb, api: str, periods: list[str], extra: dict, known: str) -> dict:
    """(trade date, code) → the report in force: of the rows announced by that day, the
    newest period, then its newest announcement and update_flag."""
    rows = [r for p in periods for r in sb.dataset.rows(api, {"period": p, **extra})]
    days = sb.dataset.rows("daily", {"start_date": START, "end_date": END})
    out = {}
    for bar in days:
        seen = [
            r
            for r in rows
            if r["ts_code"] == bar["ts_code"] and r[known] and r[known] <= bar["trade_date"]
        ]
        best = max(seen, key=lambda r: (r["end_date"], r[known], r["update_flag"]), default=None)
        out[(day(bar["trade_date"]), bar["ts_code"])] = best
    return out


def drop_factors(engine, schema, dropped: set[tuple[str, str]]) -> None:
    table = TableWriter(engine, ADJ_FACTOR, schema).table
    with engine.begin() as conn:
        for code, d in dropped:
            conn.execute(
                table.delete().where(table.c.ts_code == code, table.c.trade_date == day(d))
            )


@pytest.mark.parametrize("target", ALL_TARGETS, indirect=True)
def test_panels_match_pro_bar_and_point_in_time_on_every_database(target, sb, atm_env, home):
    sb.set_sizes(SIZES)
    with StockIngestorService(log_level="WARNING") as ingestor:
        ingestor.ingest("trade_cal", exchange="SSE")
        ingestor.ingest("daily", start_date=START, end_date=END)
        ingestor.ingest("adj_factor", start_date=START, end_date=END)
        ingestor.ingest("fina_indicator", start_period="20231231", end_period="20240630")
        ingestor.ingest("income", start_period="20240331", end_period="20240630")
    engine, schema = target.engine(), target.schema
    factors = sb.dataset.rows("adj_factor", {"start_date": START, "end_date": END})
    changed = sorted(
        {
            a["ts_code"]
            for a in factors
            for b in factors
            if a["ts_code"] == b["ts_code"] and a["adj_factor"] != b["adj_factor"]
        }
    )
    assert len(changed) >= 3, "the window must hold factor changes to adjust for"
    # Missing factors: one mid-window (taken from the bar before, as pro_bar bfills), one on
    # the window's first day (no bar before it in the window: pro_bar leaves it NaN).
    first, second = changed[0], changed[1]
    dropped = {(first, "20240702"), (first, "20240703"), (second, START)}
    drop_factors(engine, schema, dropped)

    engines = {target.kind: engine}
    answers = {}
    for kind, eng in engines.items():
        sch = schema
        for adj in ("qfq", "hfq"):
            got = read_panel(
                eng, [*PRICES, "change", "pct_chg", "vol"], day(START), day(END), adj, schema=sch
            )
            want = expected_bars(sb, adj, dropped)
            assert list(got.columns) == [
                "trade_date",
                "ts_code",
                *PRICES,
                "change",
                "pct_chg",
                "vol",
            ]
            assert got[["trade_date", "ts_code"]].equals(want[["trade_date", "ts_code"]])
            # Every database answers days as dates and numbers as floats.
            assert {type(d) for d in got.trade_date} == {dt.date}
            assert all(got[c].dtype == "float64" for c in [*PRICES, "change", "pct_chg", "vol"])
            for col in [*PRICES, "change", "pct_chg", "vol"]:
                np.testing.assert_allclose(
                    got[col].to_numpy(float), want[col].to_numpy(float), rtol=0, atol=1e-9,
                    err_msg=f"{kind} {adj} {col}",
                )  # fmt: skip
            answers[(kind, adj)] = got
        # The NaN of a factor missing on the window's first day, the bfilled one mid-window.
        qfq = answers[(kind, "qfq")]
        assert qfq[(qfq.ts_code == second) & (qfq.trade_date == day(START))].close.isna().all()
        assert qfq[(qfq.ts_code == first)].close.notna().all()
        raw = read_panel(eng, ["close"], day(START), day(END), "none", [first], sch)
        source = [r for r in sb.dataset.rows("daily", {"start_date": START, "end_date": END})]
        assert list(raw.close) == [
            r["close"]
            for r in sorted(source, key=lambda r: r["trade_date"])
            if r["ts_code"] == first
        ]
        # Wide: date × ts_code, the same numbers.
        wide = read_panel(eng, ["close"], day(START), day(END), "qfq", schema=sch, wide=True)
        assert wide.shape == (qfq.trade_date.nunique(), qfq.ts_code.nunique())
        assert (
            wide.loc[day(END), first]
            == qfq[(qfq.ts_code == first) & (qfq.trade_date == day(END))].close.item()
        )

        fina = read_point_in_time(
            eng, "fina_indicator", FINA_COLUMNS, day(START), day(END), schema=sch
        )
        want_fina = expected_point_in_time(
            sb, "fina_indicator_vip", ["20231231", "20240331", "20240630"], {}, "ann_date"
        )
        income = read_point_in_time(
            eng, "income", ["n_income", "revenue"], day(START), day(END), schema=sch
        )
        want_income = expected_point_in_time(
            sb, "income_vip", ["20240331", "20240630"], {"report_type": "1"}, "f_ann_date"
        )
        for frame, want, cols, known in (
            (fina, want_fina, FINA_COLUMNS, "ann_date"),
            (income, want_income, ["n_income", "revenue"], "f_ann_date"),
        ):
            assert len(frame) == len(want)
            switches = 0
            for row in frame.to_dict("records"):
                report = want[(row["trade_date"], row["ts_code"])]
                if report is None:
                    assert row["report_end_date"] is None or pd.isna(row["report_end_date"])
                    continue
                assert row["report_end_date"] == day(report["end_date"])
                assert row["report_" + known] == day(report[known])
                for c in cols:
                    assert row[c] == pytest.approx(report[c], nan_ok=True)
                switches += row["report_" + known] == row["trade_date"]
            assert switches > 0, "a report must take effect inside the window"
        answers[(kind, "fina")] = fina


@pytest.mark.pure
def test_wide_places_every_cell_as_a_pivot_does():
    rng = np.random.default_rng(3)
    days = [dt.date(2024, 1, d) for d in (2, 3, 4, 5)]
    codes = ["000002.SZ", "000001.SZ", "600000.SH"]
    long = pd.DataFrame(
        [(d, c, rng.normal(), rng.normal()) for d in days for c in codes],
        columns=["trade_date", "ts_code", "close", "vol"],
    )
    long = long.drop(index=[1, 7]).sample(frac=1, random_state=1)  # gaps, any order
    long.loc[long.index[0], "close"] = np.nan
    want = long.pivot(index="trade_date", columns="ts_code", values="close").sort_index(axis=1)
    pd.testing.assert_frame_equal(_wide(long, ["close"]), want)
    both = _wide(long, ["close", "vol"])
    assert list(both.columns.get_level_values(0).unique()) == ["close", "vol"]
    for column in ("close", "vol"):
        pd.testing.assert_frame_equal(
            both[column],
            long.pivot(index="trade_date", columns="ts_code", values=column).sort_index(axis=1),
        )
    with pytest.raises(ValueError, match="one row per"):
        _wide(pd.concat([long, long.head(1)]), ["close"])


@pytest.mark.pure
def test_pro_bar_rounding_is_format_2f_everywhere():
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [rng.uniform(0, 500, 20000), np.arange(0, 20, 0.005), [np.nan, 1.005, 2.675, -1.125]]
    )
    got = pro_bar_round_array(values)
    want = [float("%.2f" % v) if v == v else np.nan for v in values]  # noqa: UP031
    np.testing.assert_array_equal(got, np.array(want))


@pytest.mark.pure
def test_bad_reads_are_one_line_errors(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(ConfigError, match="daily has no column 'nope'"):
        read_panel(engine, ["nope"], day(START), day(END))
    with pytest.raises(ConfigError, match="unknown adjustment 'qq'"):
        read_panel(engine, ["close"], day(START), day(END), "qq")
    with pytest.raises(ConfigError, match="is after end date"):
        read_panel(engine, ["close"], day(END), day(START))
    with pytest.raises(ConfigError, match="'daily_basic' is not a point-in-time dataset"):
        read_point_in_time(engine, "daily_basic", ["pe"], day(START), day(END))


@pytest.mark.pure
def test_write_frame_writes_csv_and_parquet(tmp_path):
    frame = pd.DataFrame(
        {"trade_date": [dt.date(2024, 1, 2)] * 2, "ts_code": ["A", "B"], "close": [1.0, 2.0]}
    )
    write_frame(frame, tmp_path / "p.csv")
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "trade_date,ts_code,close"
    write_frame(frame, tmp_path / "p.parquet")
    assert pd.read_parquet(tmp_path / "p.parquet").close.tolist() == [1.0, 2.0]
    wide = frame.pivot(index="trade_date", columns="ts_code", values="close")
    write_frame(wide, tmp_path / "w.csv")
    assert (tmp_path / "w.csv").read_text().splitlines()[0] == "trade_date,A,B"


@pytest.mark.cli
def test_controller_read_writes_the_panel(sqlite_target, sb, atm_env, home):
    sb.set_sizes(SIZES)
    with StockIngestorService(log_level="WARNING") as ingestor:
        ingestor.ingest("trade_cal", exchange="SSE")
        ingestor.ingest("daily", start_date="20240701", end_date="20240705")
        ingestor.ingest("adj_factor", start_date="20240701", end_date="20240705")
    done = controller(
        "read", "daily", "--columns", "close,vol", "--adjust", "qfq", "--start-date",
        "20240701", "--end-date", "20240705", "--wide", "--out", "panel.parquet", cwd=home,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Read daily to panel.parquet: 5 rows (wide)")
    panel = pd.read_parquet(Path(home) / "panel.parquet")
    assert panel.shape[0] == 5 and any(c.startswith("close:") for c in panel.columns)
    bad = controller(
        "read", "daily", "--columns", "close", "--adjust", "xfq", "--start-date", "20240701",
        "--end-date", "20240705", "--out", "p.csv", cwd=home,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "unknown adjustment 'xfq'" in bad.stderr


def test_the_python_api_reads_panels_and_exports(sqlite_target, sb, atm_env, home):
    sb.set_sizes(SIZES)
    with StockIngestorService(log_level="WARNING") as atm:
        atm.ingest("trade_cal", exchange="SSE")
        atm.ingest("daily", start_date="20240701", end_date="20240703")
        atm.ingest("adj_factor", start_date="20240701", end_date="20240703")
        wide = atm.read_panel(["close"], "20240701", "20240703", adjust="hfq", wide=True)
        summary = atm.export("daily", Path(home) / "out")
    engine = sqlite_target.engine()
    assert wide.equals(
        read_panel(engine, ["close"], day("20240701"), day("20240703"), "hfq", wide=True)
    )
    assert wide.shape[0] == 3 and summary.written == 1
