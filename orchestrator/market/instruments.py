"""Instrument limits (quantity steps, minimums, price ticks) from the data folder's
``{venue}_instruments_info*.json`` files: ``{"spot": {id: entry}, "linear": {id: entry}}``
with raw Bybit v5 instruments-info entries. Numbers are read as Decimal, never float."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from orchestrator.market.records import DataError, DataMissing, download_command, listed, rows
from orchestrator.market.records import shown as _shown
from orchestrator.models import Category, Instrument

_JSON_DEPTH = 32  # an instruments file is nested 4 or 5 deep
_JSON_NUMBER_LENGTH = 100  # characters of a number in an instruments file
# Instrument limits (steps, minimums, ticks): tiny steps are real (1e-30 is allowed),
# beyond these bounds they would make the sizing arithmetic explode.
_LIMIT_MIN, _LIMIT_MAX = Decimal("1e-40"), Decimal("1e15")


def load_instruments(
    data_dir: Path,
    symbols: Iterable[str],
    *,
    venue: str = "bybit",
    warnings: list[str] | None = None,
) -> dict[str, Instrument]:
    """The trading limits of each symbol, from every ``{venue}_instruments_info*.json``.

    "BTC/USDT" is the spot entry, "BTC/USDT:USDT" the linear perpetual settled in
    USDT; dated futures are not listed.

    An entry listed again, the same (in another file, or twice in one), is used
    once and reported in ``warnings`` (when given: the list is appended to), one
    line per file; listed again differently, it is a DataError naming both places.
    """
    files = sorted(data_dir.glob(f"{venue}_instruments_info*.json"))
    symbols = list(symbols)
    if not files:
        folder = "" if data_dir.is_dir() else " (no such folder)"
        raise DataMissing(
            f"no instrument file ({venue}_instruments_info*.json) in {data_dir}{folder}",
            _spots(symbols),
            data_dir,
        )
    index: dict[str, tuple[Path, str, dict[str, Any]]] = {}
    notes: list[str] = []
    repeats: dict[tuple[Path, Path], list[str]] = {}  # (file, file listing them first): symbols
    for path in files:
        for symbol, where, entry in _listed_instruments(path, notes):
            known = index.setdefault(symbol, (path, where, entry))
            if known[2] != entry:
                raise DataError(
                    f"{symbol} is listed differently in {known[0]} ({known[1]}) "
                    f"and {path} ({where})"
                )
            if known[2] is not entry:  # listed before, the same
                repeats.setdefault((path, known[0]), []).append(f"{symbol} ({where})")
    for (path, first), repeated in repeats.items():
        notes.append(_repeats_warning(path, first, repeated))
    if warnings is not None:
        warnings.extend(notes)
    found: dict[str, Instrument] = {}
    for symbol in symbols:
        if symbol not in index:
            listed = ", ".join(sorted(index)) or "nothing"
            message = f"unknown symbol {symbol!r}: the instrument files in {data_dir} list {listed}"
            spot = symbol.split(":")[0]
            quote = spot.split("/")[-1]
            if symbol in (spot, f"{spot}:{quote}"):  # a pair the download can fetch
                fetch = download_command([spot], data_dir, None, None)
                message += f"; if Bybit lists it, `{fetch}` fetches its data"
            raise DataError(message)
        found[symbol] = _instrument(symbol, *index[symbol])
    return found


def _spots(symbols: Iterable[str]) -> list[str]:
    """The spot symbols of the pairs these symbols belong to ("BTC/USDT:USDT" -> "BTC/USDT")."""
    return list(dict.fromkeys(symbol.split(":")[0] for symbol in symbols))


def _repeats_warning(path: Path, first: Path, repeated: list[str]) -> str:
    where = "entries earlier in the file" if path == first else first.name
    one = len(repeated) == 1
    entries = f"{len(repeated)} instrument {'entry' if one else 'entries'}"
    return (
        f"{path.name}: {entries} ({listed(repeated)}) {'repeats' if one else 'repeat'} "
        f"{where} exactly; each is used once"
    )


class _JsonProblem(Exception):
    """A JSON document that parses but that no instrument file holds."""


def _read_json(path: Path, notes: list[str]) -> Any:
    """The document, numbers as Decimal; refused: NaN and Infinity, numbers out of
    Decimal's range, an object with a key twice (differently), nesting beyond
    _JSON_DEPTH. A key twice with the same value is noted."""
    repeated: list[str] = []

    def number(text: str) -> Decimal:
        try:
            if len(text) <= _JSON_NUMBER_LENGTH:
                return Decimal(text)
        except InvalidOperation:
            pass
        raise _JsonProblem(
            f"the number {_shown(text, quote=False)} is out of range: no instrument "
            f"field needs over {_JSON_NUMBER_LENGTH} characters or an exponent that large"
        )

    def constant(name: str) -> Any:
        raise _JsonProblem(f"{name} is not a number JSON allows")

    def mapping(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in pairs:
            if key in found:
                if found[key] != value:
                    raise _JsonProblem(
                        f"the key {_shown(key)} appears twice in one object, with different values"
                    )
                repeated.append(key)
            found[key] = value
        return found

    try:
        text = path.read_bytes().decode("utf-8-sig")
        # parse_int too: int() refuses numbers of over 4,300 digits (a ValueError).
        document = json.loads(
            text,
            parse_float=number,
            parse_int=number,
            parse_constant=constant,
            object_pairs_hook=mapping,
        )
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the file: {exc}") from None
    except _JsonProblem as exc:
        raise DataError(f"{path}: {exc}") from None
    except RecursionError:
        raise DataError(_too_deep(path)) from None
    # The shape first: the depth walk below only looks inside objects and arrays.
    check_sections(path, document)
    _check_depth(path, document)
    if repeated:
        notes.append(
            f"{path.name}: {rows(repeated, 'key')} ({listed([_shown(k) for k in repeated])}) "
            f"{'appears' if len(repeated) == 1 else 'appear'} twice in one object, the same "
            "both times; each is used once"
        )
    return document


def _too_deep(path: Path) -> str:
    return f"{path}: nested more than {_JSON_DEPTH} deep; an instruments file needs 4 or 5 levels"


def _check_depth(path: Path, document: Any) -> None:
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > _JSON_DEPTH:
            raise DataError(_too_deep(path))
        if isinstance(value, dict):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:  # a number, text, true/false or null holds nothing to walk
            continue
        stack.extend((child, depth + 1) for child in children)


_JSON_TYPES = {dict: "an object", list: "an array", str: "text"}


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, in the file's words (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    for typ, name in _JSON_TYPES.items():
        if isinstance(value, typ):
            return name
    return "a number"


def check_sections(path: Path, document: Any) -> None:
    """Refuse a document that is not {"spot": {id: {...}}, "linear": {id: {...}}}
    (either section may be absent), naming the place and what was found there."""
    if not isinstance(document, dict):
        raise DataError(
            f"{path}: expected an object with 'spot' and 'linear' sections, "
            f"found {json_kind(document)}"
        )
    for category in (Category.SPOT.value, Category.LINEAR.value):
        section = document.get(category, {})
        if not isinstance(section, dict):
            raise DataError(f"{path}: {category} is {json_kind(section)}, not an object")
        for market, entry in section.items():
            if not isinstance(entry, dict):
                raise DataError(f"{path}: {category}.{market} is {json_kind(entry)}, not an object")


def _listed_instruments(path: Path, notes: list[str]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(unified symbol, place in the file, raw entry) of each spot pair and linear perpetual."""
    document = _read_json(path, notes)  # its shape is checked (check_sections)
    for category in (Category.SPOT, Category.LINEAR):
        for market, entry in document.get(category.value, {}).items():
            where = f"{category.value}.{market}"
            base, quote = (
                _text(path, where, entry, "baseCoin"),
                _text(path, where, entry, "quoteCoin"),
            )
            if category is Category.SPOT:
                yield f"{base}/{quote}", where, entry
            elif entry.get("contractType", "LinearPerpetual") == "LinearPerpetual":
                settle = entry.get("settleCoin") or quote
                yield f"{base}/{quote}:{settle}", where, entry


