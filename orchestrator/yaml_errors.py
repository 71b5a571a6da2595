"""The words both YAML files (the run config, the sweep file) use in their errors:
what a value is, the members of a type, a struct's keys, an unknown key's likely
meaning."""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal, Union, get_args, get_origin

import msgspec

# A file named by mistake (a .env, a key file) must not have its secrets echoed in an
# error: text is quoted only when it is short and looks like a setting (a word, a
# symbol, a number, a date), never a run of letters and digits like a key or token.
_SHOWN_MAX = 32
_TOKEN_RUN = re.compile(r"[A-Za-z0-9+/_=-]{16,}")
_SETTING_NAME = re.compile(r"[a-z]{1,30}(?:[_.-][a-z]{1,30}){0,5}")
_MIXED_RUN = re.compile(r"(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{8,}")


def could_be_secret(text: str) -> bool:
    """Whether ``text`` might be a credential, so that no message may quote it."""
    if _SETTING_NAME.fullmatch(text):  # order_timeout_seconds, strategy.entry_annualised
        return False
    return (
        len(text) > _SHOWN_MAX
        or "=" in text
        or not text.isprintable()
        or _TOKEN_RUN.search(text) is not None
        or _MIXED_RUN.search(text) is not None
    )


def shown_key(key: object) -> str:
    """A mapping key as an error may show it: itself, or its length if it could be a secret."""
    text = str(key)
    return f"<a key of {len(text)} characters>" if could_be_secret(text) else text


def scrubbed(message: str) -> str:
    """A parser's message with each quoted fragment that could be a secret replaced by
    its length (PyYAML quotes tags, escapes and tokens from the file)."""

    def one(match: re.Match[str]) -> str:
        inner = match[2]
        return f"<{len(inner)} characters>" if could_be_secret(inner) else match[0]

    return re.sub(r"(['\"])(.*?)\1", one, message)


def describe_value(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if could_be_secret(value):
            return f"a string of {len(value):,} characters (not shown: it could be a secret)"
        return f"the string {json.dumps(value, ensure_ascii=False)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def union_members(typ: Any) -> tuple[Any, ...]:
    return get_args(typ) if get_origin(typ) in (Union, types.UnionType) else (typ,)


def is_struct(typ: Any) -> bool:
    return isinstance(typ, type) and issubclass(typ, msgspec.Struct)


def struct_fields(struct: Any) -> dict[str, Any]:
    return {f.encode_name: f.type for f in msgspec.structs.fields(struct)}


def unknown_key(key: object, known: list[str]) -> str:
    close = difflib.get_close_matches(str(key).lower().replace("-", "_"), known, n=1)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    return f"unknown key; expected one of: {', '.join(known)}"


def describe_type(typ: Any, bare: Callable[[Any], Any] = lambda typ: typ) -> str:
    """What a value of ``typ`` is, in words; ``bare`` is applied to it and to each union
    member first (the sweep file drops an optional None, the config says "or null")."""
    typ = bare(typ)
    if get_origin(typ) is Literal:
        return " or ".join(repr(v) for v in get_args(typ))
    members = union_members(typ)
    if len(members) > 1:
        return " or ".join(describe_type(m, bare) for m in members)
    names: dict[Any, str] = {
        Decimal: 'a decimal (a quoted string such as "0.02")',
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        str: "a string",
        types.NoneType: "null",
    }
    if typ in names:
        return names[typ]
    return "a list" if get_origin(typ) is list else "a mapping"
