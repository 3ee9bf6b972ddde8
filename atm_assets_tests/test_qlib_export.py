"""qlib exports: the calendar, instruments and float32 field files read back with numpy equal
the panel reader's adjusted bars; incremental by instrument; atomic; the controller's `export`."""

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from atm_assets.api import StockIngestorService
from atm_assets.core.datasets import ADJ_FACTOR, DAILY
from atm_assets.core.dates import parse_day
from atm_assets.core.errors import ConfigError
from atm_assets.core.qlib_export import FIELDS, QlibExporter, export_qlib, qlib_code, read_bin
from atm_assets.core.readers import read_panel
from atm_assets.core.writer import TableWriter
from atm_assets_tests.conftest import ALL_TARGETS
from atm_assets_tests.helpers import PROJECT_ROOT, controller

# A few listed stocks per exchange; mid-June to mid-July 2024 holds factor changes.
SIZES = {
    f"{e}:{s}": n for e in ("SSE", "SZSE", "BSE") for s, n in zip("LDPG", (3, 1, 0, 0), strict=True)
}
START, END, NEXT = "20240617", "20240711", "20240712"


@pytest.fixture
def home(workdir) -> str:
    shutil.copy(PROJECT_ROOT / "dagster.yaml", Path(workdir) / "dagster.yaml")
    return workdir


def day(text: str) -> dt.date:
    return parse_day(text)


def sync(start: str, end: str, calendar: bool = True) -> None:
    with StockIngestorService(log_level="WARNING") as ingestor:
        if calendar:
            ingestor.ingest("trade_cal", exchange="SSE")
        ingestor.ingest("daily", start_date=start, end_date=end)
        ingestor.ingest("adj_factor", start_date=start, end_date=end)


def delete_rows(target, spec, code: str, days: list[str]) -> None:
    table = TableWriter(target.engine(), spec, target.schema).table
    with target.engine().begin() as conn:
        conn.execute(
            table.delete().where(
                table.c.ts_code == code, table.c.trade_date.in_([day(d) for d in days])
            )
        )


def open_days(sb, start: str, end: str) -> list[dt.date]:
    rows = sb.dataset.rows("trade_cal", {"exchange": "SSE", "start_date": start, "end_date": end})
    return sorted(day(r["cal_date"]) for r in rows if r["is_open"] == 1)


def check_export(out: Path, target, start: str, end: str, calendar: list[dt.date]) -> dict:
    """Every file of the export against the database: the calendar, each instrument's span,
    and every value of every field against read_panel's backward-adjusted bars. Returns the
    instruments' (first, last) days by ts_code."""
    text = (out / "calendars/day.txt").read_text()
    assert text.splitlines() == [d.isoformat() for d in calendar]
    bars = read_panel(
        target.engine(),
        ["open", "high", "low", "close", "vol", "amount"],
        day(start),
        day(end),
        "hfq",
        schema=target.schema,
        with_factor=True,
    )
    raw = read_panel(target.engine(), ["close"], day(start), day(end), schema=target.schema)
    spans = {}
    lines = (out / "instruments/all.txt").read_text().splitlines()
    for code, rows in bars.groupby("ts_code"):
        first, last = min(rows.trade_date), max(rows.trade_date)
        spans[code] = (first, last)
        assert f"{qlib_code(code)}\t{first.isoformat()}\t{last.isoformat()}" in lines
        where = out / "features" / qlib_code(code).lower()
        assert sorted(p.name for p in where.iterdir()) == sorted(f"{f}.day.bin" for f in FIELDS)
        by_day = rows.set_index("trade_date")
        expected = {
            "open": by_day.open,
            "high": by_day.high,
            "low": by_day.low,
            "close": by_day.close,
            "volume": by_day.vol / by_day.factor,
            "amount": by_day.amount,
            "factor": by_day.factor,
        }
        span = calendar[calendar.index(first) : calendar.index(last) + 1]
        for field, series in expected.items():
            start_index, values = read_bin(where / f"{field}.day.bin")
            assert start_index == calendar.index(first), (code, field)
            assert len(values) == len(span), (code, field)
            assert values.dtype == np.dtype("<f4")
            want = np.array([series.get(d, np.nan) for d in span], dtype="<f4")
            np.testing.assert_array_equal(values, want, err_msg=f"{code} {field}")
        # qlib's convention: $close / $factor is the traded close.
        start_index, close = read_bin(where / "close.day.bin")
        _, factor = read_bin(where / "factor.day.bin")
        traded = raw[raw.ts_code == code].set_index("trade_date").close
        got = close / factor
        for i, d in enumerate(span):
            if d in traded.index:
                assert abs(got[i] - traded[d]) < 0.006, (code, d)
    assert len(lines) == len(spans)
    assert sorted(p.name for p in (out / "features").iterdir()) == sorted(
        qlib_code(c).lower() for c in spans
    )
    return spans


