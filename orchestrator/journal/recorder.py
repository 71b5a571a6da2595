"""How a run writes its journal: a listener on every PositionMachine (each transition
and the record, in one commit), the manager's order journal (the intents of the legs
sent together, committed before they leave; each outcome), and the trader's ledger
and the paper executor's balances.

Only the intents must stop the run when they cannot be written: an order the
journal does not know must never leave. A transition, an outcome or a ledger entry
that cannot be written is said (``problems``) and the run goes on: on a restart the
venue is asked about every intent whose outcome is missing.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from orchestrator.exceptions import RunMustStop
from orchestrator.journal.schema import FINAL_STATUSES, Transition
from orchestrator.journal.store import Journal
from orchestrator.models import OrderRequest, OrderResult, Position
from orchestrator.run.ledger import LedgerEntry

# Fault injection for crash tests: ORCHESTRATOR_CRASH_AT=<point>:<n> kills the process
# (SIGKILL, as a power cut would) right after the n-th write at <point>: durable for
# intents, still waiting for a grouped commit for the others (lost, as in a crash).
# Points: a transition (its event, or event@source: timed_out@closing), "intents",
# "outcome", "ledger".
CRASH_ENV = "ORCHESTRATOR_CRASH_AT"


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
        self._crash = _Crash(os.environ.get(CRASH_ENV))

    def flush(self) -> None:
        """Commit the grouped writes now (what cannot be is said in ``problems``)."""
        try:
            self.journal.flush()
        except Exception as exc:
            self._say(exc)

    def _ms(self) -> int:
        return int(self.clock() * 1000)

    def _say(self, exc: Exception) -> None:
        if len(self.problems) < 20:  # the first ones say enough
            self.problems.append(str(exc))

    def record_meta(self, key: str, value: str) -> None:
        try:
            self.journal.set_meta(key, value)
        except Exception as exc:
            self._say(exc)

    # -- a listener on the machines

    def after_transition(self, event: Any, source: Any, target: Any, model: Position) -> None:
        try:
            self.journal.transition(
                model.id, str(event), str(source.id), str(target.id), self._ms(), position=model
            )
        except Exception as exc:
            self._say(exc)
        if self._crash.point:  # only when a crash test asks for one
            self._crash.after(str(event))
            self._crash.after(f"{event}@{source.id}")

    # -- the manager's order journal

    def record_intents(self, position: Position, requests: Sequence[OrderRequest]) -> None:
        """Durable when it returns; raises when it cannot be (then nothing is sent)."""
        self.journal.intents(position.id, requests, self._ms(), position=position)
        self._crash.after("intents")

    def record_outcome(
        self,
        request: OrderRequest,
        result: OrderResult | None,
        status: str,
        error: str | None,
        quote: Decimal | None = None,
    ) -> None:
        try:
            self.journal.outcome(
                request.client_order_id, result, status, error, time_ms=self._ms(), quote=quote
            )
        except Exception as exc:
            self._say(exc)
        self._crash.after("outcome")

    # -- the trader's money

    def record_ledger(self, label: str, entries: Sequence[LedgerEntry]) -> None:
        try:
            self.journal.ledger(label, entries)
        except Exception as exc:
            self._say(exc)
        self._crash.after("ledger")

    def record_balances(
        self, label: str, wallet: dict[str, Decimal], perps: dict[str, tuple[Decimal, Decimal]]
    ) -> None:
        try:
            self.journal.balances(label, wallet, perps, time_ms=self._ms())
        except Exception as exc:
            self._say(exc)


class ResumeMismatch(RunMustStop):
    """The run, replayed again, does not agree with its journal: nothing more is done."""


class ResumingRecorder(JournalRecorder):
    """Resumes a paper run on recorded data. The replay is deterministic, so it runs
    again from the start: every write it makes up to where the journal ends must
    equal what the journal holds (a difference stops the run, side by side); from
    there on the writes are appended. Orders the journal recorded but whose outcome
    it never got are the same orders again (same client order ids): their outcomes
    complete the journal, their intents are not recorded twice."""

    def __init__(self, journal: Journal, clock: Callable[[], float] = time.time) -> None:
        super().__init__(journal, clock)
        self._transitions: dict[str, list[Transition]] = {}
        for t in journal.transitions():
            self._transitions.setdefault(t.position_id, []).append(t)
        self._seen: dict[str, int] = {}
        self._orders = {o.client_order_id: o for o in journal.orders()}
        self._ledger: dict[str, list[LedgerEntry]] = {}
        self._ledger_seen: dict[str, int] = {}
        self.replayed = 0  # writes that matched the journal

    def _differ(self, what: str, recorded: object, now: object) -> ResumeMismatch:
        return ResumeMismatch(
            f"{self.journal.path}: {what} differs from the journal; nothing more is done\n"
            f"  journal: {recorded}\n  now:     {now}"
        )

    def after_transition(self, event: Any, source: Any, target: Any, model: Position) -> None:
        recorded = self._transitions.get(model.id, [])
        i = self._seen[model.id] = self._seen.get(model.id, 0) + 1
        if i <= len(recorded):
            was = recorded[i - 1]
            now = (str(event), str(source.id), str(target.id), self._ms())
            if (was.event, was.source, was.target, was.time_ms) != now:
                raise self._differ(f"transition {i} of position {model.id}", was, now)
            self.replayed += 1
            if i == len(recorded):  # the record as it stands now
                self.journal.save_position(model)
            return
        super().after_transition(event, source, target, model)

    def record_intents(self, position: Position, requests: Sequence[OrderRequest]) -> None:
        known = [self._orders.get(r.client_order_id) for r in requests]
        if all(k is None for k in known):
            super().record_intents(position, requests)
            return
        for request, intent in zip(requests, known, strict=True):
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
        overlap = recorded[seen : seen + len(entries)]
        for i, (was, now) in enumerate(zip(overlap, entries, strict=False)):
            if was != now:
                raise self._differ(f"ledger entry {seen + i + 1} of {label}", was, now)
        self._ledger_seen[label] = seen + len(entries)
        self.replayed += len(overlap)
        if len(entries) > len(overlap):
            super().record_ledger(label, entries[len(overlap) :])
