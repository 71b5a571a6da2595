"""``orchestrator stop``, ``pause``, ``resume-trading``, ``close`` and ``set``: steer a
running live run (or rehearsal) from another terminal, through its run folder
(control.py). Each waits for the run's answer and prints it; a run that is not running
is said at once."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from orchestrator.control import Command, ControlError, new_request, running, send
from orchestrator.journal import Journal, JournalError
from orchestrator.journal.schema import DB_NAME

STEERABLE = ("live", "dry-run", "rehearsal")  # a replay runs in seconds: Ctrl-C stops it
RESULTS = "summary.json"


def main(args: argparse.Namespace) -> int:
    """``orchestrator stop RUN_DIR [--close-all]``, ``pause RUN_DIR [--pair P]``,
    ``resume-trading RUN_DIR [--pair P]``, ``close RUN_DIR (--pair P | --all)``,
    ``set RUN_DIR NAME=VALUE...``; ``--wait SECONDS`` for the answer."""
    command: Command = args.command
    run_dir: Path = args.run_dir
    pid = _check(run_dir)
    settings: dict[str, str] = {}
    for item in getattr(args, "settings", None) or []:
        name, equals, value = item.partition("=")
        if not equals or not name.strip() or not value.strip():
            raise ControlError(f"{item!r}: write each setting as NAME=VALUE, e.g. max_basis=0.01")
        settings[name.strip().removeprefix("strategy.")] = value.strip()
    request = new_request(
        command,
        close_all=getattr(args, "close_all", False),
        pair=getattr(args, "pair", None),
        settings=settings,
    )
    answer = send(run_dir, request)
    print(f"asked the run (pid {pid}): {request.words()}", file=sys.stderr)
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if answer.is_file():
            text = answer.read_text(encoding="utf-8", errors="replace")
            with contextlib.suppress(OSError):
                answer.unlink()
            print(text)
            return 2 if text.startswith("refused") else 0
        if running(run_dir) is None:
            with contextlib.suppress(OSError):
                answer.with_suffix(".json").unlink()
            print(f"error: the run ended before it took the request; {_ended(run_dir)}",
                  file=sys.stderr)  # fmt: skip
            return 2
        time.sleep(0.1)
    print(
        f"error: no answer within {args.wait:g} s: the run takes requests once a cycle "
        "(live.poll_seconds), and not while an open or close is under way or the venue "
        f"cannot be read; the request stays in {answer.with_suffix('.json')} and is taken "
        "at its next cycle",
        file=sys.stderr,
    )
    return 1


def _check(run_dir: Path) -> int:
    """The running run's pid; ControlError when there is no run to steer."""
    if not (run_dir / DB_NAME).is_file():
        raise ControlError(f"{run_dir}: not a run folder (no {DB_NAME})")
    try:
        with Journal.read(run_dir) as view:
            mode = view.meta().get("mode", "")
    except JournalError as exc:
        raise ControlError(f"{run_dir}: its journal cannot be read: {exc}") from None
    if mode not in STEERABLE:
        raise ControlError(
            f"{run_dir}: a {mode or 'paper'} run cannot be steered (a replay runs in seconds; "
            "Ctrl-C stops it); stop, pause, resume-trading, close and set steer live runs and "
            "rehearsals"
        )
    pid = running(run_dir)
    if pid is None:
        raise ControlError(f"{run_dir}: the run is not running; {_ended(run_dir)}")
    return pid


def _ended(run_dir: Path) -> str:
    if (run_dir / RESULTS).is_file():
        return f"it stopped and wrote its results ({run_dir / RESULTS})"
    return (
        f"it stopped without writing its results (killed?): "
        f"`orchestrator run --resume {run_dir}` carries it on"
    )
