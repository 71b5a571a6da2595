"""`orchestrator sweep` as a user runs it: a subprocess that starts its own Dask cluster,
stopped with Ctrl-C at the terminal (the whole process group), then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sweep_support import ROOT, SMALL, orchestrator, sweep_folder, trials, write_sweep

# 16 sets, all the data: 6-month train and 3-month test windows (5 steps and the
# next): 96 train trials and 10 on the test windows, a few seconds on 2 workers.
MEDIUM = (
    SMALL.replace('["0.05", "0.10"]', '["0.02", "0.05", "0.10", "0.20"]')
    .replace("[3, 9]", "[1, 3, 9, 21]")
    .replace("train_months: 2", "train_months: 6")
    .replace("test_months: 1", "test_months: 3")
    .replace('  end: "2024-07-01"\n', "")
)
MEDIUM_TRIALS = 106


def group_gone(pgid: int) -> bool:
    """No process is left in the command's process group (its cluster's workers were in it)."""
    for _ in range(100):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_the_default_engine_is_a_local_cluster_started_and_stopped_by_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_sweep(tmp_path)
    temporary = tmp_path / "tmp"  # the command's temporary folder, to be left empty
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    proc = orchestrator("sweep", "sweep.yaml", "--workers", "2", cwd=tmp_path, new_session=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert group_gone(proc.pid)  # every worker process it started has stopped
    assert "trials 28/28 done" in err  # progress: done, running, failed, time left
    assert "Traceback" not in err
    assert "info:" not in err  # Dask's chatter stays out of the way
    folder = sweep_folder(tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["engine"] == "a local Dask cluster of 2 worker processes"
    assert summary["verdict"] in out
    assert f"orchestrator run {folder / 'best.yaml'}" in out
    assert len(trials(folder)) == 28
    # Dask's scratch folder (its lock files) went with the cluster.
    assert sorted(temporary.rglob("*")) == []


def test_ctrl_c_stops_scheduling_writes_what_finished_and_resume_skips_it(
    tmp_path: Path,
) -> None:
    write_sweep(tmp_path, MEDIUM)
    proc = orchestrator("sweep", "sweep.yaml", "--workers", "2", cwd=tmp_path, new_session=True)
    csv_file = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait for a few trials to be recorded
        found = list((tmp_path / "sweeps").glob("*/trials.csv"))
        if found and found[0].read_text().count("\n") >= 4:
            csv_file = found[0]
            break
        time.sleep(0.05)
    assert csv_file is not None, proc.communicate(timeout=60)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C at the terminal: the whole group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert group_gone(proc.pid)
    assert "Traceback" not in err
    assert "carry on with: orchestrator sweep --resume" in err
    folder = sweep_folder(tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["complete"] is False
    done = summary["trials"]["done"]
    assert 3 <= done < MEDIUM_TRIALS
    assert summary["trials"]["failed"] == 0  # the running trials finished, or were dropped
    first = trials(folder)
    assert len(first) == done

    proc = orchestrator("sweep", "--resume", str(folder), "--workers", "2", cwd=tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"({done} recorded before this session)" in out
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["complete"] is True
    assert summary["interrupted"] is False
    assert summary["trials"]["recorded_before"] == done
    rows = trials(folder)
    assert len(rows) == MEDIUM_TRIALS
    assert len({r["trial"] for r in rows}) == MEDIUM_TRIALS  # each once
    resumed = {r["trial"]: r for r in rows}
    for row in first:  # not run again: recorded as they were
        assert resumed[row["trial"]] == row
    assert (folder / "best.yaml").is_file()


def test_the_benchmark_runs_and_finds_the_three_engines_agree(tmp_path: Path) -> None:
    """benchmarks/sweep.py --quick: a few trials each way, so the script cannot rot; it
    leaves its temporary folder (a dedicated TMPDIR) empty."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sweep.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=dict(os.environ, TMPDIR=str(tmp_path)),
    )
    assert proc.returncode == 0, proc.stderr
    assert "Dask, 2 workers" in proc.stdout
    assert "figures identical in the three runs: yes" in proc.stdout
    assert sorted(tmp_path.rglob("*")) == []
