"""Definition metadata every table asset carries: table name, column schema, key, API."""

from typing import Any

from dagster import TableColumn, TableSchema

from atm_assets.core.datasets import TableSpec

_SQL_NAMES = {"str": "text", "date": "date", "float": "double", "int": "bigint"}


def table_metadata(spec: TableSpec) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "dagster/table_name": spec.name,
        "dagster/column_schema": TableSchema(
            columns=[TableColumn(c.name, _SQL_NAMES[c.type]) for c in spec.columns]
        ),
        "primary_key": ", ".join(spec.key),
    }
    if spec.fetched:
        metadata["tushare_api"] = spec.api_name
    return metadata
