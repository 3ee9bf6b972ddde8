#!/usr/bin/env bash
# Run the whole test suite (sets up .venv first). Needs PostgreSQL on 127.0.0.1:5432
# (override with ATM_TEST_PG_ADMIN_URL). Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh"
venv="${ATM_VENV:-$root/.venv}"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
exec "$venv/bin/python" -m pytest "$@"
