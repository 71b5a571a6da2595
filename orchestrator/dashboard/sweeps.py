"""A sweep's folder as the dashboard shows it: the stitched out-of-sample curve of the
search, the base config and always hedged (from curves.jsonl, stitched as the sweep
stitches them: ``sweep.report.stitch``), the verdict and the out-of-sample figures
(summary.json, as written), the steps, and the objective of every parameter set on
every train window (trials.csv) as a heatmap with its numbers."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from orchestrator.dashboard.folders import NotARun, valid_name
from orchestrator.dashboard.money import Series
from orchestrator.money import exact
from orchestrator.sweep.report import stitch

SUMMARY, CURVES, TRIALS = "summary.json", "curves.jsonl", "trials.csv"
SEARCH, BASE, HEDGED = "search", "base config", "always hedged"


@dataclass
class Sweep:
    name: str
    summary: dict[str, Any]
    curves: dict[str, Series]  # search, base config, always hedged: stitched
    stitched_return: Decimal | None  # of the search's stitched curve
    objective: dict[tuple[str, int], Decimal | None] = field(default_factory=dict)
    sets: dict[int, str] = field(default_factory=dict)  # set -> its parameters, as text
    steps: list[str] = field(default_factory=list)
    rows: list[dict[str, str]] = field(default_factory=list)  # trials.csv, in its order
    train_trials: dict[tuple[str, int], str] = field(default_factory=dict)  # -> trial id


def sweep_names(sweeps_dir: Path) -> list[str]:
    if not sweeps_dir.is_dir():
        return []
    found = [p.name for p in sweeps_dir.iterdir() if valid_name(p.name) and (p / SUMMARY).is_file()]
    return sorted(found, reverse=True)


def summary_of(folder: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_sweep(sweeps_dir: Path, name: str) -> Sweep:
    folder = sweeps_dir / name
    summary = summary_of(folder) if valid_name(name) else None
    if summary is None:
        raise NotARun(name)
    rows = _trials(folder)
    start = Decimal(next((r["starting_balance"] for r in rows if r.get("starting_balance")), "0"))
    legs: dict[str, list[tuple[list[tuple[int, Decimal]], Decimal]]] = {
        SEARCH: [], BASE: [], HEDGED: [],
    }  # fmt: skip
    balances = {
        r["trial"]: Decimal(r["starting_balance"]) for r in rows if r.get("starting_balance")
    }
    for line in _curves(folder):
        trial = str(line.get("trial", ""))
        balance = balances.get(trial)
        if balance is None:
            continue
        equity = [(int(t), Decimal(v)) for t, v in line.get("equity", [])]
        if trial.endswith("-test"):
            legs[SEARCH].append((equity, balance))
            baseline = [(int(t), Decimal(v)) for t, v in line.get("baseline", [])]
            legs[HEDGED].append((baseline, balance))
        elif trial.endswith("-base"):
            legs[BASE].append((equity, balance))
    curves = {}
    for name_, windows in legs.items():
        windows.sort(key=lambda w: w[0][0][0] if w[0] else 0)  # in time order
        points = stitch(windows, start)
        curves[name_] = Series([t for t, _ in points], [v for _, v in points])
    stitched_return = None
    if curves[SEARCH].values and start:
        with exact():
            stitched_return = curves[SEARCH].values[-1] / start - 1
    sweep = Sweep(name, summary, curves, stitched_return, rows=rows)
    for r in rows:
        if r.get("kind") != "train":
            continue
        step, number = r.get("step", ""), int(r.get("set") or 0)
        sweep.objective[(step, number)] = _decimal(r.get("objective"))
        sweep.train_trials[(step, number)] = r.get("trial", "")
        if step not in sweep.steps:
            sweep.steps.append(step)
        if number not in sweep.sets:
            params = [p for p in summary.get("parameters", []) if p in r]
            sweep.sets[number] = ", ".join(f"{p}={r[p]}" for p in params)
    return sweep


def _trials(folder: Path) -> list[dict[str, str]]:
    try:
        with (folder / TRIALS).open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def _curves(folder: Path) -> list[dict[str, Any]]:
    found = []
    try:
        lines = (folder / CURVES).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for text in lines:
        try:
            value = json.loads(text)
        except ValueError:
            continue  # a line cut by a stop: the sweep's resume writes it again
        if isinstance(value, dict):
            found.append(value)
    return found


def _decimal(text: str | None) -> Decimal | None:
    try:
        value = Decimal(text or "")
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


@dataclass
class Trial:
    """One trial as the sweep recorded it: its row of trials.csv (every figure as exact
    decimal text) and, for a test window (search or base config), its equity curve and
    its baseline's from curves.jsonl (a train trial's curve is not kept)."""

    sweep: str
    row: dict[str, str]
    parameters: list[str]  # the swept settings' names (columns of the row)
    pairs: list[str]
    equity: list[tuple[int, Decimal]] | None
    baseline: list[tuple[int, Decimal]] | None


def read_trial(sweeps_dir: Path, name: str, trial: str) -> Trial:
    folder = sweeps_dir / name
    summary = summary_of(folder) if valid_name(name) else None
    if summary is None:
        raise NotARun(name)
    row = next((r for r in _trials(folder) if r.get("trial") == trial), None)
    if row is None:
        raise NotARun(f"{name}/{trial}")
    parameters = [str(p) for p in summary.get("parameters", []) if p in row]
    # the pairs' columns: "BTCUSDT.net_pnl" (the baseline's are "baseline.BTCUSDT....")
    pairs = [c.split(".")[0] for c in row if c.endswith(".net_pnl") and c.count(".") == 1]
    pairs = [p for p in pairs if p != "total"]
    line = next((c for c in _curves(folder) if c.get("trial") == trial), None)
    equity = baseline = None
    if line is not None:
        equity = [(int(t), Decimal(v)) for t, v in line.get("equity", [])]
        baseline = [(int(t), Decimal(v)) for t, v in line.get("baseline", [])]
    return Trial(name, row, parameters, pairs, equity, baseline)
