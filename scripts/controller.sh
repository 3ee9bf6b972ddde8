#!/usr/bin/env bash
# ATM controller: `controller.sh sync <dataset> [...]`, `storage status`, `state list|show|reset`,
# `tushare status|clear API`.
# Runs from the project root (where dagster.yaml and storage/ live) with the project's venv.
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
exec "$python" -m atm_assets.cli "$@"
