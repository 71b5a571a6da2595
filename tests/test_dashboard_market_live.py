"""The market page on a dry-run config: the venue's market now (the shipped venue
serving 12 generated pairs, funding every 1, 2, 4 or 8 h), read in the background
through real ccxt, ranked as ``orchestrator screen --json`` ranks it, in Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orchestrator.market.synthetic import write_folder
from tests.dashboard_support import dashboard, env
from tests.test_dashboard_browser import ARGS, CHROMIUM
from tests.universe_support import venue_process

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed: apt-get install chromium"
)


def test_the_market_page_reads_the_live_market_as_the_screen_does(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    write_folder(tmp_path / "data", 12, 60, seed=5)
    with venue_process(tmp_path / "data") as url:
        (tmp_path / "config.yaml").write_text(
            f"mode: paper\nmarket: live\nlive:\n  url: {url}\nuniverse:\n  min_history_days: 3\n"
        )
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator", "screen", "config.yaml", "--json"],
            cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        screen = json.loads(done.stdout)["pairs"]
        with dashboard(tmp_path, "--config", "config.yaml") as site, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                page: Any = browser.new_page(viewport={"width": 1300, "height": 900})
                page.goto(f"{site}market")
                # First the read under way, then (the page asks again by itself) the table.
                page.wait_for_selector("table.screen", timeout=60_000)
                assert "the live market of" in page.locator("p.note").nth(1).inner_text()
                rows = page.locator("table.screen tbody tr")
                assert rows.count() == len(screen) == 12
                for i, want in enumerate(screen):
                    cells = rows.nth(i).locator("td")
                    assert cells.nth(1).inner_text() == want["pair"]
                    net = cells.nth(3).get_attribute("data-exact")
                    assert (net and Decimal(net)) == (
                        want["net_annualised"] and Decimal(want["net_annualised"])
                    )
                    # the venue's predicted rate: a live market's column
                    predicted = cells.nth(7).get_attribute("data-exact")
                    assert Decimal(str(predicted)) == Decimal(want["predicted_rate"])
                assert "read " in page.locator("#market-status").inner_text()
                heat = page.locator("svg.heatmap rect[data-pair]")
                assert heat.count() >= 12 * 4  # a month of weekly means for each pair
                page.screenshot(path=str(tmp_path / "market-live.png"), full_page=True)
            finally:
                browser.close()
