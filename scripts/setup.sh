#!/usr/bin/env bash
# Create .venv (Python 3.11) and install ATM with its dev tools; quick when already done.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${ATM_VENV:-$root/.venv}"
if [[ ! -x "$venv/bin/python" ]]; then
  py="$(command -v python3.11 || command -v python3)"
  "$py" -c 'import sys; assert sys.version_info[:2] == (3, 11), "ATM needs Python 3.11"'
  "$py" -m venv "$venv"
fi
stamp="$venv/.atm-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]"
  echo "$want" > "$stamp"
fi
