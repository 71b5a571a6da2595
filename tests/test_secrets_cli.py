"""Secrets never reach a message: a config path that names a .env, a key file or any
file by mistake (`check`, `run`, `rehearse`, a sweep's `base:`), the shipped venue
started in a shell holding the live keys, and a live run's keys as the environment holds
them (whitespace around them, inside them) or as the venue echoes them. Each case
searches stdout and stderr (and the run's files) for a sentinel secret."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.test_crash_resume_live import VenueProcess, Watched, env, write_config

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


# -- a live run's keys, as the environment holds them


def live_run(workdir: Path, url: str, key: str, secret: str) -> subprocess.Popen[str]:
    write_config(workdir, url, on_stop="leave")
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", "config.yaml"],
        cwd=workdir,
        env=env(BYBIT_API_KEY=key, BYBIT_API_SECRET=secret),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def written(workdir: Path) -> str:
    """Everything the runs under ``workdir`` wrote (the journal, traces, INCOMPLETE...)."""
    return "".join(
        path.read_bytes().decode(errors="replace")
        for path in (workdir / "runs").rglob("*")
        if path.is_file()
    )


@pytest.mark.parametrize(
    ("key", "secret"),
    [("crash-key\n", " crash-secret "), (" crash-key\r", "\tcrash-secret\r\n")],
    ids=["line break, spaces", "carriage return, tab"],
)
def test_keys_pasted_with_whitespace_around_them_are_trimmed_and_trade(
    tmp_path: Path, key: str, secret: str
) -> None:
    """A key pasted from a file ends with a line break: taken without it, not sent as
    part of a header (aiohttp refused it with a traceback) nor signed with it (the venue
    refused the signature)."""
    venue = VenueProcess(tmp_path, [], "100000")  # its key and secret: crash-key, crash-secret
    try:
        run = Watched(live_run(tmp_path, venue.url, key, secret))
        deadline = time.monotonic() + 60
        while not run.trading and run.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        run.process.send_signal(signal.SIGTERM)
        code, err = run.finish(timeout=60)
    finally:
        venue.stop()
    assert code == 128 + signal.SIGTERM, err
    assert run.trading and "Traceback" not in err
    assert "crash-secret" not in err + written(tmp_path)


@pytest.mark.parametrize(
    ("key", "secret", "said"),
    [
        (f"{KEY[:5]} {KEY[5:]}", SECRET, "BYBIT_API_KEY holds whitespace"),
        (KEY, f"{SECRET[:5]}\n{SECRET[5:]}", "BYBIT_API_SECRET holds whitespace"),
        (KEY, f"{SECRET[:5]}\x1b{SECRET[5:]}", "BYBIT_API_SECRET holds a control"),
        (f"\u200b{KEY}", SECRET, "BYBIT_API_KEY holds a control or invisible"),
    ],
    ids=["space in the key", "line break in the secret", "escape", "zero-width space"],
)
@pytest.mark.parametrize("command", ["run", "check"])
def test_a_key_with_whitespace_or_a_control_character_inside_is_refused_before_anything(
    tmp_path: Path, command: str, key: str, secret: str, said: str
) -> None:
    """8 cases; exit 2, the value never shown, nothing sent: the venue is not even there."""
    write_config(tmp_path, "http://127.0.0.1:9")  # nothing listens there
    process = subprocess.run(
        [sys.executable, "-m", "orchestrator", command, "config.yaml"],
        cwd=tmp_path,
        env=env(BYBIT_API_KEY=key, BYBIT_API_SECRET=secret),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 2, process.stderr
    assert process.stderr.startswith(f"error: {said}"), process.stderr
    assert "nothing was sent" in process.stderr and "Traceback" not in process.stderr
    assert "SENTINEL" not in process.stdout + process.stderr
    assert not (tmp_path / "runs").exists()


def test_a_key_the_venue_echoes_is_masked_in_every_form(tmp_path: Path) -> None:
    """The venue answers a bad signature with the signed text, the key in it; the answer
    is JSON, which escapes a quote and a backslash, and ccxt quotes it as it came."""
    odd = 'Kx9"SENTINEL\\key/42'
    venue = VenueProcess(tmp_path, [], "100000", "--key", odd)
    try:
        process = live_run(tmp_path, venue.url, odd, "not-the-secret")
        out, err = process.communicate(timeout=60)
    finally:
        venue.stop()
    assert process.returncode == 2, err
    assert "error sign! origin_string[" in err and "***" in err, err
    assert "Traceback" not in err
    forms = {odd, json.dumps(odd)[1:-1], repr(odd)[1:-1]}  # as sent, in JSON, in a repr
    assert len(forms) == 3
    shown = out + err + written(tmp_path)
    assert [form for form in forms if form in shown] == []
    assert "SENTINEL" not in shown
