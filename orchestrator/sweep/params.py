"""The swept settings: YAML paths into the run config, their values, and the sets tried.

A parameter is any numeric setting of the run config (a whole number, a number or
a decimal), named by its YAML path: ``strategy.entry_annualised``,
``trading.max_position_size_usd``, ``fees.spot_taker``, ``balances.USDT``. Each
value is written as the run config writes that setting (decimals quoted). Every
set tried is a whole run config, checked by the config's own rules: a value no
combination makes valid is an error at its place in the sweep file; a
combination the config refuses (``exit_annualised`` above ``entry_annualised``)
is skipped and said.
"""

from __future__ import annotations

import copy
import itertools
import random
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from orchestrator.config import Config
from orchestrator.sweep.paths import Setting, resolve
from orchestrator.sweep.spec import Values, values_of
from orchestrator.sweep.yamlfile import Invalid, join
from orchestrator.yaml_errors import describe_value

MAX_SETS = 10_000  # parameter sets in one sweep
MAX_CHECKED_CORNERS = 4096  # a random search's value checks, combinations of range ends
ParamValue = int | float | Decimal
ParamSet = tuple[ParamValue, ...]


def text(value: ParamValue) -> str:
    """A value as the sweep's files write it: a decimal's own digits, a float's repr."""
    return repr(value) if isinstance(value, float) else str(value)


def coerce(setting: Setting, value: Any, where: str, floats: dict[str, str]) -> ParamValue:
    """A value from the sweep file as the setting's type, exactly."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Invalid(where, f"expected a number, got {describe_value(value)}")
    if setting.kind == "decimal":
        if isinstance(value, float):
            written = floats.get(where, repr(value))
            raise Invalid(where, f'write decimals as quoted strings, e.g. "{written}"')
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise Invalid(where, f"{value!r} is not a decimal number") from None
        if not number.is_finite():
            raise Invalid(where, f"must be a finite number, got {value!r}")
        return number
    if isinstance(value, str):
        noun = "a whole number" if setting.kind == "int" else "a number"
        raise Invalid(
            where,
            f"{setting.path} is {noun}: expected one, got {describe_value(value)}; "
            "write the number without quotes",
        )
    if setting.kind == "int":
        if isinstance(value, float):
            raise Invalid(where, f"{setting.path} is a whole number, got {value!r}")
        return value
    return float(value)


class Axis(msgspec.Struct, frozen=True):
    """One parameter: its setting, its grid (or range) and where each came from."""

    setting: Setting
    values: list[ParamValue]  # the grid; for a random range, its two ends
    places: list[str]  # the YAML path of each value in the sweep file
    step: Decimal | None = None  # a random range's step; None: draw from the grid


def axes(
    parameters: dict[str, list[Any] | Values], config: Config, method: str, floats: dict[str, str]
) -> list[Axis]:
    found: list[Axis] = []
    for path, entry in parameters.items():
        setting = resolve(path, config)
        where = join("parameters", path)
        spec = values_of(entry)
        if spec.grid is not None:
            prefix = where if isinstance(entry, list) else f"{where}.grid"
            places = [f"{prefix}[{i}]" for i in range(len(spec.grid))]
            values = [coerce(setting, v, p, floats) for v, p in zip(spec.grid, places, strict=True)]
            found.append(Axis(setting, values, places))
            continue
        low = coerce(setting, spec.low, f"{where}.low", floats)
        high = coerce(setting, spec.high, f"{where}.high", floats)
        step = None
        if spec.step is not None:
            step_value = coerce(setting, spec.step, f"{where}.step", floats)
            step = Decimal(text(step_value))
        elif method == "grid":
            raise Invalid(
                where, "a range in a grid search needs a step (or use search: method: random)"
            )
        else:
            digits = min(
                Decimal(text(low)).as_tuple().exponent, Decimal(text(high)).as_tuple().exponent
            )
            assert isinstance(digits, int)
            step = Decimal(1) if setting.kind == "int" else Decimal(1).scaleb(min(digits, 0))
        if method == "grid":
            count = int((Decimal(text(high)) - Decimal(text(low))) / step) + 1
            if count > MAX_SETS:
                raise Invalid(where, f"the range holds {count:,} values; at most {MAX_SETS:,}")
            values = [_typed(setting, Decimal(text(low)) + k * step) for k in range(count)]
            found.append(Axis(setting, values, [where] * len(values)))
        else:
            found.append(Axis(setting, [low, high], [f"{where}.low", f"{where}.high"], step))
    return found


def _typed(setting: Setting, number: Decimal) -> ParamValue:
    if setting.kind == "decimal":
        return number
    if setting.kind == "int":
        return int(number)
    return float(number)


def apply(base: dict[str, Any], axes_: Sequence[Axis], values: ParamSet) -> Config:
    """The run config with these values; ValueError with the config's own message."""
    data = copy.copy(base)
    for axis, value in zip(axes_, values, strict=True):
        node = data
        for key in axis.setting.keys[:-1]:
            node[key] = copy.copy(node[key])
            node = node[key]
        node[axis.setting.keys[-1]] = str(value) if isinstance(value, Decimal) else value
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        message, _, at = str(exc).partition(" - at `$.")
        if at:
            section = at.rstrip("`")
            message = f"{section}.{message}" if ": " in message else f"{section}: {message}"
        raise ValueError(message) from None


