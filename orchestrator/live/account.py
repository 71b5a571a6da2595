"""The venue's account as a live run values it: balances and perp positions, read
from the venue (the venue is the truth) and kept until the next reading."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import partial
from typing import Any

from orchestrator.bybit.retry import read_venue
from orchestrator.execution.paper import PaperExecutor, PerpHolding
from orchestrator.models import ZERO


def _decimal(value: Any) -> Decimal:
    return ZERO if value is None or value == "" else Decimal(str(value))


class LiveAccount:
    """What the venue said at the last ``refresh``: wallet balances per coin (total and
    free to spend) and the perp positions of the run's symbols."""

    def __init__(self, exchange: Any, perp_symbols: Sequence[str]) -> None:
        self._exchange = exchange
        self._perps = list(perp_symbols)
        self._total: dict[str, Decimal] = {}
        self._free: dict[str, Decimal] = {}
        self._positions: dict[str, PerpHolding] = {}
        # Bybit's accountMMRate: maintenance margin / margin balance (1 liquidates);
        # None where the venue does not say it.
        self.mm_rate: Decimal | None = None
        # Readings begun, and the number of the last one that came (books.py: fills made
        # after a reading began are in none before it).
        self.reads_begun = 0
        self.read_through = 0

    async def refresh(self) -> None:
        # Bybit's own decimal text (``info``), not ccxt's floats: a float of a
        # six-figure balance loses the digits the ledger's identity checks.
        self.reads_begun += 1
        reading = self.reads_begun
        balance = await read_venue(self._exchange.fetch_balance)
        total: dict[str, Decimal] = {}
        free: dict[str, Decimal] = {}
        rate: Decimal | None = None
        for account in ((balance.get("info") or {}).get("result") or {}).get("list") or []:
            if account.get("accountMMRate") not in (None, ""):
                try:
                    rate = _decimal(account["accountMMRate"])
                except ArithmeticError:  # unreadable: as if not said
                    rate = None
            for coin in account.get("coin") or []:
                name, wallet = coin.get("coin"), _decimal(coin.get("walletBalance"))
                if not name:
                    continue
                total[name] = wallet
                if coin.get("availableToWithdraw"):  # deprecated on unified accounts
                    free[name] = _decimal(coin["availableToWithdraw"])
                else:
                    used = sum(
                        (
                            _decimal(coin.get(k))
                            for k in ("locked", "totalPositionIM", "totalOrderIM")
                        ),
                        ZERO,
                    )
                    free[name] = wallet - used
        self._total, self._free, self.mm_rate = total, free, rate
        positions: dict[str, PerpHolding] = {}
        for symbol in self._perps:  # Bybit answers one symbol per call
            for p in await read_venue(partial(self._exchange.fetch_positions, [symbol])):
                info = p.get("info") or {}
                size = _decimal(info.get("size"))
                if p.get("symbol") != symbol or size == 0:
                    continue
                signed = -size if info.get("side") == "Sell" else size
                positions[symbol] = PerpHolding(signed, _decimal(info.get("avgPrice")))
        self._positions = positions
        self.read_through = reading

    def balance(self, currency: str) -> Decimal:
        return self._total.get(currency, ZERO)

    def available_balance(self, currency: str) -> Decimal:
        return self._free.get(currency, ZERO)

    def get_perp_position(self, symbol: str) -> PerpHolding:
        held = self._positions.get(symbol, PerpHolding())
        return PerpHolding(held.size, held.entry_price)


class PaperAccount:
    """A dry run's account: the PaperExecutor's virtual wallet and perp positions, read
    as a live run reads the venue's (there is nothing to refresh: it is the truth)."""

    def __init__(self, paper: PaperExecutor) -> None:
        self._paper = paper

    async def refresh(self) -> None:
        return None

    def balance(self, currency: str) -> Decimal:
        return self._paper.balance(currency)

    def available_balance(self, currency: str) -> Decimal:
        return self._paper.available_balance(currency)

    def get_perp_position(self, symbol: str) -> PerpHolding:
        return self._paper.get_perp_position(symbol)
