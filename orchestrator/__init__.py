"""funding-orchestrator: spot long + perp short, entered and exited as one unit."""

from typing import TYPE_CHECKING, Any

from orchestrator.exceptions import (
    InsufficientFundsError,
    InsufficientSizeError,
    InvalidOrderError,
    OrchestratorError,
    OrderOutcomeUnknown,
    OrderRejected,
    PositionStateError,
    PriceUnavailableError,
    RiskCheckFailed,
    UnknownPositionError,
)
from orchestrator.execution.base import Executor
from orchestrator.execution.paper import PaperExecutor
from orchestrator.fees import FeeCalculator
from orchestrator.market.ticker import TickerService
from orchestrator.models import (
    Category,
    DeltaStatus,
    Instrument,
    OrderRequest,
    OrderResult,
    OrderStatus,
    Position,
    Side,
)
from orchestrator.position.delta import DeltaValidator
from orchestrator.position.errors import DeltaDriftExceeded, DeltaHedgeError, DeltaHedgeTimeout
from orchestrator.position.manager import PositionManager
from orchestrator.position.sizing import PositionSizer
from orchestrator.risk import RiskManager
from orchestrator.settings import FeeSettings, TradingSettings

__version__ = "0.1.0"

if TYPE_CHECKING:
    from orchestrator.execution.live import LiveExecutor


def __getattr__(name: str) -> Any:
    # ccxt takes a quarter of a second to import; paper runs never need it.
    if name == "LiveExecutor":
        from orchestrator.execution.live import LiveExecutor

        return LiveExecutor
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")


__all__ = [
    "Category",
    "DeltaDriftExceeded",
    "DeltaHedgeError",
    "DeltaHedgeTimeout",
    "DeltaStatus",
    "DeltaValidator",
    "Executor",
    "FeeCalculator",
    "FeeSettings",
    "Instrument",
    "InsufficientFundsError",
    "InsufficientSizeError",
    "InvalidOrderError",
    "LiveExecutor",
    "OrchestratorError",
    "OrderOutcomeUnknown",
    "OrderRejected",
    "OrderRequest",
    "OrderResult",
    "OrderStatus",
    "PaperExecutor",
    "Position",
    "PositionManager",
    "PositionSizer",
    "PositionStateError",
    "PriceUnavailableError",
    "RiskCheckFailed",
    "RiskManager",
    "Side",
    "TickerService",
    "TradingSettings",
    "UnknownPositionError",
    "__version__",
]
