"""Data checks of every fetched dataset as Dagster asset checks, evaluated per partition."""

import warnings
from collections.abc import Iterator, Sequence

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    MetadataValue,
    Output,
    PartitionsDefinition,
    PreviewWarning,
)

# Not exported by Dagster 1.13, yet the one way to say which materialisation a per-partition
# result is about when one run writes many partitions (AssetCheckResult knows only one).
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from atm_assets.core.catalog import BUILTIN
from atm_assets.core.checks import Finding, PartitionChecks, checks_for
from atm_assets.core.datasets import TableSpec
from atm_assets.core.tables import Bounds
from atm_assets.core.tushare_client import extra_fields
from atm_assets.partitions import row_bounds
from atm_assets.resources import SyncResource
from atm_assets.tags import NO_RETRY_TAGS


def check_specs(
    spec: TableSpec, partitions_def: PartitionsDefinition | None
) -> list[AssetCheckSpec]:
    """The dataset's checks, partitioned like it: the UI shows each partition's result, and a
    blocking one that fails keeps what is derived from that partition from being built. A
    check about the run itself (schema drift) or the table's key has one result per run; a
    blocking one that fails holds back what is derived from every partition until a run
    passes it."""
    with warnings.catch_warnings():
        # Partitioned checks are a preview in Dagster 1.13: used knowingly.
        warnings.simplefilter("ignore", PreviewWarning)
        return [
            AssetCheckSpec(
                c.name,
                asset=spec.name,
                description=c.description,
                blocking=c.blocking,
                partitions_def=None if c.per_run else partitions_def,
            )
            for c in checks_for(spec)
        ]


def evaluate_checks(
    context: AssetExecutionContext,
    spec: TableSpec,
    sync: SyncResource,
    keys: Sequence[str],
    skip: Sequence[str] = (),
) -> Iterator[AssetCheckEvaluation | Output[None]]:
    """Each check on each partition the run wrote (`keys`; none: the unpartitioned table),
    read back from the table; `skip`: partitions not published yet. A blocking failure fails
    the step once every result is recorded, and tags the run so it is not retried: fetching
    the same answer again would not mend it (each schedule's next ticks do, once published:
    they ask for the open days of the dataset's publication lag again)."""
    database = sync.database
    checks = PartitionChecks(
        database.writer(spec),
        lambda other: database.writer(_spec_of(other)),
        extra_fields(spec.api_name),
    )
    bounds: dict[str | None, list[Bounds] | None] = (
        {k: [b] for k, b in zip(keys, row_bounds(spec, keys), strict=True)}
        if keys
        else {None: None}
    )
    selected = {k.name for k in context.selected_asset_check_keys}
    findings = [f for f in checks.evaluate(bounds, skip) if f.check in selected]
    failed = [f for f in findings if not f.passed]
    for finding in failed:
        log = context.log.error if finding.blocking else context.log.warning
        log(f"Check failed: {finding.line(spec.name)}")
    if any(f.blocking for f in failed):
        context.instance.add_run_tags(context.run.run_id, NO_RETRY_TAGS)
    targets = materializations(context, spec, keys)
    for finding in findings:
        yield evaluation(spec, finding, targets.get(finding.partition))
    # Each selected check's output, so the step has produced what it declares (the results
    # themselves are the evaluations above, one per partition).
    for name in sorted(selected):
        check_key = AssetCheckKey(AssetKey(spec.name), name)
        yield Output(
            None, output_name=context.assets_def.get_output_name_for_asset_check_key(check_key)
        )


def materializations(
    context: AssetExecutionContext, spec: TableSpec, keys: Sequence[str]
) -> dict[str | None, AssetCheckEvaluationTargetMaterializationData]:
    """The materialisation each partition's results are about (this run's, recorded before the
    checks run): a result counts for the partition only while that is its latest. Under None,
    the newest of them: what a result about the whole run is about."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(spec.name), asset_partitions=list(keys) or None),
        limit=max(len(keys), 1),
    ).records
    out: dict[str | None, AssetCheckEvaluationTargetMaterializationData] = {}
    for record in records:  # newest first
        target = AssetCheckEvaluationTargetMaterializationData(
            storage_id=record.storage_id,
            run_id=record.event_log_entry.run_id,
            timestamp=record.timestamp,
        )
        out.setdefault(None, target)
        if keys:
            out.setdefault(record.partition_key, target)
    return out


def evaluation(
    spec: TableSpec,
    finding: Finding,
    target: AssetCheckEvaluationTargetMaterializationData | None,
) -> AssetCheckEvaluation:
    return AssetCheckEvaluation(
        asset_key=AssetKey(spec.name),
        target_materialization_data=target,
        check_name=finding.check,
        passed=finding.passed,
        partition=finding.partition,
        blocking=finding.blocking,
        severity=AssetCheckSeverity.ERROR if finding.blocking else AssetCheckSeverity.WARN,
        description=finding.description,
        metadata={
            k: MetadataValue.json(v) if isinstance(v, list) else v
            for k, v in finding.metadata.items()
        },
    )


def _spec_of(other: TableSpec | str) -> TableSpec:
    """A table the checks read besides the dataset's own: the calendar, a covered dataset."""
    if isinstance(other, TableSpec):
        return other
    return {d.name: d for d in BUILTIN}[other]
