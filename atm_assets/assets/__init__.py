"""Software-defined assets of ATM."""

import warnings

from dagster import BetaWarning

# Every asset here uses a single-run backfill policy, which Dagster 1.13 flags as beta at each
# definition: six warnings on every `dagster asset materialize`. ATM uses it knowingly.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=BetaWarning)
