"""Bad sweep files: each a clear error naming the file and the YAML path, exit 2, and
nothing started (no sweep folder, no cluster)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from orchestrator.sweep.spec import sweep_schema, write_schema
from tests.sweep_support import ROOT, SMALL, run_cli, write_sweep


def refused(tmp_path: Path, sweep: str, *extra: str) -> str:
    path = write_sweep(tmp_path, sweep)
    code, out, err = run_cli("sweep", str(path), "--in-process", *extra)
    assert code == 2, (out, err)
    assert err.startswith(f"error: {path}") or err.startswith("error: --"), err
    assert "Traceback" not in err
    assert not (tmp_path / "sweeps").exists()  # nothing started, nothing written
    return err


def with_(old: str, new: str) -> str:
    assert old in SMALL
    return SMALL.replace(old, new)


CASES = {
    "malformed YAML": (
        with_("  test_months: 1", "  test_months: [1"),
        "line",
    ),
    "a tab": (with_("  test_months: 1", "\ttest_months: 1"), "tab"),
    "a key twice": (
        with_("  test_months: 1", "  test_months: 1\n  test_months: 2"),
        "appears twice",
    ),
    "an unknown top-level key": (
        SMALL + "wokers: 2\n",
        "wokers: unknown key; did you mean 'workers'",
    ),
    "an unknown key in a section": (
        with_("  test_months: 1", "  tset_months: 1"),
        "walk_forward.tset_months: unknown key; did you mean 'test_months'",
    ),
    "months as text": (
        with_("  train_months: 2", '  train_months: "2"'),
        "walk_forward.train_months: expected a whole number",
    ),
    "zero months": (
        with_("  train_months: 2", "  train_months: 0"),
        "walk_forward.train_months: must be between 1 and 240 months, got 0",
    ),
    "negative months": (
        with_("  test_months: 1", "  test_months: -3"),
        "walk_forward.test_months: must be between 1 and 240 months, got -3",
    ),
    "a step shorter than the test": (
        with_("  test_months: 1", "  test_months: 2\n  step_months: 1"),
        "walk_forward.step_months: 1 is shorter than test_months 2",
    ),
    "no walk_forward": (
        SMALL.split("walk_forward:")[0] + "output: sweeps\n",
        "walk_forward: required, but missing",
    ),
    "an unknown objective": (
        with_("metric: excess_return", "metric: sharpe"),
        "objective.metric: 'sharpe' is not one of 'excess_return' or 'return'",
    ),
    "a float drawdown limit": (
        with_("metric: excess_return", "metric: excess_return\n  max_drawdown: 0.05"),
        'objective.max_drawdown: write decimals as quoted strings, e.g. "0.05"',
    ),
    "a drawdown limit above 1": (
        with_("metric: excess_return", 'metric: excess_return\n  max_drawdown: "1.5"'),
        "objective.max_drawdown: must be a fraction in (0, 1], got 1.5",
    ),
    "an unknown parameter path": (
        with_("strategy.funding_window:", "strategy.funding_windw:"),
        "parameters.strategy.funding_windw: the run config has no setting "
        "strategy.funding_windw; did you mean 'strategy.funding_window'?",
    ),
    "a non-numeric parameter path": (
        with_("strategy.funding_window: [3, 9]", "tracing.enabled: [true, false]"),
        "parameters.tracing.enabled: tracing settings do not change",
    ),
    "a section as a parameter": (
        with_("strategy.funding_window: [3, 9]", "strategy: [1, 2]"),
        "parameters.strategy: not a numeric setting (a section of settings)",
    ),
    "a list setting": (
        with_("strategy.funding_window: [3, 9]", "pairs: [1, 2]"),
        "parameters.pairs: not a numeric setting",
    ),
    "an empty grid": (
        with_("strategy.funding_window: [3, 9]", "strategy.funding_window: []"),
        "parameters.strategy.funding_window: empty",
    ),
    "an empty grid, long form": (
        with_("strategy.funding_window: [3, 9]", "strategy.funding_window: {grid: []}"),
        "parameters.strategy.funding_window.grid: empty",
    ),
    "no parameters": (
        SMALL.replace('  strategy.entry_annualised: ["0.05", "0.10"]\n', "").replace(
            "  strategy.funding_window: [3, 9]\n", "  {}\n"
        ),
        "parameters",
    ),
    "a float for a decimal": (
        with_('["0.05", "0.10"]', '["0.05", 0.10]'),
        'parameters.strategy.entry_annualised[1]: write decimals as quoted strings, e.g. "0.10"',
    ),
    "text for a whole number": (
        with_("[3, 9]", '[3, "9"]'),
        "parameters.strategy.funding_window[1]: strategy.funding_window is a whole number",
    ),
    "a fraction for a whole number": (
        with_("[3, 9]", "[3, 9.5]"),
        "parameters.strategy.funding_window[1]: strategy.funding_window is a whole number, got 9.5",
    ),
    "a value the run config refuses": (
        with_("[3, 9]", "[3, 0]"),
        "parameters.strategy.funding_window[1]: the run config refuses 0: "
        "strategy.funding_window: must be at least 1, got 0",
    ),
    "a decimal the run config refuses": (
        with_('["0.05", "0.10"]', '["0.05", "11"]'),
        "parameters.strategy.entry_annualised[1]: the run config refuses 11",
    ),
    "a value twice": (
        with_("[3, 9]", "{grid: [3, 3]}"),
        "parameters.strategy.funding_window.grid[1]: 3 is listed twice",
    ),
    "a value twice, short form": (
        with_("[3, 9]", "[3, 3]"),
        "parameters.strategy.funding_window[1]: 3 is listed twice",
    ),
    "a range without a step in a grid search": (
        with_("[3, 9]", "{low: 3, high: 9}"),
        "parameters.strategy.funding_window: a range in a grid search needs a step",
    ),
    "a range upside down": (
        with_("[3, 9]", "{low: 9, high: 3}"),
        "parameters.strategy.funding_window.high: 3 must be above low 9",
    ),
    "random search without trials": (
        SMALL + "search: {method: random}\n",
        "search.trials: required for a random search",
    ),
    "trials in a grid search": (
        SMALL + "search: {trials: 5}\n",
        "search.trials: only for method: random",
    ),
    "windows longer than the data": (
        with_("  train_months: 2", "  train_months: 24").replace('  end: "2024-07-01"\n', ""),
        "walk_forward: train_months 24 + test_months 1 = 25 months do not fit in the data",
    ),
    "a start before the data": (
        with_("  train_months: 2", '  train_months: 2\n  start: "2023-01-01"'),
        "walk_forward.start: 2023-01-01 is before the data begins (2024-01-01)",
    ),
    "an end after the data": (
        with_('end: "2024-07-01"', 'end: "2026-01-01"'),
        "walk_forward.end: 2026-01-01 is after the data ends",
    ),
    "a test window overlapping its train window": (
        SMALL.split("walk_forward:")[0]
        + "walk_forward:\n  windows:\n"
        + "    - {train: {start: 2024-01-01, end: 2024-04-01}, "
        + "test: {start: 2024-04-01, end: 2024-05-01}}\n"
        + "    - {train: {start: 2024-02-01, end: 2024-06-01}, "
        + "test: {start: 2024-05-15, end: 2024-07-01}}\n",
        "walk_forward.windows[1].test.start: 2024-05-15 is before its train window ends "
        "(2024-06-01): the test window must not overlap the train window",
    ),
    "windows and months both": (
        with_("  train_months: 2", "  windows: []\n  train_months: 2"),
        "walk_forward.train_months: give either windows or the months, not both",
    ),
    "not a date": (
        with_('end: "2024-07-01"', 'end: "July 2024"'),
        "walk_forward.end: 'July 2024' is not an ISO date",
    ),
    "a scheduler that is no address": (
        SMALL + "scheduler: 127.0.0.1:8786\n",
        "scheduler: '127.0.0.1:8786' is not a Dask scheduler address like 'tcp://127.0.0.1:8786'",
    ),
    "zero workers": (SMALL + "workers: 0\n", "workers: must be between 1 and 512, got 0"),
    "a missing base config": (
        with_("base: config.yaml", "base: nowhere.yaml"),
        "base: no run config at",
    ),
    "anchors": (
        with_("  train_months: 2", "  train_months: &two 2\n  step_months: *two"),
        "anchors and aliases",
    ),
    "a list at the top": ("- 1\n- 2\n", "the top level must be a mapping"),
    "an empty file": ("# nothing\n", "the file holds no settings"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_sweep_file_is_refused_at_its_yaml_path(tmp_path: Path, case: str) -> None:
    sweep, message = CASES[case]
    err = refused(tmp_path, sweep)
    assert message in err, err


def test_a_bad_base_config_is_the_run_configs_own_error(tmp_path: Path) -> None:
    path = write_sweep(tmp_path)
    config = (tmp_path / "config.yaml").read_text().replace('slippage: "0.0005"', "slippage: 0.5")
    (tmp_path / "config.yaml").write_text(config)
    code, _, err = run_cli("sweep", str(path), "--in-process")
    assert code == 2
    assert "config.yaml: paper.slippage: write decimals as quoted strings" in err
    assert not (tmp_path / "sweeps").exists()


def test_an_unreachable_scheduler_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sweep = SMALL + "connect_timeout_seconds: 0.5\n"
    path = write_sweep(tmp_path, sweep)
    code, _, err = run_cli("sweep", str(path), "--scheduler", f"tcp://127.0.0.1:{port}")
    assert code == 2, err
    assert f"scheduler: no Dask scheduler at tcp://127.0.0.1:{port} within 0.5 s" in err
    assert "nothing was started" in err
    assert not (tmp_path / "sweeps").exists()


def test_a_bad_command_line_scheduler_or_worker_count_is_refused(tmp_path: Path) -> None:
    assert "--scheduler: 'localhost' is not a Dask scheduler address" in refused(
        tmp_path, SMALL, "--scheduler", "localhost"
    )
    assert "--workers: must be between 1 and 512, got 0" in refused(
        tmp_path, SMALL, "--workers", "0"
    )


def test_resume_of_a_folder_that_is_no_sweep_is_refused(tmp_path: Path) -> None:
    code, _, err = run_cli("sweep", "--resume", str(tmp_path))
    assert code == 2
    assert "not a sweep folder" in err
    assert list(tmp_path.iterdir()) == []  # nothing written to it


def test_the_shipped_schema_is_the_generated_one(tmp_path: Path) -> None:
    generated = tmp_path / "sweep.schema.json"
    write_schema(generated)
    shipped = (ROOT / "sweep.schema.json").read_text(encoding="utf-8")
    assert generated.read_text(encoding="utf-8") == shipped, (
        "out of date: run `orchestrator sweep --write-schema sweep.schema.json`"
    )
    schema = sweep_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    code, out, _ = run_cli("sweep", "--schema")
    assert code == 0
    assert json.loads(out) == json.loads(shipped)


def test_the_shipped_sweep_file_is_valid(tmp_path: Path) -> None:
    from orchestrator.sweep.plan import make_plan

    plan = make_plan(ROOT / "sweep.yaml")
    assert plan.sets.paths[0] == "strategy.entry_annualised"
    assert len(plan.evaluated) >= 4
    assert plan.steps[-1].name == "next"
