"""`stock_basic_summary`: listed-company counts by exchange, status and market."""

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, asset

from atm_assets.automation import after_inputs


# Rebuilt after any exchange's stocks are synced, from those synced so far.
@asset(
    group_name="derived", kinds={"pandas"}, automation_condition=after_inputs(wait_for_all=False)
)
def stock_basic_summary(context: AssetExecutionContext, stock_basic: pd.DataFrame) -> pd.DataFrame:
    """Stock counts per exchange × list status × market, read back from the stock_basic table."""
    summary = (
        stock_basic.fillna({"market": "(none)"})
        .groupby(["exchange", "list_status", "market"], dropna=False)
        .size()
        .rename("stocks")
        .reset_index()
        .sort_values(["exchange", "list_status", "market"])
        .reset_index(drop=True)
    )
    context.add_output_metadata(
        {
            "stocks": int(len(stock_basic)),
            "groups": int(len(summary)),
            "preview": MetadataValue.md(summary.to_markdown(index=False)),
        }
    )
    return summary
