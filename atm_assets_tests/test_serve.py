"""scripts/serve.sh: the webserver and daemon of a deployment start, answer, stop on SIGTERM."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.cli
ROOT = Path(__file__).resolve().parent.parent
DAEMON_HEALTH = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> dict[int, str]:
    """Child processes of `pid` and their command lines (from ps)."""
    out = subprocess.run(
        ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout
    return {int(line.split(None, 1)[0]): line for line in out.splitlines() if line.strip()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait(check, timeout: float, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve.sh exited ({proc.returncode}) before {what}: {log.read_text()}")
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    pytest.fail(f"no {what} within {timeout} s: {log.read_text()[-3000:]}")


def test_serve_starts_webserver_and_daemon_and_stops_both_on_sigterm(tmp_path):
    # A copy of the project's entry points, so the instance and ATM's storage land in tmp_path.
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "serve.sh", tmp_path / "scripts" / "serve.sh")
    for name in ("workspace.yaml", "dagster.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "DB_"))},
        "ATM_VENV": str(Path(sys.executable).parent.parent),
        "PYTHONPATH": str(ROOT),
        "ATM_SQLITE_PATH": str(tmp_path / "storage" / "atm.db"),
    }
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(tmp_path / "scripts" / "serve.sh"), "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: requests.get(f"{url}/server_info", timeout=2).ok, 120, "webserver", proc, log)

        def daemon_alive() -> bool:
            answer = requests.post(f"{url}/graphql", json={"query": DAEMON_HEALTH}, timeout=5)
            statuses = answer.json()["data"]["instance"]["daemonHealth"]["allDaemonStatuses"]
            healthy = {s["daemonType"] for s in statuses if s["healthy"]}
            return "SCHEDULER" in healthy and "SENSOR" in healthy

        _wait(daemon_alive, 120, "daemon heartbeat", proc, log)
        children = _children(proc.pid)
        names = " ".join(children.values())
        assert "dagster-webserver" in names and "dagster-daemon" in names
        assert (tmp_path / ".dagster" / "storage").is_dir()  # the instance is the copy's own

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143, log.read_text()[-3000:]
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [children[p] for p in children if _alive(p)]
        assert "Stopping the webserver and the daemon" in log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_serve_refuses_bad_input():
    proc = subprocess.run(
        [str(ROOT / "scripts" / "serve.sh"), "--port", "nope"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "is not a port" in proc.stderr
    proc = subprocess.run(
        [str(ROOT / "scripts" / "serve.sh"), "--bogus"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2 and "unknown argument" in proc.stderr
