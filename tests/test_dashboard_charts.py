"""A run's chart.html, opened from disk in Chromium as a user opens it: the dashboard's
charts (uPlot and charts.js, inline), each legend in its series' colour, hover values
that are the run's exact figures, zoom and legend toggles, and no request made."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orchestrator.dashboard.money import replayed_curves
from orchestrator.journal.reader import read_journal
from orchestrator.output import plots
from tests.dashboard_support import DATA, short_replay


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return short_replay(tmp_path_factory.mktemp("chart"))


def rgb(colour: str) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def test_chart_html_draws_the_dashboards_charts_offline(
    run: Path, page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((run / "chart.html").as_uri())
    page.wait_for_selector("#chart-equity .uplot")
    assert requests == [(run / "chart.html").as_uri()]  # the file itself, nothing else
    charts = json.loads(page.locator("#chart-data").text_content())["charts"]
    names = ["equity", "drawdown", "funding", "rate-BTCUSDT", "rate-ETHUSDT"]
    assert list(charts) == names
    assert page.locator(".uplot").count() == len(names)

    # Each chart's legend: its series, each label in its series' colour as painted;
    # markers (entries, exits) in colours no line has.
    line_colours, mark_colours = set(), set()
    for name in names:
        spec = charts[name]
        labels = page.locator(f"#chart-{name} .u-legend .u-series .u-label")
        shown = [labels.nth(i).inner_text() for i in range(labels.count())]
        assert shown[1:] == [s["label"] for s in spec["series"]]  # [0]: the time
        for i, s in enumerate(spec["series"], start=1):
            assert labels.nth(i).evaluate("e => getComputedStyle(e).color") == rgb(s["colour"])
            (mark_colours if s.get("marks") else line_colours).add(s["colour"])
    assert [s["label"] for s in charts["equity"]["series"]] == ["strategy", "always hedged"]
    assert mark_colours == {plots.ENTRY, plots.EXIT} and not mark_colours & line_colours
    entries = [v for v in charts["rate-BTCUSDT"]["series"][1]["values"] if v is not None]
    assert entries  # the strategy entered BTCUSDT in these five months

    # The figures embedded are the run's own Decimals: every point of the equity chart is
    # the curve's value at that hour, to the last digit.
    monkeypatch.setenv("ORCHESTRATOR_DATA", str(DATA))  # as the run was given its data
    summary = json.loads((run / "summary.json").read_text())
    with read_journal(run) as view, ThreadPoolExecutor(1) as thread:
        # in a thread of its own: Playwright's loop runs in this one
        curves = thread.submit(replayed_curves, run, view, summary).result()
    assert curves.strategy is not None
    curve = dict(zip(curves.strategy.times, curves.strategy.values, strict=True))
    strategy = charts["equity"]["series"][0]["values"]
    for x, value in zip(charts["equity"]["x"], strategy, strict=True):
        assert Decimal(value) == curve[round(x * 1000)]

    # Hover the end of the equity chart: the legend shows the last hour's equity, and
    # its tooltip the exact figure.
    over = page.locator("#chart-equity .u-over")
    box = over.bounding_box()
    page.mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] / 2)
    value = page.locator("#chart-equity .u-legend .u-series").nth(1).locator(".u-value")
    assert Decimal(value.get_attribute("data-exact")) == curves.strategy.values[-1]
    assert value.inner_text() == f"{curves.strategy.values[-1]:,.2f}"

    # Drag to zoom in on the first half.
    chart = "FundingCharts.drawn.equity"
    before = page.evaluate(f"{chart}.scales.x.max - {chart}.scales.x.min")
    page.mouse.move(box["x"] + 5, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 20, steps=5)
    page.mouse.up()
    after = page.evaluate(f"{chart}.scales.x.max - {chart}.scales.x.min")
    assert after < before * 0.6

    # A click on a legend entry hides its line.
    hedged = page.locator("#chart-equity .u-legend .u-series").nth(2)
    hedged.click()
    assert page.evaluate(f"{chart}.series[2].show") is False
    assert "u-off" in (hedged.get_attribute("class") or "")
    assert requests == [(run / "chart.html").as_uri()]
    page.screenshot(path=str(run.parent.parent / "chart.png"), full_page=True)  # tmp_path


def test_chart_html_stays_small(run: Path) -> None:
    # uPlot (~50 KB) and a downsampled five months: far below what a browser minds.
    assert (run / "chart.html").stat().st_size < 400_000
