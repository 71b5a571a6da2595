"""The sweep file: one msgspec schema (shipped as sweep.schema.json), read from YAML.

Like the run config: unknown keys are refused with a suggestion, decimals are
quoted strings, and every error names the file and the YAML path. This module
checks the file's own shape and ranges; what depends on the run config (the
parameters' paths and values) and on the data (the windows) is checked by
``orchestrator.sweep.plan`` before anything starts.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from orchestrator.sweep.paths import resolve
from orchestrator.sweep.yamlfile import Document, Invalid, SweepError, convert, join, read_yaml
from orchestrator.yaml_errors import describe_value, struct_fields, unknown_key

SCHEMA_FILE = "sweep.schema.json"
MAX_MONTHS = 240  # twenty years
MAX_RANDOM_TRIALS = 10_000
MAX_WORKERS = 512
SCHEDULER = r"^(tcp|tls|inproc|ucx|ws|wss)://[^\s/]+$"

Number = int | float | str  # str: a decimal, quoted as in the run config
Value = Annotated[
    Number,
    msgspec.Meta(
        description="a whole number, a number, or a decimal as a quoted string "
        '(as the run config writes that setting: "0.05", 9, 10.0)'
    ),
]
Objectives = Literal["excess_return", "return", "annualised_return", "net_pnl"]


class Values(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One setting's values: a grid, or a range from low to high (by step).

    In a grid search a range needs a step and stands for low, low + step, ...
    up to high; in a random search a range is drawn from uniformly, on the step
    (default: the finest digit written in low and high)."""

    grid: list[Value] | None = None
    low: Value | None = None
    high: Value | None = None
    step: Value | None = None

    def __post_init__(self) -> None:
        if self.grid is not None:
            if self.low is not None or self.high is not None or self.step is not None:
                raise ValueError("grid: give either a grid or a range (low, high), not both")
            if not self.grid:
                raise ValueError("grid: empty: give at least one value")
            seen: set[str] = set()
            for i, value in enumerate(self.grid):
                if isinstance(value, bool):
                    raise ValueError(f"grid[{i}]: expected a number, got {describe_value(value)}")
                if repr(value) in seen:
                    raise ValueError(f"grid[{i}]: {value!r} is listed twice")
                seen.add(repr(value))
            return
        if self.low is None or self.high is None:
            missing = "low" if self.low is None else "high"
            raise ValueError(f"{missing}: required for a range (or give a grid: [...])")
        for name in ("low", "high", "step"):
            value = getattr(self, name)
            if isinstance(value, bool):
                raise ValueError(f"{name}: expected a number, got {describe_value(value)}")
        low, high = _number("low", self.low), _number("high", self.high)
        if not low < high:
            raise ValueError(f"high: {self.high!r} must be above low {self.low!r}")
        if self.step is not None and _number("step", self.step) <= 0:
            raise ValueError(f"step: must be positive, got {self.step!r}")


def _number(name: str, value: Number) -> Decimal:
    """The exact value of a number as written (floats by their shortest text)."""
    try:
        number = Decimal(value) if isinstance(value, int | str) else Decimal(repr(value))
    except InvalidOperation:
        raise ValueError(f"{name}: {value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{name}: must be a finite number, got {value!r}")
    return number


