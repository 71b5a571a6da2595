"""The account's own settings, as Bybit keeps them: its type (unified or classic), the
perps' position mode (one-way or hedge), and what the API key may do. Pure: no I/O.

What each setting changes, as Bybit documents it:
- ``/v5/account/info``: ``unifiedMarginStatus`` 1 is a classic account, 3-6 a
  Unified Trading Account. On a classic account a spot market buy states what to
  spend (``marketUnit`` is a unified account's parameter): its ``qty`` is quote coin.
- ``/v5/position/switch-mode``: mode 0 one-way, 3 hedge (both sides). In hedge mode an
  order must name its side's ``positionIdx`` (1 long, 2 short), in one-way mode 0 or
  none; otherwise retCode 10001 "position idx not match position mode". The position
  list then shows both sides of a symbol, flat ones included.
- ``/v5/user/query-api``: ``readOnly`` 1, and ``permissions`` per product (``Spot``:
  ``SpotTrade``; ``ContractTrade``: ``Order``, ``Position``); a request the key may
  not make is refused with retCode 10005 "Permission denied".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from orchestrator.venue.codes import PARAMS_ERROR, VenueError

PERMISSION_DENIED = 10005
POSITION_MODE_UNCHANGED = 110025
POSITION_MODE_HELD = 110024  # has positions or open orders: the mode cannot change
IDX_MISMATCH = "position idx not match position mode"

Mode = Literal["one-way", "hedge"]
CLASSIC, UNIFIED = 1, 6  # Bybit's unifiedMarginStatus: classic; UTA 2.0 pro

FULL_PERMISSIONS: dict[str, list[str]] = {
    "ContractTrade": ["Order", "Position"],
    "Spot": ["SpotTrade"],
    "Wallet": ["AccountTransfer", "SubMemberTransferList"],
    "Options": [],
    "Derivatives": [],
    "CopyTrading": [],
    "BlockTrade": [],
    "Exchange": [],
    "NFT": [],
    "Affiliate": [],
}


@dataclass
class Account:
    """``mode`` is the position mode of every perp without a symbol setting of its own."""

    unified: bool = True
    mode: Mode = "one-way"
    modes: dict[str, Mode] = field(default_factory=dict)  # per symbol, set by switch-mode
    read_only: bool = False
    permissions: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in FULL_PERMISSIONS.items()}
    )
    # Coins the owner switched off as collateral (Bybit: set-collateral-switch): they no
    # longer count in the margin balance that holds the perps' maintenance margin.
    collateral_off: set[str] = field(default_factory=set)

    def mode_of(self, symbol: str) -> Mode:
        return self.modes.get(symbol, self.mode)

    def check_position_idx(self, symbol: str, body_idx: Any) -> int:
        """The order's positionIdx, refused as Bybit refuses one its mode does not take."""
        try:
            idx = 0 if body_idx in (None, "") else int(str(body_idx))
        except ValueError:
            raise VenueError(PARAMS_ERROR, "params error: positionIdx invalid") from None
        allowed = (1, 2) if self.mode_of(symbol) == "hedge" else (0,)
        if idx not in allowed:
            raise VenueError(PARAMS_ERROR, IDX_MISMATCH)
        return idx

    def may(self, product: str, permission: str) -> None:
        """Refuse what the key may not do (a write with a read-only key among them)."""
        if self.read_only or permission not in self.permissions.get(product, []):
            raise VenueError(
                PERMISSION_DENIED, "Permission denied, please check your API key permissions."
            )

    def info_view(self, now_ms: int) -> dict[str, Any]:
        return {
            "unifiedMarginStatus": UNIFIED if self.unified else CLASSIC,
            "marginMode": "REGULAR_MARGIN",
            "isMasterTrader": False,
            "spotHedgingStatus": "OFF",
            "updatedTime": str(now_ms),
        }

    def key_view(self, api_key: str) -> dict[str, Any]:
        """The key's record as query-api lists it; Bybit echoes the key, never the secret."""
        return {
            "id": "1",
            "note": "loopback venue",
            "apiKey": api_key,
            "readOnly": 1 if self.read_only else 0,
            "secret": "",
            "permissions": {k: list(v) for k, v in self.permissions.items()},
            "ips": ["*"],
            "type": 1,
            "deadlineDay": 90,
            "expiredAt": "",
            "createdAt": "",
            "unified": 0,
            "uta": 1 if self.unified else 0,
            "userID": 1,
            "inviterID": 0,
            "vipLevel": "No VIP",
            "mktMakerLevel": "0",
            "affiliateID": 0,
        }


def fee_rate_view(symbol: str, taker: Decimal, maker: Decimal, base: str) -> dict[str, str]:
    return {
        "symbol": symbol,
        "baseCoin": base,
        "takerFeeRate": format(taker, "f"),
        "makerFeeRate": format(maker, "f"),
    }