def inode_times(out: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in (out / "features").rglob("*.bin")
    }


@pytest.mark.pure
def test_qlib_codes_put_the_exchange_first():
    assert qlib_code("600000.SH") == "SH600000"
    assert qlib_code("000001.SZ") == "SZ000001"
    assert qlib_code("430047.BJ") == "BJ430047"


@pytest.mark.parametrize("target", ALL_TARGETS, indirect=True)
def test_qlib_export_reads_back_equal_to_the_panel_and_is_incremental(target, sb, atm_env, home):
    sb.set_sizes(SIZES)
    sync(START, END)
    engine = target.engine()
    window = {"start_date": START, "end_date": END}
    codes = sorted({r["ts_code"] for r in sb.dataset.rows("daily", window)})
    assert len(codes) >= 4
    suspended, late, gone = codes[0], codes[1], codes[2]
    # A suspension mid-window (no bar, so NaN in every field), and a stock whose bars start
    # later (its header indexes its own first day).
    delete_rows(target, DAILY, suspended, ["20240702", "20240703"])
    delete_rows(target, DAILY, late, ["20240617", "20240618", "20240619"])
    out = Path(home) / "qlib"
    first = export_qlib(engine, out, target.schema, codes_per_read=2)
    calendar = open_days(sb, START, END)
    assert (first.written, first.unchanged, first.removed) == (len(codes), 0, 0)
    assert (first.days, first.first, first.last) == (len(calendar), day(START), day(END))
    spans = check_export(out, target, START, END, calendar)
    assert spans[late][0] == day("20240620") and spans[suspended] == (day(START), day(END))
    start_index, close = read_bin(out / f"features/{qlib_code(late).lower()}/close.day.bin")
    assert start_index == 3 and len(close) == len(calendar) - 3
    _, close = read_bin(out / f"features/{qlib_code(suspended).lower()}/close.day.bin")
    holes = [calendar.index(day("20240702")), calendar.index(day("20240703"))]
    assert np.isnan(close[holes]).all() and np.isfinite(np.delete(close, holes)).all()

    # Nothing changed: nothing rewritten (the same files, hard-linked into the new directory).
    before = inode_times(out)
    again = export_qlib(engine, out, target.schema)
    assert (again.written, again.unchanged) == (0, len(codes))
    assert inode_times(out) == before

    # One new day; one stock has no bar (nor factor) on it: the calendar grows by the day, the
    # stocks that traded it are written anew, the other keeps its files (they index the same
    # calendar prefix).
    sync(NEXT, NEXT, calendar=False)
    for spec in (DAILY, ADJ_FACTOR):
        delete_rows(target, spec, gone, [NEXT])
    third = export_qlib(engine, out, target.schema)
    assert (third.written, third.unchanged, third.removed) == (len(codes) - 1, 1, 0)
    after = inode_times(out)
    kept = {k for k in after if k.startswith(f"features/{qlib_code(gone).lower()}/")}
    assert kept and all(after[k] == before[k] for k in kept)
    assert all(after[k] != before[k] for k in set(after) - kept)
    calendar = open_days(sb, START, NEXT)
    assert calendar[-1] == day(NEXT)
    spans = check_export(out, target, START, NEXT, calendar)
    assert spans[gone][1] == day(END) and spans[codes[3]][1] == day(NEXT)

    # A window: the calendar and the headers are the window's; every instrument is rewritten.
    windowed = export_qlib(engine, out, target.schema, day("20240701"), day("20240705"))
    assert windowed.written == len(codes)
    check_export(out, target, "20240701", "20240705", open_days(sb, "20240701", "20240705"))


