"""The journal's file: its schema and version, the records it returns, and the checks
that refuse a file that is not a journal of this version, or is damaged."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import get_args
from urllib.parse import quote

import msgspec

from orchestrator.journal.lock import JournalError
from orchestrator.models import OrderRequest, OrderResult, Position
from orchestrator.trading.ledger import Kind

DB_NAME = "journal.sqlite3"
# 2: an outcome keeps the price quoted when it came; 3: outcomes are appended beside
# their intents, not written into them (an order's outcome is its latest)
SCHEMA_VERSION = 3
APPLICATION_ID = 0x464A524E  # "FJRN": tells a journal from any other SQLite file
BUSY_TIMEOUT = 1.0  # seconds; only a process outside the lock protocol can hold the db

# The run's identity, set once by Journal.create; set_meta refuses to change them.
IDENTITY_KEYS = ("run_id", "mode", "run_nonce", "config", "created_at")

SENT = "sent"  # an intent with no outcome yet
OPEN_STATUSES = frozenset({"open", "unknown"})  # an outcome that settles nothing yet
FINAL_STATUSES = frozenset({"filled", "partially_filled", "cancelled", "rejected", "absent"})
LEDGER_KINDS = frozenset(get_args(Kind))

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE positions (id TEXT PRIMARY KEY, state TEXT, record TEXT NOT NULL);
CREATE TABLE transitions (
    seq INTEGER PRIMARY KEY,
    position_id TEXT NOT NULL,
    event TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    time_ms INTEGER NOT NULL
);
CREATE TABLE orders (
    seq INTEGER PRIMARY KEY,
    client_order_id TEXT NOT NULL,
    position_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity TEXT NOT NULL,
    request TEXT NOT NULL,
    sent_ms INTEGER NOT NULL
);
CREATE TABLE outcomes (
    seq INTEGER PRIMARY KEY,
    client_order_id TEXT NOT NULL,
    status TEXT NOT NULL,
    final INTEGER NOT NULL,
    result TEXT,
    error TEXT,
    outcome_ms INTEGER,
    quote TEXT
);
CREATE TABLE ledger (
    seq INTEGER PRIMARY KEY,
    run_label TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    pair TEXT NOT NULL,
    position_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity TEXT NOT NULL,
    price TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE TABLE balances (
    label TEXT PRIMARY KEY,
    time_ms INTEGER,
    wallet TEXT NOT NULL,
    perps TEXT NOT NULL
);
"""


class Transition(msgspec.Struct, frozen=True):
    position_id: str
    event: str
    source: str
    target: str
    time_ms: int


class Intent(msgspec.Struct, frozen=True, kw_only=True):
    """An order request as the journal knows it: recorded before it left, and its
    outcome so far (``status`` is "sent" until one is recorded)."""

    position_id: str
    request: OrderRequest
    sent_ms: int
    status: str = SENT
    result: OrderResult | None = None
    error: str | None = None
    outcome_ms: int | None = None
    # The price quoted when the outcome came: what its fill's slippage is measured
    # against, when the ledger gets it only after a restart.
    quote: Decimal | None = None

    @property
    def client_order_id(self) -> str:
        return self.request.client_order_id

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class BalanceSnapshot(msgspec.Struct, frozen=True):
    """The paper executor's wallet by currency and perp holdings by symbol: (size, entry)."""

    label: str
    wallet: dict[str, Decimal]
    perps: dict[str, tuple[Decimal, Decimal]]
    time_ms: int | None = None


WALLET = msgspec.json.Decoder(dict[str, Decimal])
PERPS = msgspec.json.Decoder(dict[str, tuple[Decimal, Decimal]])
POSITION = msgspec.json.Decoder(Position)
REQUEST = msgspec.json.Decoder(OrderRequest)
RESULT = msgspec.json.Decoder(OrderResult)
encode = msgspec.json.Encoder().encode


def create_schema(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def connect(uri: str, busy_timeout: float) -> sqlite3.Connection:
    return sqlite3.connect(
        uri, uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )


def uri(path: Path) -> str:
    return "file:" + quote(str(path.absolute()), safe="/")


def journal_files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def existing_journal(run_dir: Path) -> Path:
    """The journal file of ``run_dir``, or JournalError saying why there is none."""
    path = run_dir / DB_NAME
    if not run_dir.is_dir():
        what = "does not exist" if not run_dir.exists() else "is not a folder"
        raise JournalError(f"{run_dir} {what}: no journal to open")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise JournalError(f"{run_dir} has no journal ({DB_NAME} is missing)") from None
    except OSError as exc:
        raise JournalError(f"{path}: {os_reason(exc)}") from None
    if size == 0:
        raise JournalError(f"{path} is empty (truncated?): not a journal")
    return path


def check_header(path: Path) -> None:
    """Refuse a file that is not SQLite's, or shorter than its header says (truncated).

    Only while no writer runs: a checkpoint may be growing the file.
    """
    try:
        with path.open("rb") as f:
            header = f.read(100)
        size = path.stat().st_size
    except OSError as exc:
        raise JournalError(f"{path}: {os_reason(exc)}") from None
    if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
        raise JournalError(
            f"{path} is not a journal: not an SQLite database (truncated or overwritten?)"
        )
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # Pages a checkpoint has not copied into the file yet are in the WAL (after a disk
    # filled, even the file's first pages may be): with a WAL, SQLite is the judge
    # (check_journal's quick_check reads every page from wherever it is).
    if _has_wal(path):
        return
    if pages and header[24:28] == header[92:96] and size < pages * page_size:
        raise JournalError(
            f"{path} is truncated: its header says {pages} pages of {page_size} bytes "
            f"({pages * page_size} bytes), the file has {size}"
        )


def _tables(conn: sqlite3.Connection) -> int:
    count: int = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
    return count


def _has_wal(path: Path) -> bool:
    try:
        return path.with_name(path.name + "-wal").stat().st_size > 0
    except OSError:
        return False


def check_journal(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse what is not a journal of this version, or is damaged."""
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if application_id == 0 and version == 0 and not _tables(conn):
        # What a journal's file holds before its first checkpoint: its records were
        # all in the WAL beside it.
        raise JournalError(
            f"{path} holds no records: they were in its write-ahead log "
            f"({path.name}-wal), which is missing or empty; nothing to read"
        )
    if application_id != APPLICATION_ID:
        raise JournalError(f"{path} is not a journal: an SQLite database of another kind")
    if version != SCHEMA_VERSION:
        newer = (
            "; a newer orchestrator wrote it: upgrade to read it"
            if version > SCHEMA_VERSION
            else ""
        )
        raise JournalError(
            f"{path} is a journal of version {version}; this orchestrator reads version "
            f"{SCHEMA_VERSION} only{newer}"
        )
    problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)").fetchall()]
    if problems != ["ok"]:
        raise JournalError(f"{path} is corrupt: {'; '.join(problems)}")


def unreadable(path: Path, exc: sqlite3.Error, what: str) -> JournalError:
    name = getattr(exc, "sqlite_errorname", "")
    if name == "SQLITE_NOTADB":
        return JournalError(
            f"{path} is not a journal: not an SQLite database (truncated or overwritten?)"
        )
    if name.startswith("SQLITE_CORRUPT"):
        return JournalError(f"{path} is corrupt (truncated or overwritten?): {exc}")
    return JournalError(f"{path}: {what}: {sqlite_reason(exc)}")


def sqlite_reason(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", "")
    return f"{exc} ({name})" if name else str(exc)


def os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
