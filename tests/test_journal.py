"""The journal store on real SQLite files: exact round trips, refusals, write failures."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from orchestrator.exceptions import OrchestratorError
from orchestrator.journal import DB_NAME, Journal, JournalError, Transition
from orchestrator.journal.schema import SCHEMA_VERSION
from orchestrator.models import (
    Category,
    OrderRequest,
    OrderResult,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from orchestrator.trading.ledger import LedgerEntry

D = Decimal
# Decimals whose text must come back as it went in: exponents, trailing zeros, signs,
# more digits than a float or Python's default context keep.
AWKWARD = [
    D("0.10"),
    D("1E-30"),
    D("-0"),
    D("1E+3"),
    D("123456789012345678901234567890.000000000000000000000000000001"),
    D("-0.000000000000000000000000000000000000000000000000000000000001"),
]
CONFIG = "# config\ntrading:\n  max_position_size_usd: '1000'\nnote: \"é ünïcode\"\n"


def new_journal(run_dir: Path, **kwargs: float) -> Journal:
    return Journal.create(
        run_dir, run_id="run-1", mode="paper", run_nonce="abc123", config_text=CONFIG, **kwargs
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with new_journal(tmp_path / "run") as j:
        yield j


def request(cid: str, symbol: str = "BTC/USDT", side: Side = Side.BUY) -> OrderRequest:
    category = Category.LINEAR if ":" in symbol else Category.SPOT
    return OrderRequest(symbol, side, D("0.00123400"), category, cid)


def result(req: OrderRequest, status: OrderStatus = OrderStatus.FILLED) -> OrderResult:
    return OrderResult(
        client_order_id=req.client_order_id,
        order_id="paper_7",
        symbol=req.symbol,
        side=req.side,
        category=req.category,
        status=status,
        requested_qty=req.quantity,
        filled_qty=D("0.001233") if status is OrderStatus.PARTIALLY_FILLED else req.quantity,
        avg_price=D("60000.0500"),
        fee=D("1.234E-7"),
        fee_currency="BTC",
        is_simulated=True,
    )


def position(pid: str = "p1") -> Position:
    req = request(f"abc123-{pid}-so1")
    return Position(
        id=pid,
        spot_symbol="BTC/USDT",
        perp_symbol="BTC/USDT:USDT",
        state="validated",
        quantity=AWKWARD[0],
        spot_qty=AWKWARD[4],
        perp_qty=AWKWARD[5],
        spot_entry_price=D("60000.00"),
        perp_entry_price=None,
        entry_fees=AWKWARD[1],
        exit_fees=AWKWARD[2],
        client_order_ids=[req.client_order_id, f"abc123-{pid}-po1"],
        orders=[result(req)],
        reason="é: a reason",
        created_at=datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        opened_at=datetime(2024, 1, 2, 3, 4, 6, tzinfo=UTC),
    )


def exact(value: object) -> bytes:
    """Equality of Decimals is numeric (0.10 == 0.1); their JSON text is not."""
    return msgspec.json.encode(value)


def test_create_stores_the_run_meta_and_open_reads_it_back(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "run-1"  # the folder is made
    with new_journal(run_dir) as j:
        j.set_meta("replay_cursor", "1704067200000")
        j.set_meta("replay_cursor", "1704070800000")  # replaced
        with pytest.raises(ValueError, match="identity"):
            j.set_meta("run_nonce", "other")
    with Journal.open(run_dir) as j:
        meta = j.meta()
    assert meta["run_id"] == "run-1"
    assert meta["mode"] == "paper"
    assert meta["run_nonce"] == "abc123"
    assert meta["config"] == CONFIG  # exact text
    assert meta["replay_cursor"] == "1704070800000"
    assert datetime.fromisoformat(meta["created_at"]).tzinfo is not None
    assert (run_dir / DB_NAME).is_file()


def test_positions_round_trip_exact_to_the_decimal(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first, second = position("p1"), position("p2")
    with new_journal(run_dir) as j:
        j.save_position(first)
        j.save_position(second)
        first.state = "closing"  # an upsert of the whole record, same place in the order
        first.exit_fees = D("0.0000000000000000000000000000000000000000001")
        j.save_position(first)
        assert exact(j.positions()) == exact([first, second])
        assert j.position_states() == [("p1", "closing"), ("p2", "validated")]
    with Journal.open(run_dir) as j:
        back = j.positions()
    assert exact(back) == exact([first, second])
    assert back == [first, second]
    assert str(back[0].exit_fees) == "1E-43"
    assert [str(d) for d in (back[1].quantity, back[1].spot_qty, back[1].entry_fees)] == [
        "0.10",
        "123456789012345678901234567890.000000000000000000000000000001",
        "1E-30",
    ]
    assert back[1].orders[0].fee == D("1.234E-7")


def test_transitions_in_order_per_position_with_the_record_in_the_same_commit(
    journal: Journal,
) -> None:
    p = position()
    p.state = "legs_sent"
    journal.transition("p1", "open", "pending", "legs_sent", 1000, position=p)
    journal.transition("p2", "open", "pending", "legs_sent", 1001)
    p.state = "filled"
    journal.transition("p1", "legs_filled", "legs_sent", "filled", 1002, position=p)
    assert journal.transitions("p1") == [
        Transition("p1", "open", "pending", "legs_sent", 1000),
        Transition("p1", "legs_filled", "legs_sent", "filled", 1002),
    ]
    assert [t.position_id for t in journal.transitions()] == ["p1", "p2", "p1"]
    assert journal.position_states() == [("p1", "filled")]
    assert journal.transitions("nobody") == []


def test_intents_stay_open_until_a_final_outcome(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    spot, perp = request("abc123-p1-so1"), request("abc123-p1-po1", "BTC/USDT:USDT", Side.SELL)
    limit = OrderRequest(
        "ETH/USDT",
        Side.SELL,
        D("1.50"),
        Category.SPOT,
        "abc123-p2-sc1",
        OrderType.LIMIT,
        D("3000.10"),
    )
    with new_journal(run_dir) as j:
        j.intents("p1", [spot, perp], 1_704_067_200_000)
        j.intents("p2", [limit], 1_704_067_200_001)
        j.intents("p3", [], 5)  # nothing to record
        assert [i.client_order_id for i in j.open_intents()] == [
            "abc123-p1-so1",
            "abc123-p1-po1",
            "abc123-p2-sc1",
        ]
        j.outcome("abc123-p1-so1", result(spot), "filled", time_ms=1_704_067_200_500)
        j.outcome("abc123-p1-po1", None, "unknown", "RequestTimeout: no answer in 5 s")
        j.outcome("abc123-p2-sc1", None, "open")  # still working on the venue
    with Journal.open(run_dir) as j:  # as a restart finds it
        still = j.open_intents()
        assert [(i.client_order_id, i.status, i.error) for i in still] == [
            ("abc123-p1-po1", "unknown", "RequestTimeout: no answer in 5 s"),
            ("abc123-p2-sc1", "open", None),
        ]
        assert exact(still[1].request) == exact(limit)
        j.outcome("abc123-p1-po1", None, "absent", "not found after recvWindow")
        j.outcome("abc123-p2-sc1", result(limit, OrderStatus.PARTIALLY_FILLED), "partially_filled")
        assert j.open_intents() == []
        orders = j.orders("p1")
    assert [(o.client_order_id, o.status, o.is_final) for o in orders] == [
        ("abc123-p1-so1", "filled", True),
        ("abc123-p1-po1", "absent", True),
    ]
    assert orders[0].sent_ms == 1_704_067_200_000
    assert orders[0].outcome_ms == 1_704_067_200_500
    assert exact(orders[0].request) == exact(spot)
    assert exact(orders[0].result) == exact(result(spot))
    assert orders[1].result is None
    assert str(orders[0].request.quantity) == "0.00123400"


def test_intents_refuse_what_would_send_an_order_twice_or_complete_nothing(
    journal: Journal,
) -> None:
    spot = request("abc123-p1-so1")
    journal.intents("p1", [spot], 1)
    with pytest.raises(JournalError, match="abc123-p1-so1 is already recorded"):
        journal.intents("p1", [request("abc123-p1-po1"), spot], 2)
    assert [i.client_order_id for i in journal.open_intents()] == ["abc123-p1-so1"]  # not half
    with pytest.raises(ValueError, match="twice"):
        journal.intents("p1", [request("x1"), request("x1")], 3)
    with pytest.raises(JournalError, match="no intent was recorded for client order id nope"):
        journal.outcome("nope", None, "rejected", "InsufficientFunds")
    with pytest.raises(ValueError, match="outcome status 'done'"):
        journal.outcome("abc123-p1-so1", None, "done")
    with pytest.raises(ValueError, match="result is other's"):
        journal.outcome("abc123-p1-so1", result(request("other")), "filled")
    assert journal.open_intents()[0].status == "sent"


@pytest.mark.parametrize("grouped", [False, True], ids=["each write", "grouped"])
def test_an_orders_outcome_is_its_latest_and_a_restart_refuses_every_id_recorded(
    tmp_path: Path, grouped: bool
) -> None:
    run_dir = tmp_path / "run"
    spot, perp = request("abc123-p1-so1"), request("abc123-p1-po1", "BTC/USDT:USDT", Side.SELL)
    with new_journal(run_dir) as j:
        if grouped:
            j.group_writes()  # as a replay writes it
        j.intents("p1", [spot, perp], 1)
        j.outcome("abc123-p1-so1", result(spot, OrderStatus.OPEN), "open", time_ms=2)
        j.outcome("abc123-p1-po1", None, "unknown", "RequestTimeout", time_ms=2)
        j.outcome("abc123-p1-so1", result(spot), "filled", time_ms=3)
    with Journal.open(run_dir) as j:
        for again in (spot, perp):  # the restart knows every id, settled or not
            with pytest.raises(JournalError, match=f"{again.client_order_id} is already recorded"):
                j.intents("p1", [request("abc123-p1-so2"), again], 4)
        assert [(o.client_order_id, o.status, o.outcome_ms) for o in j.orders()] == [
            ("abc123-p1-so1", "filled", 3),
            ("abc123-p1-po1", "unknown", 2),
        ]
        assert [i.client_order_id for i in j.open_intents()] == ["abc123-p1-po1"]
        assert j.counts()["orders"] == 2 and j.counts()["open_intents"] == 1
        j.outcome("abc123-p1-po1", None, "absent", time_ms=5)
        assert j.open_intents() == [] and j.counts()["open_intents"] == 0


def test_ledger_appends_per_run_and_reads_back_exact(tmp_path: Path) -> None:
    def entry(kind: str, amount: Decimal, note: str = "") -> LedgerEntry:
        return msgspec.convert(
            {
                "time_ms": 1_704_067_200_000,
                "pair": "BTCUSDT",
                "position_id": "p1",
                "kind": kind,
                "symbol": "BTC/USDT:USDT",
                "side": "",
                "quantity": AWKWARD[4],
                "price": D("60000.10"),
                "amount": amount,
                "currency": "USDT",
                "note": note,
            },
            LedgerEntry,
        )

    strategy = [
        entry("fill", AWKWARD[5], "abc123-p1-so1"),
        entry("fee", D("-0.0330"), "abc123-p1-so1"),
        entry("funding", D("1.5E-20"), "rate 0.0001"),
    ]
    run_dir = tmp_path / "run"
    with new_journal(run_dir) as j:
        j.ledger("strategy", strategy[:2])
        j.ledger("always hedged", [entry("funding", D("2.00"))])
        j.ledger("strategy", strategy[2:])
        j.ledger("strategy", [])
    with Journal.open(run_dir) as j:
        assert exact(j.ledger_entries("strategy")) == exact(strategy)
        assert exact(j.ledger_entries("strategy", kind="funding")) == exact(strategy[2:])
        assert exact(j.ledger_entries("always hedged")) == exact([entry("funding", D("2.00"))])
        assert j.ledger_entries("nobody") == []
        assert j.ledger_counts() == {"strategy": 3, "always hedged": 1}


def test_balances_keep_the_last_snapshot_per_label(journal: Journal) -> None:
    assert journal.last_balances("strategy") is None
    journal.balances("strategy", {"USDT": D("100000")}, {}, time_ms=1)
    wallet = {"USDT": D("99940.000000000000000000000000000001"), "BTC": D("0.001230")}
    perps = {"BTC/USDT:USDT": (D("-0.00123400"), D("60000.10"))}
    journal.balances("strategy", wallet, perps, time_ms=2)
    journal.balances("always hedged", {"USDT": D("5")}, {})
    snap = journal.last_balances("strategy")
    assert snap is not None
    assert snap.time_ms == 2
    assert exact(snap.wallet) == exact(wallet)
    assert exact(snap.perps) == exact(perps)
    assert snap.perps["BTC/USDT:USDT"] == (D("-0.001234"), D("60000.1"))
    assert journal.balance_labels() == ["always hedged", "strategy"]


@pytest.mark.parametrize("grouped", [False, True], ids=["each write", "grouped"])
def test_a_balances_snapshot_is_what_it_was_when_taken(tmp_path: Path, grouped: bool) -> None:
    # Grouped, a snapshot is encoded only when committed: what the caller changes in
    # its dicts after handing them over must not reach the journal.
    run_dir = tmp_path / "run"
    wallet = {"USDT": D("100.50")}
    perps = {"BTC/USDT:USDT": (D("-0.5"), D("60000"))}
    with new_journal(run_dir) as j:
        if grouped:
            j.group_writes()  # as a replay writes it
        j.balances("strategy", wallet, perps, time_ms=7)
        wallet["USDT"] = D(0)
        perps.clear()
        j.flush()
    with Journal.open(run_dir) as j:
        snap = j.last_balances("strategy")
        assert snap is not None and snap.time_ms == 7
        assert exact(snap.wallet) == exact({"USDT": D("100.50")})
        assert exact(snap.perps) == exact({"BTC/USDT:USDT": (D("-0.5"), D("60000"))})


def test_counts(journal: Journal) -> None:
    journal.save_position(position())
    journal.transition("p1", "open", "pending", "legs_sent", 1)
    journal.intents("p1", [request("a1"), request("a2")], 1)
    journal.outcome("a1", None, "rejected")
    assert journal.counts() == {
        "positions": 1,
        "transitions": 1,
        "orders": 2,
        "open_intents": 1,
        "ledger_entries": 0,
    }


def test_a_closed_journal_says_so(tmp_path: Path) -> None:
    j = new_journal(tmp_path / "run")
    j.close()
    j.close()  # twice is fine
    assert j.closed
    with pytest.raises(JournalError, match="closed"):
        j.intents("p1", [request("a1")], 1)
    with Journal.open(tmp_path / "run") as again:  # the lock went with it
        assert again.open_intents() == []


# -- refusals


def test_create_refuses_a_folder_that_has_a_journal_and_open_one_that_has_none(
    tmp_path: Path,
) -> None:
    new_journal(tmp_path / "run").close()
    with pytest.raises(JournalError, match=r"journal.sqlite3 already exists"):
        new_journal(tmp_path / "run")
    with Journal.open(tmp_path / "run") as j:  # the refused create left it whole
        assert j.meta()["run_id"] == "run-1"
    (tmp_path / "empty").mkdir()
    for folder, message in [
        (tmp_path / "empty", r"empty has no journal \(journal.sqlite3 is missing\)"),
        (tmp_path / "missing", "missing does not exist"),
    ]:
        with pytest.raises(JournalError, match=message):
            Journal.open(folder)
        with pytest.raises(JournalError, match=message):
            Journal.read(folder)
    assert not (tmp_path / "missing").exists()


def set_user_version(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


def test_another_version_is_refused_naming_the_file_and_both_versions(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    new_journal(run_dir).close()
    set_user_version(run_dir / DB_NAME, 7)
    expected = (
        rf"{run_dir / DB_NAME} is a journal of version 7; .* reads version {SCHEMA_VERSION} only"
    )
    with pytest.raises(JournalError, match=expected):
        Journal.open(run_dir)
    with pytest.raises(JournalError, match=expected):
        Journal.read(run_dir)
    assert issubclass(JournalError, OrchestratorError)


def test_an_sqlite_file_of_another_kind_is_not_a_journal(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    conn = sqlite3.connect(tmp_path / "run" / DB_NAME)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="not a journal: an SQLite database of another kind"):
        Journal.open(tmp_path / "run")


def damaged(tmp_path: Path, how: str) -> Path:
    """A real journal with some records, closed, then damaged ``how``."""
    run_dir = tmp_path / how
    with new_journal(run_dir) as j:
        for n in range(40):
            p = position(f"p{n}")
            p.reason = "x" * 500  # enough pages that there is something to lose
            j.save_position(p)
    path = run_dir / DB_NAME
    size = path.stat().st_size
    assert size >= 8 * 4096
    with path.open("r+b") as f:
        if how == "half":
            f.truncate(size // 2)
        elif how == "short":
            f.truncate(50)
        elif how == "empty":
            f.truncate(0)
        elif how == "header":
            f.write(b"this is not what it was" * 4)
        elif how == "page":
            f.seek(3 * 4096)
            f.write(b"\xff" * 4096)
    return run_dir


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("half", r"is truncated: its header says \d+ pages of 4096 bytes"),
        ("short", r"is not a journal: not an SQLite database \(truncated or overwritten\?\)"),
        ("empty", r"is empty \(truncated\?\): not a journal"),
        ("header", r"is not a journal: not an SQLite database \(truncated or overwritten\?\)"),
        ("page", r"is corrupt"),
    ],
)
def test_a_damaged_file_is_refused_with_a_clear_message(
    tmp_path: Path, how: str, message: str
) -> None:
    run_dir = damaged(tmp_path, how)
    name = str(run_dir / DB_NAME)
    for opener in (Journal.open, Journal.read):
        with pytest.raises(JournalError, match=message) as caught:
            opener(run_dir)
        assert str(caught.value).startswith(name)
        assert "Traceback" not in str(caught.value)
    # A refused open left the lock free: the next try is refused for the file again.
    with pytest.raises(JournalError) as caught:
        Journal.open(run_dir)
    assert "open for writing" not in str(caught.value)


# -- writes that cannot be done


def record_until_refused(j: Journal) -> tuple[int, str]:
    """Record pairs of legs until the journal refuses one: (pairs recorded, its message)."""
    for n in range(10_000):
        try:
            j.intents(f"p{n}", [request(f"c{n}-s"), request(f"c{n}-p")], n)
        except JournalError as exc:
            return n, str(exc)
    raise AssertionError("never refused")


def test_a_full_disk_refuses_the_intent_and_records_none_of_it(tmp_path: Path) -> None:
    with new_journal(tmp_path / "run") as j:
        conn = j._db()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
        recorded, message = record_until_refused(j)
        assert message.startswith(f"{tmp_path / 'run' / DB_NAME}: cannot record the intent of ")
        assert f"c{recorded}-s, c{recorded}-p" in message
        assert "database or disk is full (SQLITE_FULL)" in message
        assert len(j.orders()) == 2 * recorded  # the refused pair: neither leg
        conn.execute("PRAGMA max_page_count = 1073741823")  # space again: it goes on
        j.intents("next", [request("n1")], 1)
        assert j.orders("next")[0].client_order_id == "n1"


def test_a_locked_database_is_refused_after_the_busy_timeout(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with new_journal(run_dir, busy_timeout=0.05) as j:
        other = sqlite3.connect(run_dir / DB_NAME, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")  # a process outside the lock protocol
        try:
            with pytest.raises(JournalError, match=r"database is locked \(SQLITE_BUSY\)"):
                j.intents("p1", [request("a1")], 1)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert j.open_intents() == []
        j.intents("p1", [request("a1")], 1)
        assert len(j.open_intents()) == 1


def test_a_removed_run_folder_is_refused_not_written_into_a_ghost(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with new_journal(run_dir) as j:
        shutil.rmtree(run_dir)
        with pytest.raises(JournalError, match=r"the journal file is gone .* removed or moved"):
            j.intents("p1", [request("a1")], 1)


def test_a_replay_journal_refuses_an_intent_into_a_removed_or_replaced_file(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    with new_journal(run_dir) as j:
        j.group_writes()  # as a replay writes it
        j.intents("p1", [request("a1")], 1)
        shutil.rmtree(run_dir)
        with pytest.raises(JournalError, match=r"the journal file is gone .* removed or moved"):
            j.intents("p1", [request("a2")], 1)
    other = tmp_path / "other"
    with new_journal(other) as j:
        j.group_writes()
        j.intents("p1", [request("a1")], 1)
        (other / DB_NAME).unlink()
        (other / DB_NAME).write_bytes(b"")
        with pytest.raises(
            JournalError,
            match=r"cannot record the intent of a2, a3: the journal "
            r"file was replaced by another",
        ):
            j.intents("p1", [request("a2"), request("a3")], 1)


def test_a_run_folder_under_a_file_cannot_hold_a_journal(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(JournalError, match="cannot create the run folder: Not a directory"):
        new_journal(tmp_path / "file" / "run")


def chattr(flag: str, *paths: Path) -> bool:
    try:
        done = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, check=False)
    except FileNotFoundError:
        return False
    return done.returncode == 0


def test_an_unwritable_journal_refuses_the_intent_and_refuses_to_resume(tmp_path: Path) -> None:
    """chattr +i stops root too (chmod does not)."""
    run_dir = tmp_path / "run"
    path = run_dir / DB_NAME
    wal = run_dir / f"{DB_NAME}-wal"
    with new_journal(run_dir) as j:
        if not chattr("+i", path, wal):
            pytest.skip("chattr +i is not available here")
        try:
            with pytest.raises(JournalError, match=r"cannot record the intent of a1: .*I/O"):
                j.intents("p1", [request("a1")], 1)
        finally:
            chattr("-i", path, wal)
    if not chattr("+i", path):
        pytest.skip("chattr +i is not available here")
    try:
        with pytest.raises(JournalError, match="cannot be written: attempt to write a readonly"):
            Journal.open(run_dir)
        with Journal.read(run_dir) as view:  # reading needs no write
            assert view.meta()["run_id"] == "run-1"
    finally:
        chattr("-i", path)
    with Journal.open(run_dir) as j:  # the refusal released the lock
        assert j.open_intents() == []
