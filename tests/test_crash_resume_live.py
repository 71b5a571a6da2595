"""kill -9 a live run at every transition of the position machine, at the journal's
other writes and at random instants, then ``orchestrator run --resume``: 0 naked
legs, 0 lost orders, 0 duplicate orders, the journal equal to the venue, and the
final ledger equal to the same scenario's uninterrupted run.

Everything runs as a user runs it: ``orchestrator venue`` (the loopback Bybit v5
venue, recorded prices at a standing clock) and ``orchestrator run`` (mode live,
real ccxt) each in its own process. The test steers the strategy through the venue's
admin prices: once a position is held, it moves the perp 1.1 % above the spot (beyond
``max_basis``), and the run closes it. Venue faults make the scenarios that take the
machine's other branches. The crash points are read off the machine itself, and each
is taken in the first scenario whose uninterrupted run takes it, so a new transition
is covered as soon as a scenario takes it (a test fails if none does).
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from machines import FINAL_STATES, PositionMachine
from orchestrator.journal import Journal
from orchestrator.journal.recorder import CRASH_ENV
from orchestrator.journal.schema import DB_NAME
from tests.support import data_file

ROOT = Path(__file__).resolve().parents[1]
DATA = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").parent
KEY, SECRET = "crash-key", "crash-secret"
TRANSITIONS = sorted(
    {(t.event, state.id) for state in PositionMachine.states for t in state.transitions}
)
OTHER_POINTS = ["intents:1", "intents:2", "outcome:1", "outcome:4", "ledger:1", "ledger:2"]
RANDOM_KILLS = 3  # kill -9 at instants drawn (seeded) over the plain scenario's life

SLOW_READS = {"kind": "timeout_after", "endpoint": "order/realtime", "delay_ms": 300, "times": None}
# Venue faults by scenario (client order ids end in -<position>-<leg><action><attempt>),
# and the USDT the account starts with.
SCENARIOS: dict[str, tuple[list[dict[str, Any]], str]] = {
    "plain": ([], "100000"),
    # No money: the first open is refused before anything is sent (reject); the
    # test then funds the account and the next one opens.
    "no_money": ([], "5"),
    "perp_open_refused": (
        [{"kind": "reject", "link_id": "*-0001-po1", "error": "insufficient_balance"}],
        "100000",
    ),
    "perp_open_partial": (
        [{"kind": "partial", "link_id": "*-0001-po1", "fill_ratio": "0.5"}],
        "100000",
    ),
    "rollback_refused": (
        [
            {"kind": "reject", "link_id": "*-0001-po1", "error": "insufficient_balance"},
            {"kind": "reject", "link_id": "*-0001-sr1", "error": "insufficient_balance"},
        ],
        "100000",
    ),
    "close_refused": (
        [{"kind": "reject", "link_id": "*-0001-sc1", "error": "insufficient_balance"}],
        "100000",
    ),
    # The perp order works on past the open's deadline: timed out, then unwound.
    "open_times_out": (
        [{"kind": "fill_late", "link_id": "*-0001-po1", "hold_ms": 6000}, SLOW_READS],
        "100000",
    ),
    "close_times_out": (
        [{"kind": "fill_late", "link_id": "*-0001-pc1", "hold_ms": 6000}, SLOW_READS],
        "100000",
    ),
    # No answer to the perp create: its outcome is unknown until looked up.
    "open_unanswered": (
        [
            {
                "kind": "timeout_before",
                "endpoint": "order/create",
                "link_id": "*-0001-po1",
                "delay_ms": 2500,
            }
        ],
        "100000",
    ),
}
WIDE = {"spot:BTCUSDT": "44000", "linear:BTCUSDT": "44484"}  # basis 1.1 %: leave


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BYBIT_") and k != CRASH_ENV}
    return {
        **base,
        "ORCHESTRATOR_DATA": str(DATA),
        "PYTHONUNBUFFERED": "1",
        "BYBIT_API_KEY": KEY,
        "BYBIT_API_SECRET": SECRET,
        **extra,
    }


def orchestrator(*args: str, cwd: Path, crash: str | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        env=env(**({CRASH_ENV: crash} if crash else {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class VenueProcess:
    """``orchestrator venue`` on the recorded data at a standing clock, with ``faults``,
    ``usdt`` in the wallet and any other ``flags``; stopped with ``stop``."""

    def __init__(
        self,
        workdir: Path,
        faults: list[dict[str, Any]],
        usdt: str,
        *flags: str,
        data: Path = DATA,
        start: str = "2024-01-05",
        speed: str = "0",
    ) -> None:
        spec = workdir / "faults.json"
        spec.write_text(json.dumps({"rules": faults}))
        self.process = orchestrator(
            "venue", "--recorded", "--start", start, "--speed", speed,
            "--key", KEY, "--secret", SECRET, "--data-dir", str(data), "--faults", str(spec),
            "--balance", f"USDT={usdt}", *flags, cwd=workdir,
        )  # fmt: skip
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.stop()

    def admin(
        self, path: str, body: dict[str, Any] | None = None, method: str | None = None
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        with urllib.request.urlopen(
            urllib.request.Request(
                f"{self.url}/admin/{path}",
                data=data,
                method=method,
                headers={"Content-Type": "application/json"},  # the admin API takes JSON only
            ),
            timeout=10,
        ) as answer:
            return json.loads(answer.read())

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err


def write_config(workdir: Path, url: str, on_stop: str = "close") -> None:
    text = (ROOT / "config.yaml").read_text()
    text = text.replace("mode: paper", "mode: live")
    text = text.replace(
        "  - spot: ETH/USDT\n    perp: ETH/USDT:USDT\n", ""
    )  # one pair: one position at a time
    text = text.replace("order_timeout_seconds: 10", "order_timeout_seconds: 2")
    text += (
        f"\nlive:\n  url: {url}\n  poll_seconds: 0.5\n  request_timeout_ms: 1000\n"
        f"  recv_window_ms: 1000\n  clock_skew_ms: 100\n  on_stop: {on_stop}\n"
    )
    (workdir / "config.yaml").write_text(text)


def journal_state(run_dir: Path) -> tuple[list[str], int]:
    """(position states, open intents) as the journal says now."""
    if not (run_dir / DB_NAME).is_file():
        return [], 0
    try:
        with Journal.read(run_dir) as view:
            return [p.state or "" for p in view.positions()], len(view.open_intents())
    except Exception:  # being created: look again
        return [], 0


class Watched:
    """A run's process, its stderr read as it comes (the run says when it trades)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def trading(self) -> bool:
        return any(line.startswith("live: trading") for line in self.lines)

    def finish(self, timeout: float) -> tuple[int, str]:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            self.reader.join(10)
            raise AssertionError("the run did not stop:\n" + "".join(self.lines)) from None
        self.reader.join(10)
        if self.process.stdout is not None:
            self.process.stdout.read()
        return self.process.returncode, "".join(self.lines)


