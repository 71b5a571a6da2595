"""kill -9 at every transition of the position machine (and at the journal's other
writes), then resume: the run ends exactly as the same run left uninterrupted, with
no order intent left open and none recorded twice.

The scenario (tests/crash_scenario.py) is a journaled paper replay whose faults take
every transition of the machine; the crash points are read off the machine itself,
so a new transition is covered as soon as the scenario takes it (a test checks it
does)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from machines import PositionMachine
from orchestrator.journal import DB_NAME, Journal
from orchestrator.journal.recorder import CRASH_ENV
from tests.support import data_file

ROOT = Path(__file__).resolve().parents[1]
DATA = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").parent
TRANSITIONS = sorted(
    {(t.event, state.id) for state in PositionMachine.states for t in state.transitions}
)
# Besides the transitions: the intents before a send, an outcome, a ledger write, and
# later occurrences in the middle of the run.
OTHER_POINTS = ["intents:1", "intents:9", "outcome:3", "outcome:20", "ledger:1", "ledger:15"]
OTHER_POINTS += ["send_legs:10", "close_filled:12", "delta_ok:15"]


def scenario(
    verb: str, run_dir: Path, crash: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash is not None:
        env[CRASH_ENV] = crash
    return subprocess.run(
        [sys.executable, "-m", "tests.crash_scenario", verb, str(run_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    run_dir = tmp_path_factory.mktemp("whole") / "run"
    done = scenario("run", run_dir)
    assert done.returncode == 0, done.stderr
    return done.stdout, run_dir


def test_the_scenario_takes_every_transition_of_the_machine(
    uninterrupted: tuple[str, Path],
) -> None:
    _, run_dir = uninterrupted
    taken = {(t.event, t.source) for t in Journal.read(run_dir).transitions()}
    assert set(TRANSITIONS) <= taken  # else a crash point below is never reached


@pytest.mark.parametrize(
    "point",
    [f"{event}@{source}:1" for event, source in TRANSITIONS] + OTHER_POINTS,
)
def test_killed_anywhere_and_resumed_it_ends_as_if_never_stopped(
    tmp_path: Path, uninterrupted: tuple[str, Path], point: str
) -> None:
    expected, whole = uninterrupted
    run_dir = tmp_path / "run"
    killed = scenario("run", run_dir, crash=point)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)

    resumed = scenario("resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == expected  # every ledger entry, state and the equity, exactly

    view, reference = Journal.read(run_dir), Journal.read(whole)
    assert view.open_intents() == []
    ids = Counter(o.client_order_id for o in view.orders())
    assert max(ids.values()) == 1  # no order recorded (or sent) twice
    assert [(o.client_order_id, o.status, o.result) for o in view.orders()] == [
        (o.client_order_id, o.status, o.result) for o in reference.orders()
    ]
    assert view.ledger_entries("strategy") == reference.ledger_entries("strategy")
    assert view.positions() == reference.positions()
    assert [(t.position_id, t.event, t.source, t.target) for t in view.transitions()] == [
        (t.position_id, t.event, t.source, t.target) for t in reference.transitions()
    ]


@pytest.mark.parametrize("seed", range(3))
def test_killed_at_a_random_instant_and_resumed_it_ends_as_if_never_stopped(
    tmp_path: Path, uninterrupted: tuple[str, Path], seed: int
) -> None:
    expected, _ = uninterrupted
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_scenario", "run", str(run_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Once the journal exists (the imports are done), kill -9 within the next 1.8 s:
    # the replay (about 2 s, its faults wait out order deadlines) is under way there.
    while not (run_dir / DB_NAME).exists() and process.poll() is None:
        time.sleep(0.005)
        assert time.monotonic() - started < 60
    time.sleep(random.Random(seed).uniform(0.0, 1.8))
    process.kill()
    assert process.wait() == -signal.SIGKILL  # killed in the middle, not after the end
    resumed = scenario("resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == expected
    assert Journal.read(run_dir).open_intents() == []


def test_a_second_process_cannot_resume_a_run_another_holds(
    tmp_path: Path, uninterrupted: tuple[str, Path]
) -> None:
    _, whole = uninterrupted
    run_dir = tmp_path / "run"
    shutil.copytree(whole, run_dir)
    with Journal.open(run_dir):
        refused = scenario("resume", run_dir)
    assert refused.returncode != 0
    assert f"open for writing by process {os.getpid()}" in refused.stderr


def cli(*args: str, cwd: Path, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    env["ORCHESTRATOR_DATA"] = str(DATA)
    if crash is not None:
        env[CRASH_ENV] = crash
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def results(folder: Path) -> tuple[str, dict[str, object]]:
    summary = json.loads((folder / "summary.json").read_text())
    for key in ("run_id",):
        summary.pop(key)
    return (folder / "ledger.csv").read_text(), summary


@pytest.mark.parametrize("point", ["intents:3", "legs_filled:2", "close:2", "ledger:40"])
def test_orchestrator_run_resume_ends_as_the_uninterrupted_run(tmp_path: Path, point: str) -> None:
    for name in ("whole", "killed"):
        (tmp_path / name).mkdir()
        config = (ROOT / "config.yaml").read_text().replace("end: null", 'end: "2024-04-01"')
        (tmp_path / name / "config.yaml").write_text(config)
    whole = cli("run", "config.yaml", cwd=tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    killed = cli("run", "config.yaml", cwd=tmp_path / "killed", crash=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (folder,) = (tmp_path / "killed" / "runs").iterdir()
    assert not (folder / "summary.json").exists()  # it died mid-run

    resumed = cli("run", "--resume", str(folder), cwd=tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    (reference,) = (tmp_path / "whole" / "runs").iterdir()
    assert results(folder) == results(reference)  # the ledger and the summary, exactly
    shown = cli("journal", str(folder), "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["open_intents"] == []


def test_resume_refuses_what_it_cannot_use(tmp_path: Path, uninterrupted: tuple[str, Path]) -> None:
    _, whole = uninterrupted
    no_config = tmp_path / "no-config"
    shutil.copytree(whole, no_config)
    refused = cli("run", "--resume", str(no_config), cwd=tmp_path)
    assert refused.returncode == 2
    assert "the run folder lacks its config" in refused.stderr
    not_a_run = cli("run", "--resume", str(tmp_path), cwd=tmp_path)
    assert not_a_run.returncode == 2
    assert "Traceback" not in not_a_run.stderr
