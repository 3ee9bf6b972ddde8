#!/usr/bin/env bash
# Create .venv and install ATM with its dev tools; quick when already done.
# Python: $ATM_PYTHON if set, else the newest of python3.13, python3.12, python3.11, python3
# that runs and is a supported version (3.11 to 3.13).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${ATM_VENV:-$root/.venv}"
supported='import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else 1)'

find_python() {
  if [[ -n "${ATM_PYTHON:-}" ]]; then
    if ! "$ATM_PYTHON" -c "$supported" >/dev/null 2>&1; then
      echo "Error: ATM_PYTHON=$ATM_PYTHON is not a Python 3.11, 3.12 or 3.13 that runs" >&2
      return 1
    fi
    echo "$ATM_PYTHON"
    return 0
  fi
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    # A pyenv shim is on PATH even when its version is not selected: run it to be sure.
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "$supported" >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "Error: ATM needs Python 3.11, 3.12 or 3.13 and found none that runs" \
    "(tried python3.13, python3.12, python3.11, python3). Install one, or set ATM_PYTHON" \
    "to its path." >&2
  return 1
}

if [[ ! -x "$venv/bin/python" ]]; then
  py="$(find_python)"
  echo "Creating $venv with $("$py" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
  "$py" -m venv "$venv"
fi
stamp="$venv/.atm-installed"
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]"
  echo "$want" > "$stamp"
fi
