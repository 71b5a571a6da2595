"""One writer per run: an exclusive ``flock`` on ``RUN_DIR/journal.lock``.

The writer takes ``LOCK_EX`` and writes its pid and command line into the file.
The kernel releases a ``flock`` when the last descriptor of the open file goes,
so a writer that dies, even by SIGKILL, releases it; a lock file left behind by a
process that is gone blocks nothing (the file is never removed: unlinking a lock
file while another process opens it would let two writers hold two files).

Readers (``orchestrator journal``) never write the file. They take ``LOCK_SH``
for the moment they copy the journal into memory, only to learn that no writer
is running while they do; a writer waits a moment (``WAIT_SECONDS``) for such a
reader before it refuses.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from pathlib import Path

from orchestrator.exceptions import OrchestratorError

LOCK_NAME = "journal.lock"
WAIT_SECONDS = 0.5  # a reader holds its shared lock for milliseconds
MAX_COMMAND = 300  # characters of the holder's command line said in a message


class JournalError(OrchestratorError):
    """The journal cannot be created, opened, read or written; the message says why."""


class JournalLocked(JournalError):
    """Another process has this run's journal open for writing."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


def holder(lock_path: Path) -> tuple[int | None, str]:
    """The pid written in the lock file (None when none is, or its process is gone)
    and that process's command line (``/proc/<pid>/cmdline``, else the one it wrote)."""
    try:
        text = lock_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None, ""
    first, _, written = text.partition("\n")
    try:
        pid = int(first.strip())
    except ValueError:
        return None, ""
    if pid <= 0 or not _alive(pid):
        return None, ""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        command = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    except OSError:
        command = written
    command = " ".join(command.split())  # one line, whatever `python -c` held
    if len(command) > MAX_COMMAND:
        command = command[: MAX_COMMAND - 3] + "..."
    return pid, command


def describe_holder(pid: int | None, command: str) -> str:
    if pid is None:
        return "another process (its pid is not written yet)"
    if pid == os.getpid():
        return f"this process (pid {pid})"
    return f"process {pid} ({command})" if command else f"process {pid}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


class WriteLock:
    """Held from ``acquire`` to ``release``; ``acquire`` refuses with JournalLocked."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, run_dir: Path, *, wait: float = WAIT_SECONDS) -> WriteLock:
        path = run_dir / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            reason = _oserror(exc)
            raise JournalError(f"{path}: cannot create the journal's lock: {reason}") from None
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    pid, command = holder(path)
                    raise JournalLocked(
                        f"{run_dir}: the journal is open for writing by "
                        f"{describe_holder(pid, command)}; a run has one writer at a time "
                        f"(`orchestrator journal {run_dir}` shows it without writing)",
                        pid,
                    ) from None
                time.sleep(0.02)
            except OSError as exc:
                os.close(fd)
                raise JournalError(f"{path}: cannot lock: {_oserror(exc)}") from None
        try:
            command = " ".join(sys.argv)
            data = f"{os.getpid()}\n{command}\n".encode(errors="replace")
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError:
            pass  # the lock holds without its label; a refused writer then names no pid
        return cls(path, fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class ReadProbe:
    """Whether a writer is running, learnt without writing anything.

    ``quiet`` is True when no writer runs: no lock file (a writer always makes one), or
    the shared lock was taken, and is then held until ``release`` so that none starts
    meanwhile. Otherwise ``writer`` is the (pid, command line) of the one that runs,
    or None when the lock could not be probed.
    """

    def __init__(self, run_dir: Path) -> None:
        self._fd: int | None = None
        self.quiet = False
        self.writer: tuple[int | None, str] | None = None
        path = run_dir / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self.quiet = True
            return
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self.writer = holder(path)
            return
        except OSError:
            os.close(fd)
            return
        self._fd = fd
        self.quiet = True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _oserror(exc: OSError) -> str:
    return exc.strerror or str(exc)
