"""The original script's `sync_stock_basic.py`: `python -m atm_assets.sync_stock_basic [flags]`."""

from atm_assets.cli import sync_stock_basic_entry

if __name__ == "__main__":
    sync_stock_basic_entry()
