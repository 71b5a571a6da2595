"""The main job end to end, as a user runs it: a subprocess on the default config."""

from __future__ import annotations

import csv
import http.server
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support import data_file

ROOT = Path(__file__).resolve().parents[1]
DATA = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").parent


def orchestrator(*args: str, cwd: Path, data: Path = DATA) -> subprocess.Popen[str]:
    env = dict(os.environ, ORCHESTRATOR_DATA=str(data), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copyfile(ROOT / "config.yaml", tmp_path / "config.yaml")
    return tmp_path


def the_run_folder(workdir: Path) -> Path:
    (folder,) = (workdir / "runs").iterdir()
    return folder


def check_ledger(folder: Path, summary: dict[str, object]) -> None:
    """Recompute the identity from ledger.csv alone: it must hold to the last digit."""
    with (folder / "ledger.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("run", "strategy") == "strategy"]
    by_kind: dict[str, Decimal] = {}
    for row in rows:
        by_kind[row["kind"]] = by_kind.get(row["kind"], Decimal(0)) + Decimal(row["amount"])
    start = Decimal(str(summary["starting_balance"]))
    end = Decimal(str(summary.get("ending_equity", summary["ending_balance"])))
    price_pnl = by_kind.get("fill", Decimal(0)) + by_kind.get("mark", Decimal(0))
    fees = -by_kind.get("fee", Decimal(0))
    assert start + by_kind.get("funding", Decimal(0)) - fees + price_pnl == end
    assert summary["ledger_balances"] is True


def test_default_run_writes_a_complete_run_folder(workdir: Path) -> None:
    proc = orchestrator("run", "config.yaml", cwd=workdir)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err

    folder = the_run_folder(workdir)
    assert {p.name for p in folder.iterdir()} == {
        "config.yaml",
        "summary.json",
        "ledger.csv",
        "positions.csv",
        "equity.csv",
        "chart.html",
        "traces.jsonl",
        "journal.sqlite3",
        "journal.lock",
    }
    assert (folder / "config.yaml").read_bytes() == (workdir / "config.yaml").read_bytes()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["interrupted"] is False
    assert set(summary["pairs"]) == {"BTCUSDT", "ETHUSDT"}
    assert summary["total"]["positions"] > 0
    assert Decimal(summary["total"]["funding"]) > 0
    assert summary["baseline_total"]["positions"] == 2  # always hedged: one per pair
    assert summary["start"].startswith("2024-01-01")
    check_ledger(folder, summary)
    with (folder / "ledger.csv").open() as f:
        kinds = {row["kind"] for row in csv.DictReader(f)}
    assert kinds == {"fill", "fee", "slippage", "funding"}
    with (folder / "positions.csv").open() as f:
        positions = [p for p in csv.DictReader(f) if p.get("run", "strategy") == "strategy"]
    assert len(positions) == sum(summary["positions"].values())
    assert {p["state"] for p in positions} == {"closed"}
    # The baseline is reported the same way, marked as such.
    with (folder / "positions.csv").open() as f:
        hedged = [p for p in csv.DictReader(f) if p["run"] == "always hedged"]
    assert [p["state"] for p in hedged] == ["closed", "closed"]
    assert summary["baseline_positions"] == {"closed": 2}
    assert summary["baseline_ledger_balances"] is True
    with (folder / "ledger.csv").open() as f:
        baseline_rows = [r for r in csv.DictReader(f) if r["run"] == "always hedged"]
    assert {r["position_id"] for r in baseline_rows} == {p["id"] for p in hedged}
    assert "warning: " not in out  # nothing ended unfinished
    assert 'id="chart-equity"' in (folder / "chart.html").read_text()
    # The hourly equity, exact: an hour apart, from the start to the summary's end.
    with (folder / "equity.csv").open() as f:
        equity = list(csv.DictReader(f))
    times = [int(row["time_ms"]) for row in equity]
    assert all(b - a == 3_600_000 for a, b in itertools.pairwise(times)), times[:5]
    assert Decimal(equity[0]["strategy"]) == Decimal(equity[0]["always_hedged"]) == 100_000
    assert Decimal(equity[-1]["strategy"]) == Decimal(summary["ending_equity"])

    # The console: the table per pair and in total, beside the baseline.
    for needle in ("BTCUSDT", "ETHUSDT", "total", "always hedged", "ledger balances"):
        assert needle in out
    assert "strategy" in err  # the progress bar
    assert "dropped 15 duplicate rows" in err  # the recorded data's known defect, reported


def test_ctrl_c_stops_cleanly_writes_everything_and_exits_130(workdir: Path) -> None:
    proc = orchestrator("run", "config.yaml", cwd=workdir)
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until the replay is under way
        if line.startswith("strategy") and "#" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "INTERRUPTED" in out
    assert "Traceback" not in err
    folder = the_run_folder(workdir)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["interrupted"] is True
    written = {p.name for p in folder.iterdir()}
    assert {"ledger.csv", "positions.csv", "chart.html", "traces.jsonl"} <= written
    check_ledger(folder, summary)
    assert set(summary["positions"]) <= {"closed"}  # nothing left half-open
    assert summary["end"] < "2025-09"  # it stopped early
    # Every position's trace was flushed on the way out.
    from orchestrator.tracing import inspect, trace_file

    spans, problems = trace_file.read_spans(folder / "traces.jsonl")
    assert problems == []
    traced = inspect.positions(spans)
    assert len(traced) == sum(summary["positions"].values())
    assert all(not p.incomplete for p in traced)


def test_traces_also_go_to_an_otlp_http_endpoint(workdir: Path) -> None:
    received: list[tuple[str, str, int]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], len(body)))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = workdir / "config.yaml"
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
        config.write_text(
            config.read_text().replace("otlp_endpoint: null", f"otlp_endpoint: {endpoint}")
        )
        proc = orchestrator("run", "config.yaml", cwd=workdir)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    finally:
        server.shutdown()
    assert received
    assert {(path, kind) for path, kind, _ in received} == {
        ("/v1/traces", "application/x-protobuf")
    }
    assert (the_run_folder(workdir) / "traces.jsonl").stat().st_size > 0  # the file as well


