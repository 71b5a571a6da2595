"""Changes made outside the run (issue 19, item 4), through the CLI: ``orchestrator venue``
and ``orchestrator run`` (mode live, real ccxt) each in its own process. Once the run
holds a position, the venue changes it behind the run's back: the owner closes part of
the perp or sells spot by hand, auto-deleveraging or a liquidation takes the short, or
coins are moved out. The run says what happened, takes it into its record at the
venue's prices, closes what is left and trades the pair again; its ledger balances on
the venue's numbers, and it never sells coins the position did not buy."""

from __future__ import annotations

import csv
import json
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.test_crash_resume_live import Watched, journal_state, orchestrator, write_config
from tests.test_live_accounts import Venue

# The owner's own coins, in the wallet before the run: never sold. (Where the owner
# sells spot or moves coins, the wallet holds none of its own: with its own coins beside
# the position's, a sale by hand is the owner's business, not the position's.)
OWN_BTC = {"perp_half_by_hand": "0.25", "adl": "0.25", "liquidation": "0.25"}


def perp_short(venue: Venue) -> Decimal:
    for p in venue.admin("state")["positions"]:
        if p["symbol"] == "BTCUSDT" and p["side"] == "Sell":
            return Decimal(p["size"])
    return Decimal(0)


def wallet(venue: Venue, coin: str) -> Decimal:
    for account in venue.admin("state")["wallet"]["list"]:
        for entry in account["coin"]:
            if entry["coin"] == coin:
                return Decimal(entry["walletBalance"])
    return Decimal(0)


WHAT = {  # what the run says each change was
    "perp_half_by_hand": "a trade the run did not make",
    "adl": "auto-deleveraging",
    "liquidation": "a liquidation",
    "spot_half_by_hand": "a trade the run did not make",
    "coins_moved_out": "moved out of the account",
}


def change(venue: Venue, how: str) -> None:
    short = perp_short(venue)
    own = Decimal(OWN_BTC.get(how, "0"))
    held = wallet(venue, "BTC") - own
    trade: dict[str, Any] = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy"}
    if how == "perp_half_by_hand":
        venue.admin("outside", {**trade, "qty": str(short / 2)})
    elif how == "adl":
        venue.admin("outside", {**trade, "qty": str(short), "exec_type": "AdlTrade"})
    elif how == "liquidation":
        venue.admin("outside", {**trade, "qty": str(short), "exec_type": "BustTrade"})
    elif how == "spot_half_by_hand":
        qty = (held / 2).quantize(Decimal("0.000001"))
        venue.admin(
            "outside", {"category": "spot", "symbol": "BTCUSDT", "side": "Sell", "qty": str(qty)}
        )
    elif how == "coins_moved_out":
        venue.admin("balances", {"BTC": str(own + held / 2)})
    else:
        raise AssertionError(how)


@pytest.mark.parametrize(
    "how", ["perp_half_by_hand", "adl", "liquidation", "spot_half_by_hand", "coins_moved_out"]
)
def test_an_outside_change_is_adopted_and_the_pair_trades_again(tmp_path: Path, how: str) -> None:
    own = Decimal(OWN_BTC.get(how, "0"))
    venue = Venue(tmp_path, "--balance", "USDT=100000", "--balance", f"BTC={own}")
    try:
        write_config(tmp_path, venue.url, on_stop="close")
        run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
        deadline = time.monotonic() + 60
        changed = False
        states: list[str] = []
        while run.process.poll() is None and time.monotonic() < deadline:
            folders = sorted((tmp_path / "runs").glob("*"))
            states, _ = journal_state(folders[-1]) if folders else ([], 0)
            if not changed and states == ["validated"]:
                change(venue, how)
                changed = True
            if changed and "closed" in states and "validated" in states[1:]:
                break  # the changed position is closed, and the pair holds a new one
            time.sleep(0.1)
        run.process.send_signal(signal.SIGTERM)
        code, err = run.finish(timeout=60)
        state = venue.admin("state")
    finally:
        venue.stop()
    assert code == 143, err
    assert "Traceback" not in err
    assert states[0] == "closed" and "validated" in states[1:], (states, err)
    said = [line for line in err.splitlines() if "changed outside the run" in line]
    assert len(said) == 1, err
    what = WHAT[how]
    assert what in said[0], said
    (run_dir,) = (tmp_path / "runs").glob("*")
    with (run_dir / "ledger.csv").open() as f:
        fills = [r for r in csv.DictReader(f) if r["kind"] == "fill" and what in r["note"]]
    assert len(fills) == (0 if how == "coins_moved_out" else 1), fills  # moved: no trade
    # on_stop: close, so everything the run held is sold: the owner's coins stay.
    btc = next(
        Decimal(c["walletBalance"])
        for a in state["wallet"]["list"]
        for c in a["coin"]
        if c["coin"] == "BTC"
    )
    assert own <= btc < own + Decimal("0.001"), btc
    assert state["checks"]["oversold"] == {}
    assert all(Decimal(p["size"]) == 0 for p in state["positions"])
    summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
    assert summary["ledger_balances"] is True, summary


def test_a_perp_bought_back_beyond_the_short_by_hand_is_split_and_left_alone(
    tmp_path: Path,
) -> None:
    """The owner buys back more perp than the run is short (1 more): the short is gone
    and the account is long. That much of the trade closed the run's short; the spot it
    hedged is sold, and the owner's long is left as it is: the pair opens nothing while
    the account holds it (a new short would net against it). The run says both, once."""
    venue = Venue(tmp_path, "--balance", "USDT=100000")
    try:
        write_config(tmp_path, venue.url, on_stop="close")
        run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
        deadline = time.monotonic() + 60
        bought: Decimal | None = None
        while run.process.poll() is None and time.monotonic() < deadline:
            folders = sorted((tmp_path / "runs").glob("*"))
            states, _ = journal_state(folders[-1]) if folders else ([], 0)
            if bought is None and states == ["validated"]:
                bought = perp_short(venue) + 1
                venue.admin(
                    "outside",
                    {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "qty": str(bought)},
                )
            if bought is not None and any("did not open: left alone" in x for x in run.lines):
                break
            time.sleep(0.1)
        time.sleep(2)  # cycles in which it could have opened again, and must not
        run.process.send_signal(signal.SIGTERM)
        code, err = run.finish(timeout=60)
        state = venue.admin("state")
        btc = wallet(venue, "BTC")
    finally:
        venue.stop()
    assert code == 143, err
    assert "Traceback" not in err
    assert bought is not None
    (run_dir,) = (tmp_path / "runs").glob("*")
    states, _ = journal_state(run_dir)
    assert states == ["closed"], (states, err)  # not opened again
    said = [line for line in err.splitlines() if "changed outside the run" in line]
    assert len(said) == 1 and "a trade the run did not make: perp buy" in said[0], err
    left_alone = [line for line in err.splitlines() if "did not open: left alone" in line]
    assert len(left_alone) == 1 and "1" in left_alone[0], err
    # The owner's long stands, 1 contract; the spot the run bought is sold.
    (long,) = [p for p in state["positions"] if p["symbol"] == "BTCUSDT" and Decimal(p["size"])]
    assert (long["side"], Decimal(long["size"])) == ("Buy", Decimal(1))
    assert btc < Decimal("0.001"), btc
    assert state["checks"]["oversold"] == {}
