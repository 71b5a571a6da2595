"""Fault injection: a small declarative spec of what goes wrong, where and when.

A ``FaultSpec`` is a list of ``FaultRule``. Each rule picks requests by endpoint
(globs over the path after ``/v5/``, comma-separated: ``order/create``, ``order/*``,
``market/kline,market/funding/history``),
category (``spot`` | ``linear``) and client order id (a glob), lets ``after`` of
them through, then acts on the next ``times`` (``null``: on every one from then on),
only between ``start_s`` and ``until_s`` seconds after it was installed. A rule left
at endpoint ``*`` applies where its kind does: ``order/create`` for land_late,
partial, fill_late and for rejects with an order error (insufficient_balance,
duplicate_link_id, qty_*, notional_too_small, reduce_only), ``order/cancel`` for
order_not_found, ``order/realtime`` for hide_closed, ``order/*`` for empty, both order reads for
no_fee_detail; every
endpoint otherwise. The first
rule that fires on a request decides what happens to it; every rule whose filters
match counts the request. Load it from YAML or JSON (``load_faults``), or send it
to ``POST /admin/faults``.

Example (YAML)::

    rules:
      - kind: reject                # the 2nd perp create: insufficient balance (110007)
        endpoint: order/create
        category: linear
        after: 1
        error: insufficient_balance
      - kind: timeout_after         # place the spot order, answer 3 s late
        endpoint: order/create
        category: spot
        delay_ms: 3000
      - kind: http                  # every lookup fails with HTTP 503 for 2 s
        endpoint: order/*
        status: 503
        times: null
        until_s: 2
"""

from __future__ import annotations

import fnmatch
import json
import math
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec

from orchestrator.exceptions import OrchestratorError
from orchestrator.venue.codes import ERRORS

Kind = Literal[
    "reject",  # answer a Bybit error (``error`` by name, or ``ret_code``/``ret_msg``); no effect
    "http",  # answer HTTP ``status`` (429, 500, 502, 503, 504...) with a gateway page
    "timeout_before",  # hold the answer ``delay_ms``, then 10016 "Request timeout"; no effect
    "timeout_after",  # do the request (place the order), answer ``delay_ms`` late
    "drop_before",  # close the connection without answering; no effect
    "drop_after",  # do the request (place the order), then close the connection
    "land_late",  # create: answer as ``reply`` says now, place the order ``delay_ms`` later
    "partial",  # create: ``fill_ratio`` fills, the rest is cancelled (after the hold)
    "fill_late",  # create: the order works (New) for the hold, then fills
    "empty",  # a lookup answers an empty list
    "hide_closed",  # order/realtime lists no closed order, as after a venue restart
    "malformed",  # do the request, answer a broken body (``body`` names how)
    "no_fee_detail",  # order reads answer without ``cumFeeDetail`` (ccxt then reads no fee)
]

Malformed = Literal[
    "empty_body",  # HTTP 200, nothing
    "html",  # HTTP 200, an HTML error page
    "not_json",  # HTTP 200, plain text
    "truncated_json",  # the answer cut in the middle
    "missing_result",  # no "result" key
    "null_result",  # "result": null
    "missing_fields",  # entries lack their ids, status and quantities
    "non_numeric",  # numbers are words ("NaN", "abc")
    "wrong_types",  # strings become numbers, lists objects, objects lists
    "unknown_status",  # orderStatus is a word Bybit never sends
    "retcode_string",  # "retCode": "0" (a string)
    "missing_retcode",  # no retCode at all
    "extra_nesting",  # the result wrapped once more
    "json_array",  # a bare JSON array
    "nan_literal",  # JSON text with a bare NaN
]