def drive(
    process: subprocess.Popen[str], workdir: Path, venue: VenueProcess, *, deposit: bool
) -> tuple[int, str]:
    """Steer a run until it is killed (a crash point) or its positions are done and it
    trades on; then stop it with SIGTERM. ``deposit``: fund the account once a
    position was refused for want of money. Returns (exit code, stderr)."""
    run = Watched(process)
    deadline = time.monotonic() + 90
    widened = funded = False
    while process.poll() is None and time.monotonic() < deadline:
        folders = sorted((workdir / "runs").glob("*"))
        states, open_intents = journal_state(folders[-1]) if folders else ([], 0)
        if deposit and "rejected" in states and not funded:
            venue.admin("balances", {"USDT": "100000"})
            funded = True
        held = {"validated", "needs_attention"} & set(states)
        if held and not widened:
            venue.admin("prices", WIDE)
            widened = True
        done = "closed" in states and set(states) <= FINAL_STATES and not open_intents
        if done and run.trading:
            break
        time.sleep(0.05)
    late = process.poll() is None and time.monotonic() >= deadline
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    code, err = run.finish(timeout=60)
    assert not late, f"the positions were not done in time:\n{err}"
    return code, err


class Outcome:
    """What a scenario left: the run's ledger, the journal and the venue."""

    def __init__(self, run_dir: Path, venue: VenueProcess, transcript: str) -> None:
        self.run_dir = run_dir
        self.transcript = transcript
        with (run_dir / "ledger.csv").open() as f:
            self.ledger = Counter(
                (r["kind"], r["symbol"], r["side"], r["quantity"], r["price"], r["amount"])
                for r in csv.DictReader(f)
            )
        self.summary = json.loads((run_dir / "summary.json").read_text())
        with Journal.read(run_dir) as view:
            self.transitions = {(t.event, t.source) for t in view.transitions()}
            self.states = [p.state for p in view.positions()]
            self.open_intents = view.open_intents()
            self.orders = view.orders()
        self.state = venue.admin("state")
        self.creates = venue.admin("requests")["creates"]

    def coins(self, coin: str) -> str:
        for account in self.state["wallet"]["list"]:
            for row in account["coin"]:
                if row["coin"] == coin:
                    return str(row["walletBalance"])
        return "0"


