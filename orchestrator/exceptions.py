"""Every error the orchestrator raises on purpose derives from OrchestratorError."""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base of the project's own errors."""


class NothingStarted(OrchestratorError):
    """The run stopped before anything was sent: a new run's folder holds nothing."""


class PriceUnavailableError(OrchestratorError):
    """No usable price: missing, stale, zero, negative or NaN. No order is sent."""


class InvalidOrderError(OrchestratorError, ValueError):
    """A request that can never be valid (zero quantity, unknown symbol...). Nothing is sent."""


class InsufficientSizeError(OrchestratorError):
    """No quantity fits both instruments' minimums within the size limit."""


class RiskCheckFailed(OrchestratorError):
    """The risk manager refused the position before any order was sent."""


class PortfolioLimitReached(RiskCheckFailed):
    """Refused by a limit across pairs (risk.max_open_positions,
    risk.max_total_exposure_usd): not a failure, room comes back when a position closes."""


class OrderRejected(OrchestratorError):
    """The venue (or the paper venue) refused the order: nothing filled."""


class InsufficientFundsError(OrderRejected):
    """Refused for lack of balance or margin."""


class OrderOutcomeUnknown(OrchestratorError):
    """The request may or may not have reached the venue (network error, timeout).

    Never resend blindly: look the order up by its client order id. ``order_id`` is
    the venue's id when the venue did acknowledge the order (only what became of it
    is unknown): such an order exists, and is never concluded absent.
    """

    def __init__(self, message: str, *, order_id: str | None = None) -> None:
        super().__init__(message)
        self.order_id = order_id


class RunMustStop(OrchestratorError):
    """Nothing more may be done in this run (e.g. it disagrees with its journal):
    raised through everything, never turned into a position's failure."""


class IntentNotRecorded(OrchestratorError):
    """The journal could not record an order intent durably: the order was not sent."""


class UnknownPositionError(OrchestratorError, KeyError):
    """No position with that id."""


class PositionStateError(OrchestratorError):
    """The position is not in a state that allows this (e.g. closing one that is not open)."""
