"""Every folder a run leaves behind, whatever stopped it, resumes to the figures of
the run left uninterrupted, or is refused with the reason (exit 2, no traceback).

Through the CLI, in processes of their own: journals in every state SQLite may leave
them (a WAL holding pages, a -shm leftover, no WAL) read and resume; journals really
damaged are refused; folders stopped by two signals, by one, by a journal that could
not be written for a while; run folders that cannot be written; stdout closed by its
reader."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.journal import DB_NAME
from tests.folder_support import (
    GUARD_SECONDS,
    env,
    figures,
    immutable,
    needs_mount,
    no_traceback,
    only_run,
    orchestrator,
    read_only,
    resize,
    tmpfs,
    workdir,
)

WAL, SHM = DB_NAME + "-wal", DB_NAME + "-shm"


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """The default run left uninterrupted: its folder and its figures."""
    work = workdir(tmp_path_factory.mktemp("whole"))
    done = orchestrator("run", "config.yaml", cwd=work)
    assert done.returncode == 0, done.stderr
    run_dir = only_run(work / "runs")
    return run_dir, figures(run_dir)


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run killed (SIGKILL) after its ninth intent: its commits in the WAL."""
    work = workdir(tmp_path_factory.mktemp("killed"))
    done = orchestrator(
        "run", "config.yaml", cwd=work, extra_env={"ORCHESTRATOR_CRASH_AT": "intents:9"}
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    run_dir = only_run(work / "runs")
    assert (run_dir / WAL).stat().st_size > 0
    return run_dir


def copy(folder: Path, to: Path) -> Path:
    shutil.copytree(folder, to)
    return to


def checkpoint_cut_by_a_full_disk(run_dir: Path) -> None:
    """What a checkpoint stopped by a full disk leaves: the file's first page written
    (its header counting every page), the rest only in the WAL."""
    with_all = run_dir.parent / "checkpointed"
    with_all.mkdir()
    shutil.copyfile(run_dir / DB_NAME, with_all / DB_NAME)
    shutil.copyfile(run_dir / WAL, with_all / WAL)
    conn = sqlite3.connect(with_all / DB_NAME)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(FULL)")
    first = (with_all / DB_NAME).read_bytes()[:page_size]
    conn.close()
    shutil.rmtree(with_all)
    header_pages = int.from_bytes(first[28:32], "big")
    assert header_pages > 1  # the header counts pages the file will not have
    (run_dir / DB_NAME).write_bytes(first)


def truncated_with_a_wal_lacking_the_pages(run_dir: Path) -> None:
    """A whole journal cut in half, beside a WAL of a later commit (not those pages)."""
    live = run_dir.parent / "live"
    live.mkdir()
    shutil.copyfile(run_dir / DB_NAME, live / DB_NAME)
    conn = sqlite3.connect(live / DB_NAME, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("INSERT INTO meta (key, value) VALUES ('later', 'x')")
    shutil.copyfile(live / WAL, run_dir / WAL)  # while open: the WAL is not folded back
    conn.close()
    shutil.rmtree(live)
    data = (run_dir / DB_NAME).read_bytes()
    (run_dir / DB_NAME).write_bytes(data[: len(data) // 2])


# name -> (the folder to start from, what is done to it)
READABLE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "killed: its commits in the WAL": ("killed", lambda d: None),
    "a checkpoint cut by a full disk: pages in the WAL": (
        "killed",
        checkpoint_cut_by_a_full_disk,
    ),
    "killed, with a -shm of garbage": ("killed", lambda d: (d / SHM).write_bytes(b"\x5a" * 32768)),
    "ended, with a -shm leftover": ("whole", lambda d: (d / SHM).write_bytes(b"\0" * 32768)),
}


def _damage(first: Callable[[Path], None], then: Callable[[Path], None]) -> Callable[[Path], None]:
    def both(run_dir: Path) -> None:
        first(run_dir)
        then(run_dir)

    return both


REFUSED: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "truncated for real": (
        "whole",
        lambda d: (d / DB_NAME).write_bytes((d / DB_NAME).read_bytes()[:50_000]),
        "truncated",
    ),
    "truncated, beside a WAL lacking its pages": (
        "whole",
        truncated_with_a_wal_lacking_the_pages,
        "corrupt",
    ),
    "a checkpoint cut by a full disk, then its WAL lost": (
        "killed",
        _damage(checkpoint_cut_by_a_full_disk, lambda d: (d / WAL).unlink()),
        "truncated",
    ),
    "killed before its first checkpoint, then its WAL lost": (
        "killed",
        lambda d: (d / WAL).unlink(),
        "holds no records",
    ),
    "garbage": ("whole", lambda d: (d / DB_NAME).write_bytes(b"not a journal\n" * 500), "not a"),
    "zero-length": ("whole", lambda d: (d / DB_NAME).write_bytes(b""), "is empty"),
}


@pytest.fixture
def sources(whole: tuple[Path, dict[str, object]], killed: Path) -> Callable[[str, Path], Path]:
    folders = {"whole": whole[0], "killed": killed}
    return lambda name, to: copy(folders[name], to)


@pytest.mark.parametrize("case", list(READABLE))
def test_every_journal_sqlite_reads_is_shown_and_resumes_to_the_whole_runs_figures(
    tmp_path: Path,
    whole: tuple[Path, dict[str, object]],
    sources: Callable[[str, Path], Path],
    case: str,
) -> None:
    source, damage = READABLE[case]
    run_dir = sources(source, tmp_path / "run")
    damage(run_dir)
    shown = orchestrator("journal", run_dir, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    resumed = orchestrator("run", "--resume", run_dir, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert figures(run_dir) == whole[1]


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_journal_really_damaged_is_refused_with_the_reason(
    tmp_path: Path, sources: Callable[[str, Path], Path], case: str
) -> None:
    source, damage, reason = REFUSED[case]
    run_dir = sources(source, tmp_path / "run")
    damage(run_dir)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != "journal.lock"}
    for args in (("journal", run_dir), ("run", "--resume", run_dir)):
        done = orchestrator(*args, cwd=tmp_path)
        no_traceback(done)
        assert done.returncode == 2, (args, done.stderr)
        assert reason in done.stderr and str(run_dir / DB_NAME) in done.stderr, done.stderr
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != "journal.lock"}
    assert after == before  # refused, nothing changed


# -- stopped by signals, or by a journal that could not be written for a while

SLOW = """
import os, time
from orchestrator.output import progress

_call = progress.ProgressBar.__call__

def _slow_call(self, done, total):
    _call(self, done, total)
    time.sleep(float(os.environ["FO_TEST_PROGRESS_SLEEP"]))

progress.ProgressBar.__call__ = _slow_call
_replace = os.replace

def _slow_replace(src, dst, **kwargs):
    print(f"test: renaming to {os.path.basename(dst)}", file=__import__("sys").stderr, flush=True)
    time.sleep(float(os.environ["FO_TEST_REPLACE_SLEEP"]))
    _replace(src, dst, **kwargs)

os.replace = _slow_replace
"""


@pytest.fixture
def slow_run(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """`orchestrator run config.yaml` in ``work``, its progress slowed (each report sleeps)
    and each atomic rename announced, so that a test acts at a known moment."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW)

    def start(work: Path, *args: str | Path) -> subprocess.Popen[str]:
        variables = env(FO_TEST_PROGRESS_SLEEP="0.1", FO_TEST_REPLACE_SLEEP="0.3")
        variables["PYTHONPATH"] = f"{site}:{variables['PYTHONPATH']}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", *map(str, args or ("run", "config.yaml"))],
            cwd=work,
            env=variables,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        started.append(proc)
        # A run that never ends (the bug some of these tests are about) is killed, and
        # its test fails on the line it waited for: a guard, not a measure.
        guard = threading.Timer(GUARD_SECONDS, proc.kill)
        guard.start()
        guards.append(guard)
        return proc

    started: list[subprocess.Popen[str]] = []
    guards: list[threading.Timer] = []
    yield start
    for guard in guards:
        guard.cancel()
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=GUARD_SECONDS)


def wait_for(proc: subprocess.Popen[str], needle: str, seen: list[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if needle in line:
            return
    pytest.fail(f"the run ended before {needle!r}: {''.join(seen)}")


IN_REPLAY = "strategy       [###"  # an eighth of the replay done


@pytest.mark.parametrize(
    ("first", "second"),
    [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGHUP), (signal.SIGHUP, None)],
    ids=["SIGINT then SIGINT", "SIGTERM then SIGHUP", "SIGHUP alone"],
)
def test_a_run_stopped_by_signals_resumes_to_the_whole_runs_figures(
    tmp_path: Path,
    whole: tuple[Path, dict[str, object]],
    slow_run: Callable[..., subprocess.Popen[str]],
    first: signal.Signals,
    second: signal.Signals | None,
) -> None:
    """The first signal's closes are journaled; the run derived again does not make
    them: the resume drops them (the journal marks where the stop began)."""
    work = workdir(tmp_path / "work")
    proc = slow_run(work)
    seen: list[str] = []
    wait_for(proc, IN_REPLAY, seen)
    proc.send_signal(first)
    if second is not None:
        wait_for(proc, "test: renaming to ledger.csv", seen)  # the stop's closes journaled
        proc.send_signal(second)
    _, err = proc.communicate(timeout=GUARD_SECONDS)
    assert proc.returncode == 128 + (second or first), "".join(seen) + err
    run_dir = only_run(work / "runs")
    assert (run_dir / "INCOMPLETE").exists() == (second is not None)

    resumed = orchestrator("run", "--resume", run_dir, cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    assert figures(run_dir) == whole[1]


def test_a_resume_stopped_by_a_signal_before_the_journals_end_resumes_again(
    tmp_path: Path,
    whole: tuple[Path, dict[str, object]],
    slow_run: Callable[..., subprocess.Popen[str]],
) -> None:
    """Stopped while it derives what the journal holds: its stop's closes are the
    stop's, the journal's later records the run's own; neither is lost."""
    work = workdir(tmp_path / "work")
    killed = orchestrator(
        "run", "config.yaml", cwd=work, extra_env={"ORCHESTRATOR_CRASH_AT": "intents:40"}
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_dir = only_run(work / "runs")
    proc = slow_run(work, "run", "--resume", run_dir)
    seen: list[str] = []
    wait_for(proc, IN_REPLAY, seen)  # far before the journal's end (its 40th intent)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=GUARD_SECONDS)
    assert proc.returncode == 130, "".join(seen) + err
    assert "differs from the journal" not in err

    resumed = orchestrator("run", "--resume", run_dir, cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    assert figures(run_dir) == whole[1]


def test_a_journal_locked_for_a_while_stops_the_run_which_then_resumes(
    tmp_path: Path,
    whole: tuple[Path, dict[str, object]],
    slow_run: Callable[..., subprocess.Popen[str]],
) -> None:
    """Another process holds the database from the replay's start to its end: the opens
    refused because their intents could not be journaled are not journaled as the
    strategy's rejections, though the journal can be written again before the run ends."""
    work = workdir(tmp_path / "work")
    proc = slow_run(work)
    seen: list[str] = []
    wait_for(proc, "strategy       [", seen)
    run_dir = only_run(work / "runs")
    other = sqlite3.connect(run_dir / DB_NAME, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        wait_for(proc, "always hedged", seen)  # the strategy's replay is over
    finally:
        other.close()
    _, err = proc.communicate(timeout=GUARD_SECONDS)
    err = "".join(seen) + err
    assert proc.returncode == 3, err
    assert "the journal could not be written at" in err and "database is locked" in err

    resumed = orchestrator("run", "--resume", run_dir, cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    assert figures(run_dir) == whole[1]


@needs_mount
def test_a_disk_that_filled_and_was_freed_before_the_end_resumes(
    tmp_path: Path,
    whole: tuple[Path, dict[str, object]],
    slow_run: Callable[..., subprocess.Popen[str]],
) -> None:
    with tmpfs(tmp_path / "disk", "300k") as disk:
        work = workdir(tmp_path / "work", output=disk / "runs")
        proc = slow_run(work)
        seen: list[str] = []
        wait_for(proc, "always hedged", seen)  # the journal filled the disk by now
        resize(disk, "64m")  # freed: the writes that waited can go in
        _, err = proc.communicate(timeout=GUARD_SECONDS)
        err = "".join(seen) + err
        assert proc.returncode == 3, err
        assert "SQLITE_FULL" in err
        run_dir = only_run(disk / "runs")
        resumed = orchestrator("run", "--resume", run_dir, cwd=work)
        assert resumed.returncode == 0, resumed.stderr
        assert figures(run_dir) == whole[1]


# -- run folders that cannot be written


UNWRITABLE = {
    "read-only mount": "cannot create the journal's lock: Read-only file system",
    "immutable folder": "the run folder cannot be written (Operation not permitted)",
    "immutable INCOMPLETE": "its INCOMPLETE file cannot be removed, so the run cannot be resumed",
}


@needs_mount
@pytest.mark.parametrize("how", list(UNWRITABLE))
def test_resuming_a_folder_that_cannot_be_written_is_refused_and_nothing_is_done(
    tmp_path: Path,
    whole: tuple[Path, dict[str, object]],
    killed: Path,
    how: str,
) -> None:
    run_dir = copy(killed, tmp_path / "run")
    (run_dir / "INCOMPLETE").write_text("killed\n")
    if how == "read-only mount":
        guard = read_only(run_dir)
    elif how == "immutable folder":
        guard = immutable(run_dir)
    else:
        guard = immutable(run_dir / "INCOMPLETE")
    with guard as target:
        folder = target if target.is_dir() else run_dir
        done = orchestrator("run", "--resume", folder, cwd=tmp_path)
    no_traceback(done)
    assert done.returncode == 2, done.stderr
    assert UNWRITABLE[how] in done.stderr
    assert (run_dir / "INCOMPLETE").exists()  # nothing was done

    resumed = orchestrator("run", "--resume", run_dir, cwd=tmp_path)  # writable again
    assert resumed.returncode == 0, resumed.stderr
    assert figures(run_dir) == whole[1]


# -- stdout closed by its reader


@pytest.mark.parametrize("reader", ["head -1", "true"])
def test_a_reader_closing_stdout_fails_nothing(
    tmp_path: Path, whole: tuple[Path, dict[str, object]], reader: str
) -> None:
    """`orchestrator run config.yaml | head -1`: the folder is complete, the exit quiet."""
    work = workdir(tmp_path / "work")
    done = subprocess.run(
        [
            "bash",
            "-c",
            f'"$0" -m orchestrator run config.yaml | {reader}; exit "${{PIPESTATUS[0]}}"',
            sys.executable,
        ],
        cwd=work,
        env=env(),
        capture_output=True,
        text=True,
        timeout=GUARD_SECONDS,
    )
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert "BrokenPipe" not in done.stderr and "error" not in done.stderr
    run_dir = only_run(work / "runs")
    assert not (run_dir / "INCOMPLETE").exists()
    assert figures(run_dir) == whole[1]
    assert (run_dir / "traces.jsonl").stat().st_size > 0
