"""Steering a running run from outside it, through its folder: ``orchestrator stop``,
``pause``, ``resume-trading``, ``close`` and ``set`` (commands/control.py; the dashboard
writes the same requests) each write one request file into
``RUN_DIR/control/``; the run takes the requests at its next cycle, carries them out,
records each in its journal with when and who, and answers each in a ``.done`` file
beside it, which the command prints.

A file, not a socket: the run folder is already where a run's state lives, it needs no
port, it works for the local user the run belongs to, and a request written while the
run is between cycles waits for it. A run is running while a process holds its journal
lock (journal/lock.py); a request to a run that is not running is refused at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import getpass
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from uuid import uuid4

from orchestrator import files
from orchestrator.exceptions import OrchestratorError
from orchestrator.journal.lock import LOCK_NAME, holder

CONTROL_DIR = "control"
DONE = ".done"
MAX_REQUEST_BYTES = 4096  # a request is a few fields; anything larger is not ours
Command = Literal["stop", "pause", "resume-trading", "close", "set"]
COMMANDS: tuple[Command, ...] = ("stop", "pause", "resume-trading", "close", "set")
MAX_SETTINGS = 8  # set: at most this many settings in one request


class ControlError(OrchestratorError):
    """A request that cannot be made: the folder is not a run, or the run is not running."""


@dataclass(frozen=True)
class Request:
    id: str
    command: Command
    close_all: bool = False  # stop: close every position first
    pair: str | None = None  # pause, resume-trading, close: one pair (None: all)
    user: str = ""
    at_ms: int = 0
    settings: tuple[tuple[str, str], ...] = ()  # set: (strategy setting, value as text)

    def words(self) -> str:
        """The request as the operator typed it, for the journal and the run's output."""
        text = f"orchestrator {self.command}"
        if self.close_all:
            text += " --close-all"
        if self.pair:
            text += f" --pair {self.pair}"
        elif self.command == "close":
            text += " --all"
        for name, value in self.settings:
            text += f" {name}={value}"
        return text


def running(run_dir: Path) -> int | None:
    """The pid of the process running ``run_dir`` (holding its journal lock), else None.
    Asked of the kernel's lock, not of a pid file: a pid may have been reused."""
    path = run_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            pid, _ = holder(path)
            return pid or -1  # held; its pid not written yet
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def send(run_dir: Path, request: Request) -> Path:
    """Write ``request`` for the run to take; the path of the answer to wait for."""
    folder = run_dir / CONTROL_DIR
    try:
        folder.mkdir(exist_ok=True)
        payload = {
            "id": request.id,
            "command": request.command,
            "close_all": request.close_all,
            "pair": request.pair,
            "user": request.user,
            "at_ms": request.at_ms,
            "settings": dict(request.settings),
        }
        files.write_text(folder / f"{request.id}.json", json.dumps(payload))
    except OSError as exc:
        raise ControlError(f"{folder}: cannot write the request: {files.describe(exc)}") from None
    return folder / f"{request.id}{DONE}"


def new_request(
    command: Command,
    *,
    close_all: bool = False,
    pair: str | None = None,
    settings: Mapping[str, str] | None = None,
    via: str | None = None,
) -> Request:
    """A request stamped with now and who asked (the local user, and ``via`` what: the
    dashboard), for the journal."""
    now = int(time.time() * 1000)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = f"uid {os.getuid()}"
    if via:
        user += f" via {via}"
    pairs = tuple((settings or {}).items())
    return Request(f"{now}-{uuid4().hex[:8]}", command, close_all, pair, user, now, pairs)


class ControlBox:
    """The run's side: the requests waiting in ``RUN_DIR/control/``, oldest first."""

    def __init__(self, run_dir: Path) -> None:
        self.folder = run_dir / CONTROL_DIR

    def take(self) -> list[tuple[Request | None, Path, str]]:
        """Every request waiting: (the request, its file, why it cannot be read or "")."""
        try:
            names = sorted(p for p in self.folder.glob("*.json") if not p.name.startswith("."))
        except OSError:
            return []
        taken = []
        for path in names:
            if path.with_suffix(DONE).exists():
                continue  # answered; the file is the command's to remove
            request, problem = _read(path)
            taken.append((request, path, problem))
        return taken

    def answer(self, path: Path, text: str) -> None:
        """Answer the request in ``path`` (the command prints ``text``) and remove it."""
        with contextlib.suppress(OSError):
            files.write_text(path.with_suffix(DONE), text)
            path.unlink()


def _read(path: Path) -> tuple[Request | None, str]:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_REQUEST_BYTES + 1)
        if len(raw) > MAX_REQUEST_BYTES:
            return None, "larger than a request"
        body = json.loads(raw)
    except (OSError, ValueError) as exc:
        return None, f"unreadable: {exc}"
    if not isinstance(body, dict) or body.get("command") not in COMMANDS:
        return None, f"not a request (command must be one of {', '.join(COMMANDS)})"
    pair = body.get("pair")
    settings = body.get("settings") or {}
    if (
        not isinstance(settings, dict)
        or len(settings) > MAX_SETTINGS
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in settings.items())
    ):
        return None, f"not a request: settings must be at most {MAX_SETTINGS} names and values"
    try:
        return (
            Request(
                id=str(body.get("id") or path.stem)[:64],
                command=body["command"],
                close_all=body.get("close_all") is True,
                pair=pair[:40] if isinstance(pair, str) and pair else None,
                user=str(body.get("user") or "")[:64],
                at_ms=int(body.get("at_ms") or 0),
                settings=tuple((k[:40], v[:40]) for k, v in settings.items()),
            ),
            "",
        )
    except (TypeError, ValueError) as exc:
        return None, f"not a request: {exc}"
