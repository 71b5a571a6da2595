"""Portfolio limits (issue 22): risk.max_open_positions and risk.max_total_exposure_usd,
checked before every open beside trading.max_position_size_usd. The check itself, the
manager's check and reservation with opens at once, the config's bounds, and replays of
the shipped config.yaml through the CLI, their positions recomputed from positions.csv."""

from __future__ import annotations

import csv
import itertools
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from orchestrator import PaperExecutor, PositionManager, TradingSettings
from orchestrator.config import load
from orchestrator.exceptions import OrchestratorError, PortfolioLimitReached
from orchestrator.execution.base import Executor
from orchestrator.models import Category, Holdings, Instrument, OrderRequest, OrderResult
from orchestrator.risk import PortfolioLimits, RiskManager, exposure_usd
from tests.support import (
    BTC_PERP,
    BTC_SPOT,
    ETH_PERP,
    ETH_SPOT,
    FaultyPaperExecutor,
    data_file,
    make_ticker,
)
from tests.test_config import error_for, write

D = Decimal
ROOT = Path(__file__).resolve().parents[1]
DATA = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").parent
SETTINGS = TradingSettings(max_position_size_usd=D(1000), order_timeout_seconds=5)


# -- the check


def risk(positions: int | None = None, exposure: str | None = None) -> RiskManager:
    return RiskManager(
        SETTINGS, PortfolioLimits(positions, None if exposure is None else D(exposure))
    )


def test_no_limits_admit_anything() -> None:
    assert not PortfolioLimits().any
    assert risk().check_portfolio(D(10**12), [D(10**12)] * 100) is None


def test_max_open_positions_counts_those_open_or_opening() -> None:
    two = risk(positions=2)
    assert two.check_portfolio(D(2000), [D(2000)]) is None
    why = two.check_portfolio(D(2000), [D(2000), D(10)])
    assert why == ("risk.max_open_positions reached: 2 positions open or opening, the limit is 2")


def test_max_total_exposure_admits_up_to_the_limit_and_says_the_sums() -> None:
    cap = risk(exposure="5000")
    assert cap.check_portfolio(D(2000), [D(3000)]) is None  # exactly at the limit
    why = cap.check_portfolio(D("2000.01"), [D(1000), D(2000)])
    assert why is not None
    assert why.startswith("risk.max_total_exposure_usd reached: ")
    for part in ("2000.01 USD (both legs)", "3000.00 USD open", "5000.01 USD", "5000 USD"):
        assert part in why, why
    # Alone, a position beyond the limit is refused too.
    assert cap.check_portfolio(D(5001), []) is not None


def test_exposure_is_both_legs_notional() -> None:
    assert exposure_usd(D("0.5"), D(40000), D(40020)) == D(40010)


# -- the manager: check and reservation, with opens at once


class Gate(Executor):
    """The paper venue, whose orders wait until the test opens the gate: an open under
    way stays under way (legs sent) while others are decided."""

    def __init__(self, inner: PaperExecutor) -> None:
        self.inner = inner
        self.gate = anyio.Event()
        self.arrived = 0
        self.both_legs = anyio.Event()  # one open's two orders have arrived

    async def place_order(self, request: OrderRequest) -> OrderResult:
        self.arrived += 1
        if self.arrived == 2:
            self.both_legs.set()
        await self.gate.wait()
        return await self.inner.place_order(request)

    async def cancel_order(
        self, order_id: str, symbol: str, category: Category = Category.LINEAR
    ) -> bool:
        return await self.inner.cancel_order(order_id, symbol, category)

    async def fetch_order_by_client_id(
        self, client_order_id: str, symbol: str
    ) -> OrderResult | None:
        return await self.inner.fetch_order_by_client_id(client_order_id, symbol)

    async def fetch_holdings(self, spot: Instrument, perp: Instrument) -> Holdings:
        return await self.inner.fetch_holdings(spot, perp)


def gated(limits: PortfolioLimits) -> tuple[PositionManager, Gate]:
    ticker = make_ticker()
    gate = Gate(FaultyPaperExecutor(ticker))
    manager = PositionManager(
        gate, ticker, SETTINGS, risk=RiskManager(SETTINGS, limits), run_nonce="limits"
    )
    return manager, gate


