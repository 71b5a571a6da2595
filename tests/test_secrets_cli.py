"""Secrets never reach a message: a config path that names a .env, a key file or any
file by mistake (`check`, `run`, `rehearse`, a sweep's `base:`), and the shipped venue
started in a shell holding the live keys. Each case searches stdout and stderr for
a sentinel secret."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from orchestrator.cli import main

SECRET = "Zq7SENTINELsecret0123456789abcXYZ"  # the shape of a Bybit secret
KEY = "Kx9SENTINELkey42abcd"  # ... and of a key
SHORT = "hunter2x"  # a short password: letters and digits

# (id, file name, content): files a user may name as the config by mistake.
FILES: list[tuple[str, str, bytes]] = [
    ("dotenv", ".env", f"BYBIT_API_KEY={KEY}\nBYBIT_API_SECRET={SECRET}\n".encode()),
    ("dotenv export", ".env", f"export BYBIT_API_SECRET='{SECRET}'\n".encode()),
    ("dotenv spaces", "prod.env", f"BYBIT_API_SECRET = {SECRET}\n".encode()),
    ("bare secret", "secret.txt", f"{SECRET}\n".encode()),
    ("short password", "pass.txt", f"{SHORT}\n".encode()),
    ("json key file", "keys.json", json.dumps({"key": KEY, "secret": SECRET}).encode()),
    ("json under a known key", "c.json", json.dumps({"mode": SECRET}).encode()),
    ("json as a key", "k.json", json.dumps({SECRET: 1}).encode()),
    ("secret as a tag", "t.yaml", f"mode: !{SECRET} x\n".encode()),
    ("secret after a tab", "tab.txt", f"mode:\n\t{SECRET}\n".encode()),
    ("random text", "notes.txt", f"remember: the prod token\n{SECRET} {KEY}\n".encode()),
    ("pem", "id.pem", f"-----BEGIN PRIVATE KEY-----\n{SECRET}\n-----END".encode()),
    ("binary", "blob.bin", os.urandom(64) + SECRET.encode() + b"\x00\xff"),
    ("utf-16", "w.env", f"BYBIT_API_SECRET={SECRET}\n".encode("utf-16")),
    ("mode list", "m.yaml", f"mode: [{SECRET}]\npairs: {SHORT}\n".encode()),
]
SENTINELS = (SECRET, KEY, SHORT, SECRET[:12], KEY[:10])


def leaks(text: str) -> list[str]:
    return [s for s in SENTINELS if s in text]


@pytest.mark.parametrize("command", ["check", "run", "rehearse"])
@pytest.mark.parametrize(("name", "content"), [f[1:] for f in FILES], ids=[f[0] for f in FILES])
def test_a_file_named_as_the_config_by_mistake_is_never_quoted(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    name: str,
    content: bytes,
) -> None:
    """45 cases: 15 files with sentinel secrets x check, run and rehearse."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / name
    path.write_bytes(content)
    assert main([command, str(path)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"error: {path}: "), err
    assert leaks(out + err) == [], out + err
    assert "Traceback" not in err


@pytest.mark.parametrize(("name", "content"), [f[1:] for f in FILES], ids=[f[0] for f in FILES])
def test_a_sweep_whose_base_is_a_secret_file_never_quotes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes
) -> None:
    """15 cases: `base: <file>` in a sweep file, through `orchestrator sweep`."""
    (tmp_path / name).write_bytes(content)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        f"base: {json.dumps(name)}\nparameters:\n  strategy.funding_window: [3, 9]\n"
        "search:\n  method: grid\n"
    )
    assert main(["sweep", str(sweep), "--workers", "1"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: "), err
    assert leaks(out + err) == [], out + err
    assert not (tmp_path / "sweeps").exists() or not any((tmp_path / "sweeps").iterdir())


def test_settings_that_are_not_secrets_are_still_quoted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The words stay useful: a mistyped mode is shown as written."""
    config = tmp_path / "config.yaml"
    config.write_text("mode: papr\n")
    assert main(["check", str(config)]) == 2
    assert 'got the string "papr"' in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "flags", "said"),
    [
        ({"BYBIT_API_KEY": KEY, "BYBIT_API_SECRET": SECRET}, [], "API key from $BYBIT_API_KEY"),
        ({"BYBIT_API_KEY": KEY}, ["--secret", SECRET], "secret from --secret"),
        ({}, ["--key", KEY, "--secret", SECRET], "API key from --key"),
    ],
    ids=["environment", "mixed", "flags"],
)
def test_the_venue_never_prints_the_key_it_accepts(
    tmp_path: Path, env: dict[str, str], flags: list[str], said: str
) -> None:
    """3 cases: keys from the environment (a trader's live keys), flags, or both; the
    venue says where they come from, and a request signed with them is accepted."""
    data = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BYBIT_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "venue", "--data-dir", str(data), *flags],
        env={**clean, **env},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        with urllib.request.urlopen(f"{url}/v5/market/time", timeout=10) as answer:
            assert json.loads(answer.read())["retCode"] == 0
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert said in err, err
    assert leaks(url + out + err) == [], err
