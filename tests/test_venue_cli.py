"""``orchestrator venue``: the venue in its own process, driven by real ccxt, stopped by Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import anyio
import ccxt
import pytest

from orchestrator.venue import make_client
from tests.fake_bybit import INSTRUMENTS

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[1]


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "venue",
            "--data-dir",
            str(INSTRUMENTS.parent),
            *args,
        ],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_venue_process_starts_answers_and_stops_on_sigint(
    tmp_path: Path, keep_decimal_context: None
) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text(
        "rules:\n  - kind: reject\n    category: linear\n    error: insufficient_balance\n"
    )
    process = start(
        "--price", "BTCUSDT=60000", "--faults", str(faults),
        env={"BYBIT_API_KEY": "rehearsal-key", "BYBIT_API_SECRET": "rehearsal-secret"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        with anyio.fail_after(30):
            url = (await anyio.to_thread.run_sync(process.stdout.readline)).strip()
        assert url.startswith("http://127.0.0.1:")

        client = make_client(url, api_key="rehearsal-key", secret="rehearsal-secret")
        try:
            await client.load_markets()
            with pytest.raises(ccxt.InsufficientFunds):  # the fault file's rule
                await client.create_order("BTC/USDT:USDT", "market", "sell", 0.01)
            await client.create_order(
                "BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": "c1"}
            )
            balance = await client.fetch_balance()
        finally:
            await client.close()
        assert balance["BTC"]["total"] == 0.00999

        async with aiohttp.ClientSession() as http, http.get(f"{url}/admin/requests") as answer:
            creates = (await answer.json())["creates"]
        assert [(c["category"], c["outcome"]) for c in creates] == [
            ("linear", "rejected"),
            ("spot", "placed"),
        ]
    finally:
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(30):
            code = await anyio.to_thread.run_sync(process.wait)
        stderr = process.stderr.read() if process.stderr else ""
        process.stdout.close() if process.stdout else None
        process.stderr.close() if process.stderr else None
    assert code == 128 + signal.SIGINT, stderr
    assert "venue stopped" in stderr
    assert "Traceback" not in stderr
    assert "rehearsal-secret" not in stderr


async def test_a_bad_fault_file_is_refused_before_listening(tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"rules": [{"kind": "reject"}]}))
    process = start("--faults", str(faults))
    with anyio.fail_after(30):
        out, err = await anyio.to_thread.run_sync(process.communicate)
    assert process.returncode == 2
    assert out == ""
    assert str(faults) in err
    assert "reject needs an error name or a ret_code" in err


def test_the_recorded_venue_refuses_candles_that_are_not_hourly(tmp_path: Path) -> None:
    # Its market steps an hour at a time: minute candles would be read an hour late.
    from tests.test_replay_streaming import minute_files

    minute_files(tmp_path, 600)
    (tmp_path / INSTRUMENTS.name).write_bytes(INSTRUMENTS.read_bytes())
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "venue", "--recorded", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip() == (
        f"error: {tmp_path}: BTCUSDT: the venue replays hourly candles; "
        "its spot candles are 1-minute ones"
    )
