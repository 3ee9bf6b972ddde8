"""Opt-in Parquet export assets (`export.dir`): one per dataset, downstream of it, in `exports`."""

from collections.abc import Iterable

from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from atm_assets.core.datasets import TableSpec
from atm_assets.core.export import export_dataset
from atm_assets.resources import DatabaseResource

EXPORT_GROUP = "exports"


def export_asset(spec: TableSpec, out: str) -> AssetsDefinition:
    """`export_<dataset>`: the dataset's table as hive-partitioned Parquet under `out`; a
    materialisation rewrites only the files whose rows changed since the last one."""

    @asset(
        name=f"export_{spec.name}",
        description=f"{spec.name} as Parquet in {out}/{spec.name} (year=/month= directories).",
        group_name=EXPORT_GROUP,
        deps=[AssetDep(spec.name)],
        kinds={"parquet"},
    )
    def _export(context: AssetExecutionContext, database: DatabaseResource) -> MaterializeResult:
        summary = export_dataset(database.engine(), spec, out, database.schema_name)
        context.log.info(summary.line())
        return MaterializeResult(
            metadata={
                "path": MetadataValue.path(str(summary.out)),
                "files_written": summary.written,
                "files_unchanged": summary.unchanged,
                "files_removed": summary.removed,
                "rows_written": summary.rows_written,
                "dagster/row_count": summary.rows_total,
            }
        )

    return _export


def export_assets(specs: Iterable[TableSpec], out: str | None) -> list[AssetsDefinition]:
    """Nothing unless `export.dir` is set: exports are for the teams that ask for them."""
    if not out:
        return []
    return [export_asset(spec, out) for spec in specs]