# Kinds that only make sense on some endpoints: where a rule with endpoint "*" applies.
_HOME = {
    "land_late": "order/create",
    "partial": "order/create",
    "fill_late": "order/create",
    "hide_closed": "order/realtime",
    "empty": "order/*",
    "no_fee_detail": "order/realtime,order/history",
}
# Errors only an order request can meet: where a reject rule with endpoint "*" applies.
_ERROR_HOME = {
    **dict.fromkeys(
        (
            "insufficient_balance",
            "duplicate_link_id",
            "qty_too_small",
            "qty_too_large",
            "qty_step",
            "notional_too_small",
            "reduce_only",
        ),
        "order/create",
    ),
    "order_not_found": "order/cancel",
}
# Bounds of a rule: a fault holds an answer at most an hour (a 10^12 ms hold would
# outlive everything), counts at most a billion requests, lasts at most a week.
MAX_DELAY_MS = 3_600_000
MAX_COUNT = 1_000_000_000
MAX_WINDOW_S = 7 * 24 * 3600
MAX_TEXT = 500
MAX_RULES = 1000
_CREATE_ONLY = frozenset({"land_late", "partial", "fill_late"})
_PLACES_BY_DEFAULT = frozenset({"timeout_after", "drop_after", "malformed"})


class FaultRule(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: Kind
    endpoint: str = "*"
    category: Literal["spot", "linear"] | None = None
    link_id: str | None = None  # glob over orderLinkId, e.g. "*-po1"
    after: int = 0  # matching requests let through first
    times: int | None = 1  # then act on this many; None: on every one
    start_s: float = 0.0  # active from this many seconds after installation ...
    until_s: float | None = None  # ... until this many
    error: str | None = None  # reject: a name from orchestrator.venue.codes.ERRORS
    ret_code: int | None = None  # reject: or an explicit code and message
    ret_msg: str = ""
    status: int = 503  # http
    delay_ms: int = 0  # timeouts, land_late
    reply: Literal["timeout", "drop", "error"] = "timeout"  # land_late: the create's answer
    ignore_recv_window: bool = False  # land_late: place it even beyond the window
    fill_ratio: Decimal = Decimal("0.5")  # partial: the share that fills ...
    fill_qty: Decimal | None = None  # ... or this quantity (capped at the order's)
    hold_reads: int = 0  # partial, fill_late: reads that still show it working
    hold_ms: int = 0  # or this long
    body: Malformed = "truncated_json"  # malformed
    # http/malformed: is the request carried out (the order placed) before the answer
    # breaks? Default: not for http, yes for malformed.
    accept: bool | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.after <= MAX_COUNT:
            raise ValueError(f"after must be 0 to {MAX_COUNT:,}, got {self.after}")
        if self.times is not None and not 1 <= self.times <= MAX_COUNT:
            raise ValueError(f"times must be 1 to {MAX_COUNT:,} (or null), got {self.times}")
        for name in ("delay_ms", "hold_ms"):
            if not 0 <= getattr(self, name) <= MAX_DELAY_MS:
                raise ValueError(f"{name} must be 0 to {MAX_DELAY_MS:,} (an hour)")
        if not 0 <= self.hold_reads <= MAX_COUNT:
            raise ValueError(f"hold_reads must be 0 to {MAX_COUNT:,}")
        windows = [self.start_s] + ([] if self.until_s is None else [self.until_s])
        if not all(math.isfinite(w) and 0 <= w <= MAX_WINDOW_S for w in windows):
            raise ValueError(f"start_s and until_s must be 0 to {MAX_WINDOW_S:,} seconds")
        if self.ret_code is not None and not 0 < self.ret_code < 2**31:
            raise ValueError("ret_code must be a Bybit retCode (a positive whole number)")
        texts = (self.endpoint, self.link_id or "", self.ret_msg)
        if any(len(text) > MAX_TEXT for text in texts):
            raise ValueError(f"endpoint, link_id and ret_msg are at most {MAX_TEXT} characters")
        if not self.fill_ratio.is_finite() or (
            self.fill_qty is not None and not self.fill_qty.is_finite()
        ):
            raise ValueError("partial: fill_ratio and fill_qty must be finite numbers")
        if self.endpoint == "*" and self.kind in _HOME:
            self.endpoint = _HOME[self.kind]
        if self.endpoint == "*" and self.kind == "reject" and self.error in _ERROR_HOME:
            self.endpoint = _ERROR_HOME[self.error]
        if self.kind in _CREATE_ONLY and not endpoint_matches("order/create", self.endpoint):
            raise ValueError(f"{self.kind} applies to order/create only")
        if self.kind == "reject":
            if self.error is None and self.ret_code is None:
                raise ValueError("reject needs an error name or a ret_code")
            if self.error is not None and self.error not in ERRORS:
                raise ValueError(f"unknown error {self.error!r}; known: {', '.join(ERRORS)}")
        if self.kind == "partial" and not 0 <= self.fill_ratio < 1:
            raise ValueError("partial: fill_ratio must be in [0, 1)")
        if self.fill_qty is not None and self.fill_qty < 0:
            raise ValueError("partial: fill_qty must be >= 0")
        if self.kind == "fill_late" and not (self.hold_reads or self.hold_ms):
            raise ValueError("fill_late needs hold_reads or hold_ms")
        if self.kind == "http" and not 100 <= self.status <= 599:
            raise ValueError("http: status must be an HTTP status code")

    @property
    def places(self) -> bool:
        """Whether a request hit by this rule is carried out (a create places its order)."""
        if self.accept is not None:
            return self.accept
        return self.kind in _PLACES_BY_DEFAULT


def endpoint_matches(endpoint: str, patterns: str) -> bool:
    """Whether ``endpoint`` matches one of the comma-separated globs ``patterns``."""
    return any(fnmatch.fnmatchcase(endpoint, p.strip()) for p in patterns.split(","))


class FaultSpec(msgspec.Struct, forbid_unknown_fields=True):
    rules: list[FaultRule] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.rules) > MAX_RULES:
            raise ValueError(f"at most {MAX_RULES:,} rules, got {len(self.rules):,}")


