"""What the dashboard's tests share: a short replay run through the real CLI, the
dashboard started as a user starts it (a subprocess on a free port) and stopped,
and plain HTTP against it (no client library: urllib)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import data_file

ROOT = Path(__file__).resolve().parents[1]
# Debian's Chromium, driven by Playwright (its own browser download is never used); the
# browser tests' fixtures are in conftest.py.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
DATA = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").parent
# Five months: positions open, close and open again (closed at the end, as a replay
# ends), in a fraction of a second.
WINDOW = ('start: "2024-01-01"', 'end: "2024-06-01"')


def env(**extra: str) -> dict[str, str]:
    values = dict(os.environ, ORCHESTRATOR_DATA=str(DATA), PYTHONUNBUFFERED="1")
    values.pop("ORCHESTRATOR_DASHBOARD_TOKEN", None)
    values.update(extra)
    return values


def short_replay(workdir: Path) -> Path:
    """``orchestrator run`` on the default config over WINDOW; the run's folder."""
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    text = text.replace("start: null", WINDOW[0]).replace("end: null", WINDOW[1])
    assert WINDOW[0] in text and WINDOW[1] in text
    (workdir / "config.yaml").write_text(text, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "config.yaml"],
        cwd=workdir,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (folder,) = (workdir / "runs").iterdir()
    return folder


def quick_sweep(workdir: Path) -> Path:
    """``orchestrator sweep --in-process`` on docs/examples/quick-sweep.yaml (two sets,
    five walk-forward steps, seconds) over the whole recorded data; its folder."""
    text = (ROOT / "docs" / "examples" / "quick-sweep.yaml").read_text(encoding="utf-8")
    text = text.replace("base: ../../config.yaml", "base: base.yaml")
    text = text.replace("output: ../../sweeps", "output: sweeps")
    (workdir / "sweep.yaml").write_text(text, encoding="utf-8")
    shutil.copyfile(ROOT / "config.yaml", workdir / "base.yaml")
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "sweep", "sweep.yaml", "--in-process"],
        cwd=workdir,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (folder,) = (workdir / "sweeps").iterdir()
    return folder


@contextmanager
def dashboard(workdir: Path, *args: str, **extra_env: str) -> Iterator[str]:
    """The dashboard on 127.0.0.1 and a free port, as the CLI starts it; its URL.
    Stopped with Ctrl-C (SIGINT) after, and checked to have stopped cleanly."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "dashboard", "--port", "0", *args],
        cwd=workdir,
        env=env(**extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("dashboard: http://127.0.0.1:"), line + proc.stderr.read()
        yield line.split()[1]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert "dashboard stopped" in err


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


def post(
    url: str, body: object, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, object]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# -- a generated journal: many positions in every kind of state, for paging and speed

STATES = (  # (final state, its path) in the proportions generated: mostly closed
    ("closed", ("send_legs", "legs_filled", "delta_ok", "close", "close_filled")),
    ("closed", ("send_legs", "legs_filled", "delta_ok", "close", "close_filled")),
    ("closed", ("send_legs", "legs_filled", "delta_ok", "close", "close_filled")),
    ("validated", ("send_legs", "legs_filled", "delta_ok")),
    ("rolled_back", ("send_legs", "leg_failed", "rollback_done")),
    ("rejected", ("reject",)),
    ("needs_attention", ("send_legs", "legs_filled", "delta_ok", "close", "close_failed")),
)
TARGETS = {
    "send_legs": "legs_sent", "legs_filled": "filled", "delta_ok": "validated",
    "close": "closing", "close_filled": "closed", "leg_failed": "rolling_back",
    "rollback_done": "rolled_back", "reject": "rejected", "close_failed": "needs_attention",
}  # fmt: skip
HOUR = 3_600_000
START_MS = 1_704_067_200_000  # 2024-01-01 UTC


def generate_journal(run_dir: Path, positions: int, pairs: int = 20) -> dict[str, int]:
    """A paper run's journal (no summary: it reads as a run that died) holding
    ``positions`` positions over ``pairs`` pairs, each with its transitions, fills,
    fees and three funding payments. Returns how many positions end in each state."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from orchestrator.journal import Journal
    from orchestrator.models import Position
    from orchestrator.trading.ledger import LedgerEntry

    counts: dict[str, int] = {}
    journal = Journal.create(
        run_dir,
        run_id=run_dir.name,
        mode="paper",
        run_nonce="bench",
        config_text=(ROOT / "config.yaml").read_text(encoding="utf-8"),
    )
    journal.group_writes()
    try:
        for i in range(positions):
            state, events = STATES[i % len(STATES)]
            coin = f"C{i % pairs:02d}"
            pair, spot, perp = f"{coin}USDT", f"{coin}/USDT", f"{coin}/USDT:USDT"
            opened = START_MS + i * HOUR
            held = state in ("validated", "needs_attention")
            flat = state in ("rejected", "rolled_back")
            price = Decimal(100 + i % 50)
            p = Position(
                id=f"{pair}-{i:05d}",
                spot_symbol=spot,
                perp_symbol=perp,
                state=state,
                quantity=Decimal(10),
                spot_qty=Decimal(10) if held else Decimal(0),
                perp_qty=Decimal(10) if held else Decimal(0),
                spot_entry_price=None if flat else price,
                perp_entry_price=None if flat else price - 1,
                created_at=datetime.fromtimestamp(opened / 1000, UTC),
                opened_at=None if flat else datetime.fromtimestamp(opened / 1000, UTC),
                closed_at=(
                    datetime.fromtimestamp((opened + 72 * HOUR) / 1000, UTC)
                    if state == "closed"
                    else None
                ),
            )
            source = "pending"
            for n, event in enumerate(events):
                target = TARGETS[event]
                journal.transition(p.id, event, source, target, opened + n, position=p)
                source = target
            rows: list[tuple[int, str, str, str, str]] = []  # time, kind, symbol, amount, side
            if not flat or state == "rolled_back":
                rows += [
                    (opened, "fill", spot, f"-{price * 10}", "buy"),
                    (opened, "fee", spot, "-1.00", ""),
                    (opened, "fill", perp, f"{(price - 1) * 10}", "sell"),
                    (opened, "fee", perp, "-0.55", ""),
                ]
                rows += [(opened + 8 * k * HOUR, "funding", perp, "0.35", "") for k in (1, 2, 3)]
            if state in ("closed", "rolled_back"):
                end = opened + 72 * HOUR
                rows += [
                    (end, "fill", spot, f"{(price + 2) * 10}", "sell"),
                    (end, "fee", spot, "-1.02", ""),
                    (end, "fill", perp, f"-{(price + 1) * 10}", "buy"),
                    (end, "fee", perp, "-0.56", ""),
                ]
            entries = [
                LedgerEntry(t, pair, p.id, kind, symbol, side, Decimal(10), price,  # type: ignore[arg-type]
                            Decimal(amount), "USDT")
                for t, kind, symbol, amount, side in rows
            ]  # fmt: skip
            journal.ledger("strategy", entries)
            counts[state] = counts.get(state, 0) + 1
    finally:
        journal.close()
    return counts
