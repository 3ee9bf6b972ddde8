"""The table writer on its own: awkward values round-trip exactly through every write path."""

import datetime as dt
import uuid

import pandas as pd
import pytest

from atm_assets.core.datasets import Column, TableSpec
from atm_assets.core.errors import AppendConflictError, DataValidationError
from atm_assets.core.validation import validate_rows
from atm_assets_tests.conftest import ALL_TARGETS

SPEC = TableSpec(
    name="awkward",
    api_name="awkward",
    columns=(
        Column("code", nullable=False),
        Column("text"),
        Column("day", "date"),
        Column("x", "float"),
        Column("n", "int"),
    ),
    key=("code",),
)
AWKWARD = [
    "tab\there",
    "new\nline",
    "carriage\r\nreturn",
    "back\\slash",
    "\\N",
    "N",
    "\\",
    "'single' \"double\"",
    "",
    "Ａ股 中文 ✓ 🚀",
    ",;|",
    # CSV's own characters, and PostgreSQL's end-of-data marker alone on a line.
    '"',
    '""',
    "\\.",
    "line\n\\.\nafter",
    "\r",
    " ",
    "NULL",
]


def _rows(texts: list[str | None], x: float = 1.5, objects: bool = True) -> pd.DataFrame:
    """Validated rows; `objects=False` builds the frame as the tushare client does under pandas
    3 (text as Arrow strings, a missing one NaN), which validation keeps as it is."""
    rows = [
        [f"C{i:03d}", t, "20240102" if i % 2 else None, x * i if i % 3 else None, i]
        for i, t in enumerate(texts)
    ]
    frame = pd.DataFrame(rows, columns=SPEC.fields, dtype=object if objects else None)
    return validate_rows(frame, SPEC, {})