def play(workdir: Path, scenario: str, crash: str | None = None,
         kill_after: float | None = None) -> Outcome:  # fmt: skip
    """Run the scenario; if it was killed, resume it until it is done."""
    workdir.mkdir(parents=True)
    venue = VenueProcess(workdir, *SCENARIOS[scenario])
    try:
        write_config(workdir, venue.url)
        first = orchestrator("run", "config.yaml", cwd=workdir, crash=crash)
        if kill_after is not None:
            # From the moment the run has a journal (its folder made, nothing sent yet):
            # on a loaded machine the imports alone may take longer than any delay.
            deadline = time.monotonic() + 60
            while (
                not any((workdir / "runs").glob("*/journal.sqlite3"))
                and first.poll() is None
                and time.monotonic() < deadline
            ):
                time.sleep(0.01)
            time.sleep(kill_after)
            first.kill()
        code, err = drive(first, workdir, venue, deposit=scenario == "no_money")
        transcript = f"run: exit {code}\n{err}"
        (run_dir,) = (workdir / "runs").glob("*")
        if code == -signal.SIGKILL:
            resumed = orchestrator("run", "--resume", str(run_dir), cwd=workdir)
            code, err = drive(resumed, workdir, venue, deposit=scenario == "no_money")
            transcript += f"\nresume: exit {code}\n{err}"
        assert code == 128 + signal.SIGTERM, transcript
        return Outcome(run_dir, venue, transcript)
    finally:
        venue.stop()


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every scenario left uninterrupted."""
    root = tmp_path_factory.mktemp("live-whole")
    return {name: play(root / name, name) for name in SCENARIOS}


def test_the_scenarios_take_every_transition_of_the_machine(
    references: dict[str, Outcome],
) -> None:
    taken = set().union(*(r.transitions for r in references.values()))
    assert set(TRANSITIONS) <= taken, f"not taken: {sorted(set(TRANSITIONS) - taken)}"
    for name, outcome in references.items():
        # no_money's deposit is money the ledger never saw: its identity cannot hold.
        assert outcome.summary["ledger_balances"] is (name != "no_money"), name
        assert set(outcome.states) <= FINAL_STATES, (name, outcome.states)


def scenario_for(point: str, references: dict[str, Outcome]) -> str:
    event, _, source = point.partition(":")[0].partition("@")
    for name, outcome in references.items():
        if any(e == event and (not source or s == source) for e, s in outcome.transitions):
            return name
    return "plain"


def check(outcome: Outcome, reference: Outcome) -> None:
    why = outcome.transcript
    # The venue's audit: nothing placed twice, no two orders of a leg working at once,
    # nothing sold that was not held.
    assert outcome.state["checks"] == {"placed_twice": [], "live_overlaps": [], "oversold": {}}, why
    # 0 naked legs: flat on the venue, the spot dust as the uninterrupted run left it.
    assert [p for p in outcome.state["positions"] if p["size"] not in ("0", 0)] == [], why
    assert outcome.coins("BTC") == reference.coins("BTC"), why
    # The journal equals the venue: every order the venue received is in it, once;
    # those the venue placed, and only those, it holds as placed (an order the venue
    # refused is "rejected", or "absent" when the answer was lost in the crash: the
    # venue has no such order); none is left open.
    assert outcome.open_intents == [], why
    sent = Counter(c["order_link_id"] for c in outcome.creates)
    assert all(n == 1 for n in sent.values()), why
    placed = {c["order_link_id"] for c in outcome.creates if c["outcome"] == "placed"}
    journaled = {o.client_order_id: o.status for o in outcome.orders}
    assert set(sent) <= set(journaled), why
    never = {"absent", "rejected"}
    assert {cid for cid, status in journaled.items() if status not in never} == placed, why
    assert set(outcome.states) <= FINAL_STATES, why
    # The money: the same fills, fees and slippage as the run left uninterrupted.
    assert outcome.ledger == reference.ledger, why
    assert outcome.summary["ledger_balances"] == reference.summary["ledger_balances"], why
    assert outcome.summary["ending_balance"] == reference.summary["ending_balance"], why


CRASH_POINTS = [f"{event}@{source}:1" for event, source in TRANSITIONS] + OTHER_POINTS


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_killed_at_a_crash_point_and_resumed_it_ends_as_if_never_stopped(
    point: str, references: dict[str, Outcome], tmp_path: Path
) -> None:
    name = scenario_for(point, references)
    outcome = play(tmp_path / "run", name, crash=point)
    assert "resume: exit" in outcome.transcript, f"{point} was never reached in {name}"
    check(outcome, references[name])


@pytest.mark.parametrize("seed", range(RANDOM_KILLS))
def test_killed_at_a_random_instant_and_resumed_it_ends_as_if_never_stopped(
    seed: int, references: dict[str, Outcome], tmp_path: Path
) -> None:
    # Between the journal's first write and the close: the run checks the venue, opens
    # within a poll, and closes a poll after the prices move (about 2 s in all).
    delay = random.Random(seed).uniform(0.0, 2.0)
    outcome = play(tmp_path / "run", "plain", kill_after=delay)
    check(outcome, references["plain"])


# -- stopped with its position left open; the venue changed behind the journal's back


def stop_holding(workdir: Path, venue: VenueProcess) -> Path:
    """A run with ``on_stop: leave``, stopped by SIGTERM once its position is open."""
    write_config(workdir, venue.url, on_stop="leave")
    run = Watched(orchestrator("run", "config.yaml", cwd=workdir))
    deadline = time.monotonic() + 60
    states: list[str] = []
    while time.monotonic() < deadline and run.process.poll() is None:
        folders = sorted((workdir / "runs").glob("*"))
        states = journal_state(folders[-1])[0] if folders else []
        if states == ["validated"] and run.trading:
            break
        time.sleep(0.05)
    run.process.send_signal(signal.SIGTERM)
    code, err = run.finish(timeout=60)
    assert code == 128 + signal.SIGTERM, err
    (run_dir,) = (workdir / "runs").glob("*")
    return run_dir


def resume(workdir: Path, run_dir: Path) -> tuple[int, str]:
    return Watched(orchestrator("run", "--resume", str(run_dir), cwd=workdir)).finish(60)


def test_sigterm_leaves_the_position_open_and_journaled_and_resume_carries_it_on(
    references: dict[str, Outcome], tmp_path: Path
) -> None:
    tmp_path.mkdir(exist_ok=True)
    venue = VenueProcess(tmp_path, *SCENARIOS["plain"])
    try:
        run_dir = stop_holding(tmp_path, venue)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["positions"] == {"validated": 1}
        assert summary["ledger_balances"] is True  # what is held is valued (marked)
        with Journal.read(run_dir) as view:
            assert view.open_intents() == []
        held = venue.admin("state")["positions"]
        assert [(p["symbol"], p["side"], p["size"]) for p in held] == [("BTCUSDT", "Sell", "0.452")]

        resumed = orchestrator("run", "--resume", str(run_dir), cwd=tmp_path)
        code, err = drive(resumed, tmp_path, venue, deposit=False)
        assert code == 128 + signal.SIGTERM, err
        assert "unfinished positions: BTCUSDT-0001 (validated)" in err
        # The marks of the first stop are not counted again: the same ledger as the
        # run that was never stopped.
        check(Outcome(run_dir, venue, err), references["plain"])
    finally:
        venue.stop()


@pytest.mark.parametrize(
    "change",
    ["spot moved out", "perp bought back by hand", "perp auto-deleveraged", "owner's own short"],
)
def test_a_change_made_while_the_run_was_down_is_taken_in_and_the_rest_closed(
    change: str, tmp_path: Path
) -> None:
    """The venue holds less than the journal, and its own record says why: the resume
    carries on, takes the change into the record at the venue's prices, closes the rest,
    and the pair trades again; its ledger balances on the venue's numbers."""
    venue = VenueProcess(tmp_path, *SCENARIOS["plain"])
    try:
        run_dir = stop_holding(tmp_path, venue)
        if change == "spot moved out":
            venue.admin("balances", {"BTC": "0.2"})  # no trade: coins moved out
        elif change == "owner's own short":
            venue.admin(
                "outside",
                {"category": "linear", "symbol": "BTCUSDT", "side": "Sell", "qty": "0.1"},
            )
        else:
            kind = "Trade" if change.endswith("hand") else "AdlTrade"
            venue.admin(
                "outside",
                {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "qty": "0.2",
                 "exec_type": kind},
            )  # fmt: skip
        resumed = orchestrator("run", "--resume", str(run_dir), cwd=tmp_path)
        code, err = drive(resumed, tmp_path, venue, deposit=False)
        state = venue.admin("state")
    finally:
        venue.stop()
    assert code == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    said = re.search(r"changed outside the run while it was stopped: (.*)", err)
    what = {"spot moved out": "of the spot moved out of the account",
            "perp bought back by hand": "a trade the run did not make: perp buy 0.2",
            "perp auto-deleveraged": "auto-deleveraging: perp buy 0.2",
            "owner's own short": "0.100 more perp short than the journal"}[change]  # fmt: skip
    assert said and what in said.group(1), err
    if change == "owner's own short":  # closed, the owner's short left as it was
        (held,) = [p for p in state["positions"] if p["size"] not in ("0", 0)]
        assert (held["side"], Decimal(held["size"])) == ("Sell", Decimal("0.1")), held
        state["positions"] = []
    assert [p for p in state["positions"] if p["size"] not in ("0", 0)] == [], err  # flat
    assert state["checks"] == {"placed_twice": [], "live_overlaps": [], "oversold": {}}, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["positions"] == {"closed": 1}, err
    # The owner's own short paid its fee from the same wallet: not the run's, so the
    # run's ledger does not balance by it (documented: give the run its own account).
    assert summary["ledger_balances"] is (change != "owner's own short"), err
    with Journal.read(run_dir) as view:
        outside = [o for o in view.orders() if "x" in o.client_order_id.rsplit("-", 1)[-1]]
    expected = {"spot moved out": ["spot"], "owner's own short": []}.get(change, ["linear"])
    assert [o.request.category.value for o in outside] == expected, outside