class FaultSpecError(OrchestratorError, ValueError):
    """A fault file or admin request that is not a valid FaultSpec."""


def parse_faults(data: bytes | str, *, yaml: bool = False) -> FaultSpec:
    try:
        if yaml:
            return msgspec.yaml.decode(data, type=FaultSpec)
        return msgspec.json.decode(data, type=FaultSpec)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise FaultSpecError(str(exc)) from None


def load_faults(path: Path) -> FaultSpec:
    """A FaultSpec from a .json, .yaml or .yml file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FaultSpecError(f"{path}: {exc.strerror or exc}") from None
    try:
        return parse_faults(data, yaml=path.suffix.lower() in (".yaml", ".yml"))
    except FaultSpecError as exc:
        raise FaultSpecError(f"{path}: {exc}") from None


@dataclass
class ActiveRule:
    rule: FaultRule
    installed: float  # time.monotonic()
    seen: int = 0  # matching requests so far
    hits: int = 0  # requests it acted on

    @property
    def exhausted(self) -> bool:
        return self.rule.times is not None and self.hits >= self.rule.times

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self.rule)
        out.update(seen=self.seen, hits=self.hits, exhausted=self.exhausted)
        return out


@dataclass
class FaultBook:
    """The rules in force, and how often each matched and fired."""

    rules: list[ActiveRule] = field(default_factory=list)

    def extend(self, spec: FaultSpec) -> None:
        """Add the rules of ``spec`` to those in force: all of them, or none past MAX_RULES."""
        if len(self.rules) + len(spec.rules) > MAX_RULES:
            raise FaultSpecError(f"at most {MAX_RULES:,} rules in force at once")
        for rule in spec.rules:
            self.add(rule)

    def add(self, rule: FaultRule) -> ActiveRule:
        active = ActiveRule(rule, time.monotonic())
        self.rules.append(active)
        return active

    def set(self, spec: FaultSpec) -> None:
        self.rules = []
        for rule in spec.rules:
            self.add(rule)

    def remove(self, active: ActiveRule) -> None:
        if active in self.rules:
            self.rules.remove(active)

    def clear(self) -> None:
        self.rules = []

    def match(
        self, endpoint: str, category: str | None, link_id: str | None, kinds: frozenset[str]
    ) -> FaultRule | None:
        """The rule that acts on this request, if any; counts it on every matching rule.

        ``kinds`` are the kinds the caller can carry out at this point.
        """
        now = time.monotonic()
        fired: FaultRule | None = None
        for active in self.rules:
            rule = active.rule
            if rule.kind not in kinds or not endpoint_matches(endpoint, rule.endpoint):
                continue
            if rule.category is not None and rule.category != category:
                continue
            if rule.link_id is not None and not fnmatch.fnmatchcase(link_id or "", rule.link_id):
                continue
            age = now - active.installed
            if age < rule.start_s or (rule.until_s is not None and age >= rule.until_s):
                continue
            active.seen += 1
            if fired is None and active.seen > rule.after and not active.exhausted:
                active.hits += 1
                fired = rule
        return fired


# -- malformed answers ------------------------------------------------------------


def _walk(value: Any, leaf: Any) -> Any:
    """``value`` with every leaf replaced by ``leaf(key, old)``."""
    if isinstance(value, dict):
        return {k: _walk_leaf(k, v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, leaf) for v in value]
    return value


def _walk_leaf(key: str, value: Any, leaf: Any) -> Any:
    if isinstance(value, dict | list):
        return _walk(value, leaf)
    return leaf(key, value)


def _is_number_text(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        Decimal(value)
    except ArithmeticError:
        return False
    return True


_ESSENTIAL = ("orderId", "orderStatus", "cumExecQty", "qty", "symbol", "side", "walletBalance")


def malformed(envelope: dict[str, Any], how: str) -> tuple[int, str, str]:
    """(HTTP status, content type, text) of a broken version of ``envelope``."""
    plain = "text/plain"
    js = "application/json"
    text = json.dumps(envelope, separators=(",", ":"))
    result = envelope.get("result")
    if how == "empty_body":
        return 200, js, ""
    if how == "html":
        page = (
            "<html><head><title>Error</title></head>"
            "<body><h1>Something went wrong</h1></body></html>"
        )
        return 200, "text/html", page
    if how == "not_json":
        return 200, plain, "OK"
    if how == "truncated_json":
        return 200, js, text[: max(1, len(text) // 2)]
    if how == "json_array":
        return 200, js, json.dumps([envelope])
    if how == "nan_literal":
        return 200, js, text.replace('"retCode":0', '"retCode":NaN', 1)
    body = dict(envelope)
    if how == "missing_result":
        body.pop("result", None)
    elif how == "null_result":
        body["result"] = None
    elif how == "missing_retcode":
        body.pop("retCode", None)
    elif how == "retcode_string":
        body["retCode"] = str(body.get("retCode", 0))
    elif how == "extra_nesting":
        body["result"] = {"result": result}
    elif how == "missing_fields":
        body["result"] = _walk(result, lambda k, v: v)
        _drop_keys(body["result"])
    elif how == "non_numeric":
        body["result"] = _walk(result, lambda k, v: "NaN" if _is_number_text(v) else v)
    elif how == "wrong_types":
        body["result"] = _wrong_types(result)
    elif how == "unknown_status":
        body["result"] = _walk(result, lambda k, v: "Sideways" if k == "orderStatus" else v)
    else:
        raise ValueError(f"unknown malformed body {how!r}")
    return 200, js, json.dumps(body, separators=(",", ":"))


def _drop_keys(value: Any) -> None:
    if isinstance(value, dict):
        for key in _ESSENTIAL:
            value.pop(key, None)
        for v in value.values():
            _drop_keys(v)
    elif isinstance(value, list):
        for v in value:
            _drop_keys(v)


def _wrong_types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _wrong_types(v) for k, v in value.items()}
    if isinstance(value, list):
        return {str(i): _wrong_types(v) for i, v in enumerate(value)}  # a list becomes an object
    if _is_number_text(value):
        return float(value)  # a JSON number where Bybit sends text
    if isinstance(value, str):
        return [value]
    return value
