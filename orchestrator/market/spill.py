"""Where a process's spill files go (columns.py): one folder of its own in the temporary
directory, ``orchestrator-spill-*``, made at its first spill and removed when it exits.

A process killed outright (``kill -9``, the OOM killer, a power cut) cannot remove its
folder, and a long series' spill files are megabytes each. So the folder holds
``owner.lock``, locked (flock) by the process for as long as it lives: the kernel lets
go of the lock however the process ends. A process making its own folder first removes
every other one whose lock it can take: their owners are gone. The lock file gets its
name only once it is locked, so a folder being made is never taken for an orphan.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
from pathlib import Path

PREFIX = "orchestrator-spill-"
LOCK = "owner.lock"

_lock = threading.Lock()
_made: tuple[int, Path] | None = None  # (the pid that made it, the folder)


def spill_folder() -> Path:
    """This process's folder for spill files (made, and orphans removed, on first use)."""
    global _made
    with _lock:
        if _made is None or _made[0] != os.getpid():  # a forked child makes its own
            remove_orphans()
            folder = Path(tempfile.mkdtemp(prefix=PREFIX))
            held = _hold(folder)
            _made = (os.getpid(), folder)
            atexit.register(_remove, os.getpid(), folder, held)
        return _made[1]


def _hold(folder: Path) -> int:
    """Lock the folder's owner.lock for this process's life; the descriptor."""
    fd, name = tempfile.mkstemp(prefix=".lock-", dir=folder)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a new file: nobody else holds it
    os.rename(name, folder / LOCK)
    return fd


def remove_orphans() -> None:
    """Remove the spill folders whose owner is gone (their lock can be taken). A folder
    without a lock file yet is being made: left alone."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(tempfile.gettempdir()):
            if not entry.name.startswith(PREFIX) or not entry.is_dir(follow_symlinks=False):
                continue
            folder = Path(entry.path)
            try:
                fd = os.open(folder / LOCK, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its owner lives
            finally:
                os.close(fd)
            shutil.rmtree(folder, ignore_errors=True)


def _remove(pid: int, folder: Path, fd: int) -> None:
    if os.getpid() != pid:  # a forked child exiting: the folder is its parent's
        return
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.close(fd)