def test_resume_refuses_to_trade_when_the_venue_cannot_say_why_it_holds_other_than_the_journal(
    tmp_path: Path,
) -> None:
    """Resumed against a venue (an account) that holds none of the journal's position and
    has no record of it changing: nothing is sent, not even the leverage."""
    venue = VenueProcess(tmp_path, *SCENARIOS["plain"])
    try:
        run_dir = stop_holding(tmp_path, venue)
    finally:
        venue.stop()
    other = VenueProcess(tmp_path, *SCENARIOS["plain"])
    try:
        config = run_dir / "config.yaml"
        config.write_text(re.sub(r"url: \S+", f"url: {other.url}", config.read_text()))
        code, err = resume(tmp_path, run_dir)
        hits = other.admin("state")["hits"]
        creates = other.admin("requests")["creates"]
    finally:
        other.stop()
    assert code == 2, err
    assert "the venue and the journal disagree; nothing was sent" in err
    assert re.search(r"perp BTC/USDT:USDT short\s+0\.452\s+0\s+<- differs", err), err
    assert "Traceback" not in err
    assert not hits.get("position/set-leverage") and creates == [], (hits, creates)
    with Journal.read(run_dir) as view:
        assert [p.state for p in view.positions()] == ["validated"]  # as it was


def test_resume_waits_for_a_venue_that_cannot_say_what_became_of_an_order(
    references: dict[str, Outcome], tmp_path: Path
) -> None:
    venue = VenueProcess(tmp_path, *SCENARIOS["plain"])
    try:
        write_config(tmp_path, venue.url)
        first = orchestrator("run", "config.yaml", cwd=tmp_path, crash="intents:1")
        code, _ = drive(first, tmp_path, venue, deposit=False)
        assert code == -signal.SIGKILL
        (run_dir,) = (tmp_path / "runs").glob("*")
        # Every order lookup fails: the fate of the recorded orders cannot be known.
        venue.admin("faults", {"rules": [{"kind": "http", "endpoint": "order/*", "times": None}]})
        code, err = resume(tmp_path, run_dir)
        assert code == 2, err
        assert "the venue could not tell what became of" in err and "nothing was sent" in err
        assert venue.admin("requests")["creates"] == []
        # Once the venue answers again, the same resume carries the run on.
        venue.admin("faults", method="DELETE")
        code, err = drive(
            orchestrator("run", "--resume", str(run_dir), cwd=tmp_path),
            tmp_path,
            venue,
            deposit=False,
        )
        assert code == 128 + signal.SIGTERM, err
        check(Outcome(run_dir, venue, err), references["plain"])
    finally:
        venue.stop()


