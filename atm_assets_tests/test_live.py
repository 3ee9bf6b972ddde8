"""Against the real Tushare service, with a real token (ATM_LIVE_TUSHARE_TOKEN): the catalog's
contract check. Deselected by default (`-m live` runs them); without a token they skip."""

import json
import os

import pytest

from atm_assets_tests.helpers import controller

pytestmark = [pytest.mark.live, pytest.mark.cli]

TOKEN = os.environ.get("ATM_LIVE_TUSHARE_TOKEN")


@pytest.fixture
def live(workdir, monkeypatch):
    if not TOKEN:
        pytest.skip("no real Tushare token: set ATM_LIVE_TUSHARE_TOKEN to check the catalog live")
    for var in ("TUSHARE_API_URL", "TUSHARE_CALLS_PER_MINUTE", "TUSHARE_RATE_WINDOW"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TUSHARE_TOKEN", TOKEN)
    return workdir


def test_the_catalog_matches_the_live_service(live):
    proc = controller("tushare", "check", "--json", cwd=live, timeout=1800)
    results = json.loads(proc.stdout)
    # A dataset the account has no points for is reported, not failed here: the rest must
    # answer as declared.
    reachable = [r for r in results if not r["access"].startswith("no permission")]
    assert reachable, proc.stderr
    wrong = [r for r in reachable if not r["ok"]]
    assert wrong == [], json.dumps(wrong, ensure_ascii=False, indent=2)
