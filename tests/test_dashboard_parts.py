"""The dashboard's parts without a browser: positions a page at a time computed as
``orchestrator status`` computes them, the charts' downsampling, the ratios, and the
controls' guards (token, cross-site requests) against the real server."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from orchestrator.dashboard.folders import Cache, page_context, positions_page
from orchestrator.dashboard.money import Series, chart_points, drawdown, ratios, read_money
from orchestrator.journal import Journal
from orchestrator.journal.status import read_status
from tests.dashboard_support import dashboard, env, generate_journal, get, post, short_replay

TOKEN = "a-token-for-the-tests-0123456789"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """(the folder holding runs/, how many positions end in each state)."""
    workdir = tmp_path_factory.mktemp("parts")
    counts = generate_journal(workdir / "runs" / "generated", 700)
    return workdir, counts


def test_pages_of_positions_are_what_status_says(
    generated: tuple[Path, dict[str, int]],
) -> None:
    workdir, counts = generated
    run = workdir / "runs" / "generated"
    status = {r.position.id: r for r in read_status(run, 0).positions}
    cache = Cache()
    view = cache.view(run)
    context = page_context(view)  # found on its own, as status finds them
    assert context == cache.page_context(run, 0)
    seen = set()
    for state in [None, *counts]:
        expected_total = len(status) if state is None else counts[state]
        offset = 0
        while True:
            page = positions_page(view, context, state, offset, 64)
            assert page.total == expected_total
            assert page.counts == counts
            for row in page.rows:
                want = status[row.position.id]
                assert state is None or row.position.state == state
                assert (row.funding, row.fees, row.unrealised, row.age_ms) == (
                    want.funding, want.fees, want.unrealised, want.age_ms,
                )  # fmt: skip
                assert (row.spot_price, row.perp_price) == (want.spot_price, want.perp_price)
                seen.add(row.position.id)
            offset += 64
            if offset >= page.total:
                break
    assert seen == set(status)
    held = [r for r in status.values() if r.position.state == "validated"]
    assert held and all(r.unrealised is not None for r in held)  # priced from the fills


def test_chart_points_keep_first_last_lowest_and_highest() -> None:
    values = [Decimal(1000 + (i % 97)) for i in range(20_000)]
    values[12_345] = Decimal(1)  # a drawdown's bottom
    values[777] = Decimal(99_999)  # a peak
    series = Series(list(range(20_000)), values)
    keep = chart_points(series, most=400)
    assert len(keep) <= 400
    assert {0, 777, 12_345, 19_999} <= set(keep)
    assert keep == sorted(set(keep))
    short = Series([1, 2, 3], [Decimal(1), Decimal(2), Decimal(3)])
    assert chart_points(short) == [0, 1, 2]


def test_ratios_and_drawdown_on_a_known_curve() -> None:
    values = [Decimal(100), Decimal(110), Decimal(99), Decimal("108.9")]
    # hourly returns +10 %, -10 %, +10 %: mean 1/30, sample variance 0.04/3
    sharpe, sortino, n = ratios(values)
    assert n == 3
    mean = Decimal("0.1") / 3
    std = (Decimal("0.04") / 3).sqrt()
    assert sharpe is not None and sortino is not None
    assert abs(sharpe - mean / std * Decimal(8760).sqrt()) < Decimal("1e-20")
    # downside: only -10 % is below 0; root mean square over all three returns
    assert abs(sortino - mean / (Decimal("0.01") / 3).sqrt() * Decimal(8760).sqrt()) < Decimal(
        "1e-20"
    )
    assert drawdown(values) == [0, 0, Decimal(11) / 110, Decimal("1.1") / 110]
    assert ratios([Decimal(1)]) == (None, None, 0)


@pytest.fixture(scope="module")
def read_only(generated: tuple[Path, dict[str, int]]) -> Iterator[str]:
    with dashboard(generated[0]) as url:
        yield url


@pytest.fixture(scope="module")
def with_token(generated: tuple[Path, dict[str, int]]) -> Iterator[str]:
    with dashboard(generated[0], ORCHESTRATOR_DASHBOARD_TOKEN=TOKEN) as url:
        yield url


def test_server_pages_positions_and_filters(
    read_only: str, generated: tuple[Path, dict[str, int]]
) -> None:
    _, counts = generated
    code, text = get(f"{read_only}runs/generated?state=closed&offset=100")
    assert code == 200
    assert f'<span id="shown">101-150 of {counts["closed"]:,}</span>' in text
    assert text.count('<td class="state">closed</td>') == 50
    assert 'rel="next"' in text and 'rel="prev"' in text
    code, text = get(f"{read_only}runs/generated/machine")
    for state, n in counts.items():
        assert f'data-state="{state}">{n:,}</td>' in text
    assert get(f"{read_only}runs/..%2Fruns")[0] == 404
    assert get(f"{read_only}runs/nothing-here")[0] == 404


def test_controls_are_refused_without_a_token(read_only: str) -> None:
    code, answer = post(f"{read_only}api/runs/generated/control", {"command": "pause"})
    assert code == 403
    assert "read-only" in str(answer["error"])


def test_controls_need_the_token_and_refuse_other_sites(with_token: str) -> None:
    url = f"{with_token}api/runs/generated/control"
    host = with_token.split("/")[2]
    pause = {"command": "pause"}
    assert post(url, pause)[0] == 401  # no token
    assert post(url, pause, {"X-Dashboard-Token": "guess"})[0] == 401
    good = {"X-Dashboard-Token": TOKEN}
    # another site's page, even with the token (a leaked one): refused before it is read
    assert post(url, pause, {**good, "Origin": "http://evil.example"})[0] == 403
    assert post(url, pause, {**good, "Host": f"evil.example:{host.split(':')[1]}"})[0] == 403
    assert post(url, b"command=pause", {**good, "Content-Type": "text/plain"})[0] == 415
    # with the token, from the dashboard's own page: a replay is not a run to steer
    code, answer = post(url, pause, {**good, "Origin": f"http://{host}"})
    assert code == 409
    assert "cannot be steered" in str(answer["error"])
    code, answer = post(url, {"command": "explode"}, good)
    assert code == 400
    # GET is not an API method; and no page ever holds the token
    assert get(url)[0] == 405
    for page in ("", "runs/generated", "runs/generated/money", "runs/generated/machine"):
        code, text = get(f"{with_token}{page}")
        assert code == 200, page
        assert TOKEN not in text
        assert re.search(r'data-controls="on"', text)


def test_a_replay_without_equity_csv_is_replayed_again_to_the_last_digit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run folder from before runs wrote equity.csv: its curve is replayed from its own
    config and data, and equals the one the run writes now, value for value."""
    run = short_replay(tmp_path)
    monkeypatch.setenv("ORCHESTRATOR_DATA", env()["ORCHESTRATOR_DATA"])  # (as the run had)
    with (run / "equity.csv").open() as f:
        wrote = [(int(r["time_ms"]), Decimal(r["strategy"])) for r in csv.DictReader(f)]
    (run / "equity.csv").unlink()
    with Journal.read(run) as view:
        money = read_money(run, view)
    assert money.curves.strategy is not None, money.curves.note
    assert "to the last digit" in money.curves.note
    again = list(zip(money.curves.strategy.times, money.curves.strategy.values, strict=True))
    assert again == wrote
