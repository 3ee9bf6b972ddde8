"""Refresh the README's screenshots from the real Dagster UI: sandbox data synced into a
throwaway instance, the webserver started on it, headless Chromium photographing each page.

    .venv/bin/python scripts/ui_screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# (file, page, what it shows)
PAGES = [
    ("asset-graph.png", "/asset-groups", "every group and its assets"),
    (
        "lineage.png",
        "/assets/daily_hfq?view=lineage&lineageScope=upstream&lineageDepth=2",
        "trade_cal, daily and adj_factor feed daily_hfq",
    ),
    (
        "stock-universe-lineage.png",
        "/assets/stock_universe?view=lineage&lineageScope=upstream",
        "stock_universe reads",
    ),
    ("stock-basic-partitions.png", "/assets/stock_basic?view=partitions", "partitions"),
    ("daily-checks.png", "/assets/daily?view=checks", "daily's checks, one day published partly"),
    ("daily-freshness.png", "/assets/daily?view=overview", "daily's freshness policy and state"),
    (
        "financials-group.png",
        "/locations/atm_assets/asset-groups/financials/list",
        "the financials group",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def populate(home: Path, env: dict[str, str], sandbox: Any) -> None:
    """A month of market data (its last day published partly), the stock list, a report period
    and index weights."""
    from atm_assets.api import StockIngestorService
    from atm_assets.core.errors import DataCheckError

    os.environ.update(env)
    with StockIngestorService(dagster_home=home, log_level="WARNING") as ingestor:
        ingestor.ingest("trade_cal", exchange="SSE")
        ingestor.ingest_stock_basic(exchange="", list_status="")
        for name in ("adj_factor", "daily_basic"):
            ingestor.ingest(name, start_date="20240102", end_date="20240131")
        # One day published partly: daily's rows_complete check fails for it.
        sandbox.set_publication("daily", "20240131", "partial", fraction=0.3)
        try:
            ingestor.ingest("daily", start_date="20240102", end_date="20240131")
        except DataCheckError:
            pass
        ingestor.ingest("income", start_period="20231231")
        ingestor.ingest("index_weight", index_code="000300.SH", start_date="20240101")
    tags = (
        '{"dagster/asset_partition_range_start": "2024-01-02", '
        '"dagster/asset_partition_range_end": "2024-01-31"}'
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "job",
            "execute",
            "-m",
            "atm_assets",
            "-j",
            "market_derived_job",
            "--tags",
            tags,
        ],
        cwd=home,
        env={**os.environ},
        check=True,
        capture_output=True,
    )


def shoot(chromium: str, url: str, out: Path, profile: Path) -> None:
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            f"--user-data-dir={profile}",
            "--window-size=1600,1000",
            "--virtual-time-budget=25000",
            f"--screenshot={out}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where the PNGs go")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.stderr.write("Error: no chromium on PATH (Debian: apt-get install chromium)\n")
        return 2
    from atm_assets.sandbox import SandboxServer

    home = Path(tempfile.mkdtemp(prefix="atm-ui-"))
    for name in ("dagster.yaml", "workspace.yaml"):
        shutil.copy(ROOT / name, home / name)
    # The UI's first-visit dialog would cover every page.
    (home / ".nux").mkdir()
    (home / ".nux/nux.yaml").write_text("seen: 1\n")
    server = None
    try:
        with SandboxServer(token="ui-token") as sandbox:
            sandbox.set_sizes({f"{e}:{s}": 40 for e in ("SSE", "SZSE", "BSE") for s in "LDPG"})
            env = {
                "DAGSTER_HOME": str(home),
                "TUSHARE_TOKEN": "ui-token",
                "TUSHARE_API_URL": sandbox.url,
                "TUSHARE_CALLS_PER_MINUTE": "100000",
                "ATM_SQLITE_PATH": str(home / "storage/atm.db"),
                "ATM_STATE_DIR": str(home / "storage/state"),
                "ATM_LOCK_DIR": str(home / "storage/locks"),
                "ATM_STAGING_DIR": str(home / "storage/staging"),
            }
            os.chdir(home)
            populate(home, env, sandbox)
            port = free_port()
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dagster_webserver",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-w",
                    "workspace.yaml",
                ],
                cwd=home,
                env={**os.environ},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{url}/server_info", timeout=2)
                    break
                except OSError:
                    time.sleep(0.2)
            for file, page, what in PAGES:
                shoot(chromium, url + page, Path(args.out) / file, home / "profile")
                print(f"{file}: {what} ({page})")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
