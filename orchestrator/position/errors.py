"""The errors an open or close raises once orders have left: each carries the position,
which says what is left (here, not in exceptions.py, which sits below the models)."""

from __future__ import annotations

from orchestrator.exceptions import OrchestratorError
from orchestrator.models import Position


class DeltaHedgeError(OrchestratorError):
    """Opening or closing the hedge failed; ``position`` says what is left.

    Its state is ``rolled_back`` when the unwind made it flat, ``needs_attention``
    when exposure remains (recorded on the position).
    """

    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.position = position


class DeltaHedgeTimeout(DeltaHedgeError):
    """The legs did not complete within ``order_timeout_seconds``."""


class DeltaDriftExceeded(DeltaHedgeError):
    """Both legs filled but their quantities drift beyond the tolerance."""
