"""The README's shell blocks, pasted in order into a fresh copy of the project, all work."""

import hashlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from atm_assets_tests.helpers import PROJECT_ROOT

pytestmark = pytest.mark.cli

BASH_BLOCK = re.compile(r"^ *```bash\n(.*?)^ *```", re.S | re.M)
# A command the README says runs until Ctrl-C: started, checked, then stopped.
LONG_RUNNING = "runs until Ctrl-C"
# The suite itself: running it from inside the suite would recurse.
SKIPPED = ("./scripts/test.sh",)
SANDBOX_PORT, UI_PORT = "7878", "3000"


def readme_commands(text: str) -> list[str]:
    """Every command of every ```bash block, in order; backslash continuations joined."""
    commands = []
    for block in BASH_BLOCK.findall(text):
        pending = ""
        for raw in block.splitlines():
            line = raw.strip()
            if pending:
                line = pending + " " + line
                pending = ""
            if line.endswith("\\"):
                pending = line[:-1].rstrip()
                continue
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _script(commands: list[str], ports: dict[str, str]) -> str:
    lines = [
        "set -euo pipefail",
        # A long-running command: start it in its own process group, wait until it answers
        # (its -p port) or has run for 30 s, then press Ctrl-C (SIGINT to the group) and give
        # it 30 s to stop before killing what is left.
        "long_running() {",
        # Job control on: the job gets its own process group and, unlike a plain background
        # job, does not ignore SIGINT, so Ctrl-C stops it as it would in a terminal.
        '  set -m; bash -c "$1" >>long_running.log 2>&1 & local pid=$!; set +m',
        "  for _ in $(seq 150); do",
        '    kill -0 "$pid" 2>/dev/null || { echo "exited early: $1"; tail -20 long_running.log;'
        " return 1; }",
        '    if [[ -n "${2:-}" ]]; then',
        '      .venv/bin/python -c "import urllib.request as u; '
        "u.urlopen('http://127.0.0.1:${2:-}/server_info', timeout=2)\" 2>/dev/null && break",
        "    fi",
        "    sleep 0.2",
        "  done",
        # Either kill may find the group already gone, which is the good case, not an error
        # (under set -e a bare failing kill ended the script silently).
        '  kill -INT -- "-$pid" 2>/dev/null || true',
        '  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done',
        '  kill -KILL -- "-$pid" 2>/dev/null || true; wait "$pid" || true',
        "}",
    ]
    for command in commands:
        if command.startswith(SKIPPED):
            continue
        for old, new in ports.items():
            command = command.replace(old, new)
        lines.append(f"echo {shlex.quote('+++ ' + command)}")
        if LONG_RUNNING in command:
            port = re.search(r"-p (\d+)", command)
            body = command.split("#", 1)[0].strip()
            lines.append(f"long_running {shlex.quote(body)} {port.group(1) if port else ''}")
        else:
            lines.append(command)
    return "\n".join(lines) + "\n"


def test_the_readme_lists_the_two_quick_start_commands():
    text = (PROJECT_ROOT / "README.md").read_text()
    first = readme_commands(text)[:2]
    assert [c.split("#")[0].strip() for c in first] == [
        "./scripts/quickstart.sh",
        "./scripts/test.sh",
    ]


def test_every_shell_block_of_the_readme_works_in_order(tmp_path):
    venv = Path(sys.prefix)
    stamp = venv / ".atm-installed"
    wanted = hashlib.sha256((PROJECT_ROOT / "pyproject.toml").read_bytes()).hexdigest()
    assert stamp.exists() and stamp.read_text().strip() == wanted, (
        "the test venv is not set up from this pyproject.toml: run ./scripts/setup.sh"
    )
    copy = tmp_path / "atm"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if (PROJECT_ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, copy / name)
    (copy / ".venv").symlink_to(venv)

    ports = {SANDBOX_PORT: str(_free_port()), UI_PORT: str(_free_port())}
    script = _script(readme_commands((copy / "README.md").read_text()), ports)
    (copy / "readme.sh").write_text(script)
    # A new user's shell: none of the test run's settings, no system PostgreSQL configured.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TUSHARE_", "DB_", "ATM_", "DAGSTER_"))
    }
    env.update(ATM_VENV=str(venv), ATM_SANDBOX_PORT=ports[SANDBOX_PORT])
    try:
        proc = subprocess.run(
            ["bash", "readme.sh"], cwd=copy, env=env, capture_output=True, text=True, timeout=900
        )
    finally:
        subprocess.run(["bash", "scripts/sandbox.sh", "stop"], cwd=copy, env=env, check=False)
        # The copy holds the test sources, whose fake secrets the session's scan would find.
        shutil.rmtree(copy, ignore_errors=True)
    ran = [line[4:] for line in proc.stdout.splitlines() if line.startswith("+++ ")]
    assert proc.returncode == 0, (
        f"README command failed: {ran[-1] if ran else '?'}\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    assert len(ran) >= 20
    assert "Traceback" not in proc.stdout + proc.stderr