def test_check_validates_without_running(workdir: Path) -> None:
    proc = orchestrator("check", "config.yaml", cwd=workdir)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "OK" in out
    assert not (workdir / "runs").exists()
    # The data's warnings, as `run` prints them.
    assert "warning: bybit_BTCUSDT_spot_1h_2024-01-01_2025-09-30.csv.gz: dropped 15" in err
    assert (
        "warning: ETHUSDT: its data ends at 2025-09-25 23:00, 96 h (4 days) before BTCUSDT's" in err
    )


def test_unknown_symbol_is_a_config_error_at_its_path(workdir: Path) -> None:
    config = workdir / "config.yaml"
    text = config.read_text().replace("perp: ETH/USDT:USDT", "perp: SOL/USDT:USDT")
    config.write_text(text.replace("spot: ETH/USDT", "spot: SOL/USDT"))
    proc = orchestrator("check", "config.yaml", cwd=workdir)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "pairs[1].spot: unknown symbol 'SOL/USDT'" in err


def test_missing_data_says_which_command_fetches_it(workdir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-data"
    empty.mkdir()
    shutil.copyfile(
        DATA / "bybit_instruments_info_BTC_ETH_ccxt_static_subset.json",
        empty / "bybit_instruments_info_BTC_ETH_ccxt_static_subset.json",
    )
    proc = orchestrator("run", "config.yaml", cwd=workdir, data=empty)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "orchestrator data download --pairs BTC/USDT" in err
    assert str(empty) in err
    assert not (workdir / "runs").exists()  # nothing started


def test_schema_command_prints_the_shipped_schema(workdir: Path) -> None:
    proc = orchestrator("schema", cwd=workdir)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out) == json.loads((ROOT / "config.schema.json").read_text())
