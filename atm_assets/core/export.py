"""Parquet exports of synced tables: hive-partitioned by year (and month), typed, incremental."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from atm_assets.core.datasets import SYNC_COMMIT, SYNCED_AT, TableSpec
from atm_assets.core.errors import ConfigError
from atm_assets.core.paths import atomic_write_text
from atm_assets.core.tables import ARROW_TYPES, build_table

# qlib: daily bars as a qlib provider directory (atm_assets/core/qlib_export.py).
FORMATS: tuple[str, ...] = ("parquet", "qlib")
MANIFEST = "_manifest.json"
# Bumped when the file layout or the fingerprint changes: every group is then written anew.
LAYOUT_VERSION = 1
# Rows per fetch and per Parquet row group: a month of the whole market's bars (~110k rows)
# is a few of these, so memory stays one chunk however large the table.
CHUNK_ROWS = 100_000
# Schemes whose rows are per trade day: one directory per month keeps a day's re-export to one
# month's file (~2-3 MB for the whole market) instead of a year's.
_MONTHLY = ("trade_date", "week", "derived")
_DATE_COLUMN = {
    "trade_date": "trade_date",
    "week": "trade_date",
    "month": "trade_date",
    "index_month": "trade_date",
    "index_year": "trade_date",
    "period": "end_date",
    "derived": "trade_date",
}


@dataclass(frozen=True)
class Layout:
    """How a dataset's rows are split into files: by the year (and month) of one date column,
    or one file for a dataset without one (snapshots, per-exchange reference data)."""

    date_column: str | None
    monthly: bool

    def group_of(self, year: int | None, month: int | None) -> str:
        if self.date_column is None or year is None:
            return ""
        return f"year={year:04d}/month={month:02d}" if self.monthly else f"year={year:04d}"

    def bounds(self, group: str) -> tuple[dt.date, dt.date] | None:
        """The first and last day a group holds (None: the whole table)."""
        if not group:
            return None
        parts = dict(p.split("=") for p in group.split("/"))
        year = int(parts["year"])
        if "month" not in parts:
            return dt.date(year, 1, 1), dt.date(year, 12, 31)
        month = int(parts["month"])
        following = dt.date(year + month // 12, month % 12 + 1, 1)
        return dt.date(year, month, 1), following - dt.timedelta(days=1)

    def widen(self, start: dt.date | None, end: dt.date | None) -> tuple[dt.date | None, ...]:
        """A date range grown to whole groups: a group file always holds its whole month/year."""
        lo = start and (start.replace(day=1) if self.monthly else start.replace(month=1, day=1))
        hi = end and self.bounds(self.group_of(end.year, end.month))[1]  # type: ignore[index]
        return lo, hi


def layout(spec: TableSpec) -> Layout:
    column = _DATE_COLUMN.get(spec.scheme)
    if column is not None and column not in spec.fields:
        column = None
    if column is not None and spec.column(column).type != "date":
        column = None
    return Layout(column, spec.scheme in _MONTHLY)


def arrow_schema(spec: TableSpec) -> Any:
    """The Parquet schema: the dataset's fields with their ATM types (dates as date32)."""
    import pyarrow as pa

    return pa.schema(
        [pa.field(c.name, ARROW_TYPES[c.type], nullable=c.nullable) for c in spec.columns]
    )


@dataclass
class ExportSummary:
    """What one export did: files written anew, left as they were, removed; rows."""

    dataset: str
    out: Path
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    rows_written: int = 0
    rows_total: int = 0
    groups: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"Exported {self.dataset} to {self.out}: {self.written} file(s) written, "
            f"{self.unchanged} unchanged, {self.removed} removed; {self.rows_written:,} rows "
            f"written ({self.rows_total:,} in the exported range)"
        )


