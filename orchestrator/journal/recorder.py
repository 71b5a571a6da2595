"""How a run writes its journal: a listener on every PositionMachine (each transition
and the record, in one commit), the manager's order journal (the intents of the legs
sent together, committed before they leave; each outcome), and the trader's ledger
and the paper executor's balances.

An intent that cannot be written stops its order: an order the journal does not
know must never leave. Any write that fails (disk full, file system read-only,
folder gone) also stops the run (``on_failure``: no new positions, what is in flight
finishes) and is said (``problems``). A replay's journal then takes nothing more:
it stays a prefix of the deterministic run, which ``--resume`` derives again to the
end (an open refused because its intent could not be written is not the
strategy's rejection, and must not be journaled as one). A live run's later writes
are still tried, one commit each: the venue is asked on restart about every intent
whose outcome is missing.

A replay stopped by a signal marks in its journal where the stop began
(``STOPPED``): the closes that follow are the stop's, not the run's, and a resume
drops them before it derives the run again (``Journal.drop_after``).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from orchestrator.exceptions import RunMustStop
from orchestrator.journal.lock import JournalError
from orchestrator.journal.schema import FINAL_STATUSES, Transition
from orchestrator.journal.store import Journal
from orchestrator.models import OrderRequest, OrderResult, Position
from orchestrator.trading.ledger import LedgerEntry

# Fault injection for crash tests: ORCHESTRATOR_CRASH_AT=<point>:<n> kills the process
# (SIGKILL, as a power cut would) right after the n-th write at <point>: durable for
# intents, still waiting for a grouped commit for the others (lost, as in a crash).
# Points: a transition (its event, or event@source: timed_out@closing), "intents",
# "outcome", "ledger".
CRASH_ENV = "ORCHESTRATOR_CRASH_AT"
# Journal meta: the last seq of each table when a replay's stop began (JSON).
STOPPED = "stopped_at_seq"


class _Crash:
    def __init__(self, spec: str | None) -> None:
        point, _, n = (spec or "").partition(":")
        self.point, self.left = point, int(n or 1)

    def after(self, point: str) -> None:
        if point == self.point:
            self.left -= 1
            if self.left == 0:
                os.kill(os.getpid(), signal.SIGKILL)


class JournalRecorder:
    def __init__(self, journal: Journal, clock: Callable[[], float] = time.time) -> None:
        self.journal = journal
        # A replay's writes are grouped: committed with the next intents, at the end and
        # every GROUP_LIMIT writes (store.py says why that is safe); a live run's not.
        journal.group_writes()
        # Epoch seconds on the run's clock (the data's, in a replay): the run sets it.
        self.clock = clock
        self.problems: list[str] = []
        # Why the journal could not be written, from its first failure on (None: it can).
        self.failed: str | None = None
        # Told once, at the first failure: the run stops opening (Signals.stop_for).
        self.on_failure: Callable[[str], None] | None = None
        self.skipped = 0  # a replay's writes not made after the failure
        self._stop_marked = False
        self._crash = _Crash(os.environ.get(CRASH_ENV))

    def flush(self) -> None:
        """Commit the grouped writes now (what cannot be is said in ``problems``)."""
        try:
            self.journal.flush()
        except Exception as exc:
            self._fail(exc)

    def _ms(self) -> int:
        return int(self.clock() * 1000)

    def _say(self, exc: Exception) -> None:
        if len(self.problems) < 20:  # the first ones say enough
            self.problems.append(str(exc))

    def _fail(self, exc: Exception) -> None:
        if self.failed is not None:
            self._say(exc)
            return
        when = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d %H:%M UTC")
        self.failed = str(exc)
        then = (
            f"; `orchestrator run --resume {self.journal.run_dir}` completes the run once "
            "its journal can be written"
            if self.journal.grouped
            else ""
        )
        self.problems.insert(
            0,
            f"the journal could not be written at {when} (run time), so the run opened "
            f"no position after that: {exc}{then}",
        )
        if self.on_failure is not None:
            self.on_failure(f"the journal could not be written: {exc}")

    def _skip(self) -> bool:
        """A replay's journal takes nothing after its first failure (module docstring)."""
        if self.failed is not None and self.journal.grouped:
            self.skipped += 1
            return True
        return False

    def record_meta(self, key: str, value: str) -> None:
        if self._skip():
            return
        try:
            self.journal.set_meta(key, value)
        except Exception as exc:
            self._fail(exc)

    def stopping(self) -> None:
        """A replay's stop (a signal) begins: mark where in the journal, so that a resume
        drops the stop's closes (they are not the run's) before deriving it again."""
        if self._stop_marked or self.failed is not None or not self.journal.grouped:
            return
        self._stop_marked = True
        try:
            self.journal.flush()
            marks = self.journal.last_seqs()
            self.journal.set_meta(STOPPED, json.dumps(marks, sort_keys=True))
        except Exception as exc:
            self._fail(exc)

    # -- a listener on the machines

    def after_transition(self, event: Any, source: Any, target: Any, model: Position) -> None:
        if self.failed is None or not self._skip():
            try:
                self.journal.transition(
                    model.id,
                    str(event),
                    str(source.id),
                    str(target.id),
                    int(self.clock() * 1000),
                    position=model,
                )
            except Exception as exc:
                self._fail(exc)
        if self._crash.point:  # only when a crash test asks for one
            self._crash.after(str(event))
            self._crash.after(f"{event}@{source.id}")

    # -- the manager's order journal

    def record_intents(self, position: Position, requests: Sequence[OrderRequest]) -> None:
        """Durable when it returns; raises when it cannot be (then nothing is sent)."""
        if self.failed is not None and self.journal.grouped:
            raise JournalError(
                f"{self.journal.path}: not recorded: the journal could not be written "
                f"before ({self.failed})"
            )
        try:
            self.journal.intents(position.id, requests, int(self.clock() * 1000), position=position)
        except JournalError as exc:
            self._fail(exc)
            raise
        if self._crash.point:  # only when a crash test asks for one
            self._crash.after("intents")

    def record_outcome(
        self,
        request: OrderRequest,
        result: OrderResult | None,
        status: str,
        error: str | None,
        quote: Decimal | None = None,
    ) -> None:
        if self.failed is None or not self._skip():
            try:
                self.journal.outcome(
                    request.client_order_id,
                    result,
                    status,
                    error,
                    time_ms=int(self.clock() * 1000),
                    quote=quote,
                )
            except Exception as exc:
                self._fail(exc)
        if self._crash.point:  # only when a crash test asks for one
            self._crash.after("outcome")

    # -- the trader's money

    def record_ledger(self, label: str, entries: Sequence[LedgerEntry]) -> None:
        if not self._skip():
            try:
                self.journal.ledger(label, entries)
            except Exception as exc:
                self._fail(exc)
        self._crash.after("ledger")

    def record_balances(
        self, label: str, wallet: dict[str, Decimal], perps: dict[str, tuple[Decimal, Decimal]]
    ) -> None:
        if self._skip():
            return
        try:
            self.journal.balances(label, wallet, perps, time_ms=self._ms())
        except Exception as exc:
            self._fail(exc)


