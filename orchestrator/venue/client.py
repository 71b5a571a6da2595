"""A real ``ccxt.async_support.bybit`` that can only reach the loopback venue."""

from __future__ import annotations

from typing import Any

DEFAULT_API_KEY = "venue-key"
DEFAULT_SECRET = "venue-secret"
_REST_BASES = ("spot", "futures", "v2", "public", "private")


def make_client(
    url: str,
    *,
    api_key: str = DEFAULT_API_KEY,
    secret: str = DEFAULT_SECRET,
    timeout_ms: int = 2000,
    rate_limit: bool = False,
    **config: Any,
) -> Any:
    """ccxt's async Bybit client with every REST base, sandbox and demo included,
    pointed at ``url`` (e.g. ``Venue.url``), so no mode can reach the internet.

    ``rate_limit=False`` turns ccxt's throttle off (loopback tests); pass True to keep
    Bybit's 20 ms pacing, as a live run would. The caller closes the client.
    """
    import ccxt.async_support as ccxt_async  # imported late: ccxt takes a while to load

    api = {name: url for name in _REST_BASES}
    options: dict[str, Any] = {
        "fetchMarkets": {"types": ["spot", "linear"]},
        "adjustForTimeDifference": False,
        # Declares a unified account so ccxt does not probe for it.
        "enableUnifiedAccount": True,
        "enableUnifiedMargin": False,
        "unifiedMarginStatus": 6,
    }
    options.update(config.pop("options", {}))
    return ccxt_async.bybit(
        {
            "apiKey": api_key,
            "secret": secret,
            "timeout": timeout_ms,
            "enableRateLimit": rate_limit,
            # ccxt's 250 ms pause on close is for TLS shutdown; loopback has none.
            "timeout_on_exit": 0,
            "urls": {"api": api, "test": api, "demotrading": api},
            "has": {"fetchCurrencies": False},  # else load_markets asks /v5/asset/coin/query-info
            "options": options,
            **config,
        }
    )
