"""The loopback Bybit v5 venue users rehearse against (shipped, not a test fixture).

Real ``ccxt.async_support.bybit`` talks to it unchanged but for its URLs::

    async with Venue(data_dir=Path("../shared/data"), prices={"BTCUSDT": Decimal(60000)}) as venue:
        exchange = make_client(venue.url)
        ...
        venue.audit.creates          # every order create received, with arrival times

Parts: ``state`` (the books, pure) and ``records`` (what they hold), ``auth``
(signature and receive window), ``faults`` (the fault spec and malformed answers),
``market`` (instruments, recorded and generated market data), ``server`` (the HTTP
venue), ``endpoints`` and ``admin`` (its v5 and admin endpoints, written against
``surface``), ``account`` (the account's settings), ``audit`` (the create record and
its checks), ``checks`` (input bounds), ``codes`` (Bybit's retCodes), ``client`` (a
ccxt client pointed at it), ``options`` (``orchestrator venue``'s command line; the
command is commands/venue.py). It imports nothing of the orchestrator above
``market`` and the core.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.venue.account import Account
    from orchestrator.venue.audit import Audit, CreateRecord, intent_of
    from orchestrator.venue.client import DEFAULT_API_KEY, DEFAULT_SECRET, make_client
    from orchestrator.venue.codes import ERRORS, VenueError
    from orchestrator.venue.faults import (
        FaultRule,
        FaultSpec,
        FaultSpecError,
        load_faults,
        parse_faults,
    )
    from orchestrator.venue.market import HOUR_MS, SyntheticHistory, funding_rate, kline_entry
    from orchestrator.venue.records import Execution, Fill, Order, Position
    from orchestrator.venue.server import Venue
    from orchestrator.venue.state import Book

# Loaded on first use, so that ``orchestrator``'s CLI does not pay for aiohttp.
_HOME = {
    "Account": "account",
    "Audit": "audit",
    "CreateRecord": "audit",
    "intent_of": "audit",
    "DEFAULT_API_KEY": "client",
    "DEFAULT_SECRET": "client",
    "make_client": "client",
    "ERRORS": "codes",
    "VenueError": "codes",
    "FaultRule": "faults",
    "FaultSpec": "faults",
    "FaultSpecError": "faults",
    "load_faults": "faults",
    "parse_faults": "faults",
    "HOUR_MS": "market",
    "SyntheticHistory": "market",
    "funding_rate": "market",
    "kline_entry": "market",
    "Venue": "server",
    "Book": "state",
    "Execution": "records",
    "Fill": "records",
    "Order": "records",
    "Position": "records",
}
__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_SECRET",
    "ERRORS",
    "HOUR_MS",
    "Account",
    "Audit",
    "Book",
    "CreateRecord",
    "Execution",
    "FaultRule",
    "FaultSpec",
    "FaultSpecError",
    "Fill",
    "Order",
    "Position",
    "SyntheticHistory",
    "Venue",
    "VenueError",
    "funding_rate",
    "intent_of",
    "kline_entry",
    "load_faults",
    "make_client",
    "parse_faults",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
