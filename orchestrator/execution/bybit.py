"""The ccxt Bybit client a live run trades through, built from the run's settings.

One place sets what ccxt, Bybit and the manager must agree on (``VenueTiming``):
ccxt's request ``timeout``, Bybit's ``recvWindow``; the LiveExecutor derives from
the same how long a lost order may still land. ccxt's own throttle is off (it
queues the second leg behind the first); the LiveExecutor paces requests by
Bybit's per-endpoint budgets instead. ``maxRetriesOnFailure`` stays 0: ccxt
would otherwise resend an order whose answer was lost.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from orchestrator.exceptions import OrchestratorError
from orchestrator.settings import VenueTiming

Network = Literal["mainnet", "testnet", "demo"]
KEY_ENV, SECRET_ENV = "BYBIT_API_KEY", "BYBIT_API_SECRET"
_REST_BASES = ("spot", "futures", "v2", "public", "private")


class CredentialsMissing(OrchestratorError):
    """The API key or secret is not in the environment."""


def credentials() -> tuple[str, str]:
    """The API key and secret, from the environment only."""
    key, secret = os.environ.get(KEY_ENV, ""), os.environ.get(SECRET_ENV, "")
    missing = [name for name, value in ((KEY_ENV, key), (SECRET_ENV, secret)) if not value]
    if missing:
        raise CredentialsMissing(
            f"live mode needs {' and '.join(missing)} in the environment "
            "(never in config.yaml); nothing was sent"
        )
    return key, secret


def make_exchange(
    api_key: str,
    secret: str,
    timing: VenueTiming,
    *,
    network: Network = "mainnet",
    url: str | None = None,
) -> Any:
    """ccxt's async Bybit client for ``network``, or for the venue at ``url`` (the
    loopback venue: every REST base, sandbox and demo included, point there, so no
    setting can reach the internet). The caller closes it."""
    import ccxt.async_support as ccxt_async  # imported late: ccxt takes a while to load

    config: dict[str, Any] = {
        "apiKey": api_key,
        "secret": secret,
        "timeout": timing.request_timeout_ms,
        "enableRateLimit": False,
        "maxRetriesOnFailure": 0,
        "has": {"fetchCurrencies": False},  # else load_markets asks /v5/asset/coin/query-info
        "options": {
            "recvWindow": timing.recv_window_ms,
            "fetchMarkets": {"types": ["spot", "linear"]},
            "adjustForTimeDifference": False,
            # A unified account (UTA), declared so ccxt does not probe for it.
            "enableUnifiedAccount": True,
            "enableUnifiedMargin": False,
            "unifiedMarginStatus": 6,
        },
    }
    if url is not None:
        api = {name: url for name in _REST_BASES}
        config["urls"] = {"api": api, "test": api, "demotrading": api}
        config["timeout_on_exit"] = 0  # ccxt's pause on close is for TLS; loopback has none
    exchange = ccxt_async.bybit(config)
    if url is None and network == "testnet":
        exchange.set_sandbox_mode(True)
    elif url is None and network == "demo":
        exchange.enable_demo_trading(True)
    return exchange