def _instrument(symbol: str, path: Path, where: str, entry: dict[str, Any]) -> Instrument:
    spot = ":" not in symbol
    lot = _section(path, where, entry, "lotSizeFilter")
    price = _section(path, where, entry, "priceFilter")
    lot_where, price_where = f"{where}.lotSizeFilter", f"{where}.priceFilter"
    try:
        return Instrument(
            symbol=symbol,
            category=Category.SPOT if spot else Category.LINEAR,
            base=_text(path, where, entry, "baseCoin"),
            quote=_text(path, where, entry, "quoteCoin"),
            qty_step=_decimal(path, lot_where, lot, "basePrecision" if spot else "qtyStep"),
            min_qty=_decimal(path, lot_where, lot, "minOrderQty"),
            min_notional=_decimal(
                path, lot_where, lot, "minOrderAmt" if spot else "minNotionalValue"
            ),
            price_tick=_decimal(path, price_where, price, "tickSize"),
            funding_interval_hours=8 if spot else _funding_hours(path, where, entry),
        )
    except ValueError as exc:
        raise DataError(f"{path}: {where}: {exc}") from exc


def funding_hours(minutes: Any) -> int | None:
    """Bybit's ``fundingInterval`` (minutes) in whole hours, 1 to 24; None if it is not."""
    try:
        hours, rest = divmod(int(str(minutes)), 60)
    except ValueError:
        return None
    return hours if not rest and 1 <= hours <= 24 else None


def _funding_hours(path: Path, where: str, entry: dict[str, Any]) -> int:
    """The perp's funding interval in hours; 8 where the file does not say."""
    minutes = entry.get("fundingInterval")
    if minutes is None:
        return 8
    hours = funding_hours(minutes)
    if hours is None:
        raise DataError(
            f"{path}: {where}.fundingInterval is {str(minutes)[:20]!r}: expected whole hours "
            "in minutes, 60 to 1440"
        )
    return hours


def _text(path: Path, where: str, entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise DataError(f"{path}: {where}.{key} is missing or not a name")
    return value


def _section(path: Path, where: str, entry: dict[str, Any], key: str) -> dict[str, Any]:
    value = entry.get(key)
    if not isinstance(value, dict):
        raise DataError(f"{path}: {where}.{key} is missing or not an object")
    return value


def _decimal(path: Path, where: str, section: dict[str, Any], key: str) -> Decimal:
    value = section.get(key)
    shown = _shown(value) if isinstance(value, str) else repr(value)
    problem = DataError(f"{path}: {where}.{key} is {shown}, not a number")
    # JSON numbers arrive as Decimal already (parse_float, parse_int), never through float.
    if isinstance(value, bool) or not isinstance(value, str | Decimal | int):
        raise problem
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise problem from None
    # Zero, negative and NaN are the Instrument's to refuse, with its own words.
    if number.is_finite() and number > 0 and not _LIMIT_MIN <= number <= _LIMIT_MAX:
        raise DataError(
            f"{path}: {where}.{key} is {_shown(str(number), quote=False)}, outside "
            f"{_LIMIT_MIN} to {_LIMIT_MAX}: not a trading limit"
        )
    return number
