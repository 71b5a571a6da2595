"""What changed a position without the run: which of the venue's trades it did not send
explain the position holding more than the venue shows. Pure: no I/O.

Shared by the live loop (every cycle) and a resume (the change came while the run was
down), so both take the same trades in the same way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from orchestrator.models import ZERO, Category, Holdings, OrderResult, Position, Side


@dataclass(frozen=True)
class OutsideChange:
    trades: list[OrderResult] = field(default_factory=list)  # each reduces the position
    moved_out: Decimal = ZERO  # spot coin gone without a trade (moved out of the account)
    unexplained: Decimal = ZERO  # perp short the record holds beyond the venue, no trade

    @property
    def any(self) -> bool:
        return bool(self.trades) or self.moved_out > 0


def outside_change(
    position: Position, trades: Sequence[OrderResult], held: Holdings
) -> OutsideChange:
    """``trades`` (not the run's) that reduce the position, no further than the venue shows
    it short of the record; then spot gone without a trade once the perp is explained.
    A trade that adds is the owner's own and left out; of a trade larger than what is
    left of the shortfall, that much is the position's (the owner bought back more than
    the run's short: the rest is the owner's own position), its fee shared pro rata."""
    spot_over = position.spot_qty - held.spot
    perp_over = position.perp_qty - held.perp_short
    taken: list[OrderResult] = []
    for trade in trades:
        spot = trade.category is Category.SPOT
        reduces = trade.side is (Side.SELL if spot else Side.BUY)
        over = spot_over if spot else perp_over
        if not reduces or over <= 0:
            continue
        if trade.filled_qty > over:
            trade = _part(trade, over)
        if spot:
            spot_over -= trade.filled_qty
        else:
            perp_over -= trade.filled_qty
        taken.append(trade)
    moved_out = spot_over if spot_over > 0 and perp_over <= 0 else ZERO
    return OutsideChange(taken, moved_out, max(perp_over, ZERO))


_FEE_STEP = Decimal("1e-8")  # Bybit's fees: 8 decimals


def _part(trade: OrderResult, qty: Decimal) -> OrderResult:
    """``qty`` of ``trade``, with its share of the fee."""
    fee = (trade.fee * qty / trade.filled_qty).quantize(_FEE_STEP)
    return msgspec.structs.replace(trade, filled_qty=qty, requested_qty=qty, fee=fee)
