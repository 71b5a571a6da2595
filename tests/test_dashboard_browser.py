"""The dashboard in a real browser: Debian's Chromium driven by Playwright (no
Playwright browser download), over a short replay run through the real CLI. Each page
is loaded, its figures compared with summary.json, positions.csv and the journal, the
live updates seen to arrive when the journal changes; a screenshot of each page is
kept in the test's temporary folder."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orchestrator.journal.reader import read_journal
from tests.dashboard_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    dashboard,
    env,
    quick_sweep,
    short_replay,
)

ARGS = CHROMIUM_ARGS  # test_dashboard_controls.py takes both from here

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed: apt-get install chromium"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """(the dashboard's URL, the run folder, where screenshots go); a sweep beside."""
    workdir = tmp_path_factory.mktemp("dashboard")
    run = short_replay(workdir)
    quick_sweep(workdir)  # sweep.yaml's output: where the dashboard looks for sweeps
    shots = tmp_path_factory.mktemp("screenshots")
    with dashboard(workdir) as url:
        yield url, run, shots


def exact(page: Any, selector: str) -> Decimal:
    return Decimal(page.locator(selector).first.get_attribute("data-exact"))


def summary_of(run: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((run / "summary.json").read_text())
    return value


def positions_csv(run: Path) -> dict[str, dict[str, str]]:
    with (run / "positions.csv").open() as f:
        return {r["id"]: r for r in csv.DictReader(f) if r["run"] == "strategy"}


def test_runs_page_shows_the_run_as_status_does(site: tuple[str, Path, Path], page: Any) -> None:
    url, run, shots = site
    page.goto(url)
    row = page.locator("table.runs tbody tr", has_text=run.name)
    assert row.count() == 1
    cells = row.locator("td")
    assert cells.nth(1).inner_text() == "replay"
    assert cells.nth(2).inner_text() == "bybit"
    assert cells.nth(3).inner_text() == "stopped"
    summary = summary_of(run)
    # equity, funding, fees: exactly the summary's (shown to the cent)
    assert Decimal(cells.nth(9).get_attribute("data-exact")) == Decimal(summary["ending_equity"])
    assert Decimal(cells.nth(10).get_attribute("data-exact")) == Decimal(
        summary["total"]["funding"]
    )
    assert Decimal(cells.nth(11).get_attribute("data-exact")) == Decimal(summary["total"]["fees"])
    assert cells.nth(9).inner_text() == f"{Decimal(summary['ending_equity']):,.2f}"
    page.screenshot(path=str(shots / "runs.png"), full_page=True)


def test_run_page_positions_filter_and_open_a_position(
    site: tuple[str, Path, Path], page: Any
) -> None:
    url, run, shots = site
    page.goto(f"{url}runs/{run.name}")
    by_id = positions_csv(run)
    rows = page.locator("table.positions tbody tr")
    assert rows.count() == len(by_id)
    assert page.locator("#shown").inner_text() == f"1-{len(by_id)} of {len(by_id)}"
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td")
        expected = by_id[cells.nth(0).inner_text()]
        assert cells.nth(2).inner_text() == expected["state"]
        assert cells.nth(3).inner_text() == expected["quantity"]
        for column, name in ((9, "funding"), (10, "fees"), (11, "price_pnl")):
            shown = cells.nth(column).get_attribute("data-exact")
            assert Decimal(shown) == Decimal(expected[name]), name
    # A replay closes what it holds at its end: every position is closed.
    closed = [p for p in by_id.values() if p["state"] == "closed"]
    assert len(closed) == len(by_id) >= 4
    page.click("a[data-state='closed']")
    page.wait_for_url("**state=closed")
    rows = page.locator("table.positions tbody tr")
    assert rows.count() == len(closed)
    page.screenshot(path=str(shots / "run.png"), full_page=True)

    # A position opens its path on the machine and its timeline from the trace.
    position_id = rows.first.locator("td").first.inner_text()
    rows.first.locator("a").first.click()
    page.wait_for_url(f"**/positions/{position_id}")
    with read_journal(run) as view:
        steps = view.transitions(position_id)
    path = " → ".join([steps[0].source, *(t.target for t in steps)])
    assert page.locator("#path").inner_text() == path
    assert page.locator(".diagram svg").count() == 1
    assert page.locator("table.transitions tbody tr").count() == len(steps)
    timeline = page.locator("#timeline").inner_text()
    assert timeline.startswith(f"position {position_id}")
    assert f"cid replay-{position_id}-so1" in timeline  # the spot open order, as traced
    page.screenshot(path=str(shots / "position.png"), full_page=True)


def test_machine_page_counts_each_state(site: tuple[str, Path, Path], page: Any) -> None:
    url, run, shots = site
    page.goto(f"{url}runs/{run.name}/machine")
    summary = summary_of(run)
    for state, n in summary["positions"].items():
        assert page.locator(f"td[data-state='{state}']").inner_text() == str(n)
        # and in the state's box on the diagram
        assert page.locator(f"#state-{state} text").last.text_content() == str(n)
    page.screenshot(path=str(shots / "machine.png"), full_page=True)


def test_money_page_figures_equal_the_summary(site: tuple[str, Path, Path], page: Any) -> None:
    url, run, shots = site
    page.goto(f"{url}runs/{run.name}/money")
    summary = summary_of(run)
    rows = page.locator("table.analytics tbody tr")
    figures = {rows.nth(i).locator("td").first.inner_text(): rows.nth(i) for i in range(8)}
    for label, key in (("net PnL", "net_pnl"), ("max drawdown", "max_drawdown"),
                       ("return", "return"), ("funding", "funding")):  # fmt: skip
        cells = figures[label].locator("td")
        assert Decimal(cells.nth(1).get_attribute("data-exact")) == Decimal(summary["total"][key])
        assert Decimal(cells.nth(2).get_attribute("data-exact")) == Decimal(
            summary["baseline_total"][key]
        )
    # The curve is the run's own equity.csv: the page says so.
    assert "the run's equity.csv" in page.locator("p.note").first.inner_text()
    # Every closed trade's realised PnL is positions.csv's net_pnl.
    by_id = positions_csv(run)
    trades = page.locator("table.trades tbody tr")
    assert trades.count() == sum(1 for p in by_id.values() if p["state"] == "closed")
    for i in range(trades.count()):
        cells = trades.nth(i).locator("td")
        net = Decimal(cells.nth(8).get_attribute("data-exact"))
        assert net == Decimal(by_id[cells.nth(0).inner_text()]["net_pnl"])
    # Four charts drawn, the equity one with both runs in its legend, in their colours.
    page.wait_for_selector("#chart-equity .uplot")
    assert page.locator(".uplot").count() == 4
    legend = page.locator("#chart-equity .u-legend").inner_text()
    assert "strategy" in legend and "always hedged" in legend
    # the charts carry the run's Decimals: the equity drawn ends at the summary's
    charts = json.loads(page.locator("#chart-data").text_content())["charts"]
    ending = charts["equity"]["series"][0]["values"][-1]
    assert Decimal(ending) == Decimal(summary["ending_equity"])
    page.screenshot(path=str(shots / "money.png"), full_page=True)


def test_live_updates_arrive_when_the_journal_changes(
    site: tuple[str, Path, Path], page: Any
) -> None:
    url, run, shots = site
    # The stream itself: a hello, then a change once the journal is written to.
    stream = urllib.request.urlopen(f"{url}runs/{run.name}/events", timeout=10)
    try:
        assert stream.readline() == b"event: hello\n"
        page.goto(f"{url}runs/{run.name}")
        page.wait_for_function("document.getElementById('live').textContent === 'live'")
        assert page.locator("td.state, dd").first.inner_text().startswith("stopped")
        conn = sqlite3.connect(run / "journal.sqlite3")
        try:
            with conn:
                conn.execute("INSERT INTO meta VALUES ('dashboard test', 'a write')")
        finally:
            conn.close()
        lines = [stream.readline() for _ in range(4)]
        assert b"event: change\n" in lines
    finally:
        stream.close()
    # The page took the update without a reload: status now reads the journal as
    # written after the summary (a run that did not end cleanly).
    page.wait_for_function("document.body.dataset.updates !== '0'", timeout=10_000)
    assert page.locator("dd").first.inner_text().startswith("died")
    assert page.locator("#live").inner_text().startswith("live: updated")
    page.screenshot(path=str(shots / "updated.png"), full_page=True)


def test_sweep_pages_show_the_verdict_curve_and_heatmap(
    site: tuple[str, Path, Path], page: Any
) -> None:
    url, run, shots = site
    (folder,) = (run.parent.parent / "sweeps").iterdir()
    summary = summary_of(folder)
    page.goto(f"{url}sweeps")
    row = page.locator("table.sweeps tbody tr", has_text=folder.name)
    assert row.locator("td").last.inner_text() == summary["verdict"]
    row.locator("a").click()
    page.wait_for_url(f"**/sweeps/{folder.name}")
    assert page.locator("p.verdict").inner_text() == summary["verdict"]
    # the curve stitched from curves.jsonl ends where summary.json says, exactly
    assert "to the last digit" in page.locator("p.note").inner_text()
    oos = page.locator("table.oos tbody tr")
    for i, key in enumerate(("search", "base", "always_hedged")):
        cell = oos.nth(i).locator("td").nth(1)
        wrote = summary["out_of_sample"][key]["return"]
        assert Decimal(cell.get_attribute("data-exact")) == Decimal(wrote)
    # the heatmap: every set on every train window, each step's choice outlined
    steps = summary["steps"]
    cells = page.locator("table.heatmap td.heat")
    assert cells.count() == summary["parameter_sets"] * len(steps)
    assert page.locator("table.heatmap td.chosen").count() == len(steps)
    page.wait_for_selector("#chart-equity .uplot")
    page.screenshot(path=str(shots / "sweep.png"), full_page=True)


def test_market_page_ranks_as_the_screen_command_does(
    site: tuple[str, Path, Path], page: Any
) -> None:
    url, run, shots = site
    workdir = run.parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "screen", "--json"],
        cwd=workdir, env=env(), capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    screen = json.loads(done.stdout)["pairs"]
    page.goto(f"{url}market")
    rows = page.locator("table.screen tbody tr")
    assert rows.count() == len(screen) == 2
    for i, want in enumerate(screen):
        cells = rows.nth(i).locator("td")
        assert cells.nth(1).inner_text() == want["pair"]
        assert Decimal(cells.nth(3).get_attribute("data-exact")) == Decimal(want["net_annualised"])
    # the heatmap: one cell per pair and week of recorded funding, each with its figure
    for want in screen:
        cells = page.locator(f"svg.heatmap rect[data-pair='{want['pair']}']")
        assert cells.count() >= 90  # 21 months of weekly means
        assert "a year" in cells.first.locator("title").text_content()
    page.screenshot(path=str(shots / "market.png"), full_page=True)


def test_each_trial_opens_with_what_the_sweep_recorded(
    site: tuple[str, Path, Path], page: Any
) -> None:
    url, run, shots = site
    (folder,) = (run.parent.parent / "sweeps").iterdir()
    with (folder / "trials.csv").open() as f:
        rows = {r["trial"]: r for r in csv.DictReader(f)}
    curves = {c["trial"]: c for c in map(json.loads, (folder / "curves.jsonl").open())}
    page.goto(f"{url}sweeps/{folder.name}")
    links = page.locator("table.trials a[data-trial]")
    assert [links.nth(i).inner_text() for i in range(links.count())] == list(rows)
    # every train cell of the heatmap opens its trial too
    assert page.locator("table.heatmap td.heat a[data-trial]").count() == sum(
        1 for r in rows.values() if r["kind"] == "train"
    )
    for kind in ("train", "test"):
        trial = next(t for t, r in rows.items() if r["kind"] == kind)
        page.goto(f"{url}sweeps/{folder.name}")
        page.click(f"table.trials a[data-trial='{trial}']")
        page.wait_for_url(f"**/trials/{trial}")
        row = rows[trial]
        assert f"strategy.entry_annualised={row['strategy.entry_annualised']}" in page.inner_text(
            "dl.status"
        )
        assert f"{row['window_start']} to {row['window_end']}" in page.inner_text("dl.status")
        # every figure shown is the row's, to the last digit
        cells = page.locator("td[data-key]")
        assert cells.count() >= 13 * 6 + 3
        for i in range(cells.count()):
            key = cells.nth(i).get_attribute("data-key")
            assert Decimal(cells.nth(i).get_attribute("data-exact")) == Decimal(row[key]), key
        net = page.locator("td[data-key='total.net_pnl']")
        assert net.inner_text() == f"{Decimal(row['total.net_pnl']):,.2f}"
        if kind == "train":  # the sweep keeps no train curve: the page says so
            assert "not recorded" in page.inner_text("main")
            continue
        page.wait_for_selector("#chart-equity .uplot")
        spec = json.loads(page.locator("#chart-data").text_content())["charts"]["equity"]
        recorded = curves[trial]["equity"]
        assert spec["series"][0]["values"][-1] == recorded[-1][1] == row["ending_equity"]
        assert spec["series"][1]["values"][-1] == curves[trial]["baseline"][-1][1]
        page.screenshot(path=str(shots / "trial.png"), full_page=True)
