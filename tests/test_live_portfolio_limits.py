"""Portfolio limits in a live run (issue 22): both pairs want to open in the same cycle
and ``risk.max_open_positions: 1`` (or a ``risk.max_total_exposure_usd`` below two
positions) admits one. Through the CLI: ``orchestrator venue``
(the shipped loopback venue, recorded prices at a standing clock) and ``orchestrator
run`` (mode live, both pairs decided concurrently), each in its own process. The
other pair is refused while the admitted one is opening, said once, and opens once the
first position has closed."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from orchestrator.journal import Journal
from orchestrator.journal.schema import DB_NAME
from orchestrator.models import Position
from tests.test_crash_resume_live import ROOT, Watched, orchestrator
from tests.test_live_accounts import Venue

# A basis of 1.1 % (beyond strategy.max_basis): the admitted pair's position is closed.
WIDE = {
    "BTCUSDT": {"spot:BTCUSDT": "44000", "linear:BTCUSDT": "44484"},
    "ETHUSDT": {"spot:ETHUSDT": "2240", "linear:ETHUSDT": "2264.64"},
}


def positions(run_dir: Path) -> dict[str, Position]:
    """The positions as the run's journal says now, by id."""
    if not (run_dir / DB_NAME).is_file():
        return {}
    try:
        with Journal.read(run_dir) as view:
            return {p.id: p for p in view.positions()}
    except Exception:  # being created: look again
        return {}


@pytest.mark.parametrize(
    ("limit", "reason"),
    [
        (
            "max_open_positions: 1",
            "risk.max_open_positions reached: 1 position open or opening, the limit is 1",
        ),
        # One position of the shipped config holds about 40,000 USD (20,000 a leg).
        ('max_total_exposure_usd: "60000"', "risk.max_total_exposure_usd reached: "),
    ],
    ids=["max_open_positions", "max_total_exposure_usd"],
)
def test_two_pairs_at_once_and_a_limit_that_admits_one(
    tmp_path: Path, limit: str, reason: str
) -> None:
    venue = Venue(tmp_path)
    try:
        text = (ROOT / "config.yaml").read_text().replace("mode: paper", "mode: live")
        text += (
            f"\nlive:\n  url: {venue.url}\n  poll_seconds: 0.5\n  request_timeout_ms: 1000\n"
            "  recv_window_ms: 1000\n  clock_skew_ms: 100\n  on_stop: close\n"
            f"\nrisk:\n  {limit}\n"
        )
        (tmp_path / "config.yaml").write_text(text)
        run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
        deadline = time.monotonic() + 60
        admitted = refused = other = None
        seen: dict[str, Position] = {}
        while run.process.poll() is None and time.monotonic() < deadline:
            folders = sorted((tmp_path / "runs").glob("*"))
            seen = positions(folders[-1]) if folders else {}
            if admitted is None:
                states = {p.state: pid for pid, p in seen.items()}
                if {"validated", "rejected"} <= set(states):
                    admitted, refused = states["validated"], states["rejected"]
                    venue.admin("prices", WIDE[pair(admitted)])  # the run closes it
            else:
                assert refused is not None
                other = next(
                    (
                        pid
                        for pid, p in seen.items()
                        if pair(pid) == pair(refused) and p.state == "validated"
                    ),
                    None,
                )
                if other is not None:
                    break  # room came back: the refused pair opened
            time.sleep(0.05)
        run.process.send_signal(signal.SIGTERM)
        code, err = run.finish(timeout=60)
        creates = venue.admin("requests")["creates"]
    finally:
        venue.stop()
    assert admitted is not None and refused is not None and other is not None, f"{seen}\n{err}"
    assert code == 143, err
    assert "Traceback" not in err
    # The refusal: its reason in the journal, said once, and no failure of the breaker.
    assert seen[refused].state == "rejected"
    assert (seen[refused].reason or "").startswith(reason), seen[refused].reason
    said = [line for line in err.splitlines() if "refused, opens nothing until" in line]
    assert said == [
        f"live: {pair(refused)}: open {refused} refused, opens nothing until a position "
        f"closes: {seen[refused].reason}"
    ], err
    assert "paused" not in err
    # Decided in the same cycle: the admitted position was still opening (its orders
    # out, its fills not yet read) when the other pair was refused.
    assert seen[refused].created_at is not None and seen[admitted].opened_at is not None
    assert seen[refused].created_at < seen[admitted].opened_at
    # At the venue: the refused open sent nothing, and the other pair's open arrived only
    # after the admitted position's close had: never two positions at once.
    arrived = {str(c["order_link_id"]): int(str(c["arrival_ns"])) for c in creates}
    assert not [k for k in arrived if f"-{refused}-" in k], sorted(arrived)
    closes = [v for k, v in arrived.items() if f"-{admitted}-" in k and k[-2] == "c"]
    opens = [v for k, v in arrived.items() if f"-{other}-" in k and k[-2] == "o"]
    assert len(closes) == 2 and len(opens) == 2, sorted(arrived)
    assert max(closes) < min(opens)


def pair(position_id: str) -> str:
    return position_id.rpartition("-")[0]
