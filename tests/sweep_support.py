"""Sweep test parts: a small sweep on the recorded data, written into a test's folder."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.support import data_file

ROOT = Path(__file__).resolve().parents[1]
DATA = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").parent

# Four parameter sets, walk-forward over the first half of 2024: 2-month train,
# 1-month test windows (March to June) and the next: 20 train trials, 4 tests and
# 4 base-config trials on the test windows. About a second in one process.
SMALL = """\
base: config.yaml
parameters:
  strategy.entry_annualised: ["0.05", "0.10"]
  strategy.funding_window: [3, 9]
walk_forward:
  train_months: 2
  test_months: 1
  end: "2024-07-01"
objective:
  metric: excess_return
output: sweeps
"""
SMALL_TRIALS = 28


def write_sweep(folder: Path, sweep: str = SMALL, *, data: Path = DATA) -> Path:
    """The sweep file and its base config (the repository's config.yaml reading ``data``)."""
    config = (ROOT / "config.yaml").read_text(encoding="utf-8")
    config = config.replace("dir: ../shared/data", f"dir: {data}")
    assert str(data) in config
    (folder / "config.yaml").write_text(config, encoding="utf-8")
    path = folder / "sweep.yaml"
    path.write_text(textwrap.dedent(sweep), encoding="utf-8")
    return path


def sweep_folder(folder: Path) -> Path:
    (found,) = (folder / "sweeps").iterdir()
    return found


def trials(folder: Path) -> list[dict[str, str]]:
    with (folder / "trials.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def local_cluster(workers: int = 2) -> Any:
    """A real Dask cluster of ``workers`` processes, as the sweep starts its own (127.0.0.1
    only, no dashboard). Use it in a ``with``: it stops its processes at the end."""
    from orchestrator.sweep.engine import local_cluster as sweep_cluster

    return sweep_cluster(workers)


def orchestrator(*args: str, cwd: Path, new_session: bool = False) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "ORCHESTRATOR_DATA"}
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
    )


def run_cli(*args: str) -> tuple[int, str, str]:
    """``orchestrator ARGS`` in this process: (exit code, stdout, stderr)."""
    import contextlib

    from orchestrator.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()
