"""Table specifications of the Tushare datasets ATM syncs: fields, types, keys, partitions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnType = Literal["str", "date", "float", "int"]

EXCHANGES: tuple[str, ...] = ("SSE", "SZSE", "BSE")
# G (过会未交易) is listed by Tushare's current docs next to L/D/P.
LIST_STATUSES: tuple[str, ...] = ("L", "D", "P", "G")


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType = "str"
    nullable: bool = True


@dataclass(frozen=True)
class TableSpec:
    """One Tushare API mapped onto one table: the columns are the API's fields, by name."""

    name: str
    api_name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    description: str = ""
    # Columns every row of a partition must carry with the partition's value.
    partition_columns: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fields(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def date_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.type == "date"]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


STOCK_BASIC = TableSpec(
    name="stock_basic",
    api_name="stock_basic",
    description="Tushare stock_basic: the list of A-share stocks with their listing facts.",
    columns=(
        Column("ts_code", nullable=False),
        Column("symbol"),
        Column("name"),
        Column("area"),
        Column("industry"),
        Column("fullname"),
        Column("enname"),
        Column("cnspell"),
        Column("market"),
        Column("exchange", nullable=False),
        Column("curr_type"),
        Column("list_status", nullable=False),
        Column("list_date", "date"),
        Column("delist_date", "date"),
        Column("is_hs"),
        Column("act_name"),
        Column("act_ent_type"),
    ),
    key=("ts_code",),
    partition_columns=("exchange", "list_status"),
)

# Bookkeeping columns ATM adds to every table it writes.
SYNCED_AT = "synced_at"
# Id of the checkpoint interval (one transaction) that last wrote the row; lets a resumed run
# tell whether an interval committed just before a crash when the state lives outside the table.
SYNC_COMMIT = "sync_commit"


DATASETS: dict[str, TableSpec] = {STOCK_BASIC.name: STOCK_BASIC}


def dataset_spec(name: str) -> TableSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}: known {', '.join(sorted(DATASETS))}") from None
