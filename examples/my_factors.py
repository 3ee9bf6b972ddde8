"""Your own assets on ATM's data: a per-day chip signal and a report over it.

Named in ATM_USER_ASSETS=examples.my_factors (or `extensions: {user_assets: …}` in the config
file), these join ATM's code location under the group `user_assets`. An input named after a
dataset (built-in or declared in config/datasets.yaml) arrives as a pandas DataFrame; a
returned DataFrame is written to a table of the same name in ATM's database. Declaring no
automation condition, they get ATM's: the daemon builds them after their inputs, never over an
input partition whose blocking check failed.
"""

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, asset

from atm_assets.partitions import trade_date_partitions


@asset(
    # The same partitions as the trade-date datasets: each run reads that day's rows only.
    partitions_def=trade_date_partitions,
    # The table's primary key; without one a table has none (rows are replaced per partition).
    metadata={"atm/key": ["ts_code", "trade_date"]},
)
def chip_signal(context: AssetExecutionContext, cyq_perf: pd.DataFrame) -> pd.DataFrame:
    """Each stock's winner rate that day, and whether most holders are in profit."""
    signal = cyq_perf[["ts_code", "trade_date", "winner_rate"]].copy()
    signal["in_profit"] = (signal["winner_rate"].astype(float) > 50).astype(int)
    context.log.info(f"{context.partition_key}: {len(signal)} stocks")
    return signal


@asset(
    # Unpartitioned: it reads the whole chip_signal table (`atm/last_days` or `atm/since`
    # would narrow the window).
    ins={"chip_signal": AssetIn(metadata={"atm/since": "2024-01-01"})},
)
def chip_breadth(chip_signal: pd.DataFrame) -> pd.DataFrame:
    """Per day: how many stocks were read, and the share with most holders in profit."""
    return (
        chip_signal.groupby("trade_date", as_index=False)
        .agg(stocks=("ts_code", "count"), in_profit=("in_profit", "mean"))
        .sort_values("trade_date")
    )
