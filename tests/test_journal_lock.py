"""One writer per run, across real processes: refusals name the holder, SIGKILL frees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from orchestrator.journal import DB_NAME, LOCK_NAME, Journal, JournalLocked
from orchestrator.journal.lock import ReadProbe

ROOT = Path(__file__).resolve().parents[1]
MARKER = "--journal-test-writer"

# A writer in its own process: creates the run's journal, records the two legs of an
# entry, says "ready", then holds the journal open until its stdin closes.
WRITER = """
import sys
from decimal import Decimal
from orchestrator.journal import Journal
from orchestrator.models import Category, OrderRequest, Position, Side

j = Journal.create(
    sys.argv[1], run_id="run-1", mode="paper", run_nonce="abc123", config_text="x: '1'\\n"
)
p = Position(id="p1", spot_symbol="BTC/USDT", perp_symbol="BTC/USDT:USDT", state="legs_sent",
             quantity=Decimal("0.00123400"))
j.transition("p1", "open", "pending", "legs_sent", 1704067200000, position=p)
j.intents("p1", [
    OrderRequest("BTC/USDT", Side.BUY, Decimal("0.00123400"), Category.SPOT, "abc123-p1-so1"),
    OrderRequest("BTC/USDT:USDT", Side.SELL, Decimal("0.00123400"), Category.LINEAR,
                 "abc123-p1-po1"),
], 1704067200000)
print("ready", flush=True)
sys.stdin.read()
j.close()
"""


@contextmanager
def writer_process(run_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """The WRITER above, running until the block ends (or the test kills it)."""
    script = run_dir.parent / "journal_writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(run_dir), MARKER],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            proc.kill()
            raise AssertionError(f"the writer did not start: {line}{proc.communicate()[1]}")
        yield proc
    finally:
        if proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def kill_9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=20)
    assert proc.returncode == -signal.SIGKILL


def own_command_line() -> str:
    raw = Path("/proc/self/cmdline").read_bytes()
    return " ".join(" ".join(p.decode() for p in raw.split(b"\0") if p).split())


def test_a_second_process_is_refused_naming_the_pid_and_command_that_holds_it(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    opener = (
        "import sys\n"
        "from orchestrator.journal import Journal, JournalLocked\n"
        "try:\n"
        "    Journal.open(sys.argv[1])\n"
        "except JournalLocked as exc:\n"
        "    print(exc.pid)\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    with Journal.create(
        run_dir, run_id="run-1", mode="paper", run_nonce="abc123", config_text=""
    ) as j:
        done = subprocess.run(
            [sys.executable, "-c", opener, str(run_dir)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 3, done.stderr
        pid, message = done.stdout.split("\n", 1)
        assert int(pid) == os.getpid()
        assert f"{run_dir}: the journal is open for writing by process {os.getpid()} (" in message
        assert own_command_line()[:200] in message
        assert "orchestrator journal" in message  # how to look without writing
        j.set_meta("still", "mine")  # the refusal took nothing from the holder
    with Journal.open(run_dir) as j:  # closing released it
        assert j.meta()["still"] == "mine"


def test_the_same_process_cannot_open_it_twice(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with (
        Journal.create(run_dir, run_id="r", mode="paper", run_nonce="n", config_text=""),
        pytest.raises(JournalLocked, match=rf"by this process \(pid {os.getpid()}\)"),
    ):
        Journal.open(run_dir)


def test_a_writer_killed_with_sigkill_releases_the_lock_and_keeps_its_commits(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    with writer_process(run_dir) as proc:
        started = time.monotonic()
        with pytest.raises(JournalLocked) as caught:
            Journal.open(run_dir)
        assert time.monotonic() - started < 5
        assert caught.value.pid == proc.pid
        assert f"process {proc.pid} (" in str(caught.value)
        assert MARKER in str(caught.value)
        kill_9(proc)
    # The lock file still names the dead writer: it blocks nothing.
    assert (run_dir / LOCK_NAME).read_text().split("\n")[0] == str(proc.pid)
    assert (run_dir / f"{DB_NAME}-wal").stat().st_size > 0  # its commits are in the WAL
    with Journal.open(run_dir) as j:
        assert [i.client_order_id for i in j.open_intents()] == ["abc123-p1-so1", "abc123-p1-po1"]
        assert [(t.event, t.target) for t in j.transitions("p1")] == [("open", "legs_sent")]
        assert j.position_states() == [("p1", "legs_sent")]
        j.outcome("abc123-p1-so1", None, "absent")
    with Journal.open(run_dir) as j:
        assert [i.client_order_id for i in j.open_intents()] == ["abc123-p1-po1"]


def test_a_stale_lock_file_does_not_block(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    Journal.create(run_dir, run_id="r", mode="paper", run_nonce="n", config_text="").close()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=60)
    (run_dir / LOCK_NAME).write_text(f"{gone.pid}\nan old run\n")  # it held it, and ended
    with Journal.open(run_dir) as j:
        assert (run_dir / LOCK_NAME).read_text().split("\n")[0] == str(os.getpid())
        assert j.meta()["run_id"] == "r"


def test_a_writer_waits_for_a_reader_that_holds_the_lock_for_a_moment(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    Journal.create(run_dir, run_id="r", mode="paper", run_nonce="n", config_text="").close()
    probe = ReadProbe(run_dir)  # what Journal.read holds while it copies
    assert probe.quiet
    timer = threading.Timer(0.1, probe.release)
    timer.start()
    try:
        with Journal.open(run_dir) as j:
            assert j.meta()["run_id"] == "r"
    finally:
        timer.join()


def test_read_works_while_a_writer_holds_the_lock_and_after_it_was_killed(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    with writer_process(run_dir) as proc:
        with Journal.read(run_dir) as view:
            assert view.writer is not None
            assert view.writer[0] == proc.pid
            assert MARKER in view.writer[1]
            assert [i.client_order_id for i in view.open_intents()] == [
                "abc123-p1-so1",
                "abc123-p1-po1",
            ]
        kill_9(proc)
    with Journal.read(run_dir) as view:
        assert view.writer is None
        assert len(view.open_intents()) == 2
        assert str(view.open_intents()[0].request.quantity) == "0.00123400"