@pytest.mark.parametrize(
    "limits",
    [PortfolioLimits(max_open_positions=1), PortfolioLimits(max_total_exposure_usd=D(3000))],
    ids=["max_open_positions", "max_total_exposure_usd"],
)
@pytest.mark.anyio
async def test_two_opens_at_once_cannot_together_pass_a_limit(limits: PortfolioLimits) -> None:
    manager, gate = gated(limits)
    outcomes: dict[str, str] = {}
    refused_one = anyio.Event()

    async def open_one(name: str, spot: Instrument, perp: Instrument) -> None:
        try:
            position = await manager.open_position(spot, perp, D(1000), position_id=name)
            outcomes[name] = position.state or ""
        except PortfolioLimitReached as exc:
            outcomes[name] = f"refused: {exc}"
            refused_one.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(open_one, "btc", BTC_SPOT, BTC_PERP)
            tg.start_soon(open_one, "eth", ETH_SPOT, ETH_PERP)
            await gate.both_legs.wait()
            await refused_one.wait()
            # One open is under way (its legs sent, not filled) when the other is decided.
            assert manager.open_exposure()[0] == 1
            gate.gate.set()
    admitted = [name for name, what in outcomes.items() if what == "validated"]
    refused = [name for name, what in outcomes.items() if what.startswith("refused")]
    assert len(admitted) == 1 and len(refused) == 1, outcomes
    rejected = manager.get_position(refused[0])
    assert rejected is not None and rejected.state == "rejected"
    assert rejected.reason is not None and rejected.reason.startswith("risk.max_")
    assert gate.arrived == 2  # the refused open sent nothing


@pytest.mark.anyio
async def test_room_comes_back_when_a_position_closes() -> None:
    manager, gate = gated(PortfolioLimits(max_open_positions=1, max_total_exposure_usd=D(3000)))
    gate.gate.set()
    first = await manager.open_position(BTC_SPOT, BTC_PERP, D(1000), position_id="p1")
    count, held = manager.open_exposure()
    assert count == 1
    # The reservation is both legs at the prices checked (50000 and 50010).
    assert held == exposure_usd(first.quantity, D(50000), D(50010))
    with pytest.raises(PortfolioLimitReached, match="max_open_positions"):
        await manager.open_position(ETH_SPOT, ETH_PERP, D(1000), position_id="p2")
    await manager.close_position("p1")
    assert manager.open_exposure() == (0, D(0))
    second = await manager.open_position(ETH_SPOT, ETH_PERP, D(1000), position_id="p3")
    assert second.state == "validated"


@pytest.mark.anyio
async def test_a_refused_open_sends_nothing_and_is_no_delta_hedge_failure() -> None:
    # The trader counts a DeltaHedgeError as a failed open (the breaker); a limit raises
    # a RiskCheckFailed, before any order. (The replays below show nothing pauses.)
    manager, gate = gated(PortfolioLimits(max_total_exposure_usd=D(10)))
    with pytest.raises(PortfolioLimitReached) as caught:
        await manager.open_position(BTC_SPOT, BTC_PERP, D(1000), position_id="p1")
    assert isinstance(caught.value, OrchestratorError)
    assert gate.arrived == 0


