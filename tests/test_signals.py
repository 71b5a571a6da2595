"""Signals sent to a real `python -m orchestrator run` process, and what it leaves.

The first SIGINT, SIGTERM or SIGHUP stops the replay at the next instant and
writes everything (exit 128 + the signal's number); a second one stops at once
(exit 128 + the second signal's number, one line on stderr, the folder marked
INCOMPLETE). Either way no traceback, and every file in the run folder is whole.

To signal at a known moment, the subprocess gets a ``sitecustomize`` (on
PYTHONPATH) that slows the parts a test aims at and says on stderr when it is
there: each progress report sleeps a little (the replay then lasts a couple of
seconds), and each rename that completes an atomic write sleeps before it
happens (so a second signal can land between a file written and its rename).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from orchestrator.files import INCOMPLETE, PARTIAL_PREFIX
from orchestrator.journal import Journal
from tests.support import data_file

ROOT = Path(__file__).resolve().parents[1]
DATA = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").parent

SITECUSTOMIZE = """
import os
import sys
import time

_progress = float(os.environ.get("FO_TEST_PROGRESS_SLEEP") or 0)
_replace = float(os.environ.get("FO_TEST_REPLACE_SLEEP") or 0)
if _progress:
    from orchestrator.output import progress

    _call = progress.ProgressBar.__call__

    def _slow_call(self, done, total):
        _call(self, done, total)
        time.sleep(_progress)

    progress.ProgressBar.__call__ = _slow_call
if _replace:
    _os_replace = os.replace

    def _slow_replace(src, dst, **kwargs):
        print(f"test: renaming to {os.path.basename(dst)}", file=sys.stderr, flush=True)
        time.sleep(_replace)
        _os_replace(src, dst, **kwargs)

    os.replace = _slow_replace
"""

EXPECTED = {
    "config.yaml",
    "summary.json",
    "ledger.csv",
    "positions.csv",
    "equity.csv",
    "chart.html",
}
TRACES = "traces.jsonl"


def code(signum: int) -> int:
    return 128 + signum


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copyfile(ROOT / "config.yaml", tmp_path / "config.yaml")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return tmp_path


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Every process a test starts; any still running at the end is killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def _default_signals(ignore: tuple[int, ...]) -> None:
    """In the child: SIGINT as a terminal would deliver it (a background job
    started by a shell would have it ignored), and whatever the test ignores."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    for s in ignore:
        signal.signal(s, signal.SIG_IGN)


def start(
    workdir: Path,
    procs: list[subprocess.Popen[str]],
    *,
    progress_sleep: float = 0.1,
    replace_sleep: float = 0.0,
    ignore: tuple[int, ...] = (),
) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        ORCHESTRATOR_DATA=str(DATA),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join([str(workdir / "site"), str(ROOT)]),
        FO_TEST_PROGRESS_SLEEP=str(progress_sleep),
        FO_TEST_REPLACE_SLEEP=str(replace_sleep),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", "config.yaml"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: _default_signals(ignore),
    )
    procs.append(proc)
    return proc


def wait_for(
    proc: subprocess.Popen[str], needle: str, seen: list[str], stream: IO[str] | None = None
) -> None:
    """Read stderr (or ``stream``) until a line holds ``needle``; every line read
    goes to ``seen``."""
    stream = stream or proc.stderr
    assert stream is not None
    for line in stream:
        seen.append(line)
        if needle in line:
            return
    pytest.fail(f"the run ended before {needle!r}: {''.join(seen)}")


def in_replay(proc: subprocess.Popen[str], seen: list[str]) -> None:
    wait_for(proc, "strategy       [#", seen)


def finish(proc: subprocess.Popen[str], seen: list[str], timeout: float = 60) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    return out, "".join(seen) + err


def run_folder(workdir: Path) -> Path:
    (folder,) = (workdir / "runs").iterdir()
    return folder


JOURNAL_FILES = {"journal.sqlite3", "journal.lock", "journal.sqlite3-wal", "journal.sqlite3-shm"}


def journal_whole(folder: Path, names: set[str]) -> set[str]:
    """The run's journal, when it has one, opens and reads whole: its file names."""
    present = names & JOURNAL_FILES
    if "journal.sqlite3" in present:
        Journal.read(folder).close()
    return present


