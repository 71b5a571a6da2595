"""Every figure of a run agrees: the ledger with the equity, positions.csv with the
table and summary.json, the traces with positions.csv; an interrupted run says so
on clean lines and compares like with like. Through the CLI, on the recorded data."""

from __future__ import annotations

import csv
import decimal
import io
import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from orchestrator.commands import run as app
from orchestrator.models import ZERO
from orchestrator.trading.curve import Curve
from orchestrator.trading.figures import annualise, summarise
from orchestrator.trading.ledger import Ledger
from orchestrator.trading.run import RunResult
from tests.support import data_file
from tests.test_signals import SITECUSTOMIZE

ROOT = Path(__file__).resolve().parents[1]
DATA = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").parent
PLAIN = decimal.Context(prec=200)  # plain Decimal arithmetic, wide enough never to round
MONEY = ("funding", "fees", "price_pnl", "net_pnl")


def env(**extra: str) -> dict[str, str]:
    return dict(os.environ, ORCHESTRATOR_DATA=str(DATA), PYTHONUNBUFFERED="1", **extra)


def orchestrator(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copyfile(ROOT / "config.yaml", tmp_path / "config.yaml")
    return tmp_path


def the_run(workdir: Path) -> Path:
    (folder,) = (workdir / "runs").iterdir()
    return folder


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def recomputed(ledger: list[dict[str, str]], run: str, start: Decimal) -> Decimal:
    """starting + funding - fees + price PnL, from ledger.csv's rows of ``run``."""
    total = start
    for row in ledger:
        if row["run"] == run and row["kind"] in ("funding", "fee", "fill", "mark"):
            total = PLAIN.add(total, Decimal(row["amount"]))  # fees are written negative
    return total


def readme_faults() -> str:
    """The fault file the rehearsal guide shows under ``## Faults``."""
    text = (ROOT / "docs" / "guides" / "rehearsal.md").read_text()
    section = text[text.index("## Faults") :]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_a_rehearsal_with_the_readme_faults_balances_exactly_from_its_ledger(
    workdir: Path,
) -> None:
    # This window's fees have 16 significant digits: ccxt's floats dropped the last.
    (workdir / "faults.yaml").write_text(readme_faults())
    args = ("--hours", "240", "--start", "2024-02-01", "--faults", "faults.yaml")
    done = orchestrator("rehearse", "config.yaml", *args, cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "rehearsal ledger balances" in done.stdout
    assert "DOES NOT BALANCE" not in done.stdout + done.stderr
    folder = the_run(workdir)
    summary = json.loads((folder / "summary.json").read_text())
    ledger = rows(folder / "ledger.csv")
    start = Decimal(summary["starting_balance"])
    assert summary["positions"].get("rolled_back"), "the faults must have bitten"
    assert recomputed(ledger, "rehearsal", start) == Decimal(summary["ending_equity"])
    assert summary["ledger_balances"] is True and summary["baseline_ledger_balances"] is True


def _unbalanced_run() -> RunResult:
    """A run whose ledger says 12.5 of funding came in while its wallet never got it."""
    ledger = Ledger({"USDT": Decimal(1000)})
    ledger.record_funding(
        0, "BTCUSDT", "BTCUSDT-0001", "BTC/USDT:USDT", D1, D1, D1, Decimal("12.5")
    )
    return RunResult(
        label="strategy",
        quote="USDT",
        start_ms=0,
        end_ms=3_600_000,
        starting_balance=Decimal(1000),
        ending_balance=Decimal(1000),
        ending_equity=Decimal(1000),
        ledger=ledger,
        positions=[],
        pairs=[],
        equity=Curve(16),
        events=1,
        interrupted=False,
        notes=[],
    )


D1 = Decimal(1)


def test_a_run_whose_ledger_does_not_balance_says_so_and_exits_4() -> None:
    result = _unbalanced_run()
    out, err = io.StringIO(), io.StringIO()
    summary = summarise("r", result, None, [])
    unbalanced = app._print_results(out, summary, result, None, 0.0, False)
    code = app._exit(err, unbalanced, None)
    assert code == app.EXIT_UNBALANCED == 4
    line = "1000 + funding - fees + price PnL = 1012.5 USDT, ending equity 1000 USDT, "
    assert f"strategy ledger DOES NOT BALANCE: {line}difference 12.5 USDT" in out.getvalue()
    assert f"error: strategy: strategy ledger DOES NOT BALANCE: {line}" in err.getvalue()
    # A signal's code still wins: the run was stopped, and the line says the rest.
    assert app._exit(io.StringIO(), unbalanced, signal.SIGINT) == 130
    assert app._exit(io.StringIO(), [], None) == 0


def _money(x: Decimal) -> str:
    return f"{x:,.2f}"


def test_positions_csv_the_table_summary_and_traces_agree_on_the_default_run(
    workdir: Path,
) -> None:
    done = orchestrator("run", "config.yaml", cwd=workdir)
    assert done.returncode == 0, done.stderr
    folder = the_run(workdir)
    summary = json.loads((folder / "summary.json").read_text())
    positions = rows(folder / "positions.csv")
    sums: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(
        lambda: dict.fromkeys(MONEY, ZERO)
    )
    for p in positions:
        for key in ((p["run"], p["id"].rsplit("-", 1)[0]), (p["run"], "total")):
            for name in MONEY:
                sums[key][name] = PLAIN.add(sums[key][name], Decimal(p[name]))
    for run, pairs, total in (
        ("strategy", summary["pairs"], summary["total"]),
        ("always hedged", summary["baseline"], summary["baseline_total"]),
    ):
        for name, figures in [*pairs.items(), ("total", total)]:
            for field in MONEY:
                assert sums[run, name][field] == Decimal(figures[field]), (run, name, field)
    # The table's total rows print the same sums.
    lines = done.stdout.splitlines()
    total_row = next(line for line in lines if line.startswith("total     strategy"))
    hedged_row = lines[lines.index(total_row) + 1]
    for row, run in ((total_row, "strategy"), (hedged_row, "always hedged")):
        for field in MONEY:
            assert f" {_money(sums[run, 'total'][field])} " in f"{row} ", (run, field)
    # Hours held add up to the table's time in market.
    hours = sum((Decimal(p["hours_held"]) for p in positions if p["run"] == "strategy"), ZERO)
    assert hours.quantize(Decimal("0.01")) == Decimal(summary["total"]["hours_in_market"])

    # orchestrator traces shows each position with the same figures.
    traced = orchestrator("traces", str(folder / "traces.jsonl"), "--json", cwd=workdir)
    assert traced.returncode == 0, traced.stderr
    by_id = {t["id"]: t for t in json.loads(traced.stdout)}
    strategy = [p for p in positions if p["run"] == "strategy"]
    assert set(by_id) == {p["id"] for p in strategy}
    fields = [*MONEY, "hours_held", "spot_entry_price", "perp_entry_price"]
    fields += ["spot_exit_price", "perp_exit_price"]
    for p in strategy:
        for name in fields:
            assert Decimal(by_id[p["id"]][name]) == Decimal(p[name]), (p["id"], name)
    listed = orchestrator("traces", str(folder / "traces.jsonl"), cwd=workdir)
    for p in strategy:
        (line,) = [x for x in listed.stdout.splitlines() if x.startswith(p["id"] + " ")]
        for name in ("funding", "fees", "net_pnl"):
            assert f" {_money(Decimal(p[name]))} " in line, (p["id"], name)


def _start_interruptible(workdir: Path, use_pty: bool) -> tuple[subprocess.Popen[bytes], int]:
    """``orchestrator run`` with its progress slowed (a sleep after each redraw), its
    output on a terminal or on pipes; the master side of the terminal, or -1."""
    site = workdir / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    extra = {
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
        "FO_TEST_PROGRESS_SLEEP": "0.1",
        "FO_TEST_REPLACE_SLEEP": "0",
    }
    master = -1
    if use_pty:
        master, slave = pty.openpty()
        stdout: int = slave
        stderr: int = slave
    else:
        stdout = stderr = subprocess.PIPE
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", "config.yaml"],
        cwd=workdir,
        env=env(**extra),
        stdout=stdout,
        stderr=subprocess.STDOUT if not use_pty else stderr,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    if use_pty:
        os.close(slave)
    return proc, master


def _read_until(read: object, needle: bytes, seen: bytearray) -> None:
    assert callable(read)
    while needle not in seen:
        chunk = read()
        if not chunk:
            pytest.fail(f"the run ended before {needle!r}: {seen.decode()}")
        seen += chunk


@pytest.mark.parametrize("use_pty", [True, False], ids=["terminal", "pipe"])
def test_an_interrupted_run_prints_clean_lines_and_compares_the_same_window(
    workdir: Path, use_pty: bool
) -> None:
    proc, master = _start_interruptible(workdir, use_pty)
    seen = bytearray()

    def read() -> bytes:
        if use_pty:
            try:
                return os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                return b""
        assert proc.stdout is not None
        return proc.stdout.read1(4096)  # type: ignore[attr-defined,no-any-return]

    try:
        _read_until(read, b"strategy       [###", seen)  # 10 % replayed
        proc.send_signal(signal.SIGINT)
        while chunk := read():
            seen += chunk
        assert proc.wait(timeout=120) == 130, seen.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if master >= 0:
            os.close(master)
    text = seen.decode().replace("\r\n", "\n")
    lines = text.split("\n")
    # Each bar ends its line: the baseline's bar never overwrites the strategy's,
    # and the summary starts a line of its own.
    for line in lines:
        assert not ("strategy       [" in line and "always hedged  [" in line), line
    (headline,) = [line for line in lines if "INTERRUPTED" in line]
    assert headline.startswith("run "), headline
    assert any(line.lstrip("\r").startswith("always hedged  [") for line in lines), text

    folder = the_run(workdir)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["interrupted"] is True
    end = datetime.fromisoformat(summary["end"].replace("Z", "+00:00"))
    start = datetime.fromisoformat(summary["start"].replace("Z", "+00:00"))
    assert end < datetime(2025, 1, 1, tzinfo=UTC)
    # The baseline ran to the very instant the strategy stopped at, not zero.
    hedged = [r for r in rows(folder / "ledger.csv") if r["run"] == "always hedged"]
    assert max(int(r["time_ms"]) for r in hedged) == int(end.timestamp() * 1000)
    assert Decimal(summary["baseline_total"]["funding"]) > 0
    assert summary["baseline_positions"] == {"closed": 2}
    # One rule: every figure is annualised over the window replayed.
    span = int((end - start).total_seconds() * 1000)
    every = [*summary["pairs"].values(), summary["total"]]
    for figures in [*every, *summary["baseline"].values(), summary["baseline_total"]]:
        with decimal.localcontext(PLAIN):
            assert Decimal(figures["annualised_return"]) == annualise(
                Decimal(figures["return"]), span
            )
    assert re.search(r"always hedged\s+2\s", text)
