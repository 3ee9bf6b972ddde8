#!/usr/bin/env bash
# The Dagster webserver and daemon of a deployment on this host, in the foreground: the daemon
# runs the schedules, sensors (alerts, freshness), the run queue and run retries; the webserver
# is the UI. Ctrl-C or SIGTERM stops both gracefully; if either dies, the other is stopped too.
#
#   scripts/serve.sh [--host 127.0.0.1] [--port|-p 3000]
#
# DAGSTER_HOME: the instance directory holding dagster.yaml (default: the project root, whose
# dagster.yaml keeps the instance in SQLite under .dagster/; deploy/postgres for PostgreSQL).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"  # dagster.yaml's relative paths and workspace.yaml's working_directory are the root's
host=127.0.0.1
port=3000
usage() { echo "usage: scripts/serve.sh [--host HOST] [--port|-p PORT]" >&2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --host) host="${2:?--host needs a value}"; shift 2 ;;
    --port|-p) port="${2:?--port needs a value}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "Error: unknown argument $1" >&2; usage; exit 2 ;;
  esac
done
if ! [[ "$port" =~ ^[0-9]+$ ]] || (( port < 1 || port > 65535 )); then
  echo "Error: --port $port is not a port (1-65535)" >&2
  exit 2
fi
bin="${ATM_VENV:-$root/.venv}/bin"
if [[ ! -x "$bin/dagster-webserver" || ! -x "$bin/dagster-daemon" ]]; then
  echo "Error: no virtual environment with Dagster: run ./scripts/setup.sh first" >&2
  exit 2
fi
export DAGSTER_HOME="${DAGSTER_HOME:-$root}"
if [[ ! -f "$DAGSTER_HOME/dagster.yaml" ]]; then
  echo "Error: DAGSTER_HOME=$DAGSTER_HOME has no dagster.yaml" >&2
  exit 2
fi
if [[ "$host" != "127.0.0.1" && "$host" != "localhost" ]]; then
  echo "Warning: the UI can launch runs: keep $host:$port behind an authenticating proxy" >&2
fi

pids=()
stop() {
  trap - INT TERM
  echo "Stopping the webserver and the daemon …" >&2
  kill -TERM "${pids[@]}" 2>/dev/null || true
  # Both finish their current work (the daemon its iteration) and exit.
  wait "${pids[@]}" 2>/dev/null || true
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

echo "Dagster instance: $DAGSTER_HOME/dagster.yaml; UI: http://$host:$port" >&2
"$bin/dagster-webserver" -h "$host" -p "$port" -w "$root/workspace.yaml" &
pids+=($!)
"$bin/dagster-daemon" run -w "$root/workspace.yaml" &
pids+=($!)
# Whichever ends first (a crash, a port in use) ends the deployment: never half of it.
status=0
wait -n "${pids[@]}" || status=$?
echo "Error: the webserver or the daemon exited (status $status); stopping the other" >&2
stop
exit $(( status == 0 ? 1 : status ))
