"""The journal's writes as SQL, the grouped writes waiting, and the checks a writer
makes of its file and folder (store.py uses them)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from orchestrator.journal.lock import JournalError
from orchestrator.journal.schema import SCHEMA_VERSION, encode, os_reason, sqlite_reason
from orchestrator.models import Position


class Pending:
    """Grouped writes not committed yet, as rows (position records and balance
    snapshots: the latest of each, encoded when committed)."""

    __slots__ = ("balances", "count", "ledger", "outcomes", "positions", "transitions")

    def __init__(self) -> None:
        self.transitions: list[tuple[object, ...]] = []
        self.outcomes: list[tuple[object, ...]] = []
        self.ledger: list[tuple[object, ...]] = []
        self.positions: dict[str, Position] = {}
        # By label: (label, time ms, wallet, perps), the snapshots not encoded yet.
        self.balances: dict[str, tuple[str, int | None, dict[str, Decimal], dict[str, Any]]] = {}
        self.count = 0


TRANSITION = (
    "INSERT INTO transitions (position_id, event, source, target, time_ms) VALUES (?, ?, ?, ?, ?)"
)
INTENT = (
    "INSERT INTO orders (client_order_id, position_id, symbol, side, quantity, request, "
    "sent_ms) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
OUTCOME = (
    "INSERT INTO outcomes (status, final, result, error, outcome_ms, quote, client_order_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
LEDGER = (
    "INSERT INTO ledger (run_label, time_ms, pair, position_id, kind, symbol, side, "
    "quantity, price, amount, currency, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
POSITION_SQL = (
    "INSERT INTO positions (id, state, record) VALUES (?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET state = excluded.state, record = excluded.record"
)
BALANCES = (
    "INSERT INTO balances (label, time_ms, wallet, perps) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (label) DO UPDATE SET time_ms = excluded.time_ms, "
    "wallet = excluded.wallet, perps = excluded.perps"
)


def upsert_position(conn: sqlite3.Connection, position: Position) -> None:
    conn.execute(POSITION_SQL, (position.id, position.state, encode(position)))


def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def probe_folder(run_dir: Path) -> None:
    """Refuse to resume in a folder nothing can be created in: SQLite's WAL and its
    index go beside the journal (it would say only "unable to open database file")."""
    try:
        fd, name = tempfile.mkstemp(prefix=".write-probe-", dir=run_dir)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise JournalError(
            f"{run_dir}: the run folder cannot be written ({os_reason(exc)}), so its "
            "journal cannot be opened for writing"
        ) from None


def probe_write(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse to resume on a journal that cannot be written (SQLite opens a file it may
    not write read-only, and would say so only at the first intent)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")  # the value it has
    except sqlite3.Error as exc:
        raise JournalError(f"{path} cannot be written: {sqlite_reason(exc)}") from exc
    finally:
        rollback(conn)
