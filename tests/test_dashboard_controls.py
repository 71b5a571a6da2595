"""Steering a running live run from the dashboard, in Chromium: a live run against the
loopback venue (``orchestrator venue``, ``orchestrator run``, each its own process, as
tests/test_live_control.py runs them) and the dashboard with a token. Without the token
the run's page refuses; with it, pause opening is carried out and close all leaves the
venue flat and every position closed, which the page then shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orchestrator.journal import Journal
from tests.dashboard_support import dashboard
from tests.test_crash_resume_live import Watched, orchestrator
from tests.test_dashboard_browser import ARGS, CHROMIUM
from tests.test_live_accounts import Venue
from tests.test_live_control import flat, holding, live_config

TOKEN = "dashboard-controls-test-token-42"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed: apt-get install chromium"
)


@pytest.fixture
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_close_all_from_the_dashboard_leaves_the_venue_flat(tmp_path: Path, chromium: Any) -> None:
    venue = Venue(tmp_path)
    run: Watched | None = None
    try:
        live_config(tmp_path, venue.url, both=True)
        run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
        run_dir = holding(tmp_path, run, 2)
        with dashboard(tmp_path, ORCHESTRATOR_DASHBOARD_TOKEN=TOKEN) as url:
            page = chromium.new_page(viewport={"width": 1300, "height": 900})
            # A running live run on every page: the list, the machine, the money.
            page.goto(url)
            cells = page.locator("table.runs tbody tr", has_text=run_dir.name).locator("td")
            assert [cells.nth(i).inner_text() for i in (1, 2, 3)] == [
                "live (testnet)", "bybit testnet", "running",
            ]  # fmt: skip
            assert cells.nth(6).inner_text().endswith("UTC")  # its last venue contact
            page.goto(f"{url}runs/{run_dir.name}/machine")
            assert page.locator("td[data-state='validated']").inner_text() == "2"
            page.goto(f"{url}runs/{run_dir.name}/money")
            # Its equity as it goes: the rows the run appends to its equity.csv.
            assert "the run's equity.csv" in page.locator("p.note").first.inner_text()
            page.wait_for_selector("#chart-equity .uplot")
            page.goto(f"{url}runs/{run_dir.name}")
            assert TOKEN not in page.content()  # the token never reaches a page
            # The balance broken down: the perp shorts' margin, within what is allocated,
            # is each short's contracts x entry price / leverage, as the journal has them.
            cells = page.locator("table.balance tbody tr td")
            allocated = Decimal(str(cells.nth(2).get_attribute("data-exact")))
            margin = Decimal(str(cells.nth(3).get_attribute("data-exact")))
            with Journal.read(run_dir) as view:
                shorts = [(p.perp_qty, p.perp_entry_price) for p in view.positions()]
            leverage = Decimal(1)  # live.leverage's default
            assert margin == sum((q * (e or 0) / leverage for q, e in shorts), Decimal(0))
            assert 0 < margin < allocated
            answer = page.locator("#control-answer")

            page.click("button[data-command='pause']")  # no token typed
            page.wait_for_function(
                "document.getElementById('control-answer').textContent.startsWith('refused')"
            )
            assert "does not hold the token" in answer.inner_text()

            page.fill("#token", TOKEN)
            page.click("button[data-command='pause']")
            page.wait_for_function(
                "document.getElementById('control-answer').textContent.includes('opens nothing')",
                timeout=30_000,
            )
            assert answer.inner_text().startswith("orchestrator pause: ")

            # One position closed from the page: its legs closed on the venue, the other kept.
            page.click("button[data-command='close'][data-pair='BTCUSDT']")
            page.wait_for_function(
                "document.getElementById('control-answer').textContent.includes('closing')",
                timeout=30_000,
            )
            assert answer.inner_text().startswith(
                "orchestrator close --pair BTCUSDT: closing BTCUSDT-0001"
            ), answer.inner_text()
            page.wait_for_function(
                "[...document.querySelectorAll('table.positions td.state')]"
                ".map((c) => c.textContent).sort().join() === 'closed,validated'",
                timeout=15_000,
            )
            held = {p["symbol"]: p["size"] for p in venue.admin("state")["positions"]}
            assert Decimal(held.get("BTCUSDT", "0")) == 0 and Decimal(held["ETHUSDT"]) != 0

            # The thresholds: a wrong value refused by the config's rule, a right one applied.
            page.fill("#thresholds input[name='max_basis']", "5")
            page.click("#thresholds button[type='submit']")
            page.wait_for_function(
                "document.getElementById('control-answer').textContent.includes('refused')",
                timeout=30_000,
            )
            assert "max_basis: must be at most 1" in answer.inner_text()
            page.fill("#thresholds input[name='max_basis']", "0.005")
            page.fill("#thresholds input[name='exit_annualised']", "-1")
            page.click("#thresholds button[type='submit']")
            page.wait_for_function(
                "document.getElementById('control-answer').textContent.includes('next decision')",
                timeout=30_000,
            )
            assert "strategy.exit_annualised = -1" in answer.inner_text()
            assert "max_basis" not in answer.inner_text()  # only what was changed is sent
            page.reload()  # the form shows what the run decides with now
            assert page.input_value("#thresholds input[name='exit_annualised']") == "-1"
            page.fill("#token", TOKEN)  # (a reload forgets it: it is never in the page)

            page.click("button[data-command='stop']")
            page.wait_for_function(
                "document.getElementById('control-answer').textContent.includes('stopping')",
                timeout=30_000,
            )
            assert answer.inner_text().startswith("orchestrator stop --close-all: ")
            code, err = run.finish(timeout=60)
            assert code == 0, err
            assert flat(venue)
            # The page follows the journal: both positions closed, without a reload.
            page.wait_for_function(
                "[...document.querySelectorAll('table.positions td.state')]"
                ".map((c) => c.textContent).join() === 'closed,closed'",
                timeout=15_000,
            )
            page.screenshot(path=str(tmp_path / "closed-from-the-dashboard.png"), full_page=True)
            page.close()
    finally:
        if run is not None and run.process.poll() is None:
            run.process.kill()
            run.process.wait()
        venue.stop()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["positions"] == {"closed": 2}
    with Journal.read(run_dir) as view:
        said = [v for k, v in view.meta().items() if k.startswith("control ")]
    assert any("orchestrator stop --close-all (by " in line for line in said), said
    assert any("orchestrator set exit_annualised=-1 (by " in line and "via the dashboard" in line
               for line in said), said  # fmt: skip
