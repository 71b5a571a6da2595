"""The bounds every way into the venue shares (the Python API, the admin API, the
command line, the trading endpoints): amounts, coin names, request bodies."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

MAX_AMOUNT = Decimal("1e15")  # beyond any price or balance; keeps the arithmetic sane
COIN = re.compile(r"[A-Z0-9]{1,20}")


def checked_amount(value: Decimal, what: str, *, minimum: Decimal | None = None) -> Decimal:
    """``value`` if finite and within (0 or ``minimum``) to MAX_AMOUNT; else ValueError
    naming ``what`` (the same bounds for the Python API, the admin API and the flags)."""
    low_ok = value > 0 if minimum is None else value >= minimum
    if not value.is_finite() or not low_ok or value > MAX_AMOUNT:
        lowest = "above 0" if minimum is None else f"from {minimum}"
        raise ValueError(
            f"{what}: must be a finite number {lowest} to {MAX_AMOUNT:,f}, got {value}"
        )
    return value


MAX_BODY_DEPTH = 16  # a Bybit request body is one flat object; deeper is never an order


def read_body(raw: bytes) -> tuple[str, dict[str, Any] | None, str]:
    """(the body's text, its JSON object or None, what is wrong with it). A body that is
    not UTF-8, not JSON, not an object or nested beyond MAX_BODY_DEPTH is refused as
    Bybit refuses a bad request: HTTP 200 with retCode 10001, never an HTTP 500."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "", None, f"body is not UTF-8 text (invalid byte at offset {exc.start})"
    if not text:
        return text, {}, ""
    if _nesting(text) > MAX_BODY_DEPTH:
        # Measured on the text before parsing: json.loads recurses once per level.
        return text, None, f"body nested more than {MAX_BODY_DEPTH} deep"
    try:
        params = json.loads(text)
    except (ValueError, RecursionError):
        return text, None, "body is not a JSON object"
    if not isinstance(params, dict):
        return text, None, "body is not a JSON object"
    return text, params, ""


def _nesting(text: str) -> int:
    """The deepest bracket nesting of JSON text, brackets inside strings not counted."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
