"""A setting of the run config named by its YAML path, and what kind of number it holds.

``strategy.entry_annualised`` (a decimal), ``strategy.funding_window`` (a whole
number), ``trading.order_timeout_seconds`` (a number), ``balances.USDT`` (an
entry of a mapping). Checked against the config's types first (the sweep file
alone), then against the base config itself (which balances it has).
"""

from __future__ import annotations

import difflib
import types
from decimal import Decimal
from typing import Any, Literal, get_args, get_origin

import msgspec

from orchestrator.config import Config
from orchestrator.sweep.yamlfile import Invalid, bare, describe_type, join
from orchestrator.yaml_errors import describe_value, is_struct, struct_fields, union_members

Kind = Literal["decimal", "int", "float"]
# Sections whose settings a replay never reads.
NOT_REPLAYED = {"live": "live settings do not change a replay", "output": "", "tracing": ""}


class Setting(msgspec.Struct, frozen=True):
    path: str  # as written in the sweep file, e.g. strategy.entry_annualised
    keys: tuple[str, ...]
    kind: Kind


def numeric_paths(config: Config) -> list[str]:
    """Every numeric setting of the run config, by YAML path (for suggestions)."""
    found: list[str] = []

    def walk(typ: Any, value: Any, path: str) -> None:
        typ = bare(typ)
        if is_struct(typ):
            for name, field_type in struct_fields(typ).items():
                if path == "" and name in NOT_REPLAYED:
                    continue
                walk(field_type, getattr(value, _attr(typ, name)), join(path, name))
        elif get_origin(typ) is dict:
            for key in value:
                walk(get_args(typ)[1], value[key], join(path, key))
        elif _kind(typ) is not None:
            found.append(path)

    walk(Config, config, "")
    return found


def _attr(struct: Any, encode_name: str) -> str:
    for f in msgspec.structs.fields(struct):
        if f.encode_name == encode_name:
            return f.name
    raise KeyError(encode_name)


def _kind(typ: Any) -> Kind | None:
    members = {m for m in union_members(bare(typ)) if m is not types.NoneType}
    if members == {Decimal}:
        return "decimal"
    if members == {int}:
        return "int"
    if members <= {int, float} and float in members:
        return "float"
    return None


def resolve(path: str, config: Config | None = None) -> Setting:
    """The setting at ``path`` in the run config; Invalid at ``parameters.<path>``.
    Without a config, only its types are checked (a mapping may hold any key)."""
    where = join("parameters", path)
    keys = tuple(path.split("."))
    if not all(keys):
        raise Invalid(where, "not a YAML path like strategy.entry_annualised")
    typ: Any = Config
    value: Any = config
    walked: list[str] = []
    for key in keys:
        typ = bare(typ)
        if walked == [] and key in NOT_REPLAYED:
            reason = NOT_REPLAYED[key] or f"{key} settings do not change a replay's figures"
            raise Invalid(where, f"{reason}: sweep a strategy, trading, fee or paper setting")
        if is_struct(typ):
            fields = struct_fields(typ)
            if key not in fields:
                raise Invalid(where, _unknown(path, config))
            value = None if value is None else getattr(value, _attr(typ, key))
            typ = fields[key]
        elif get_origin(typ) is dict:
            if value is not None and key not in value:
                listed = ", ".join(".".join([*walked, k]) for k in value) or "nothing"
                raise Invalid(where, f"the run config has no {'.'.join([*walked, key])} ({listed})")
            value = None if value is None else value[key]
            typ = get_args(typ)[1]
        else:
            raise Invalid(where, _unknown(path, config))
        walked.append(key)
    kind = _kind(typ)
    if kind is None:
        if is_struct(bare(typ)):
            what = "a section of settings"
        elif get_origin(bare(typ)) is list:
            what = "a list"
        elif value is None:
            what = describe_type(typ)
        else:
            what = describe_value(value)
        raise Invalid(
            where, f"not a numeric setting ({what}): only numbers, whole or decimal, can be swept"
        )
    return Setting(path, keys, kind)


def _unknown(path: str, config: Config | None) -> str:
    close = difflib.get_close_matches(path, numeric_paths(config or Config()), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else "; e.g. strategy.entry_annualised"
    return f"the run config has no setting {path}{hint}"