class ParameterSets(msgspec.Struct, frozen=True):
    axes: list[Axis]
    sets: list[ParamSet]  # the sets tried, in order (their index is the trial's p)
    configs: list[Config]  # the run config of each set
    refused: list[str]  # combinations the run config refused, and why
    drawn: int  # random: sets drawn (duplicates and refusals included)

    @property
    def paths(self) -> list[str]:
        return [a.setting.path for a in self.axes]


def expand(
    parameters: dict[str, list[Any] | Values],
    config: Config,
    method: str,
    trials: int | None,
    seed: int,
    floats: dict[str, str],
) -> ParameterSets:
    """Every set to try, each a valid run config; Invalid naming the sweep file's place."""
    found = axes(parameters, config, method, floats)
    base = msgspec.to_builtins(config)
    if method == "grid":
        size = 1
        for axis in found:
            size *= len(axis.values)
        if size > MAX_SETS:
            raise Invalid(
                "parameters",
                f"the grid has {size:,} combinations; at most {MAX_SETS:,} (narrow it, or use "
                "search: method: random with trials:)",
            )
        combos = list(itertools.product(*(a.values for a in found)))
        sets, configs, refused = _check(found, combos, base)
        return ParameterSets(found, sets, configs, refused, len(combos))
    # Random: first the values themselves (range ends and grid values), then draws.
    corners = 1
    for axis in found:
        corners *= len(axis.values)
    if corners <= MAX_CHECKED_CORNERS:
        _check(found, list(itertools.product(*(a.values for a in found))), base)
    assert trials is not None
    rng = random.Random(seed)
    seen: set[tuple[str, ...]] = set()
    sets, configs, refused = [], [], []
    drawn = 0
    while len(sets) < trials and drawn < trials * 100:
        drawn += 1
        combo = tuple(_draw(rng, axis) for axis in found)
        key = tuple(text(v) for v in combo)
        if key in seen:
            continue
        seen.add(key)
        try:
            configs.append(apply(base, found, combo))
        except ValueError as exc:
            refused.append(f"{_describe(found, combo)}: {exc}")
            continue
        sets.append(combo)
    if not sets:
        raise Invalid("parameters", f"no set drawn makes a valid run config: {refused[0]}")
    return ParameterSets(found, sets, configs, refused, drawn)


def _draw(rng: random.Random, axis: Axis) -> ParamValue:
    if axis.step is None:
        return axis.values[rng.randrange(len(axis.values))]
    low, high = (Decimal(text(v)) for v in axis.values)
    count = int((high - low) / axis.step)
    return _typed(axis.setting, low + rng.randrange(count + 1) * axis.step)


def _check(
    found: list[Axis], combos: list[ParamSet], base: dict[str, Any]
) -> tuple[list[ParamSet], list[Config], list[str]]:
    """The combinations the run config accepts. A value that no combination makes valid
    is an error at its place in the sweep file, with the config's reason."""
    sets: list[ParamSet] = []
    configs: list[Config] = []
    refused: list[str] = []
    first_refusal: dict[tuple[int, int], str] = {}
    valid_values: set[tuple[int, int]] = set()
    for combo in combos:
        positions = [
            (i, _index(axis.values, v))
            for i, (axis, v) in enumerate(zip(found, combo, strict=True))
        ]
        try:
            config = apply(base, found, combo)
        except ValueError as exc:
            refused.append(f"{_describe(found, combo)}: {exc}")
            for position in positions:
                first_refusal.setdefault(position, str(exc))
            continue
        valid_values.update(positions)
        sets.append(combo)
        configs.append(config)
    for i, axis in enumerate(found):
        for j, value in enumerate(axis.values):
            if (i, j) not in valid_values:
                raise Invalid(
                    axis.places[j],
                    f"the run config refuses {text(value)}: {first_refusal[(i, j)]}",
                )
    return sets, configs, refused


def _index(values: list[ParamValue], value: ParamValue) -> int:
    for j, v in enumerate(values):
        if type(v) is type(value) and v == value:
            return j
    raise ValueError(value)  # pragma: no cover - combinations come from the values


def _describe(found: list[Axis], combo: ParamSet) -> str:
    return ", ".join(f"{a.setting.path}={text(v)}" for a, v in zip(found, combo, strict=True))


def describe(paths: Sequence[str], combo: Sequence[ParamValue | str]) -> str:
    """``entry_annualised=0.05, exit_annualised=0.02``: the last part of each path."""
    return ", ".join(
        f"{p.rsplit('.', 1)[-1]}={v if isinstance(v, str) else text(v)}"
        for p, v in zip(paths, combo, strict=True)
    )