class ResumeMismatch(RunMustStop):
    """The run, replayed again, does not agree with its journal: nothing more is done."""


class ResumingRecorder(JournalRecorder):
    """Resumes a paper run on recorded data. The replay is deterministic, so it runs
    again from the start: every write it makes up to where the journal ends must
    equal what the journal holds (a difference stops the run, side by side); from
    there on the writes are appended. Orders the journal recorded but whose outcome
    it never got are the same orders again (same client order ids): their outcomes
    complete the journal, their intents are not recorded twice.

    A resume stopped by a signal before it has derived the whole journal leaves the
    journal as it was: the stop's closes are neither compared with what the journal
    holds (the run's own later path) nor written over it; an order of theirs whose
    id the journal holds for another request is not sent. Resumed again, the folder
    still derives the whole run."""

    def __init__(self, journal: Journal, clock: Callable[[], float] = time.time) -> None:
        super().__init__(journal, clock)
        stopped = journal.meta().get(STOPPED)
        if stopped is not None:  # the stop's closes: not the run's (module docstring)
            journal.drop_after(json.loads(stopped), STOPPED)
        self._transitions: dict[str, list[Transition]] = {}
        for t in journal.transitions():
            self._transitions.setdefault(t.position_id, []).append(t)
        self._seen: dict[str, int] = {}
        self._orders = {o.client_order_id: o for o in journal.orders()}
        self._ledger: dict[str, list[LedgerEntry]] = {}
        self._ledger_seen: dict[str, int] = {}
        self.replayed = 0  # writes that matched the journal
        self._stopping = False

    def stopping(self) -> None:
        super().stopping()  # marks the journal's end: what follows is the stop's
        self._stopping = True

    def _differ(self, what: str, recorded: object, now: object) -> ResumeMismatch:
        return ResumeMismatch(
            f"{self.journal.path}: {what} differs from the journal; nothing more is done\n"
            f"  journal: {recorded}\n  now:     {now}"
        )

    def after_transition(self, event: Any, source: Any, target: Any, model: Position) -> None:
        recorded = self._transitions.get(model.id, [])
        i = self._seen[model.id] = self._seen.get(model.id, 0) + 1
        if i <= len(recorded):
            if self._stopping:  # the journal holds the run's own path from here
                return
            was = recorded[i - 1]
            now = (str(event), str(source.id), str(target.id), self._ms())
            if (was.event, was.source, was.target, was.time_ms) != now:
                raise self._differ(f"transition {i} of position {model.id}", was, now)
            self.replayed += 1
            if i == len(recorded) and not self._skip():  # the record as it stands now
                try:
                    self.journal.save_position(model)
                except Exception as exc:
                    self._fail(exc)
            return
        super().after_transition(event, source, target, model)

    def record_intents(self, position: Position, requests: Sequence[OrderRequest]) -> None:
        known = [self._orders.get(r.client_order_id) for r in requests]
        if all(k is None for k in known):
            super().record_intents(position, requests)
            return
        for request, intent in zip(requests, known, strict=True):
            if (intent is None or intent.request != request) and self._stopping:
                raise JournalError(
                    f"{self.journal.path}: the run is stopping; the journal holds "
                    f"{request.client_order_id} for the run's own later order, so this "
                    "one is not recorded"
                )
            if intent is None or intent.request != request:
                raise self._differ(
                    f"the order {request.client_order_id}",
                    None if intent is None else intent.request,
                    request,
                )
        self.replayed += 1

    def record_outcome(
        self,
        request: OrderRequest,
        result: OrderResult | None,
        status: str,
        error: str | None,
        quote: Decimal | None = None,
    ) -> None:
        intent = self._orders.get(request.client_order_id)
        if intent is not None and intent.status in FINAL_STATUSES:
            if self._stopping:
                return
            if (intent.status, intent.result) != (status, result):
                raise self._differ(
                    f"the outcome of {request.client_order_id}",
                    (intent.status, intent.result),
                    (status, result),
                )
            self.replayed += 1
            return
        super().record_outcome(request, result, status, error, quote)  # what the crash cut off

    def record_ledger(self, label: str, entries: Sequence[LedgerEntry]) -> None:
        if label not in self._ledger:
            self._ledger[label] = self.journal.ledger_entries(label)
        recorded = self._ledger[label]
        seen = self._ledger_seen.get(label, 0)
        if self._stopping and seen < len(recorded):  # the run's own ledger goes on there
            return
        overlap = recorded[seen : seen + len(entries)]
        for i, (was, now) in enumerate(zip(overlap, entries, strict=False)):
            if was != now:
                raise self._differ(f"ledger entry {seen + i + 1} of {label}", was, now)
        self._ledger_seen[label] = seen + len(entries)
        self.replayed += len(overlap)
        if len(entries) > len(overlap):
            super().record_ledger(label, entries[len(overlap) :])
