#!/usr/bin/env bash
# The original script's method 3: `sync_stock_basic.sh [--exchange … --list-status … --batch-size …]`,
# the flags of `controller.sh sync stock-basic`, run through Dagster from the project root.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${ATM_VENV:-$root/.venv}/bin/python"
if [[ ! -x "$python" ]]; then
  echo "Error: no virtual environment at ${ATM_VENV:-$root/.venv}: run ./scripts/setup.sh first" >&2
  exit 2
fi
export DAGSTER_HOME="${DAGSTER_HOME:-$root}"
export ATM_PROG="${ATM_PROG:-$(basename "$0")}"
exec "$python" -m atm_assets.sync_stock_basic "$@"
