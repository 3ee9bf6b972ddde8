#!/usr/bin/env bash
# The offline Tushare sandbox in the background: `sandbox.sh start|stop|status`.
# Port: $ATM_SANDBOX_PORT (default 7878); token: sandbox-token. Pid and log under storage/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${ATM_VENV:-$root/.venv}/bin/python"
port="${ATM_SANDBOX_PORT:-7878}"
pidfile="$root/storage/sandbox.pid"
log="$root/storage/sandbox.log"
url="http://127.0.0.1:$port/dataapi"

running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
hint() { echo "  export TUSHARE_TOKEN=sandbox-token TUSHARE_API_URL=$url"; }

case "${1:-}" in
  start)
    if running; then
      echo "Tushare sandbox already running at $url (pid $(cat "$pidfile")). To use it:"
      hint
      exit 0
    fi
    if [[ ! -x "$python" ]]; then
      echo "Error: no virtual environment: run ./scripts/setup.sh first" >&2
      exit 2
    fi
    mkdir -p "$root/storage"
    # fidelity real: the real service's quirks (see atm_assets/sandbox/README.md).
    nohup "$python" -m atm_assets.sandbox --port "$port" --token sandbox-token --fidelity real \
      >"$log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 100); do
      grep -q "listening on" "$log" 2>/dev/null && break
      running || break
      sleep 0.1
    done
    if ! grep -q "listening on" "$log" 2>/dev/null; then
      rm -f "$pidfile"
      echo "Error: the sandbox did not start: $(tail -n 1 "$log")" >&2
      exit 1
    fi
    echo "Tushare sandbox running at $url (pid $(cat "$pidfile")). To use it:"
    hint
    ;;
  stop)
    if running; then
      kill "$(cat "$pidfile")"
      echo "Stopped the Tushare sandbox (pid $(cat "$pidfile"))"
    else
      echo "The Tushare sandbox is not running"
    fi
    rm -f "$pidfile"
    ;;
  status)
    if running; then
      echo "Tushare sandbox running at $url (pid $(cat "$pidfile"))"
    else
      echo "The Tushare sandbox is not running"
      exit 1
    fi
    ;;
  *)
    echo "usage: $(basename "$0") start|stop|status" >&2
    exit 2
    ;;
esac
