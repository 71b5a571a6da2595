"""Reading a journal: ``Journal.read`` takes a snapshot into memory without the run's
lock and without changing anything, neither the journal's files (bytes and times)
nor the folder.

How, depending on whether a writer runs (``lock.ReadProbe``):

- no writer, no WAL (the writer closed): the file is the whole journal; it is read
  with ``immutable=1``, which creates no ``-wal``/``-shm`` beside it (``mode=ro``
  alone would);
- no writer, a WAL with commits (the writer died, e.g. killed): ``immutable`` would
  ignore the WAL and ``mode=ro`` would rebuild its ``-shm`` index in place, so the
  file and its WAL are copied to a temporary folder and read there;
- a writer runs: its files are read as they are with ``mode=ro`` (a reader's only
  part in them is the WAL's shared-memory index, ``-shm``, which the writer keeps).
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import msgspec

from orchestrator.journal.lock import JournalError, ReadProbe
from orchestrator.journal.schema import (
    BUSY_TIMEOUT,
    DB_NAME,
    LEDGER_KINDS,
    PERPS,
    POSITION,
    REQUEST,
    RESULT,
    WALLET,
    BalanceSnapshot,
    Intent,
    Transition,
    check_header,
    check_journal,
    connect,
    existing_journal,
    os_reason,
    unreadable,
    uri,
)
from orchestrator.models import Position
from orchestrator.trading.ledger import Kind, LedgerEntry


class Records:
    """The reading half, shared by Journal (the writer) and JournalView (a snapshot)."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path  # the journal file
        self._conn: sqlite3.Connection | None = conn
        self._mutex = threading.RLock()

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    # -- life

    def close(self) -> None:
        with self._mutex:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    @property
    def closed(self) -> bool:
        return self._conn is None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"{self.path}: the journal is closed")
        return self._conn

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._mutex:
            conn = self._db()
            try:
                yield conn
            except sqlite3.Error as exc:
                raise unreadable(self.path, exc, what) from exc
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                raise JournalError(
                    f"{self.path}: {what}: a stored record is invalid: {exc}"
                ) from exc

    # -- reads

    def meta(self) -> dict[str, str]:
        with self._reading("reading the meta") as conn:
            return dict(conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall())

    def positions(self) -> list[Position]:
        """Every position, in the order first saved, decoded exactly."""
        with self._reading("reading the positions") as conn:
            rows = conn.execute("SELECT record FROM positions ORDER BY rowid").fetchall()
            return [POSITION.decode(record) for (record,) in rows]

    def transitions(self, position_id: str | None = None) -> list[Transition]:
        """A position's transitions in the order they happened (every position's with None)."""
        sql = "SELECT position_id, event, source, target, time_ms FROM transitions"
        with self._reading("reading the transitions") as conn:
            if position_id is None:
                rows = conn.execute(f"{sql} ORDER BY seq").fetchall()
            else:
                rows = conn.execute(
                    f"{sql} WHERE position_id = ? ORDER BY seq", (position_id,)
                ).fetchall()
            return [Transition(*row) for row in rows]

    def open_intents(self) -> list[Intent]:
        """Requests with no final outcome ("sent", "open" or "unknown"), oldest first:
        on resume, each is looked up at the venue by its client order id."""
        with self._reading("reading the open intents") as conn:
            rows = conn.execute(f"{_ORDER_SQL} WHERE {_OPEN} ORDER BY o.seq").fetchall()
            return [_intent(row) for row in rows]

    def orders(self, position_id: str | None = None) -> list[Intent]:
        """Every request of a position (of the run with None) and its outcome, as sent."""
        with self._reading("reading the orders") as conn:
            if position_id is None:
                rows = conn.execute(f"{_ORDER_SQL} ORDER BY o.seq").fetchall()
            else:
                rows = conn.execute(
                    f"{_ORDER_SQL} WHERE o.position_id = ? ORDER BY o.seq", (position_id,)
                ).fetchall()
            return [_intent(row) for row in rows]

    def ledger_entries(self, run_label: str, kind: str | None = None) -> list[LedgerEntry]:
        """A run's ledger in the order appended; ``kind="funding"`` for its funding only."""
        sql = (
            "SELECT time_ms, pair, position_id, kind, symbol, side, quantity, price, amount,"
            " currency, note FROM ledger WHERE run_label = ?"
        )
        args: tuple[str, ...] = (run_label,)
        if kind is not None:
            sql += " AND kind = ?"
            args += (kind,)
        with self._reading("reading the ledger") as conn:
            return [_entry(row) for row in conn.execute(f"{sql} ORDER BY seq", args)]

    def last_balances(self, label: str) -> BalanceSnapshot | None:
        with self._reading("reading the balances") as conn:
            row = conn.execute(
                "SELECT time_ms, wallet, perps FROM balances WHERE label = ?", (label,)
            ).fetchone()
            if row is None:
                return None
            return BalanceSnapshot(label, WALLET.decode(row[1]), PERPS.decode(row[2]), row[0])

    def balance_labels(self) -> list[str]:
        with self._reading("reading the balances") as conn:
            return [label for (label,) in conn.execute("SELECT label FROM balances ORDER BY 1")]

    def position_states(self) -> list[tuple[str, str | None]]:
        """(id, state) of every position, without decoding the records."""
        with self._reading("reading the positions") as conn:
            return conn.execute("SELECT id, state FROM positions ORDER BY rowid").fetchall()

    def counts(self) -> dict[str, int]:
        """How many positions, transitions, orders, open intents and ledger entries."""
        with self._reading("counting") as conn:

            def count(sql: str) -> int:
                value: int = conn.execute(sql).fetchone()[0]
                return value

            return {
                "positions": count("SELECT count(*) FROM positions"),
                "transitions": count("SELECT count(*) FROM transitions"),
                "orders": count("SELECT count(*) FROM orders"),
                "open_intents": count(f"SELECT count(*) FROM ({_ORDER_SQL} WHERE {_OPEN})"),
                "ledger_entries": count("SELECT count(*) FROM ledger"),
            }

    def last_seqs(self) -> dict[str, int]:
        """The last seq of each appended table (0 when empty): where the journal ends."""
        with self._reading("reading where the journal ends") as conn:
            return {
                table: conn.execute(f"SELECT coalesce(max(seq), 0) FROM {table}").fetchone()[0]
                for table in SEQ_TABLES
            }

    def ledger_counts(self) -> dict[str, int]:
        """Ledger entries by run label."""
        with self._reading("counting the ledger") as conn:
            rows = conn.execute(
                "SELECT run_label, count(*) FROM ledger GROUP BY run_label ORDER BY min(seq)"
            ).fetchall()
            return dict(rows)

    # -- a page at a time (the dashboard: fast at 10,000 positions)

    def state_counts(self) -> dict[str | None, int]:
        """How many positions are in each state."""
        with self._reading("counting the positions") as conn:
            return dict(conn.execute("SELECT state, count(*) FROM positions GROUP BY state"))

    def positions_page(
        self, state: str | None, offset: int, limit: int
    ) -> tuple[int, list[Position]]:
        """(how many positions there are in ``state``, or in all with None; the page of
        them from ``offset``, at most ``limit``, in the order first saved)."""
        where, args = ("WHERE state = ?", (state,)) if state is not None else ("", ())
        with self._reading("reading the positions") as conn:
            total: int = conn.execute(f"SELECT count(*) FROM positions {where}", args).fetchone()[0]
            rows = conn.execute(
                f"SELECT record FROM positions {where} ORDER BY rowid LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
            return total, [POSITION.decode(record) for (record,) in rows]

    def ledger_of(self, run_label: str, position_ids: list[str]) -> list[LedgerEntry]:
        """The ledger entries of some positions, in the order appended."""
        if not position_ids:
            return []
        marks = ",".join("?" * len(position_ids))
        sql = (
            "SELECT time_ms, pair, position_id, kind, symbol, side, quantity, price, amount,"
            f" currency, note FROM ledger WHERE run_label = ? AND position_id IN ({marks})"
            " ORDER BY seq"
        )
        with self._reading("reading the ledger") as conn:
            return [_entry(row) for row in conn.execute(sql, (run_label, *position_ids))]

    def last_priced(self, run_label: str) -> list[LedgerEntry]:
        """Of each symbol, its latest fill and its latest mark with a price (latest by
        time, then by order appended), in the order appended: all that
        ``status.last_prices`` reads of a ledger, without the rest of it."""
        sql = (
            "SELECT time_ms, pair, position_id, kind, symbol, side, quantity, price, amount,"
            " currency, note FROM (SELECT *, row_number() OVER (PARTITION BY symbol, kind"
            " ORDER BY time_ms DESC, seq DESC) AS newest FROM ledger WHERE run_label = ?"
            " AND kind IN ('fill', 'mark') AND CAST(price AS REAL) != 0) WHERE newest = 1"
            " ORDER BY seq"
        )
        with self._reading("reading the ledger") as conn:
            return [_entry(row) for row in conn.execute(sql, (run_label,))]

    def amounts(self, run_label: str, kinds: tuple[str, ...]) -> list[tuple[int, str, str, str]]:
        """(time ms, position id, kind, amount as text) of the ledger entries of those
        kinds, in the order appended: the money without the rest of each entry."""
        marks = ",".join("?" * len(kinds))
        sql = (
            "SELECT time_ms, position_id, kind, amount FROM ledger"
            f" WHERE run_label = ? AND kind IN ({marks}) ORDER BY seq"
        )
        with self._reading("reading the ledger") as conn:
            return conn.execute(sql, (run_label, *kinds)).fetchall()

    def ledger_bounds(self, run_label: str) -> tuple[str | None, int | None, int | None]:
        """(the first entry's currency, the earliest and the latest time of the ledger)."""
        with self._reading("reading the ledger") as conn:
            first = conn.execute(
                "SELECT currency FROM ledger WHERE run_label = ? ORDER BY seq LIMIT 1",
                (run_label,),
            ).fetchone()
            low, high = conn.execute(
                "SELECT min(time_ms), max(time_ms) FROM ledger WHERE run_label = ?", (run_label,)
            ).fetchone()
            return (first[0] if first else None), low, high

    def transition_bounds(self) -> tuple[int | None, int | None]:
        """The earliest and the latest time of the transitions."""
        with self._reading("reading the transitions") as conn:
            sql = "SELECT min(time_ms), max(time_ms) FROM transitions"
            low, high = conn.execute(sql).fetchone()
            return low, high

    def last_time_ms(self) -> int | None:
        """The latest time the ledger or the transitions record (the run's clock)."""
        with self._reading("reading the times") as conn:
            value: int | None = conn.execute(
                "SELECT max(t) FROM (SELECT max(time_ms) AS t FROM ledger"
                " UNION ALL SELECT max(time_ms) FROM transitions)"
            ).fetchone()[0]
            return value


SEQ_TABLES = ("transitions", "orders", "outcomes", "ledger")  # appended, in seq order

# Every intent with its latest outcome ("sent" while it has none). SQLite documents that
# with max(), the other columns come from the row holding the maximum.
_ORDER_SQL = (
    "SELECT o.position_id, o.request, o.sent_ms, coalesce(x.status, 'sent'), x.result, "
    "x.error, x.outcome_ms, x.quote FROM orders o LEFT JOIN (SELECT client_order_id, status, "
    "final, result, error, outcome_ms, quote, max(seq) FROM outcomes GROUP BY client_order_id) "
    "x USING (client_order_id)"
)
_OPEN = "coalesce(x.final, 0) = 0"


def _intent(row: tuple[Any, ...]) -> Intent:
    position_id, request, sent_ms, status, result, error, outcome_ms, quote = row
    return Intent(
        position_id=position_id,
        request=REQUEST.decode(request),
        sent_ms=sent_ms,
        status=status,
        result=None if result is None else RESULT.decode(result),
        error=error,
        outcome_ms=outcome_ms,
        quote=None if quote is None else Decimal(quote),
    )


def _entry(row: tuple[Any, ...]) -> LedgerEntry:
    time_ms, pair, position_id, kind, symbol, side, quantity, price, amount, currency, note = row
    if kind not in LEDGER_KINDS:
        raise ValueError(f"unknown ledger kind {kind!r}")
    return LedgerEntry(
        time_ms=time_ms,
        pair=pair,
        position_id=position_id,
        kind=cast(Kind, kind),
        symbol=symbol,
        side=side,
        quantity=Decimal(quantity),
        price=Decimal(price),
        amount=Decimal(amount),
        currency=currency,
        note=note,
    )


class JournalView(Records):
    """A read-only snapshot of a journal, taken by ``Journal.read``; it changes nothing.

    ``writer`` is (pid, command line) of the process that had the journal open for
    writing when it was read (pid None when it could not be told), or None.
    """

    def __init__(
        self, path: Path, conn: sqlite3.Connection, writer: tuple[int | None, str] | None
    ) -> None:
        super().__init__(path, conn)
        self.writer = writer


def read_journal(run_dir: Path | str) -> JournalView:
    """A snapshot of ``run_dir``'s journal, taken without the lock and changing nothing."""
    run_dir = Path(run_dir)
    path = existing_journal(run_dir)
    probe = ReadProbe(run_dir)
    try:
        if probe.quiet:
            check_header(path)
        wal = path.with_name(DB_NAME + "-wal")
        if probe.quiet and (not wal.exists() or wal.stat().st_size == 0):
            # No writer, nothing in a WAL: the file is the whole journal. immutable
            # reads it without creating -wal/-shm files beside it.
            memory = snapshot(f"{uri(path)}?mode=ro&immutable=1", path)
        elif probe.quiet:
            # A writer died with commits in its WAL: recover them from a copy, so
            # that nothing beside the journal is touched.
            with tempfile.TemporaryDirectory(prefix="journal-read-") as tmp:
                copy = Path(tmp) / DB_NAME
                try:
                    shutil.copyfile(path, copy)
                    shutil.copyfile(wal, copy.with_name(DB_NAME + "-wal"))
                except OSError as exc:
                    raise JournalError(
                        f"{path}: cannot copy the journal to read its WAL: {os_reason(exc)}"
                    ) from None
                memory = snapshot(f"{uri(copy)}?mode=rw", path)
        else:
            # A writer runs: read its files as they are (the WAL's shared-memory
            # index, -shm, is the only file a reader takes part in).
            memory = snapshot(f"{uri(path)}?mode=ro", path)
    finally:
        probe.release()
    return JournalView(path, memory, probe.writer)


def snapshot(address: str, path: Path) -> sqlite3.Connection:
    """The journal at ``address`` (an SQLite URI), checked and copied into memory."""
    source: sqlite3.Connection | None = None
    memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    try:
        source = connect(address, BUSY_TIMEOUT)
        check_journal(source, path)
        source.backup(memory)
    except BaseException as exc:
        memory.close()
        if isinstance(exc, sqlite3.Error):
            raise unreadable(path, exc, "reading") from exc
        raise
    finally:
        if source is not None:
            source.close()
    return memory
