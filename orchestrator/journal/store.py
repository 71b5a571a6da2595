"""The journal store: ``RUN_DIR/journal.sqlite3``, one SQLite database per run.

What it holds: the run's meta (id, mode, nonce, the config text, when it was
created, and whatever a run adds, e.g. the replay's cursor); every Position
record (msgspec JSON, Decimals as strings) with its state; every transition of
every position's machine; every order request (the *intent*, recorded before the
request leaves) and its outcomes (appended beside it: an order's outcome is its
latest, and an intent's commit writes one table's last page, no index); the
ledger; the paper executor's balances.

Durability: WAL mode. With WAL, ``synchronous=NORMAL`` writes every commit to the
WAL (it survives the process dying: ``kill -9``, a crash) but syncs it to disk
only at checkpoints, so the last commits can be lost on power loss or an OS
crash; ``FULL`` fsyncs the WAL at every commit. An intent must be committed before
its request leaves (an order the venue may have accepted and the journal forgot
is exactly the restart bug this journal exists to prevent). In a live run the
venue is another machine, so that commit runs with ``synchronous=FULL``: on disk
before the order leaves, even across a power cut (the fsync makes every commit
before it durable too). In a paper run or a rehearsal the venue lives and dies in
this process: a power cut takes the paper venue with it and a resume derives the
run again, so such a journal is not synced at all (``synchronous=OFF``): what was
committed still survives the process dying (the operating system holds it); an
OS crash or a power cut may lose or damage it, and a damaged journal is refused on
resume (run the replay again). Measured here: a ``FULL`` commit about 250 us, a
``NORMAL`` one about 12 us; per paper lifecycle (two commits), ``OFF`` saves about
40 us against ``NORMAL``.

Grouped writes (``group_writes``, as a replay's recorder uses the journal): intents
are committed alone, at once; the other writes (transitions, outcomes, position
records, the ledger, balances) wait and are committed together at ``flush``, once
``GROUP_LIMIT`` are waiting, and at ``close``. A crash loses at most the writes
since the last commit, never an intent, and a resumed replay derives them again.
A live journal never groups: every write commits as it is made, so a restart
resumes from exactly where the run was (a rollback that had failed is not tried
again as if it had not).

Money is Decimal, stored as TEXT (``str(Decimal)``) and read back exactly,
exponent and trailing zeros included.

Errors: whatever cannot be done (the disk is full, the file system is read-only,
the database is locked by a process outside this protocol, the folder is gone,
the file is corrupt, truncated, of another version or not a journal) raises
JournalError naming the file and the reason, never a bare sqlite3 traceback.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from orchestrator.files import sync_folder
from orchestrator.journal.lock import JournalError, WriteLock
from orchestrator.journal.reader import SEQ_TABLES, JournalView, Records, read_journal
from orchestrator.journal.schema import (
    BUSY_TIMEOUT,
    DB_NAME,
    FINAL_STATUSES,
    IDENTITY_KEYS,
    OPEN_STATUSES,
    check_header,
    check_journal,
    connect,
    create_schema,
    encode,
    existing_journal,
    journal_files,
    os_reason,
    sqlite_reason,
    unreadable,
    uri,
)
from orchestrator.journal.writes import (
    BALANCES,
    INTENT,
    LEDGER,
    OUTCOME,
    POSITION_SQL,
    TRANSITION,
    Pending,
    identity,
    probe_folder,
    probe_write,
    rollback,
    upsert_position,
)
from orchestrator.models import OrderRequest, OrderResult, Position
from orchestrator.trading.ledger import LedgerEntry

GROUP_LIMIT = 512  # grouped writes waiting before they are committed anyway
# One INSERT of n intents (n rows of INTENT's values), by n.
_INTENT_ROW = ", " + INTENT[INTENT.rindex("(") :]
_INTENTS: dict[int, str] = {}


class Journal(Records):
    """The run's journal, open for writing (this process holds the run's lock).

    Every write method commits before it returns (the intents, in a live run,
    fsynced: see the module docstring), unless writes are grouped; what cannot be
    written raises JournalError and leaves the journal as it was.
    The methods may be called from several threads (one at a time).
    """

    def __init__(
        self, path: Path, conn: sqlite3.Connection, lock: WriteLock, *, durable_intents: bool
    ) -> None:
        super().__init__(path, conn)
        self._lock: WriteLock | None = lock
        self._identity = identity(path)
        self._durable_intents = durable_intents
        self._group_limit = 0  # 0: every write commits before it returns
        self._pending = Pending()
        # Grouped writes waiting before the next commit is tried: the limit, doubled
        # after each failed commit, so a journal that cannot be written costs one
        # commit attempt per doubling of its backlog, not one per write (every
        # attempt re-sends the whole backlog: retried at each write, the cost grew
        # with the square of the backlog and a run on a full disk crawled for ever).
        self._flush_at = 0
        # Every client order id recorded: an id is refused a second time from this set,
        # not from a UNIQUE index (whose page each intent's commit would write too);
        # the run's lock makes this process the journal's only writer.
        self._client_ids: set[str] = {
            cid for (cid,) in conn.execute("SELECT client_order_id FROM orders")
        }
        # The journal file, held open: a grouped intent checks that it is still linked
        # (fstat), not its path (stat); see _check_linked.
        self._held: int | None = None
        # A replay's journal is not synced at all (see the module docstring).
        conn.execute(f"PRAGMA synchronous = {'NORMAL' if durable_intents else 'OFF'}")

    # -- opening

    @classmethod
    def create(
        cls,
        run_dir: Path | str,
        *,
        run_id: str,
        mode: str,
        run_nonce: str,
        config_text: str,
        busy_timeout: float = BUSY_TIMEOUT,
    ) -> Journal:
        """A new run's journal: takes the run's lock, creates ``journal.sqlite3`` (the
        folder too, if missing) and stores the run's meta. Refuses a folder that
        already has a journal (resume it with ``open``)."""
        run_dir = Path(run_dir)
        path = run_dir / DB_NAME
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"{run_dir}: cannot create the run folder: {os_reason(exc)}"
            ) from None
        lock = WriteLock.acquire(run_dir)
        conn: sqlite3.Connection | None = None
        made = False
        try:
            if any(p.exists() for p in journal_files(path)):
                raise JournalError(
                    f"{path} already exists: a run folder has one journal (resume it, or "
                    "start the run in a new folder)"
                )
            made = True
            conn = connect(f"{uri(path)}?mode=rwc", busy_timeout)
            mode_set = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode_set != "wal":
                raise JournalError(f"{path}: the file system does not support WAL ({mode_set})")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            create_schema(conn)
            created = datetime.now(UTC).isoformat(timespec="milliseconds")
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("run_id", run_id),
                    ("mode", mode),
                    ("run_nonce", run_nonce),
                    ("config", config_text),
                    ("created_at", created),
                ],
            )
            conn.execute("COMMIT")
            sync_folder(run_dir)  # the new file's name, durable too
            return cls(path, conn, lock, durable_intents=mode in ("live", "dry-run"))
        except BaseException as exc:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            if made:  # nothing half-made may stay: it would refuse the next create
                for p in journal_files(path):
                    with contextlib.suppress(OSError):
                        p.unlink()
            lock.release()
            if isinstance(exc, sqlite3.Error):
                raise JournalError(
                    f"{path}: cannot create the journal: {sqlite_reason(exc)}"
                ) from exc
            if isinstance(exc, OSError):
                raise JournalError(f"{path}: cannot create the journal: {os_reason(exc)}") from exc
            raise

    @classmethod
    def open(cls, run_dir: Path | str, *, busy_timeout: float = BUSY_TIMEOUT) -> Journal:
        """Resume a run: takes the run's lock, checks the journal's version and integrity."""
        run_dir = Path(run_dir)
        path = existing_journal(run_dir)
        # Checked first as a reader would, changing nothing: a refused journal must be
        # left as it was, and SQLite opening it for writing creates its -shm and, on
        # closing, folds its WAL into the file.
        read_journal(run_dir).close()
        lock = WriteLock.acquire(run_dir)
        conn: sqlite3.Connection | None = None
        try:
            check_header(path)
            probe_folder(run_dir)
            conn = connect(f"{uri(path)}?mode=rw", busy_timeout)
            check_journal(conn, path)
            conn.execute("PRAGMA synchronous = NORMAL")
            if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                raise JournalError(f"{path}: cannot be put in WAL mode")
            probe_write(conn, path)
            mode = conn.execute("SELECT value FROM meta WHERE key = 'mode'").fetchone()
            durable = mode is None or mode[0] in ("live", "dry-run")
            return cls(path, conn, lock, durable_intents=durable)
        except BaseException as exc:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            lock.release()
            if isinstance(exc, sqlite3.Error):
                raise unreadable(path, exc, "opening") from exc
            raise

    @staticmethod
    def read(run_dir: Path | str) -> JournalView:
        """A snapshot of a run's journal, read without the lock and changing nothing
        (see ``reader``): it works while a writer runs, and when the writer died."""
        return read_journal(run_dir)

    def close(self) -> None:
        """Commit what waits (if it can: ``flush`` first to know), close the database
        (SQLite folds the WAL back into the file) and release the lock."""
        with contextlib.suppress(JournalError):
            self.flush()
        with self._mutex:
            super().close()
            held, self._held = self._held, None
            if held is not None:
                with contextlib.suppress(OSError):
                    os.close(held)
            lock, self._lock = self._lock, None
            if lock is not None:
                lock.release()

    # -- grouping

    def group_writes(self, limit: int = GROUP_LIMIT) -> None:
        """From now on, writes other than intents wait and are committed together (see
        the module docstring); not in a live journal."""
        if not self._durable_intents:
            self._group_limit = self._flush_at = max(1, limit)

    @property
    def grouped(self) -> bool:
        """Whether writes other than intents wait for a grouped commit (a replay's)."""
        return self._group_limit > 0

    def flush(self) -> None:
        """Commit the grouped writes that wait."""
        if self._pending.count:
            with self._writing(f"{self._pending.count} grouped writes"):
                pass  # _writing commits what waits with whatever it was opened for

    def _waiting(self) -> None:
        """Count one more grouped write; commit them all once the limit is reached."""
        self._pending.count += 1
        if self._pending.count >= self._flush_at:
            self._flush_waiting()

    def _flush_waiting(self) -> None:
        """The limit is reached: commit what waits."""
        try:
            self.flush()
        except JournalError:
            self._flush_at = 2 * self._pending.count
            raise
        self._flush_at = self._group_limit

    def _commit_pending(self, conn: sqlite3.Connection) -> None:
        waiting = self._pending
        if waiting.transitions:
            conn.executemany(TRANSITION, waiting.transitions)
        if waiting.outcomes:
            conn.executemany(OUTCOME, waiting.outcomes)
        if waiting.ledger:
            conn.executemany(LEDGER, waiting.ledger)
        if waiting.positions:
            conn.executemany(
                POSITION_SQL, [(p.id, p.state, encode(p)) for p in waiting.positions.values()]
            )
        if waiting.balances:
            conn.executemany(
                BALANCES,
                [
                    (label, ms, encode(wallet), encode(perps))
                    for label, ms, wallet, perps in waiting.balances.values()
                ],
            )

    # -- writes

    @contextlib.contextmanager
    def _writing(self, what: str, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction, carrying the writes that wait; ``durable``: fsynced before it
        returns (power-cut safe). If it fails, the writes that wait wait on."""
        with self._mutex:
            conn = self._db()
            self._check_in_place(what)
            waiting = self._pending
            try:
                if durable:
                    conn.execute("PRAGMA synchronous = FULL")
                conn.execute("BEGIN IMMEDIATE")
                self._commit_pending(conn)
                yield conn
                conn.execute("COMMIT")
                self._pending = Pending()
                if durable:
                    conn.execute("PRAGMA synchronous = NORMAL")  # a live journal's level
            except sqlite3.Error as exc:
                rollback(conn)
                self._pending = waiting
                raise JournalError(
                    f"{self.path}: cannot record {what}: {sqlite_reason(exc)}"
                ) from exc
            except BaseException:
                rollback(conn)
                self._pending = waiting
                raise

    def _insert_alone(self, sql: str, rows: Sequence[tuple[object, ...]], what: str) -> None:
        """``rows`` in a transaction of their own (the writes that wait, wait on): what
        _writing does, without its generator, on the path every open and close takes."""
        with self._mutex:
            conn = self._db()
            self._check_in_place(what)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                rollback(conn)
                raise JournalError(
                    f"{self.path}: cannot record {what}: {sqlite_reason(exc)}"
                ) from exc
            except BaseException:
                rollback(conn)
                raise

    def _insert_intents(self, rows: Sequence[tuple[object, ...]], ids: list[str]) -> None:
        """A grouped journal's intents, committed alone (what waits, waits on): one
        INSERT of every row, in the transaction SQLite makes for it."""
        sql = _INTENTS.get(len(rows))
        if sql is None:
            sql = _INTENTS[len(rows)] = INTENT + _INTENT_ROW * (len(rows) - 1)
        values = [value for row in rows for value in row]
        with self._mutex:
            conn = self._db()
            if not self._linked():
                self._check_in_place(f"the intent of {', '.join(ids)}")
            try:
                conn.execute(sql, values)
            except sqlite3.Error as exc:
                rollback(conn)
                raise JournalError(
                    f"{self.path}: cannot record the intent of {', '.join(ids)}: "
                    f"{sqlite_reason(exc)}"
                ) from exc

    def _linked(self) -> bool:
        """Whether the file SQLite writes is still linked where it was: what
        _check_in_place checks (which says how it is not), for a grouped intent, at the
        cost of an fstat of the file held open, not a stat of its path. A removed
        folder, or the file replaced or unlinked, is found at once; a folder moved whole
        at the next grouped commit, which checks the path (what is written meanwhile is
        in the moved file)."""
        held = self._held
        if held is None:
            try:
                held = os.open(self.path, os.O_RDONLY)
            except OSError:
                return False
            try:
                st = os.fstat(held)
            except OSError:
                os.close(held)
                return False
            if (st.st_dev, st.st_ino) != self._identity:
                os.close(held)
                return False
            self._held = held
        try:
            return os.fstat(held).st_nlink > 0
        except OSError:
            return False

    def _check_in_place(self, what: str) -> None:
        """SQLite writes on into a file whose folder was removed; refuse that."""
        try:
            now = identity(self.path)
        except OSError as exc:
            raise JournalError(
                f"{self.path}: cannot record {what}: the journal file is gone "
                f"({os_reason(exc)}): was the run folder removed or moved?"
            ) from None
        if now != self._identity:
            raise JournalError(
                f"{self.path}: cannot record {what}: the journal file was replaced by another"
            )

    def set_meta(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (e.g. the replay's cursor); the run's identity
        (run_id, mode, run_nonce, config, created_at) cannot be changed."""
        if key in IDENTITY_KEYS:
            raise ValueError(f"journal meta {key!r} is the run's identity: set once, at create")
        with self._writing(f"meta {key!r}") as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def drop_after(self, marks: dict[str, int], key: str) -> None:
        """Remove what was appended after ``marks`` (``last_seqs`` then) and the meta
        ``key`` holding them, in one commit: a replay's resume drops the writes its
        stop made (recorder.STOPPED); only a replay's journal (a live one is history)."""
        if not self.grouped:
            raise JournalError(f"{self.path}: a live run's journal is never cut back")
        with self._writing("the resume's cut of the stop's writes") as conn:
            for table in SEQ_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE seq > ?", (int(marks.get(table, 0)),))
            conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        self._client_ids = {
            cid for (cid,) in self._db().execute("SELECT client_order_id FROM orders")
        }

    def save_position(self, position: Position) -> None:
        """Store the whole record (insert or replace)."""
        if self._group_limit:
            self._pending.positions[position.id] = position
            self._waiting()
            return
        with self._writing(f"position {position.id}") as conn:
            upsert_position(conn, position)

    def transition(
        self,
        position_id: str,
        event: str,
        source: str,
        target: str,
        time_ms: int,
        *,
        position: Position | None = None,
    ) -> None:
        """Record one transition; with ``position``, its record is saved in the same commit."""
        row = (position_id, event, source, target, time_ms)
        if self._group_limit:
            waiting = self._pending
            waiting.transitions.append(row)
            if position is not None:
                waiting.positions[position.id] = position
            waiting.count += 1
            if waiting.count >= self._flush_at:
                self._flush_waiting()
            return
        with self._writing(f"transition {event} of position {position_id}") as conn:
            conn.execute(TRANSITION, row)
            if position is not None:
                upsert_position(conn, position)

    def intents(
        self,
        position_id: str,
        requests: Sequence[OrderRequest],
        time_ms: int,
        *,
        position: Position | None = None,
    ) -> None:
        """Record the requests about to be sent together, in one commit, durable on return;
        with ``position``, its record too (a restart finds the position they are for even
        when it crashed before its first transition).

        A client order id already recorded is refused: an order is never sent twice.
        """
        if not requests:
            return
        ids = [r.client_order_id for r in requests]
        if len(set(ids)) != len(ids):
            raise ValueError(f"intents: the same client order id twice in {ids}")
        known = self._client_ids
        rows: list[tuple[object, ...]] = []
        for r in requests:
            cid = r.client_order_id
            if cid in known:
                raise JournalError(
                    f"{self.path}: client order id {cid} is already recorded: "
                    "an order request is never sent twice"
                )
            # The side's text as its own attribute: Enum.value is a descriptor call.
            side: str = r.side._value_
            rows.append((cid, position_id, r.symbol, side, str(r.quantity), encode(r), time_ms))
        if self._group_limit:
            # Grouped, the intents are committed alone: nothing else need be before the
            # orders leave, and this small commit is what every open and close pays:
            # one statement, its own transaction.
            self._insert_intents(rows, ids)
            self._pending.count += 1
            if position is not None:  # written with what waits: one record per commit
                self._pending.positions[position.id] = position
        else:
            what = f"the intent of {', '.join(ids)}"
            with self._writing(what, durable=self._durable_intents) as conn:
                conn.executemany(INTENT, rows)
                if position is not None:
                    upsert_position(conn, position)
        self._client_ids.update(ids)

    def outcome(
        self,
        client_order_id: str,
        result: OrderResult | None,
        status: str,
        error: str | None = None,
        *,
        time_ms: int | None = None,
        quote: Decimal | None = None,
    ) -> None:
        """Record what became of a request: a final status (filled, partially_filled,
        cancelled, rejected, absent) closes its intent; open or unknown leaves it open.
        ``quote``: the price quoted for its symbol then."""
        if status not in FINAL_STATUSES and status not in OPEN_STATUSES:
            allowed = ", ".join(sorted(FINAL_STATUSES | OPEN_STATUSES))
            raise ValueError(f"outcome status {status!r}: one of {allowed}")
        if client_order_id not in self._client_ids:
            raise JournalError(
                f"{self.path}: no intent was recorded for client order id "
                f"{client_order_id}: its outcome has nothing to complete"
            )
        if result is not None and result.client_order_id != client_order_id:
            raise ValueError(
                f"outcome of {client_order_id}: the result is {result.client_order_id}'s"
            )
        row = (
            status,
            int(status in FINAL_STATUSES),
            None if result is None else encode(result),
            error,
            time_ms,
            None if quote is None else str(quote),
            client_order_id,
        )
        if self._group_limit:
            waiting = self._pending
            waiting.outcomes.append(row)
            waiting.count += 1
            if waiting.count >= self._flush_at:
                self._flush_waiting()
            return
        with self._writing(f"the outcome of {client_order_id}") as conn:
            conn.execute(OUTCOME, row)

    def ledger(self, run_label: str, entries: Sequence[LedgerEntry]) -> None:
        """Append entries to a run's ledger (funding is entries of kind "funding")."""
        if not entries:
            return
        rows = [
            (
                run_label,
                e.time_ms,
                e.pair,
                e.position_id,
                e.kind,
                e.symbol,
                e.side,
                str(e.quantity),
                str(e.price),
                str(e.amount),
                e.currency,
                e.note,
            )
            for e in entries
        ]
        if self._group_limit:
            self._pending.ledger += rows
            self._waiting()
            return
        with self._writing(f"{len(entries)} ledger entries of {run_label!r}") as conn:
            conn.executemany(LEDGER, rows)

    def balances(
        self,
        label: str,
        balances: dict[str, Decimal],
        perps: dict[str, tuple[Decimal, Decimal]],
        *,
        time_ms: int | None = None,
    ) -> None:
        """Replace ``label``'s snapshot: wallet by currency, perps by symbol as (size, entry)."""
        if self._group_limit:
            # Encoded when committed: a later snapshot of the label replaces this one
            # before that, most often (a replay's run snapshots at every settlement).
            self._pending.balances[label] = (label, time_ms, dict(balances), dict(perps))
            self._waiting()
            return
        with self._writing(f"the balances of {label!r}") as conn:
            conn.execute(BALANCES, (label, time_ms, encode(balances), encode(perps)))
