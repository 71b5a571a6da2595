"""The dashboard over a dry run while it runs, in Chromium: the shipped loopback venue
(``orchestrator venue --recorded``) and a dry run (``mode: paper``, ``market: live``)
through the real CLI, each in its own process, the dashboard in a third. The runs list,
the run, its machine and money pages are loaded as it trades; the positions shown are
the journal's; a Ctrl-C (SIGINT) stops the run and the open page follows it."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from orchestrator.journal import Journal
from tests.dashboard_support import dashboard
from tests.test_crash_resume_live import VenueProcess, Watched
from tests.test_dry_run import dry_config, dry_run, wait_for


def journal_positions(run_dir: Path) -> dict[str, dict[str, str]]:
    """Each position's figures as the journal holds them, as text."""
    with Journal.read(run_dir) as view:
        return {
            p.id: {
                "pair": p.spot_symbol.replace("/", ""),
                "state": str(p.state),
                "quantity": str(p.quantity),
                "spot entry": str(p.spot_entry_price or "-"),
                "perp entry": str(p.perp_entry_price or "-"),
            }
            for p in view.positions()
        }


def shown_positions(page: Any) -> dict[str, dict[str, str]]:
    """The positions table as the page shows it, by column heading."""
    head = page.locator("table.positions thead th").all_inner_texts()
    rows = page.locator("table.positions tbody tr")
    shown = {}
    for i in range(rows.count()):
        cells = dict(zip(head, rows.nth(i).locator("td").all_inner_texts(), strict=True))
        shown[cells["id"]] = {k: cells[k] for k in ("pair", "state", "quantity",
                                                    "spot entry", "perp entry")}  # fmt: skip
    return shown


def test_a_dry_run_watched_while_it_runs_and_stopped(tmp_path: Path, page: Any) -> None:
    venue = VenueProcess(tmp_path, [], "100000")
    run: Watched | None = None
    try:
        dry_config(tmp_path, venue.url)
        run = dry_run(tmp_path, "config.yaml")
        run_dir = wait_for(tmp_path, run, ["validated"])  # one position held
        with dashboard(tmp_path) as url:
            page.goto(url)
            cells = page.locator("table.runs tbody tr", has_text=run_dir.name).locator("td")
            assert [cells.nth(i).inner_text() for i in (1, 3)] == ["dry run", "running"]
            assert cells.nth(6).inner_text().endswith("UTC")  # its last venue contact

            page.goto(f"{url}runs/{run_dir.name}/machine")
            assert page.locator("td[data-state='validated']").inner_text() == "1"
            page.goto(f"{url}runs/{run_dir.name}/money")
            # its equity as it goes: the rows the dry run appends to its equity.csv
            assert "the run's equity.csv" in page.locator("p.note").first.inner_text()
            page.wait_for_selector("#chart-equity .uplot")

            page.goto(f"{url}runs/{run_dir.name}")
            page.wait_for_function("document.getElementById('live').textContent === 'live'")
            assert page.locator("dd").first.inner_text().startswith("running")
            held = journal_positions(run_dir)
            assert [p["state"] for p in held.values()] == ["validated"]
            assert shown_positions(page) == held

            # Ctrl-C: the run closes what it holds (on_stop: close) and stops; the page,
            # left open, follows the journal without a reload.
            run.process.send_signal(signal.SIGINT)
            code, err = run.finish(timeout=30)
            assert code == 130, err
            page.wait_for_function(
                "document.querySelector('dd').textContent.startsWith('stopped')",
                timeout=15_000,
            )
            page.wait_for_function(
                "[...document.querySelectorAll('table.positions td.state')]"
                ".map((c) => c.textContent).join() === 'closed'",
                timeout=15_000,
            )
            ended = journal_positions(run_dir)
            assert [p["state"] for p in ended.values()] == ["closed"]
            assert shown_positions(page) == ended
            page.screenshot(path=str(tmp_path / "dry-run-stopped.png"), full_page=True)
    finally:
        if run is not None and run.process.poll() is None:
            run.process.kill()
            run.process.wait()
        venue.stop()