# -- the config


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("risk:\n  max_open_positions: 0\n", ["between 1 and 10,000", "got 0"]),
        ("risk:\n  max_open_positions: -3\n", ["between 1 and 10,000", "got -3"]),
        ("risk:\n  max_open_positions: 10001\n", ["between 1 and 10,000", "got 10,001"]),
        ("risk:\n  max_open_positions: 1.5\n", ["expected a whole number", "1.5"]),
        ('risk:\n  max_total_exposure_usd: "0"\n', ["a positive amount", "got 0"]),
        ('risk:\n  max_total_exposure_usd: "-5"\n', ["a positive amount", "got -5"]),
        ('risk:\n  max_total_exposure_usd: "NaN"\n', ["a positive amount", "got NaN"]),
        ('risk:\n  max_total_exposure_usd: "1E+16"\n', ["at most 1,000,000,000,000,000"]),
    ],
    ids=["0", "negative", "huge", "fraction", "zero", "negative-usd", "nan", "huge-usd"],
)
def test_limits_out_of_bounds_name_their_yaml_path(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    key = text.split("\n")[1].split(":")[0].strip()
    message = error_for(write(tmp_path, text))
    assert message.startswith(f"risk.{key}: "), message
    for word in words:
        assert word in message, message


def test_limits_load_and_null_is_no_limit(tmp_path: Path) -> None:
    text = 'risk:\n  max_open_positions: 3\n  max_total_exposure_usd: "90000"\n'
    loaded = load(write(tmp_path, text))
    assert loaded.warnings == []
    assert loaded.config.risk.portfolio_limits() == PortfolioLimits(3, D(90000))
    text = "risk:\n  max_open_positions: null\n  max_total_exposure_usd: null\n"
    assert not load(write(tmp_path, text)).config.risk.portfolio_limits().any


def test_an_exposure_limit_below_one_full_position_warns(tmp_path: Path) -> None:
    text = 'trading:\n  max_position_size_usd: "20000"\nrisk:\n  max_total_exposure_usd: "30000"\n'
    path = write(tmp_path, text)
    (warning,) = load(path).warnings
    assert warning.startswith(f"{path}: risk.max_total_exposure_usd: 30000 USD "), warning
    assert "40000 both legs" in warning


# -- replays of the shipped config through the CLI


def replay(tmp_path: Path, risk_yaml: str, *command: str) -> tuple[str, Path]:
    """``orchestrator run`` (or ``command``) on the shipped config.yaml with
    ``risk_yaml`` appended; (stdout, the run folder)."""
    shutil.copyfile(ROOT / "config.yaml", tmp_path / "config.yaml")
    with (tmp_path / "config.yaml").open("a") as f:
        f.write(f"\nrisk:\n{risk_yaml}")
    env = dict(os.environ, ORCHESTRATOR_DATA=str(DATA), PYTHONUNBUFFERED="1")
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", *(command or ("run",)), "config.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    return done.stdout, folder


def positions(folder: Path, run: str = "strategy") -> list[dict[str, str]]:
    with (folder / "positions.csv").open() as f:
        return [p for p in csv.DictReader(f) if p["run"] == run]


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def most_at_once(held: list[dict[str, str]]) -> tuple[int, Decimal]:
    """The most positions open at one instant, and the most exposure (both legs, at
    their entry prices), from the positions' own times: a close at an instant comes
    before an open at it."""
    events = []
    for p in held:
        size = D(p["quantity"]) * (D(p["spot_entry_price"]) + D(p["perp_entry_price"]))
        events += [(when(p["opened_at"]), 1, 1, size), (when(p["closed_at"]), 0, -1, -size)]
    count, exposure, top, top_exposure = 0, D(0), 0, D(0)
    for _, _, step, size in sorted(events):
        count, exposure = count + step, exposure + size
        top, top_exposure = max(top, count), max(top_exposure, exposure)
    return top, top_exposure


def check_refusals(out: str, folder: Path, limit: str) -> list[dict[str, str]]:
    """Every refusal has its reason in positions.csv and the journal, is said once, and
    is no failure: nothing paused, and the pair opened again once a position closed."""
    rows = positions(folder)
    refused = [p for p in rows if p["state"] == "rejected"]
    assert refused, "the limit never refused an open"
    assert {p["state"] for p in rows} == {"closed", "rejected"}
    for p in refused:
        assert p["reason"].startswith(f"{limit} reached: "), p["reason"]
        assert p["opened_at"] == "" and p["client_order_ids"] == ""  # nothing was sent
    journal = subprocess.run(
        [sys.executable, "-m", "orchestrator", "journal", "--json", str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    record = json.loads(journal.stdout)
    journaled = {p["id"]: p["reason"] for p in record["positions"] if p["state"] == "rejected"}
    assert journaled == {p["id"]: p["reason"] for p in refused}
    # (the always-hedged baseline beside the replay keeps the same limits, and says its own)
    said = [line for line in out.splitlines() if limit in line and "always hedged:" not in line]
    summary = json.loads((folder / "summary.json").read_text())
    told = [a for a in summary["alerts"] if limit in a and "always hedged:" not in a]
    for p in refused:
        mine = [line for line in said if f"open {p['id']} refused" in line]
        assert len(mine) == 1, (p["id"], said)
        assert any(f"open {p['id']} refused" in a for a in told)
    assert "paused" not in out
    assert summary["positions"]["rejected"] == len(refused)
    # Said once, not every cycle: a pair refused again had a position close between.
    closes = sorted(when(p["closed_at"]) for p in rows if p["state"] == "closed")
    for pair in {p["spot_symbol"] for p in refused}:
        times = sorted(when(p["created_at"]) for p in refused if p["spot_symbol"] == pair)
        for before, after in itertools.pairwise(times):
            assert any(before < t <= after for t in closes), (pair, before, after)
    # Room came back: a pair refused opened later.
    first = refused[0]
    assert any(
        p["state"] == "closed"
        and p["spot_symbol"] == first["spot_symbol"]
        and when(p["opened_at"]) > when(first["created_at"])
        for p in rows
    )
    return rows


def test_a_replay_with_max_open_positions_1_never_holds_two(tmp_path: Path) -> None:
    out, folder = replay(tmp_path, "  max_open_positions: 1\n")
    rows = check_refusals(out, folder, "risk.max_open_positions")
    held = [p for p in rows if p["state"] == "closed"]
    assert {p["spot_symbol"] for p in held} == {"BTC/USDT", "ETH/USDT"}
    assert most_at_once(held)[0] == 1
    assert "1 position open or opening, the limit is 1" in out
    baseline = positions(folder, "always hedged")
    assert most_at_once([p for p in baseline if p["state"] == "closed"])[0] == 1
    assert "ledger balances" in out


def test_a_replay_with_exposure_below_two_positions_holds_one(tmp_path: Path) -> None:
    # One position of the shipped config holds about 40,000 USD (20,000 a leg).
    out, folder = replay(tmp_path, '  max_total_exposure_usd: "60000"\n')
    rows = check_refusals(out, folder, "risk.max_total_exposure_usd")
    held = [p for p in rows if p["state"] == "closed"]
    top, top_exposure = most_at_once(held)
    assert top == 1
    assert D(30000) < top_exposure <= D(60000)
    for p in rows:
        if p["state"] == "rejected":
            assert "above the limit of 60000 USD" in p["reason"]


def test_the_shipped_replay_holds_both_pairs_at_once_without_limits(tmp_path: Path) -> None:
    """The limits' tests mean something: unlimited, the same replay holds two."""
    _, folder = replay(tmp_path, "  max_open_positions: null\n")
    rows = positions(folder)
    assert {p["state"] for p in rows} == {"closed"}
    top, top_exposure = most_at_once(rows)
    assert top == 2 and top_exposure > D(60000)


def test_a_rehearsal_keeps_the_limit_too(tmp_path: Path) -> None:
    """The live code path against the loopback venue: both pairs want to open in the
    first hours, decided concurrently; one is admitted."""
    out, folder = replay(tmp_path, "  max_open_positions: 1\n", "rehearse", "--hours", "600")
    rows = positions(folder, "rehearsal")
    refused = [p for p in rows if p["state"] == "rejected"]
    assert refused and all(
        p["reason"] == "risk.max_open_positions reached: 1 position open or opening, the limit is 1"
        for p in refused
    )
    assert most_at_once([p for p in rows if p["state"] == "closed"])[0] == 1
    for p in refused:
        assert f"rehearsal: {p['spot_symbol'].replace('/', '')}: open {p['id']} refused" in out


def test_the_guides_example_loads_beside_the_shipped_config(tmp_path: Path) -> None:
    guide = (ROOT / "docs" / "guides" / "strategy-and-sweeps.md").read_text()
    section = guide[guide.index("## Portfolio limits") :]
    example = section[section.index("```yaml\n") + 8 : section.index("```\n", 8)]
    path = write(tmp_path, (ROOT / "config.yaml").read_text() + "\n" + example)
    loaded = load(path)
    assert loaded.warnings == []
    assert loaded.config.risk.portfolio_limits() == PortfolioLimits(1, D(60000))
