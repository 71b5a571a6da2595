"""A journal that cannot be written: on a real full disk (a small tmpfs), mid-run, at
the start and during a resume. The run stops opening, ends with exit 3 and the
cause, and the folder it leaves resumes, once the disk has room, to the figures of
the run left uninterrupted."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from orchestrator.journal import Journal, JournalError
from orchestrator.trading.ledger import LedgerEntry
from tests.folder_support import (
    GUARD_SECONDS,
    env,
    figures,
    needs_mount,
    no_traceback,
    only_run,
    orchestrator,
    resize,
    tmpfs,
    trace_file_whole_or_gone,
    workdir,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The figures of the default run left uninterrupted."""
    work = workdir(tmp_path_factory.mktemp("reference"))
    done = orchestrator("run", "config.yaml", cwd=work)
    assert done.returncode == 0, done.stderr
    return figures(only_run(work / "runs"))


# Disks that fill early, half way and late in the run (its journal grows to ~400 KB).
@needs_mount
@pytest.mark.parametrize("size", ["100k", "400k", "600k"])
def test_a_disk_that_fills_mid_run_stops_it_with_exit_3_and_it_resumes_once_freed(
    tmp_path: Path, reference: dict[str, object], size: str
) -> None:
    with tmpfs(tmp_path / "disk", size) as disk:
        work = workdir(tmp_path / "work", output=disk / "runs")
        done = orchestrator("run", "config.yaml", cwd=work)
        no_traceback(done)
        assert done.returncode == 3, done.stderr
        assert "the journal could not be written at" in done.stderr
        assert "so the run opened no position after that" in done.stderr
        assert "SQLITE_FULL" in done.stderr
        assert "INTERRUPTED: stopped early (the journal could not be written" in done.stdout
        run_dir = only_run(disk / "runs")
        trace_file_whole_or_gone(run_dir, done.stderr)
        assert f"orchestrator run --resume {run_dir}" in done.stderr

        resize(disk, "64m")  # the disk freed
        shown = orchestrator("journal", run_dir, cwd=work)
        assert shown.returncode == 0, shown.stderr  # a WAL holding pages is read
        resumed = orchestrator("run", "--resume", run_dir, cwd=work)
        assert resumed.returncode == 0, resumed.stderr
        assert figures(run_dir) == reference
        assert not (run_dir / "INCOMPLETE").exists()


def _file_size_limit(limit: int) -> None:
    """In the child: files may not grow past ``limit`` bytes; a write past it fails
    (EFBIG) instead of killing the process (SIGXFSZ ignored)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_journal_that_reaches_the_file_size_limit_stops_the_run_which_then_resumes(
    tmp_path: Path, reference: dict[str, object]
) -> None:
    """RLIMIT_FSIZE: the other way a file stops growing (no mount needed)."""
    work = workdir(tmp_path / "work")
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "config.yaml"],
        cwd=work,
        env=env(),
        capture_output=True,
        text=True,
        timeout=GUARD_SECONDS,
        preexec_fn=lambda: _file_size_limit(200_000),
    )
    no_traceback(done)
    assert done.returncode == 3, done.stderr
    assert "the journal could not be written at" in done.stderr
    run_dir = only_run(work / "runs")
    trace_file_whole_or_gone(run_dir)
    resumed = orchestrator("run", "--resume", run_dir, cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    assert figures(run_dir) == reference


@needs_mount
@pytest.mark.parametrize("size", ["8k", "40k"])
def test_a_disk_too_full_to_start_leaves_no_run_folder(tmp_path: Path, size: str) -> None:
    with tmpfs(tmp_path / "disk", size) as disk:
        work = workdir(tmp_path / "work", output=disk / "runs")
        done = orchestrator("run", "config.yaml", cwd=work)
        no_traceback(done)
        assert done.returncode == 2, done.stderr
        assert "could not create the journal" in done.stderr
        assert "nothing ran" in done.stderr and "was removed" in done.stderr
        # No folder stays behind to be taken for the latest run.
        assert list((disk / "runs").iterdir()) == []


@needs_mount
def test_a_disk_that_fills_during_a_resume_stops_it_and_a_later_resume_completes(
    tmp_path: Path, reference: dict[str, object]
) -> None:
    with tmpfs(tmp_path / "disk", "64m") as disk:
        work = workdir(tmp_path / "work", output=disk / "runs")
        killed = orchestrator(
            "run", "config.yaml", cwd=work, extra_env={"ORCHESTRATOR_CRASH_AT": "intents:5"}
        )
        assert killed.returncode == -9, killed.stderr
        run_dir = only_run(disk / "runs")
        # Fill the disk but ~150 KB: the resume derives the journal's part, then fills it.
        stat = os.statvfs(disk)
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 150_000))

        resumed = orchestrator("run", "--resume", run_dir, cwd=work)
        no_traceback(resumed)
        assert resumed.returncode == 3, resumed.stderr
        assert "the journal could not be written at" in resumed.stderr
        trace_file_whole_or_gone(run_dir)

        filler.unlink()
        again = orchestrator("run", "--resume", run_dir, cwd=work)
        assert again.returncode == 0, again.stderr
        assert figures(run_dir) == reference


@needs_mount
def test_grouped_writes_on_a_full_disk_cost_a_commit_per_doubling_not_per_write(
    tmp_path: Path,
) -> None:
    """The crawl's root: each failed grouped commit re-sends the whole backlog; tried at
    every write, a run's cost grew with the square of its backlog."""
    with tmpfs(tmp_path / "disk", "256k") as disk:
        journal = Journal.create(
            disk / "run", run_id="r", mode="paper", run_nonce="replay", config_text=""
        )
        journal.group_writes(limit=8)
        begins: list[str] = []
        conn = journal._db()  # the journal's own connection: count its commits
        conn.set_trace_callback(lambda sql: begins.append(sql) if sql.startswith("BEGIN") else 0)
        entry = LedgerEntry(
            time_ms=0,
            pair="BTCUSDT",
            position_id="p",
            kind="fee",
            symbol="BTC/USDT",
            side="",
            quantity=Decimal(1),
            price=Decimal(1),
            amount=Decimal("-1"),
            currency="USDT",
            note="x" * 2000,
        )
        failures: list[str] = []
        writes = 4000
        for _ in range(writes):
            try:
                journal.ledger("strategy", [entry])
            except JournalError as exc:
                failures.append(str(exc))
        assert failures and all("SQLITE_FULL" in f for f in failures)  # the disk did fill
        # Commits that went in: at most 256 KB / (8 x 2 KB) = 16; attempts that failed:
        # one per doubling of the backlog, about log2(4000) = 12. Before the fix: one
        # at every write once the disk was full (thousands).
        assert len(begins) <= 16 + writes.bit_length() + 2
        conn.set_trace_callback(None)
        journal.close()