def _records(frame: pd.DataFrame) -> list[dict]:
    """The rows as a reader gets them back: Python values, None for a missing one."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


@pytest.mark.parametrize("target", ALL_TARGETS, indirect=True)
@pytest.mark.parametrize("mode", ["upsert", "append"])
@pytest.mark.parametrize("objects", [True, False], ids=["objects", "arrow-text"])
def test_awkward_values_round_trip_on_every_path(target, mode, objects):
    writer = target.writer(SPEC)
    writer.ensure_table()
    first = _rows([*AWKWARD, None], objects=objects)
    if not objects:
        assert isinstance(first["text"].dtype, pd.StringDtype)
    with writer.engine.connect() as conn, conn.begin():
        counts = writer.intervals(mode).write(conn, first, uuid.uuid4().hex)
    assert counts.inserted == len(first)
    assert writer.read().to_dict("records") == _records(first)
    assert writer.read()["text"].tolist()[-1] is None and "" in writer.read()["text"].tolist()
    if mode == "append":
        return
    # The upsert's other path (a key exists: staged, then merged), same values changed.
    second = _rows([*[t + "·" for t in AWKWARD], "now set"], x=2.5, objects=objects)
    with writer.engine.connect() as conn, conn.begin():
        counts = writer.intervals("upsert").write(conn, second, uuid.uuid4().hex)
    assert counts.updated == len(second) and counts.inserted == 0
    assert writer.read().to_dict("records") == _records(second)
    stored = {r["code"]: r for r in writer.read().to_dict("records")}
    assert stored["C001"]["day"] == dt.date(2024, 1, 2) and stored["C000"]["day"] is None


def test_a_nul_character_is_refused_before_any_write():
    frame = pd.DataFrame([["C1", "a\x00b", None, None, 1]], columns=SPEC.fields, dtype=object)
    with pytest.raises(DataValidationError, match="NUL character in text"):
        validate_rows(frame, SPEC, {})


def test_rows_come_out_in_key_order_whatever_order_they_came_in():
    rows = [[f"C{i:03d}", "t", "20240102", 1.0, i] for i in (5, 1, 9, 3)]
    shuffled = validate_rows(pd.DataFrame(rows, columns=SPEC.fields, dtype=object), SPEC, {})
    assert shuffled["code"].tolist() == ["C001", "C003", "C005", "C009"]
    assert shuffled["n"].tolist() == [1, 3, 5, 9]  # whole rows move, not just the key
    ordered = validate_rows(pd.DataFrame(sorted(rows), columns=SPEC.fields, dtype=object), SPEC, {})
    pd.testing.assert_frame_equal(shuffled, ordered)
    assert list(ordered.index) == [0, 1, 2, 3]


def test_rows_with_a_two_column_key_come_out_in_key_order():
    two = TableSpec(
        name="two",
        api_name="two",
        columns=(Column("code", nullable=False), Column("day", "date", nullable=False)),
        key=("code", "day"),
    )
    rows = [["B", "20240102"], ["A", "20240103"], ["A", "20240102"], ["B", "20240101"]]
    expected = [("A", "2024-01-02"), ("A", "2024-01-03"), ("B", "2024-01-01"), ("B", "2024-01-02")]
    for order in (rows, sorted(rows), rows[::-1]):
        out = validate_rows(pd.DataFrame(order, columns=two.fields), two, {})
        assert [
            (c, d.isoformat()) for c, d in zip(out["code"], out["day"], strict=True)
        ] == expected


@pytest.mark.parametrize(
    ("value", "what"), [("2024-01-02", "an unparseable day"), (2.5, "a non-integer n")]
)
def test_a_bad_value_names_its_row(value, what):
    rows = [["C1", "t", "20240102", 1.0, 1], ["C2", "t", "20240103", 1.0, 2]]
    column = "day" if what.endswith("day") else "n"
    rows[1][SPEC.fields.index(column)] = value
    with pytest.raises(DataValidationError, match=f"row C2 has {what}: {value!r}"):
        validate_rows(pd.DataFrame(rows, columns=SPEC.fields, dtype=object), SPEC, {})


KEYLESS = TableSpec(
    name="keyless",
    api_name="keyless",
    columns=(Column("day", "date"), Column("text"), Column("x", "float")),
    key=(),
    partition_columns=("day",),
)


@pytest.mark.parametrize("target", ALL_TARGETS, indirect=True)
def test_upsert_counts_append_refusal_and_partition_replace(target):
    writer = target.writer(SPEC)
    writer.ensure_table()

    def write(mode: str, frame: pd.DataFrame):
        with writer.engine.connect() as conn, conn.begin():
            return writer.intervals(mode).write(conn, frame, uuid.uuid4().hex)

    first = _rows([f"t{i}" for i in range(10)])
    assert write("upsert", first).inserted == 10
    # Rows 5-14: 5 and 6 changed, 7-9 as they were, 10-14 new.
    second = _rows([f"t{i}" for i in range(15)]).iloc[5:].copy()
    second.loc[second["code"].isin(["C005", "C006"]), "text"] = "changed"
    counts = write("upsert", second)
    assert (counts.inserted, counts.updated, counts.unchanged) == (5, 2, 3)
    before = writer.read(with_bookkeeping=True).to_dict("records")
    with pytest.raises(
        AppendConflictError,
        match=rf"append into {writer.qualified_name} refused: 3 key\(s\) "
        r"already exist: C012, C013, C014\. Nothing was written",
    ):
        write("append", _rows([f"t{i}" for i in range(17)]).iloc[12:])
    assert writer.read(with_bookkeeping=True).to_dict("records") == before
    # A table without a key: a partition is replaced whole, repeated rows kept as data.
    keyless = target.writer(KEYLESS)
    day = dt.date(2024, 1, 2)
    bounds = [{"day": (day, day)}]

    def frame(texts):
        rows = [[day, t, 1.0] for t in texts] + [[dt.date(2024, 1, 3), "other", 2.0]]
        return pd.DataFrame(rows, columns=KEYLESS.fields, dtype=object)

    keyless.replace(frame(["a", "a", "b"]), None)
    keyless.replace(frame(["c", "c"]).iloc[:2], bounds)
    assert sorted(r["text"] for r in keyless.read().to_dict("records")) == ["c", "c", "other"]
