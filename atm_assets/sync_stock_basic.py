"""The original script's `sync_stock_basic.py`: `python -m atm_assets.sync_stock_basic [flags]`."""

import sys

from atm_assets.cli import sync_stock_basic_main

if __name__ == "__main__":
    sys.exit(sync_stock_basic_main())