def check_whole(folder: Path, workdir: Path) -> set[str]:
    """Every file in the run folder is whole and parseable; returns their names."""
    names = {p.name for p in folder.iterdir()}
    names -= journal_whole(folder, names)
    assert not [n for n in names if n.startswith(PARTIAL_PREFIX)], names
    assert names <= EXPECTED | {TRACES, INCOMPLETE}, names
    if "config.yaml" in names:
        assert (folder / "config.yaml").read_bytes() == (workdir / "config.yaml").read_bytes()
    if "summary.json" in names:
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["run_id"] == folder.name
        assert "total" in summary and "baseline_total" in summary
    for name, column in (("ledger.csv", "kind"), ("positions.csv", "id")):
        if name in names:
            with (folder / name).open(newline="") as f:
                rows = list(csv.reader(f))
            assert rows and column in rows[0], name
            assert all(len(row) == len(rows[0]) for row in rows), name
    if "chart.html" in names:
        assert (folder / "chart.html").read_text().rstrip().endswith("</html>")
    if TRACES in names:
        text = (folder / TRACES).read_text()
        assert text == "" or text.endswith("\n")
        for line in text.splitlines():
            json.loads(line)
    if INCOMPLETE in names:
        assert (folder / INCOMPLETE).read_text().strip()
    return names


SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGHUP": signal.SIGHUP}


@pytest.mark.parametrize("name", list(SIGNALS))
def test_one_signal_stops_at_the_next_instant_and_writes_everything(
    workdir: Path, procs: list[subprocess.Popen[str]], name: str
) -> None:
    signum = SIGNALS[name]
    proc = start(workdir, procs)
    seen: list[str] = []
    in_replay(proc, seen)
    proc.send_signal(signum)
    out, err = finish(proc, seen)
    assert proc.returncode == code(signum), err
    assert "Traceback" not in err
    assert "INTERRUPTED" in out
    assert "always hedged" in out  # the table
    folder = run_folder(workdir)
    assert check_whole(folder, workdir) == EXPECTED | {TRACES}  # no INCOMPLETE
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["end"] < "2025-09"


TWO_SIGNALS = [
    ("SIGINT", "SIGINT"),
    ("SIGTERM", "SIGINT"),
    ("SIGHUP", "SIGTERM"),
    ("SIGINT", "SIGTERM"),
    ("SIGTERM", "SIGHUP"),
]


def _stopped_at_once(proc: subprocess.Popen[str], err: str, second: int) -> None:
    assert proc.returncode == code(second), err
    assert "Traceback" not in err
    name = signal.Signals(second).name
    lines = [line for line in err.splitlines() if "stopped at once" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"stopped at once on a second signal ({name})")


@pytest.mark.parametrize(("first", "second"), TWO_SIGNALS)
def test_a_second_signal_while_writing_stops_at_once_leaving_only_whole_files(
    workdir: Path, procs: list[subprocess.Popen[str]], first: str, second: str
) -> None:
    proc = start(workdir, procs, replace_sleep=0.4)
    seen: list[str] = []
    in_replay(proc, seen)
    proc.send_signal(SIGNALS[first])
    # config.yaml was renamed at the start; the results come after the replay.
    wait_for(proc, "test: renaming to ledger.csv", seen)
    proc.send_signal(SIGNALS[second])  # between ledger.csv written and its rename
    _out, err = finish(proc, seen)
    _stopped_at_once(proc, err, SIGNALS[second])
    folder = run_folder(workdir)
    names = check_whole(folder, workdir)
    assert {"config.yaml", "summary.json", INCOMPLETE} <= names
    assert "ledger.csv" not in names  # stopped before its rename: absent, not partial
    assert (
        "; not written: ledger.csv, positions.csv, equity.csv, chart.html; traces.jsonl lacks"
        in (folder / INCOMPLETE).read_text()
    )


# Two of the same signal sent back to back may reach the process as one (POSIX
# does not queue them): that is a graceful stop, tested above. Two different ones
# always arrive as two.
@pytest.mark.parametrize(
    ("first", "second"), [("SIGHUP", "SIGTERM"), ("SIGTERM", "SIGINT"), ("SIGINT", "SIGHUP")]
)
def test_two_signals_at_once_during_the_replay(
    workdir: Path, procs: list[subprocess.Popen[str]], first: str, second: str
) -> None:
    proc = start(workdir, procs)
    seen: list[str] = []
    in_replay(proc, seen)
    proc.send_signal(SIGNALS[first])
    proc.send_signal(SIGNALS[second])
    _out, err = finish(proc, seen)
    # Both may be pending at once: then the lower-numbered is handled first.
    handled_second = max(SIGNALS[first], SIGNALS[second], key=lambda s: f"({s.name})" in err)
    _stopped_at_once(proc, err, handled_second)
    names = check_whole(run_folder(workdir), workdir)
    assert INCOMPLETE in names


