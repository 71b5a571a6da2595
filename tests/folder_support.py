"""Helpers for the journal-fault and damaged-folder tests: `orchestrator run` in its
own process on the default config, a run's figures, and a small tmpfs (a real full
disk: tests run as root, which ignores file permissions)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import data_file

ROOT = Path(__file__).resolve().parents[1]
DATA = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").parent
# A guard against a run that never ends (the bug these tests are about), not a
# measure: a whole replay takes a few seconds here.
GUARD_SECONDS = 120


def workdir(folder: Path, output: Path | None = None) -> Path:
    """The default config.yaml in ``folder``, its output in ``output`` (default: runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "config.yaml").read_text()
    if output is not None:
        text = text.replace("  dir: runs ", f"  dir: {output} ")
    (folder / "config.yaml").write_text(text)
    return folder


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_CRASH")}
    return dict(base, ORCHESTRATOR_DATA=str(DATA), PYTHONPATH=str(ROOT), **extra)


def orchestrator(
    *args: str | Path, cwd: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *map(str, args)],
        cwd=cwd,
        env=env(**(extra_env or {})),
        capture_output=True,
        text=True,
        timeout=GUARD_SECONDS,
    )


def only_run(output: Path) -> Path:
    (folder,) = [p for p in output.iterdir() if p.is_dir()]
    return folder


def figures(run_dir: Path) -> dict[str, object]:
    """What a user compares: the ledger, the positions and the summary (its id aside)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.pop("run_id")
    return {
        "ledger": (run_dir / "ledger.csv").read_text(),
        "positions": (run_dir / "positions.csv").read_text(),
        "summary": summary,
    }


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr


def trace_file_whole_or_gone(run_dir: Path, stderr: str | None = None) -> None:
    """A trace file under its final name is whole: every line a JSON document; one
    cut short was removed, and (given the run's ``stderr``) the run said so."""
    path = run_dir / "traces.jsonl"
    if not path.exists() and stderr is not None:
        assert f"{path}: " in stderr and "the file, cut short, was removed" in stderr, stderr
    if path.exists():
        text = path.read_text()
        assert text == "" or text.endswith("\n")
        for line in text.splitlines():
            json.loads(line)


def can_mount() -> bool:
    probe = Path(f"/tmp/fo-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
            capture_output=True,
            timeout=30,
        )
        if done.returncode != 0:
            return False
        subprocess.run(["umount", str(probe)], check=True, timeout=30)
        return True
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        probe.rmdir()


needs_mount = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None or not can_mount(),
    reason="needs root and tmpfs mounts (a real full disk)",
)


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` (made), unmounted at the end."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def resize(where: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` seen through a read-only bind mount (root writes anything else)."""
    view = folder.with_name(folder.name + "-ro")
    view.mkdir()
    subprocess.run(["mount", "--bind", str(folder), str(view)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
        yield view
    finally:
        subprocess.run(["umount", str(view)], check=True)
        view.rmdir()


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[Path]:
    """``chattr +i``: nothing in it can be created, removed or renamed, even by root."""
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
