#!/usr/bin/env bash
# ATM controller: `controller.sh sync stock-basic [...]`, `storage status`, `state list|show|reset`.
# Runs from the project root (where dagster.yaml and storage/ live) with the project's venv.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${ATM_PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python=python3; fi
fi
export DAGSTER_HOME="${DAGSTER_HOME:-$root}"
exec "$python" -m atm_assets.cli "$@"
