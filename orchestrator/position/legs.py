"""The orders of a position: their client order ids, what became of each (Leg),
and the journal they are recorded in before they leave."""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

from orchestrator.models import Instrument, OrderRequest, OrderResult, OrderStatus, Position

LegName = Literal["spot", "perp"]
# "outside": a change the run did not make (the owner's trade, auto-deleveraging, a
# liquidation, coins moved), taken into the record: never sent.
Action = Literal["open", "close", "rollback", "outside"]
NONCE_LENGTH = 6
MAX_POSITION_ID = 20  # nonce, "-", id, "-", leg, action and up to 6 attempt digits: 36
# How often an order the venue has not shown yet is asked for again while it may
# still land.
LOOKUP_INTERVAL = 0.25


class OrderJournal(Protocol):
    """Where order intents and outcomes are made durable (the run's journal)."""

    def record_intents(self, position: Position, requests: Sequence[OrderRequest]) -> None:
        """Durable when it returns; raises when it cannot be (then nothing is sent)."""

    def record_outcome(
        self,
        request: OrderRequest,
        result: OrderResult | None,
        status: str,
        error: str | None,
        quote: Decimal | None = None,
    ) -> None:
        """``quote``: the price quoted for the symbol when the outcome came."""


def new_run_nonce() -> str:
    """Six characters of a-z0-9, fresh for each run: ids of one run never meet another's."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(6))


def client_order_id(
    run_nonce: str, position_id: str, leg: LegName, action: Action, attempt: int
) -> str:
    """Deterministic within a run: the same (position, leg, action, attempt) always gives
    the same id, so a resend after an unknown outcome can never become a second order;
    the run's nonce keeps another run from taking this run's orders for its own."""
    letter = "x" if action == "outside" else action[0]
    return f"{run_nonce}-{position_id}-{leg[0]}{letter}{attempt}"


_SUFFIX = re.compile(r"^(?P<leg>[sp])(?P<action>[ocrx])(?P<attempt>[0-9]{1,6})$")
_LEGS: dict[str, LegName] = {"s": "spot", "p": "perp"}
_ACTIONS: dict[str, Action] = {"o": "open", "c": "close", "r": "rollback", "x": "outside"}


def parse_client_order_id(cid: str) -> tuple[LegName, Action, int] | None:
    """(leg, action, attempt) of an id ``client_order_id`` made; None for any other."""
    match = _SUFFIX.match(cid.rpartition("-")[2])
    if match is None:
        return None
    return _LEGS[match["leg"]], _ACTIONS[match["action"]], int(match["attempt"])


@dataclass(eq=False)
class Leg:
    """One order of a pair and what became of it.

    Its outcome is known (``result`` done, or refused: ``error``) or ``unknown``: no
    answer, or an answer saying it still works. Unknown ends only on the venue's own
    answer (found done, or refused), or once the venue can no longer accept the
    request (``left_by`` plus the executor's ``late_arrival_seconds``) and it was
    still not found: ``absent``.
    """

    name: LegName
    action: Action
    instrument: Instrument
    request: OrderRequest
    result: OrderResult | None = None
    error: BaseException | None = None  # the cause as the venue or the network gave it
    unknown: bool = False  # the venue may have it: only a lookup can tell
    acknowledged: bool = False  # the venue answered with the order: it exists
    absent: bool = False  # looked for until the venue could no longer accept it: never placed
    lookup_error: BaseException | None = None  # why the last lookup could not be read
    sent_at: float | None = None  # perf_counter when place_order started
    left_by: float | None = None  # anyio.current_time() when place_order ended: it was signed

    @property
    def failed(self) -> bool:
        """Known to have filled nothing."""
        return not self.unknown and (self.result is None or self.result.filled_qty == 0)

    @property
    def status(self) -> str:
        """Its outcome as the journal records it."""
        if self.unknown:
            working = self.result is not None and self.result.status is OrderStatus.OPEN
            return "open" if working else "unknown"
        if self.absent:
            return "absent"
        if self.result is None:
            return "rejected"
        return self.result.status.value


def describe(legs: Sequence[Leg]) -> str:
    """What became of each leg, with the cause the venue or the network gave."""
    parts = []
    for leg in legs:
        cause = f": {leg.error}" if leg.error is not None else ""
        if leg.unknown:
            working = leg.result is not None and leg.result.status is OrderStatus.OPEN
            what = "still working" if working else "outcome unknown"
            if leg.lookup_error is not None:
                cause += f"; looking it up failed: {leg.lookup_error}"
            parts.append(f"{leg.name} leg {what}{cause}")
        elif leg.absent:
            parts.append(f"{leg.name} leg never reached the venue{cause}")
        elif leg.failed:
            parts.append(f"{leg.name} leg failed{cause or ': nothing filled'}")
        else:
            assert leg.result is not None
            parts.append(f"{leg.name} leg filled {leg.result.filled_qty}")
    return "; ".join(parts)