def test_a_resume_stopped_as_soon_as_it_reconciled_keeps_the_position_held_and_valued(
    tmp_path: Path,
) -> None:
    venue = VenueProcess(tmp_path, *SCENARIOS["plain"])
    try:
        run_dir = stop_holding(tmp_path, venue)
        # The funding history the run reads before its first cycle answers late: the
        # stop below lands before that cycle.
        slow = {"kind": "timeout_after", "endpoint": "market/funding/history", "delay_ms": 700}
        venue.admin("faults", {"rules": [{**slow, "times": None}]})
        resumed = Watched(orchestrator("run", "--resume", str(run_dir), cwd=tmp_path))
        deadline = time.monotonic() + 60
        while not any("live: reconciled" in line for line in resumed.lines):
            assert resumed.process.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        resumed.process.send_signal(signal.SIGTERM)
        code, err = resumed.finish(60)
        assert code == 128 + signal.SIGTERM, err
        assert "live: trading" not in err  # stopped before its first cycle
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["positions"] == {"validated": 1}
        assert summary["ledger_balances"] is True  # what is held is valued, not lost
        with Journal.read(run_dir) as view:
            assert [p.state for p in view.positions()] == ["validated"]
            assert view.open_intents() == []
        held = venue.admin("state")["positions"]
        assert [(p["symbol"], p["size"]) for p in held] == [("BTCUSDT", "0.452")]
    finally:
        venue.stop()
