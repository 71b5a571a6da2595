"""Real account shapes through the CLI (issue 19, items 1, 2 and the key): ``orchestrator
venue`` with the account's settings and ``orchestrator run`` (mode live, real ccxt), each in
its own process.

- Hedge mode: every perp order carries the short side's ``positionIdx``; the run opens,
  holds and closes as in one-way mode, and the venue refuses nothing.
- A classic account, a read-only key, a key without spot or without contract trading:
  the run stops at startup with exit 2 and the reason, having sent nothing: no order,
  no leverage.
"""

from __future__ import annotations

import json
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.test_crash_resume_live import (
    WIDE,
    VenueProcess,
    Watched,
    journal_state,
    orchestrator,
    write_config,
)

WRITES = ("order/create", "order/cancel", "position/set-leverage", "position/switch-mode")


class Venue(VenueProcess):
    """``orchestrator venue`` on the recorded data at a standing clock, with ``flags``
    (the account's settings, faults, balances)."""

    def __init__(self, workdir: Path, *flags: str) -> None:
        super().__init__(workdir, [], "100000", *flags)


@pytest.fixture
def venue_factory(tmp_path: Path) -> Any:
    started: list[Venue] = []

    def start(*settings: str) -> Venue:
        venue = Venue(tmp_path, *settings)
        started.append(venue)
        return venue

    yield start
    for venue in started:
        venue.stop()


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        (("--account", "classic"), "classic (non-unified) Bybit account"),
        (("--key-permissions", "read-only"), "the API key is read-only"),
        (("--key-permissions", "no-spot"), "lacks spot trading"),
        (("--key-permissions", "no-contract"), "lacks USDT perpetual trading"),
    ],
    ids=["classic", "read-only", "no-spot", "no-contract"],
)
def test_an_account_that_cannot_trade_the_hedge_is_refused_before_any_write(
    tmp_path: Path, venue_factory: Any, settings: tuple[str, ...], said: str
) -> None:
    venue = venue_factory(*settings)
    write_config(tmp_path, venue.url)
    process = orchestrator("run", "config.yaml", cwd=tmp_path)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2, err
    assert said in err and "nothing sent" in err, err
    assert "Traceback" not in out + err
    hits = venue.admin("state")["hits"]
    assert not any(hits.get(endpoint) for endpoint in WRITES), hits
    assert venue.admin("requests")["creates"] == []


def test_hedge_mode_opens_and_closes_with_the_short_sides_position_idx(
    tmp_path: Path, venue_factory: Any
) -> None:
    venue = venue_factory("--position-mode", "hedge")
    write_config(tmp_path, venue.url, on_stop="leave")
    run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
    deadline = time.monotonic() + 60
    widened = False
    states: list[str] = []
    while run.process.poll() is None and time.monotonic() < deadline:
        folders = sorted((tmp_path / "runs").glob("*"))
        states, _ = journal_state(folders[-1]) if folders else ([], 0)
        if "validated" in states and not widened:
            venue.admin("prices", WIDE)  # the basis widens: the strategy leaves
            widened = True
        if "closed" in states:
            break
        time.sleep(0.05)
    run.process.send_signal(signal.SIGTERM)
    code, err = run.finish(timeout=60)
    assert "closed" in states, err
    assert code == 143, err
    assert "Traceback" not in err
    state = venue.admin("state")
    perp_orders = [o for o in state["orders"] if o.get("tpslMode") is not None]
    assert perp_orders and all(o["positionIdx"] == 2 for o in perp_orders), perp_orders
    creates = venue.admin("requests")["creates"]
    assert creates and all(c["outcome"] != "rejected" for c in creates), creates
    assert all(Decimal(p["size"]) == 0 for p in state["positions"]), state["positions"]
    summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
    assert summary["ledger_balances"] is True


def test_a_venue_that_refuses_every_perp_order_gets_one_then_the_pair_pauses(
    tmp_path: Path, venue_factory: Any
) -> None:
    """Bybit refuses the perp leg as hedge mode refuses an order without positionIdx: the
    run pauses the pair after one rolled-back open instead of buying and selling the spot
    leg every poll, says so at once, and ends cleanly on SIGTERM."""
    rules = {
        "rules": [
            {
                "kind": "reject",
                "endpoint": "order/create",
                "category": "linear",
                "ret_code": 10001,
                "ret_msg": "position idx not match position mode",
                "times": None,
            }
        ]
    }
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    venue = venue_factory("--faults", str(tmp_path / "rules.json"))
    write_config(tmp_path, venue.url, on_stop="leave")
    run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
    deadline = time.monotonic() + 60
    while run.process.poll() is None and time.monotonic() < deadline:
        if any("paused" in line for line in run.lines):
            break
        time.sleep(0.05)
    time.sleep(2)  # four more polls: nothing more is sent
    run.process.send_signal(signal.SIGTERM)
    code, err = run.finish(timeout=60)
    assert code == 143, err
    assert "Traceback" not in err
    paused = [line for line in err.splitlines() if "paused" in line]
    assert len(paused) == 1 and "position idx not match position mode" in paused[0], err
    creates = venue.admin("requests")["creates"]
    # the spot buy, the refused perp sell, the spot sold back: and nothing after
    assert len(creates) == 3, creates
    assert venue.admin("state")["checks"]["oversold"] == {}
