"""The Dagster-free core: Tushare client, table writer, task state, locks and the sync engine."""