class Exporter:
    """One dataset's export into `<out>/<dataset>/`."""

    def __init__(
        self,
        engine: Engine,
        spec: TableSpec,
        out: str | os.PathLike[str],
        schema: str | None = None,
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        self.engine = engine
        self.spec = spec
        self.root = Path(out) / spec.name
        self.table = build_table(spec, schema, sa.MetaData())
        self.layout = layout(spec)
        self.chunk_rows = chunk_rows
        clash = {"year", "month"} & set(spec.fields)
        if clash and self.layout.date_column:
            raise ConfigError(
                f"{spec.name} has a column named {', '.join(sorted(clash))}: it would clash with "
                "the hive partition of the same name"
            )

    # -- the manifest: what each group file holds, so an unchanged group is not rewritten --

    @property
    def signature(self) -> dict[str, Any]:
        return {
            "layout_version": LAYOUT_VERSION,
            "columns": [[c.name, c.type] for c in self.spec.columns],
            "date_column": self.layout.date_column,
            "monthly": self.layout.monthly,
        }

    def read_manifest(self) -> dict[str, dict[str, Any]]:
        """The groups of the last export, if it was made with this layout and columns."""
        path = self.root / MANIFEST
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            # A manifest that cannot be read only costs a full rewrite.
            return {}
        if not isinstance(data, dict) or data.get("signature") != self.signature:
            return {}
        groups = data.get("groups")
        return groups if isinstance(groups, dict) else {}

    def write_manifest(self, groups: dict[str, dict[str, Any]]) -> None:
        body = {
            "dataset": self.spec.name,
            "format": "parquet",
            "signature": self.signature,
            "groups": dict(sorted(groups.items())),
        }
        atomic_write_text(self.root / MANIFEST, json.dumps(body, indent=1) + "\n")

    # -- the table side --

    def _where(self, lo: dt.date | None, hi: dt.date | None) -> list[sa.ColumnElement[bool]]:
        column = self.layout.date_column
        if column is None:
            return []
        c = self.table.c[column]
        clauses = []
        if lo is not None:
            clauses.append(c >= lo)
        if hi is not None:
            clauses.append(c <= hi)
        return clauses

    def fingerprints(self, lo: dt.date | None, hi: dt.date | None) -> dict[str, dict[str, Any]]:
        """Per group: rows and the range of its rows' write stamps. Every write ATM makes
        stamps the rows it changes (`synced_at`; unchanged rows are never rewritten), so a
        group whose count and stamps are the same holds the same rows."""
        t = self.table
        stamps = [
            sa.func.count().label("rows"),
            sa.func.min(t.c[SYNCED_AT]).label("first"),
            sa.func.max(t.c[SYNCED_AT]).label("last"),
            sa.func.max(t.c[SYNC_COMMIT]).label("commit"),
        ]
        column = self.layout.date_column
        if column is None:
            stmt = sa.select(*stamps).select_from(t)
            parts: list[Any] = []
        else:
            parts = [sa.extract("year", t.c[column]).label("y")]
            if self.layout.monthly:
                parts.append(sa.extract("month", t.c[column]).label("m"))
            stmt = sa.select(*parts, *stamps).where(*self._where(lo, hi)).group_by(*parts)
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(stmt).mappings():
                if not row["rows"]:
                    continue
                year = int(row["y"]) if parts else None
                month = int(row["m"]) if len(parts) > 1 else None
                group = self.layout.group_of(year, month)
                fingerprint = f"{row['rows']}|{row['first']}|{row['last']}|{row['commit']}"
                out[group] = {"rows": int(row["rows"]), "fingerprint": fingerprint}
        return out

    def _chunks(self, group: str) -> Iterator[Any]:
        import pyarrow as pa

        schema = arrow_schema(self.spec)
        bounds = self.layout.bounds(group)
        stmt = sa.select(*[self.table.c[f] for f in self.spec.fields])
        if bounds:
            stmt = stmt.where(*self._where(*bounds))
        key = [self.table.c[k] for k in self.spec.key] or [
            self.table.c[f] for f in self.spec.fields
        ]
        stmt = stmt.order_by(*key)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(stmt)
            for rows in result.partitions(self.chunk_rows):
                columns = list(zip(*rows, strict=True)) if rows else []
                arrays = [
                    pa.array(list(values), type=schema.field(i).type)
                    for i, values in enumerate(columns)
                ]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    def write_group(self, group: str) -> int:
        """Write one group's file whole: a temporary file renamed over the old one, so a
        killed export leaves the previous file or the new one, never half of either."""
        import pyarrow.parquet as pq

        where = self.root / group if group else self.root
        where.mkdir(parents=True, exist_ok=True)
        # A leading dot: pyarrow, DuckDB and polars skip it while it is being written.
        fd, tmp = tempfile.mkstemp(prefix=".part-0.", suffix=".tmp", dir=where)
        os.close(fd)
        rows = 0
        try:
            with pq.ParquetWriter(tmp, arrow_schema(self.spec), compression="zstd") as writer:
                for batch in self._chunks(group):
                    writer.write_batch(batch)
                    rows += batch.num_rows
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, where / "part-0.parquet")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return rows

    def remove_group(self, group: str) -> None:
        where = self.root / group if group else self.root
        (where / "part-0.parquet").unlink(missing_ok=True)
        while where != self.root and where.is_dir() and not any(where.iterdir()):
            where.rmdir()
            where = where.parent

    def _clean_leftovers(self) -> None:
        """Temporary files of an export that was killed."""
        for stale in self.root.rglob(".part-0.*.tmp"):
            stale.unlink(missing_ok=True)

    def export(
        self, start: dt.date | None = None, end: dt.date | None = None, full: bool = False
    ) -> ExportSummary:
        """Write the groups (months or years) overlapping [start, end] whose rows changed since
        the last export; remove the files of groups the table no longer has."""
        if start and end and start > end:
            raise ConfigError(f"start date {start} is after end date {end}")
        if not sa.inspect(self.engine).has_table(self.table.name, schema=self.table.schema):
            raise ConfigError(f"table {self.spec.name} does not exist: sync {self.spec.name} first")
        self.root.mkdir(parents=True, exist_ok=True)
        self._clean_leftovers()
        lo, hi = self.layout.widen(start, end) if self.layout.date_column else (None, None)
        summary = ExportSummary(self.spec.name, self.root)
        manifest = {} if full else self.read_manifest()
        current = self.fingerprints(lo, hi)
        for group, seen in sorted(current.items()):
            summary.rows_total += seen["rows"]
            file = (self.root / group / "part-0.parquet") if group else self.root / "part-0.parquet"
            old = manifest.get(group)
            if old and old.get("fingerprint") == seen["fingerprint"] and file.is_file():
                summary.unchanged += 1
                continue
            written = self.write_group(group)
            manifest[group] = {
                "file": str(file.relative_to(self.root)),
                "rows": written,
                "fingerprint": seen["fingerprint"],
                "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
            # After every file: a killed export redoes only the groups it had not recorded.
            self.write_manifest(manifest)
            summary.written += 1
            summary.rows_written += written
            summary.groups.append(group)
        for group in sorted(set(manifest) - set(current)):
            bounds = self.layout.bounds(group)
            inside = bounds is None or (
                (lo is None or bounds[1] >= lo) and (hi is None or bounds[0] <= hi)
            )
            if inside:
                self.remove_group(group)
                del manifest[group]
                summary.removed += 1
        self.write_manifest(manifest)
        return summary


def export_dataset(
    engine: Engine,
    spec: TableSpec,
    out: str | os.PathLike[str],
    schema: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    full: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> ExportSummary:
    """Export one dataset's table to `<out>/<dataset>/` as hive-partitioned Parquet."""
    return Exporter(engine, spec, out, schema, chunk_rows).export(start, end, full)
