"""Every catalog dataset as an asset, from its declaration: partitions, group, metadata, sync."""

from collections.abc import Iterator

from dagster import (
    AssetCheckEvaluation,
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    Output,
    SpecificPartitionsPartitionMapping,
    asset,
)

from atm_assets.assets.checks import check_specs, evaluate_checks
from atm_assets.assets.metadata import table_metadata
from atm_assets.assets.sync_step import SyncConfig, hand_over, sync_job
from atm_assets.core.datasets import TRADE_CAL, TableSpec
from atm_assets.core.engine import HandOver
from atm_assets.core.market import CALENDAR_EXCHANGE, trading_status
from atm_assets.partitions import (
    CALENDAR_SCHEMES,
    ordered_keys,
    partitions_for,
    request_partitions,
)
from atm_assets.resources import SyncResource
from atm_assets.runs import no_retry_if_permanent
from atm_assets.tags import PARTITION_TAG, TUSHARE_POOL

# Trade-date datasets need the calendar that says which days are open: the SSE one.
CALENDAR_DEP = AssetDep(
    "trade_cal", partition_mapping=SpecificPartitionsPartitionMapping([CALENDAR_EXCHANGE])
)


def fetched_asset(spec: TableSpec) -> AssetsDefinition:
    """The asset of one catalog dataset: a run syncs the selected partitions through the one
    engine path (lock, resume, upsert/append, metadata); closed trade dates cost no call."""
    partitions_def = partitions_for(spec)

    @asset(
        name=spec.name,
        description=spec.description,
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run() if partitions_def else None,
        io_manager_key="table_io_manager",
        group_name=spec.group,
        kinds={"tushare", "sql"},
        metadata=table_metadata(spec),
        deps=[CALENDAR_DEP] if spec.scheme in CALENDAR_SCHEMES else [],
        check_specs=check_specs(spec, partitions_def),
        pool=TUSHARE_POOL,
    )
    def sync_dataset(
        context: AssetExecutionContext, config: SyncConfig, sync: SyncResource
    ) -> Iterator[Output[HandOver] | Output[None] | AssetCheckEvaluation]:
        try:
            handed, fetched = start_sync(context, spec, config, sync)
        except Exception as error:
            no_retry_if_permanent(context.instance, context.run.run_id, error)
            raise
        # The IO manager has written when the generator resumes: check what landed.
        yield handed
        yield from evaluate_checks(context, spec, sync, fetched, handed.value.unpublished(fetched))

    return sync_dataset


def start_sync(
    context: AssetExecutionContext, spec: TableSpec, config: SyncConfig, sync: SyncResource
) -> tuple[Output[HandOver], list[str]]:
    """The selected partitions checked, closed days set aside, the stream started: the output
    to hand the IO manager, and the partition keys it fetches."""
    partitions_def = context.assets_def.partitions_def
    tagged = context.run.tags.get(PARTITION_TAG)
    if tagged is not None and partitions_def is not None:
        # Dagster takes "L|SSE" as a tag and then fails obscurely: name the problem first.
        ordered_keys(spec, [tagged])
    keys = ordered_keys(spec, [str(k) for k in context.partition_keys]) if partitions_def else []
    job = sync_job(context, spec, config, sync)
    calendar = sync.database.writer(TRADE_CAL)
    partitions, closed = request_partitions(spec, keys, lambda days: trading_status(calendar, days))
    if closed:
        context.log.info(
            f"Market closed for {len(closed)} partition(s) per trade_cal "
            f"({', '.join(closed[:5])}{', …' if len(closed) > 5 else ''}): nothing to fetch"
        )
    if not job.banner:
        # A banner job announces each task the original script's way instead.
        context.log.info(
            f"{spec.name}: {len(keys) or 1} partition(s), {len(partitions)} to fetch, "
            f"mode {job.options.mode}"
        )
    tasks = job.tasks(partitions, config.task_name)
    shut = set(closed)
    fetched = [k for k in keys if k not in shut]
    handed = hand_over(context, job, tasks, sync, {"closed_days": len(closed)}, fetched)
    return handed, fetched


def catalog_assets(specs: list[TableSpec]) -> list[AssetsDefinition]:
    """Every fetched dataset of the catalog as an asset, from the one factory."""
    return [fetched_asset(s) for s in specs if s.fetched]
