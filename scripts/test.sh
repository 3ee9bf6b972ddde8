#!/usr/bin/env bash
# Run the whole test suite (sets up .venv first): lint, types, then pytest. The suite starts its
# own throwaway PostgreSQL (or uses ATM_TEST_PG_ADMIN_URL). Extra arguments go to pytest, e.g.
# `scripts/test.sh -m pure` for one layer; ATM_TEST_WORKERS sets the parallel workers.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh"
venv="${ATM_VENV:-$root/.venv}"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/mypy"
# Most tests wait on subprocesses, servers and sleeps rather than compute: more workers than
# cores pays off. Work stealing: a worker that runs out takes queued tests from a busy one, so
# a few minute-long tests do not leave the others idle at the end.
exec "$venv/bin/python" -m pytest -n "${ATM_TEST_WORKERS:-3}" --dist worksteal "$@"
