#!/usr/bin/env bash
# One command from a fresh clone: install, then sync every stock_basic partition through Dagster.
# Without TUSHARE_TOKEN it runs offline against the bundled Tushare sandbox (started for this
# command and stopped when it ends; `scripts/sandbox.sh start` keeps one running). The data lands
# in the embedded SQLite file storage/atm.db (or PostgreSQL if DB_HOST / ATM_DATABASE_URL is set).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh"
venv="${ATM_VENV:-$root/.venv}"

sandbox_pid=""
cleanup() { [[ -n "$sandbox_pid" ]] && kill "$sandbox_pid" 2>/dev/null || true; }
trap cleanup EXIT
if [[ -z "${TUSHARE_TOKEN:-}" ]]; then
  log="$(mktemp)"
  export TUSHARE_TOKEN="sandbox-token"
  "$venv/bin/python" -m atm_assets.sandbox --port 0 --token "$TUSHARE_TOKEN" --fidelity real \
    >"$log" 2>&1 &
  sandbox_pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
  export TUSHARE_API_URL="$(grep -o 'http://[^ ]*' "$log" | head -1)"
  rm -f "$log"
  echo "No TUSHARE_TOKEN: using the offline Tushare sandbox at $TUSHARE_API_URL"
fi

"$root/scripts/controller.sh" sync stock-basic --exchange "" --list-status "" "$@"
"$root/scripts/controller.sh" storage status