class Search(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every combination of the values (grid), or ``trials`` sets drawn at random."""

    method: Literal["grid", "random"] = "grid"
    trials: int | None = None  # random: how many parameter sets to draw
    seed: int = 0  # random: the same seed draws the same sets

    def __post_init__(self) -> None:
        if self.method == "random":
            if self.trials is None:
                raise ValueError("trials: required for a random search (how many sets to draw)")
            if not 1 <= self.trials <= MAX_RANDOM_TRIALS:
                raise ValueError(
                    f"trials: must be between 1 and {MAX_RANDOM_TRIALS:,}, got {self.trials}"
                )
        elif self.trials is not None:
            raise ValueError("trials: only for method: random (a grid runs every combination)")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed: must be a whole number from 0 to 2**63 - 1, got {self.seed}")


class Span(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A window of market time: start inclusive, end exclusive (ISO dates or times, UTC)."""

    start: str
    end: str


class Step(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One walk-forward step given explicitly: the train window, then a later test window."""

    train: Span
    test: Span


class WalkForward(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Train on ``train_months``, test on the following ``test_months``, move on by
    ``step_months``; the train window rolls (keeps its length) or is anchored at the
    start. Or ``windows``: the steps listed explicitly."""

    train_months: int | None = None
    test_months: int | None = None
    step_months: int | None = None  # default: test_months (test windows follow each other)
    window: Literal["rolling", "anchored"] = "rolling"
    start: str | None = None  # default: where the data starts
    end: str | None = None  # default: where the data ends
    windows: list[Step] | None = None

    def __post_init__(self) -> None:
        if self.windows is not None:
            for name in ("train_months", "test_months", "step_months", "start", "end"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: give either windows or the months, not both")
            if not self.windows:
                raise ValueError("windows: empty: list at least one step")
            return
        for name in ("train_months", "test_months"):
            if getattr(self, name) is None:
                raise ValueError(f"{name}: required (or list the steps under windows:)")
        for name in ("train_months", "test_months", "step_months"):
            months = getattr(self, name)
            if months is not None and not 1 <= months <= MAX_MONTHS:
                raise ValueError(f"{name}: must be between 1 and {MAX_MONTHS} months, got {months}")
        assert self.test_months is not None
        if self.step_months is not None and self.step_months < self.test_months:
            raise ValueError(
                f"step_months: {self.step_months} is shorter than test_months "
                f"{self.test_months}: the test windows would overlap and count months twice"
            )

    @property
    def step(self) -> int:
        step = self.step_months or self.test_months
        assert step is not None
        return step


class Objective(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the search maximises on each train window, and the drawdown it may not exceed.

    - excess_return: the net return minus the always-hedged baseline's on the same window
    - return: the net return; annualised_return: the same, a year's worth
    - net_pnl: in the quote currency"""

    metric: Objectives = "excess_return"
    max_drawdown: Decimal | None = None  # a fraction of the peak, e.g. "0.02"

    def __post_init__(self) -> None:
        limit = self.max_drawdown
        if limit is not None and (not limit.is_finite() or not 0 < limit <= 1):
            raise ValueError(f"max_drawdown: must be a fraction in (0, 1], got {limit}")


class Sweep(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A walk-forward parameter sweep over a run config. Only out-of-sample results are
    reported: each set is chosen on a train window and judged on the test window after it."""

    base: str  # the run config swept over, relative to this file
    parameters: dict[str, list[Value] | Values]  # YAML path in the run config: its values
    walk_forward: WalkForward
    search: Search = Search()
    objective: Objective = Objective()
    # Where the trials run: null, a Dask cluster started here (one worker process per
    # core); or an existing Dask scheduler, e.g. tcp://10.0.0.5:8786.
    scheduler: str | None = None
    workers: int | None = None  # the local cluster's worker processes (default: cores)
    # false: each worker reads the data from the base config's data.dir (a path the
    # workers share); true: this process reads it and sends it to every worker once.
    send_data: bool = False
    connect_timeout_seconds: float = 10.0
    output: str = "sweeps"  # relative to this file: <output>/<sweep id>/

    def __post_init__(self) -> None:
        if not self.base.strip():
            raise ValueError("base: must name a run config, e.g. config.yaml")
        if not self.parameters:
            raise ValueError("parameters: empty: name at least one setting to vary")
        if self.scheduler is not None and not re.fullmatch(SCHEDULER, self.scheduler):
            raise ValueError(
                f"scheduler: {self.scheduler!r} is not a Dask scheduler address like "
                "'tcp://127.0.0.1:8786' (or null for a local cluster)"
            )
        if self.workers is not None and not 1 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"workers: must be between 1 and {MAX_WORKERS}, got {self.workers}")
        if not 0.1 <= self.connect_timeout_seconds <= 300:
            raise ValueError(
                f"connect_timeout_seconds: must be between 0.1 and 300, got "
                f"{self.connect_timeout_seconds:g}"
            )
        if not self.output.strip():
            raise ValueError("output: must not be empty (write . for this file's folder)")


def values_of(entry: list[Any] | Values) -> Values:
    """The shorthand ``path: [a, b, c]`` is a grid."""
    return Values(grid=list(entry)) if isinstance(entry, list) else entry


class LoadedSweep(msgspec.Struct, frozen=True):
    sweep: Sweep
    path: Path  # absolute: relative paths resolve against its folder
    text: str  # the file as read
    float_text: dict[str, str]  # "parameters.<path>.grid[i]" -> the float as written

    def base_path(self) -> Path:
        return (self.path.parent / self.sweep.base).resolve()

    def output_dir(self) -> Path:
        return (self.path.parent / self.sweep.output).resolve()


def load_sweep(path: Path) -> LoadedSweep:
    """Read and check a sweep file's shape; SweepError naming the YAML path otherwise."""
    try:
        document = read_yaml(path)
        sweep, floats = _decode(document)
    except Invalid as exc:
        raise SweepError(f"{path}: {exc}") from None
    return LoadedSweep(sweep, path.resolve(), path.read_text("utf-8-sig"), floats)


def _decode(document: Document) -> tuple[Sweep, dict[str, str]]:
    data = document.data
    if data is None:
        raise Invalid("", "the file holds no settings; expected base, parameters, walk_forward")
    if not isinstance(data, dict):
        raise Invalid("", f"the top level must be a mapping, found {describe_value(data)}")
    fields = struct_fields(Sweep)
    for key in data:
        if key not in fields:
            raise Invalid(join("", key), unknown_key(key, list(fields)))
    objective = data.get("objective")
    if isinstance(objective, dict) and isinstance(objective.get("max_drawdown"), float):
        written = document.float_text.get(id(objective["max_drawdown"]), "")
        raise Invalid(
            "objective.max_drawdown", f'write decimals as quoted strings, e.g. "{written}"'
        )
    parameters = data.get("parameters")
    floats: dict[str, str] = {}
    if isinstance(parameters, dict):
        # Each entry on its own: msgspec would print a mapping's key as [...].
        checked: dict[str, Any] = {}
        for key, entry in parameters.items():
            where = join("parameters", key)
            if not isinstance(key, str):
                raise Invalid(where, f"expected a YAML path as text, got {describe_value(key)}")
            resolve(key)  # the path first: what it names decides what its values must be
            value = convert(entry, list[Value] | Values, where)
            if isinstance(value, list):
                _check_list(value, where)
            checked[key] = value
            _float_texts(entry, where, document.float_text, floats)
        sweep = _convert_top(data, checked)
    else:
        sweep = convert(data, Sweep, "")
    return sweep, floats


def _check_list(values: list[Any], where: str) -> None:
    """The shorthand ``path: [a, b]``: what Values checks of a grid, at the list's own places."""
    if not values:
        raise Invalid(where, "empty: give at least one value")
    seen: set[str] = set()
    for i, value in enumerate(values):
        if repr(value) in seen:
            raise Invalid(f"{where}[{i}]", f"{value!r} is listed twice")
        seen.add(repr(value))


def _convert_top(data: dict[str, Any], parameters: dict[str, Any]) -> Sweep:
    # Converted with a placeholder first (so an empty mapping is refused only when it
    # is empty in the file), then with the entries already checked.
    stand_in = {**data, "parameters": {"_": []}} if parameters else data
    sweep: Sweep = convert(stand_in, Sweep, "")
    return msgspec.structs.replace(sweep, parameters=parameters)


def _float_texts(entry: Any, where: str, texts: dict[int, str], out: dict[str, str]) -> None:
    if isinstance(entry, list):
        items = [(f"{where}[{i}]", v) for i, v in enumerate(entry)]
    elif isinstance(entry, dict):
        items = [(f"{where}.grid[{i}]", v) for i, v in enumerate(entry.get("grid") or [])] + [
            (f"{where}.{k}", entry.get(k)) for k in ("low", "high", "step")
        ]
    else:
        return
    for name, value in items:
        if isinstance(value, float):
            out[name] = texts.get(id(value), repr(value))


def sweep_schema() -> dict[str, Any]:
    """The JSON Schema of the sweep file (draft 2020-12), for editors."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "funding-orchestrator parameter sweep",
        "description": (
            "sweep.yaml of funding-orchestrator: walk-forward parameter sweeps over a run "
            "config. Decimals are quoted strings."
        ),
        **msgspec.json.schema(Sweep),
    }


def write_schema(path: Path) -> None:
    path.write_text(json.dumps(sweep_schema(), indent=2, ensure_ascii=False) + "\n", "utf-8")