def test_the_calendar_comes_from_the_bars_without_trade_cal(sqlite_target, sb, atm_env, home):
    sb.set_sizes(SIZES)
    sync("20240701", "20240705")
    engine = sqlite_target.engine()
    # Syncing bars needs the calendar; a database that has the bars but not the calendar
    # (dropped, or another tool's) still exports.
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE trade_cal"))
    out = Path(home) / "qlib"
    export_qlib(engine, out)
    days = (out / "calendars/day.txt").read_text().split()
    assert days == [d.isoformat() for d in open_days(sb, "20240701", "20240705")]


def test_a_killed_export_leaves_the_old_directory_whole(sqlite_target, sb, atm_env, home):
    sb.set_sizes(SIZES)
    sync("20240701", "20240705")
    out = Path(home) / "qlib"
    engine = sqlite_target.engine()
    export_qlib(engine, out)

    def snapshot() -> dict[str, bytes]:
        return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    before = snapshot()
    exporter = QlibExporter(engine, out, codes_per_read=2)
    bars = exporter.bars
    calls = []

    def dies_on_the_second_read(codes, lo, hi):
        calls.append(codes)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return bars(codes, lo, hi)

    exporter.bars = dies_on_the_second_read
    with pytest.raises(KeyboardInterrupt):
        exporter.export(full=True)
    assert snapshot() == before
    assert sorted(p.name for p in Path(home).iterdir() if "qlib" in p.name) == ["qlib"]

    # Killed between moving the old directory aside and putting the new one in place: the next
    # export puts the old one back first, then writes as usual.
    aside = Path(home) / ".qlib.qlib-previous"
    out.rename(aside)
    (Path(home) / ".qlib.qlib-staging").mkdir()
    done = export_qlib(engine, out)
    stocks = len(list((out / "features").iterdir()))
    assert (done.written, done.unchanged) == (0, stocks) and stocks > 0
    after = snapshot()
    assert set(after) == set(before)
    assert all(after[k] == before[k] for k in before if k != "_manifest.json")
    assert sorted(p.name for p in Path(home).iterdir() if "qlib" in p.name) == ["qlib"]


def test_bad_qlib_exports_are_one_error(sqlite_target, sb, atm_env, home):
    engine = sqlite_target.engine()
    with pytest.raises(ConfigError, match="table daily does not exist: sync daily first"):
        export_qlib(engine, Path(home) / "q")
    sb.set_sizes(SIZES)
    with StockIngestorService(log_level="WARNING") as ingestor:
        ingestor.ingest("trade_cal", exchange="SSE")
        ingestor.ingest("daily", start_date="20240701", end_date="20240702")
    with pytest.raises(ConfigError, match="table adj_factor does not exist"):
        export_qlib(engine, Path(home) / "q")
    sync("20240701", "20240702", calendar=False)
    with pytest.raises(ConfigError, match="daily has no bars from 2023-01-02 to 2023-01-31"):
        export_qlib(engine, Path(home) / "q", start=day("20230102"), end=day("20230131"))
    # The directory is replaced whole: one that holds anything else is refused and left alone.
    foreign = Path(home) / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="is not empty and holds no qlib export of ATM"):
        export_qlib(engine, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


@pytest.mark.cli
def test_controller_exports_qlib_and_refuses_bad_input(sqlite_target, sb, atm_env, home):
    sb.set_sizes(SIZES)
    sync("20240701", "20240703")
    done = controller(
        "export", "daily", "--format", "qlib", "--out", "q",
        "--start-date", "20240701", "--end-date", "20240703", cwd=home,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Exported daily to q as qlib: ")
    assert "0 unchanged, 0 removed; 3 day(s) 2024-07-01 … 2024-07-03" in done.stdout
    assert (Path(home) / "q/calendars/day.txt").read_text().split() == [
        "2024-07-01",
        "2024-07-02",
        "2024-07-03",
    ]
    for args, message in (
        (("daily", "--format", "qlb", "--out", "o"), "unknown export format 'qlb'"),
        (("adj-factor", "--format", "qlib", "--out", "o"), "--format qlib writes daily bars"),
        (("daily-basic", "--format", "qlib", "--out", "o"), "not daily_basic"),
        (("daily", "--format", "qlib", "--out", "o", "--start-date", "20240705",
          "--end-date", "20240701"), "is after end date"),
    ):  # fmt: skip
        bad = controller("export", *args, cwd=home)
        assert bad.returncode == 2, bad.stderr
        assert bad.stderr.count("\n") == 1 and message in bad.stderr, bad.stderr