def test_a_signal_ignored_at_start_stays_ignored(
    workdir: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """Under `nohup`, SIGHUP is ignored: the run goes on to the end."""
    proc = start(workdir, procs, ignore=(signal.SIGHUP,))
    seen: list[str] = []
    in_replay(proc, seen)
    proc.send_signal(signal.SIGHUP)
    out, err = finish(proc, seen)
    assert proc.returncode == 0, err
    assert "INTERRUPTED" not in out
    assert check_whole(run_folder(workdir), workdir) == EXPECTED | {TRACES}


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


BUSY = {  # a strategy that flips around the usual rate: ~300 positions, ~2,500 spans
    "funding_window: 9 ": "funding_window: 1 ",
    'exit_annualised: "0.02"': 'exit_annualised: "0.09"',
    "negative_streak: 3 ": "negative_streak: 1 ",
}


def with_dead_collector(workdir: Path, *, busy: bool = True) -> None:
    config = workdir / "config.yaml"
    endpoint = f"http://127.0.0.1:{closed_port()}/v1/traces"
    text = config.read_text().replace("otlp_endpoint: null", f"otlp_endpoint: {endpoint}")
    for old, new in BUSY.items() if busy else ():
        assert old in text
        text = text.replace(old, new)
    config.write_text(text)


def test_ctrl_c_with_the_collector_down_exits_promptly_with_the_results_written(
    workdir: Path, procs: list[subprocess.Popen[str]]
) -> None:
    with_dead_collector(workdir)
    proc = start(workdir, procs)
    seen: list[str] = []
    # Once the strategy's replay is done, every span is queued for the collector.
    wait_for(proc, "always hedged  [", seen)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    printed: list[str] = []
    wait_for(proc, "ledger balances", printed, stream=proc.stdout)
    table = time.monotonic() - sent
    _out, err = finish(proc, seen)
    took = time.monotonic() - sent
    print(f"with the OTLP collector down: table {table:.1f} s, exit {took:.1f} s after SIGINT")
    assert table < 5, err  # the results do not wait for the collector
    assert took < 15, err  # was 32 s: the SDK's shutdown waits 30 s, then some
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "always hedged" in "".join(printed)
    folder = run_folder(workdir)
    assert check_whole(folder, workdir) == EXPECTED | {TRACES}
    summary = json.loads((folder / "summary.json").read_text())
    # The signal came during the baseline, which it does not cut short (seconds): the
    # strategy's replay was whole, and so are the figures.
    assert summary["interrupted"] is False
    assert summary["total"]["positions"] > 100
    # The file has every span, the collector's failure notwithstanding.
    from orchestrator.tracing import inspect, trace_file

    spans, problems = trace_file.read_spans(folder / TRACES)
    assert problems == []
    assert len(inspect.positions(spans)) == summary["total"]["positions"]


def test_a_run_with_the_collector_down_ends_promptly(
    workdir: Path, procs: list[subprocess.Popen[str]]
) -> None:
    with_dead_collector(workdir)
    began = time.monotonic()
    proc = start(workdir, procs, progress_sleep=0)
    _out, err = finish(proc, [])
    took = time.monotonic() - began
    print(f"run took {took:.1f} s with the OTLP collector down")
    assert err.count("OTLP/HTTP") <= 3, err  # the first failure, the summary: not every retry
    assert took < 12, err  # was ~20 s here: the SDK waits for each batch to time out
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert check_whole(run_folder(workdir), workdir) == EXPECTED | {TRACES}


def test_a_second_ctrl_c_while_waiting_for_the_collector_stops_at_once(
    workdir: Path, procs: list[subprocess.Popen[str]]
) -> None:
    with_dead_collector(workdir)
    proc = start(workdir, procs)
    seen: list[str] = []
    in_replay(proc, seen)
    proc.send_signal(signal.SIGINT)
    printed: list[str] = []
    # The table is printed once the results are written, before the traces are flushed.
    wait_for(proc, "ledger balances", printed, stream=proc.stdout)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    out, err = finish(proc, seen)
    assert time.monotonic() - sent < 5
    _stopped_at_once(proc, err, signal.SIGINT)
    assert "written to" not in out
    folder = run_folder(workdir)
    assert check_whole(folder, workdir) == EXPECTED | {TRACES, INCOMPLETE}
    assert (folder / INCOMPLETE).read_text() == (
        "stopped at once on a second signal (SIGINT); traces.jsonl lacks the last spans\n"
    )
