"""Bybit v5's request authentication: HMAC-SHA256 signature and the receive window."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from orchestrator.venue import codes
from orchestrator.venue.codes import VenueError

DEFAULT_RECV_WINDOW = 5000  # ms, when the request names none
AHEAD_MS = 1000  # a timestamp may run this far ahead of the server's clock


def sign(secret: str, timestamp: str, api_key: str, recv_window: str, payload: str) -> str:
    """X-BAPI-SIGN: hex HMAC-SHA256 of timestamp + key + recv window + query or body."""
    origin = timestamp + api_key + recv_window + payload
    return hmac.new(secret.encode(), origin.encode(), hashlib.sha256).hexdigest()


def check(
    headers: Mapping[str, str],
    payload: str,
    keys: Mapping[str, str],
    server_ms: int,
) -> tuple[int, int]:
    """(signing timestamp, recv window) of a request that passes; else raise VenueError.

    ``payload`` is the raw query string of a GET, the raw body of a POST. ``keys``
    maps API keys to secrets. Bybit's order of checks: key, then signature, then
    the time rule ``server_time - recv_window <= timestamp < server_time + 1000``
    (https://bybit-exchange.github.io/docs/v5/guide).
    """
    api_key = headers.get("X-BAPI-API-KEY", "")
    secret = keys.get(api_key)
    if not api_key or secret is None:
        raise VenueError(codes.INVALID_API_KEY, "API key is invalid.")
    timestamp = headers.get("X-BAPI-TIMESTAMP", "")
    window_text = headers.get("X-BAPI-RECV-WINDOW", "")
    expected = sign(secret, timestamp, api_key, window_text, payload)
    if not hmac.compare_digest(expected, headers.get("X-BAPI-SIGN", "")):
        # Like the real venue, echo the signed text, API key included.
        origin = timestamp + api_key + window_text + payload
        raise VenueError(codes.INVALID_SIGN, f"error sign! origin_string[{origin}]")
    try:
        stamp = int(timestamp)
        window = int(window_text) if window_text else DEFAULT_RECV_WINDOW
    except ValueError:
        raise VenueError(codes.PARAMS_ERROR, "params error: timestamp or recv_window") from None
    if not server_ms - window <= stamp < server_ms + AHEAD_MS:
        message = codes.TIMESTAMP_MSG.format(ts=stamp, now=server_ms, window=window)
        raise VenueError(codes.TIMESTAMP_OUT_OF_WINDOW, message)
    return stamp, window
