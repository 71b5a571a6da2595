"""Writing a run's files so that a reader never finds one half written.

Every result file is written to a temporary file in the same folder, flushed to
disk, then renamed over its final name (``os.replace``, atomic on POSIX): a file
under its final name is whole, whatever happened (disk full, folder gone, the
process stopped at once). A folder whose results could not all be written gets
an ``INCOMPLETE`` file saying why, when anything can be written there at all.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from orchestrator.exceptions import OrchestratorError

INCOMPLETE = "INCOMPLETE"
# Temporary files: hidden, named after their target, removed on failure (and by
# remove_partials when the process was stopped between writing and renaming).
PARTIAL_PREFIX = ".partial-"


class OutputError(OrchestratorError):
    """The output folder cannot be written: said before anything runs."""


def write_via(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` atomically: ``write(temp)`` fills a temporary file in the same
    folder, which is then flushed to disk and renamed to ``path``. On any failure
    (OSError, or an interruption) the temporary file is removed and ``path`` is
    left as it was: absent, or its previous whole content."""
    temp = _new_temp(path)
    try:
        write(temp)
        with temp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    sync_folder(path.parent)


def _new_temp(path: Path) -> Path:
    """An empty new file beside ``path``, with the mode a plain ``open`` would give
    (0666 less the umask; ``mkstemp`` would make it 0600)."""
    while True:
        temp = path.with_name(f"{PARTIAL_PREFIX}{path.name}-{secrets.token_hex(4)}")
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return temp


def write_bytes(path: Path, data: bytes) -> None:
    write_via(path, lambda temp: temp.write_bytes(data))


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def sync_folder(folder: Path) -> None:
    """Make the rename itself durable; not every file system lets a folder be synced."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_partials(folder: Path) -> None:
    """Remove temporary files a write stopped half way left behind."""
    with contextlib.suppress(OSError):
        for path in folder.glob(f"{PARTIAL_PREFIX}*"):
            with contextlib.suppress(OSError):
                path.unlink()


def mark_incomplete(folder: Path, reasons: list[str]) -> str | None:
    """Write ``folder/INCOMPLETE`` with the reasons, one a line. Returns None when
    written, else why it could not be (the folder is gone, the disk is full...)."""
    try:
        write_text(folder / INCOMPLETE, "".join(f"{r}\n" for r in reasons))
    except OSError as exc:
        return describe(exc)
    return None


def describe(exc: OSError) -> str:
    """An OSError in one line, without the file name it may repeat."""
    if exc.errno is None or not exc.strerror:
        return str(exc)
    return f"{exc.strerror} ({errno.errorcode.get(exc.errno, exc.errno)})"


def ensure_writable(folder: Path, *, create: bool) -> None:
    """Refuse, before anything runs, an output folder that cannot be written.

    With ``create``, the folder is made (with its parents) and a probe file is
    created in it and removed. Without, nothing is created: the probe goes into
    the nearest folder that exists, where the missing ones would be made.
    Raises OutputError saying which folder and why.
    """
    where = folder
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"output folder {folder} cannot be created: {describe(exc)}"
            ) from None
    else:
        while not where.exists() and where.parent != where:
            if where.is_symlink():  # a dangling link: mkdir would fail on it
                raise OutputError(f"output folder {folder}: {where} is a broken link")
            where = where.parent
    if not where.is_dir():
        raise OutputError(f"output folder {folder}: {where} is not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=".write-probe-", dir=where)
    except OSError as exc:
        raise OutputError(f"output folder {folder} is not writable: {describe(exc)}") from None
    os.close(fd)
    try:
        os.unlink(name)
    except OSError as exc:
        raise OutputError(
            f"output folder {folder}: a probe file {name} could not be removed: {describe(exc)}"
        ) from None


class PipeSafe(io.TextIOBase):
    """Standard output whose reader may leave (``orchestrator run ... | head -1``).

    A closed stdout is not a failure to write the run's files: once the reader has
    gone, what is printed goes to /dev/null (the descriptor too, so that the
    interpreter's last flush does not complain) and the run ends as it would have.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._gone()

    def _gone(self) -> None:
        self.reader_gone = True
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
