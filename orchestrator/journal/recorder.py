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

import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from orchestrator.journal.store import Journal
from orchestrator.models import OrderRequest, OrderResult, Position
from orchestrator.run.ledger import LedgerEntry


class JournalRecorder:
    def __init__(self, journal: Journal, clock: Callable[[], float] = time.time) -> None:
        self.journal = journal
        # Epoch seconds on the run's clock (the data's, in a replay): the run sets it.
        self.clock = clock
        self.problems: list[str] = []

    def _ms(self) -> int:
        return int(self.clock() * 1000)

    def _say(self, exc: Exception) -> None:
        if len(self.problems) < 20:  # the first ones say enough
            self.problems.append(str(exc))

    # -- a listener on the machines

    def after_transition(self, event: Any, source: Any, target: Any, model: Position) -> None:
        try:
            self.journal.transition(
                model.id, str(event), str(source.id), str(target.id), self._ms(), position=model
            )
        except Exception as exc:
            self._say(exc)

    # -- the manager's order journal

    def record_intents(self, position: Position, requests: Sequence[OrderRequest]) -> None:
        """Durable when it returns; raises when it cannot be (then nothing is sent)."""
        self.journal.intents(position.id, requests, self._ms())

    def record_outcome(
        self, request: OrderRequest, result: OrderResult | None, status: str, error: str | None
    ) -> None:
        try:
            self.journal.outcome(request.client_order_id, result, status, error, time_ms=self._ms())
        except Exception as exc:
            self._say(exc)

    # -- the trader's money

    def record_ledger(self, label: str, entries: Sequence[LedgerEntry]) -> None:
        try:
            self.journal.ledger(label, entries)
        except Exception as exc:
            self._say(exc)

    def record_balances(
        self, label: str, wallet: dict[str, Decimal], perps: dict[str, tuple[Decimal, Decimal]]
    ) -> None:
        try:
            self.journal.balances(label, wallet, perps, time_ms=self._ms())
        except Exception as exc:
            self._say(exc)
