"""Declarative automation: what is derived from synced data is built after its inputs, once their
blocking checks have not failed; the daemon's one automation sensor evaluates it."""

from collections.abc import Mapping, Sequence

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    PartitionsDefinition,
    TimeWindowPartitionsDefinition,
)

# How often the daemon evaluates the conditions (Dagster's default is 30 s; a minute is ample
# for data published once a day, and costs the instance's storage half as much).
AUTOMATION_INTERVAL_SECONDS = 60


def no_failed_blocking_checks() -> AutomationCondition:
    """No blocking check of an input partition failed on its latest materialisation. (Dagster's
    `all_deps_blocking_checks_passed` would also wait for checks that never ran — on partitions
    synced before a check existed, forever.)"""
    return AutomationCondition.all_deps_match(
        AutomationCondition.all_checks_match(
            ~AutomationCondition.check_failed(), blocking_only=True
        ).with_label("no blocking check failed")
    ).with_label("no input's blocking check failed")


def after_inputs(
    ignore: Sequence[str | AssetKey] = (), wait_for_all: bool = True
) -> AutomationCondition:
    """Build a partition when an input partition was updated, or when it is missing while its
    inputs are there; not while an input or itself is being built, not over an input whose
    blocking check failed. Unlike `eager()`, any partition (a trade date re-fetched weeks
    later), not only the latest; inputs in `ignore` (read whole, e.g. the stock list) neither
    trigger a rebuild of every partition nor hold one back. `wait_for_all=False`: built from
    whichever input partitions exist (a summary of the exchanges synced so far)."""
    updated = AutomationCondition.any_deps_updated()
    missing = AutomationCondition.any_deps_missing()
    in_progress = AutomationCondition.any_deps_in_progress()
    if ignore:
        skipped = AssetSelection.assets(*ignore)
        updated, missing, in_progress = (
            updated.ignore(skipped),
            missing.ignore(skipped),
            in_progress.ignore(skipped),
        )
    wanted = (AutomationCondition.newly_missing() | updated).since_last_handled()
    if wait_for_all:
        wanted = wanted & ~missing
    return (
        wanted & ~in_progress & ~AutomationCondition.in_progress() & no_failed_blocking_checks()
    ).with_label("after its inputs, unless their checks failed")


def default_condition(
    own: PartitionsDefinition | None, inputs: Mapping[AssetKey, PartitionsDefinition | None]
) -> AutomationCondition:
    """`after_inputs()` fitted to an asset's partitions, for users' assets that declare no
    condition. A partitioned asset ignores the inputs it reads whole (unpartitioned, or
    partitioned by something other than time when its own partitions differ): one sync of
    the stock list would otherwise rebuild every day. An unpartitioned asset over partitioned
    inputs is built from the partitions there are: it would otherwise wait for every one."""
    if own is None:
        return after_inputs(wait_for_all=all(p is None for p in inputs.values()))
    timed = isinstance(own, TimeWindowPartitionsDefinition)
    whole = [
        key
        for key, theirs in inputs.items()
        if theirs != own and not (timed and isinstance(theirs, TimeWindowPartitionsDefinition))
    ]
    return after_inputs(ignore=whole)


def automation_sensor() -> AutomationConditionSensorDefinition:
    """The daemon's evaluator of every automation condition, running from the start."""
    return AutomationConditionSensorDefinition(
        "atm_automation",
        target=AssetSelection.all(),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=AUTOMATION_INTERVAL_SECONDS,
        description="Builds derived tables and users' assets after the data they read, "
        "unless a blocking check of that data failed.",
    )
