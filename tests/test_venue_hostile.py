"""Hostile input met through the commands a user types and the venue's HTTP: an
instruments file of the wrong shape, the shipped venue's admin API, its signed
endpoints and its command-line flags. Every answer is a clear refusal, never a
traceback and never an HTTP 500."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.cli import main
from orchestrator.config import DATA_ENV
from orchestrator.venue import Venue, make_client
from orchestrator.venue.audit import MAX_REFUSED
from orchestrator.venue.client import DEFAULT_API_KEY, DEFAULT_SECRET

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
INSTRUMENTS = "bybit_instruments_info_BTC_ETH_ccxt_static_subset.json"
BTC_CONFIG = "pairs:\n  - spot: BTC/USDT\n    perp: BTC/USDT:USDT\n"


def data_copy(root: Path) -> Path:
    """A data folder in ``root``: symlinks to the recorded csv.gz files, a real copy of
    the instruments file (the test replaces it)."""
    folder = root / "data"
    folder.mkdir()
    for recorded in DATA.glob("*.csv.gz"):
        (folder / recorded.name).symlink_to(recorded)
    (folder / INSTRUMENTS).write_bytes((DATA / INSTRUMENTS).read_bytes())
    return folder


# (id, the instruments document, what the error says after "<file>: ")
SHAPES: list[tuple[str, object, str]] = [
    ("null", None, "expected an object with 'spot' and 'linear' sections, found null"),
    ("integer", 5, "found a number"),
    ("decimal", 1.5, "found a number"),
    ("true", True, "found true"),
    ("false", False, "found false"),
    ("text", "spot", "found text"),
    ("empty array", [], "found an array"),
    ("array of objects", [{"spot": {}}], "found an array"),
    ("spot null", {"spot": None}, "spot is null, not an object"),
    ("spot number", {"spot": 3}, "spot is a number, not an object"),
    ("spot text", {"spot": "BTCUSDT"}, "spot is text, not an object"),
    ("linear array", {"linear": [1]}, "linear is an array, not an object"),
    ("linear true", {"linear": True}, "linear is true, not an object"),
    ("entry null", {"spot": {"BTCUSDT": None}}, "spot.BTCUSDT is null, not an object"),
    ("entry number", {"linear": {"BTCUSDT": 7}}, "linear.BTCUSDT is a number, not an object"),
    ("entry array", {"spot": {"BTCUSDT": []}}, "spot.BTCUSDT is an array, not an object"),
    ("entry text", {"spot": {"BTCUSDT": "x"}}, "spot.BTCUSDT is text, not an object"),
]


@pytest.mark.parametrize(("document", "said"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_an_instruments_file_of_the_wrong_shape_is_refused_by_check(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    document: object,
    said: str,
) -> None:
    """17 shapes: every JSON top-level type, and wrong types one and two levels down."""
    folder = data_copy(tmp_path)
    instruments = folder / INSTRUMENTS
    instruments.write_text(json.dumps(document))
    monkeypatch.setenv(DATA_ENV, str(folder))
    config = tmp_path / "config.yaml"
    config.write_text(BTC_CONFIG)
    assert main(["check", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"error: {instruments}: "), err
    assert said in err, err


@pytest.mark.parametrize("command", ["run", "rehearse"])
@pytest.mark.parametrize(
    "document", [None, 5, True, "x", [], {"spot": 0}], ids=["null", "5", "true", "x", "[]", "spot0"]
)
def test_run_and_rehearse_refuse_it_before_anything_runs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    document: object,
) -> None:
    """12 cases: 6 shapes through `run` (the run's reader) and `rehearse` (the venue's)."""
    folder = data_copy(tmp_path)
    (folder / INSTRUMENTS).write_text(json.dumps(document))
    monkeypatch.setenv(DATA_ENV, str(folder))
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(BTC_CONFIG + "output:\n  dir: runs\n")
    assert main([command, str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "TypeError" not in err
    assert f"{folder / INSTRUMENTS}: " in err, err
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "a run folder was made"


# -- the shipped venue over real HTTP ------------------------------------------------


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    async with Venue(data_dir=DATA, prices={"BTCUSDT": Decimal(60000)}) as running:
        yield running


async def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=body, headers=headers or {}) as answer,
    ):
        return answer.status, json.loads(await answer.text())


JSON = {"Content-Type": "application/json"}
# (id, path, body): admin values a trading endpoint would refuse.
BAD_ADMIN: list[tuple[str, str, object]] = [
    ("balance NaN", "balances", {"USDT": "NaN"}),
    ("balance negative", "balances", {"USDT": "-5"}),
    ("balance infinite", "balances", {"USDT": "Infinity"}),
    ("balance huge", "balances", {"USDT": "1e400"}),
    ("balance true", "balances", {"USDT": True}),
    ("balance list", "balances", {"USDT": ["1"]}),
    ("balance coin name", "balances", {"usdt lower": "5"}),
    ("one bad of two", "balances", {"BTC": "1", "USDT": "-1"}),
    ("price zero", "prices", {"BTCUSDT": "0"}),
    ("price NaN", "prices", {"BTCUSDT": "nan"}),
    ("price negative", "prices", {"spot:BTCUSDT": -5}),
    ("price unlisted", "prices", {"NOPEUSDT": "5"}),
    ("funding rate NaN", "funding", {"symbol": "BTCUSDT", "rate": "NaN"}),
    ("funding rate 500%", "funding", {"symbol": "BTCUSDT", "rate": "5"}),
    ("funding symbol", "funding", {"symbol": ["x"], "rate": "0.0001"}),
    ("funding time text", "funding", {"symbol": "BTCUSDT", "rate": "0", "time_ms": "x"}),
    ("not an object", "balances", ["USDT", "5"]),
]


@pytest.mark.parametrize(
    ("path", "body"), [b[1:] for b in BAD_ADMIN], ids=[b[0] for b in BAD_ADMIN]
)
async def test_the_admin_api_refuses_values_the_book_cannot_hold(
    venue: Venue, path: str, body: object
) -> None:
    """17 cases: HTTP 400 naming the problem; nothing changed; the next order still fills."""
    before = (dict(venue.book.wallet), dict(venue.book.prices))
    status, answer = await post(f"{venue.url}/admin/{path}", json.dumps(body).encode(), JSON)
    assert status == 400 and answer["error"], answer
    assert (dict(venue.book.wallet), dict(venue.book.prices)) == before
    client = make_client(venue.url)
    try:
        order = await client.create_order("BTC/USDT:USDT", "market", "sell", 0.01)
        assert order["id"]
    finally:
        await client.close()


# (id, headers, body, status): requests a web page open on the machine could send.
FOREIGN: list[tuple[str, dict[str, str], bytes, int]] = [
    ("text/plain", {"Content-Type": "text/plain"}, b'{"USDT": "1"}', 415),
    ("form", {"Content-Type": "application/x-www-form-urlencoded"}, b'{"USDT": "1"}', 415),
    ("no content type", {}, b'{"USDT": "1"}', 415),
    ("other origin", {**JSON, "Origin": "https://evil.example"}, b'{"USDT": "1"}', 403),
    ("null origin", {**JSON, "Origin": "null"}, b'{"USDT": "1"}', 403),
    ("cross-site", {**JSON, "Sec-Fetch-Site": "cross-site"}, b'{"USDT": "1"}', 403),
    ("same-site", {**JSON, "Sec-Fetch-Site": "same-site"}, b'{"USDT": "1"}', 403),
    ("rebound host", {**JSON, "Host": "evil.example:80"}, b'{"USDT": "1"}', 403),
    ("deep", JSON, b"[" * 100_000 + b"]" * 100_000, 400),
    ("not UTF-8", JSON, b'{"USDT": "\xff"}', 400),
]


@pytest.mark.parametrize(
    ("headers", "body", "status"), [f[1:] for f in FOREIGN], ids=[f[0] for f in FOREIGN]
)
async def test_the_admin_api_answers_only_local_programs_sending_json(
    venue: Venue, headers: dict[str, str], body: bytes, status: int
) -> None:
    """10 cases; a loopback origin with JSON is served (the last check)."""
    got, answer = await post(f"{venue.url}/admin/balances", body, headers)
    assert got == status, answer
    assert venue.book.wallet["USDT"] == 100_000
    local = {**JSON, "Origin": venue.url, "Sec-Fetch-Site": "same-origin"}
    got, answer = await post(f"{venue.url}/admin/balances", b'{"USDT": "7"}', local)
    assert (got, answer["USDT"]) == (200, "7")


async def test_with_a_token_the_admin_api_needs_it() -> None:
    async with Venue(data_dir=DATA, admin_token="t0ken") as venue:
        body = b'{"USDT": "1"}'
        for headers in (JSON, {**JSON, "X-Venue-Token": "wrong"}):
            assert (await post(f"{venue.url}/admin/balances", body, headers))[0] == 401
        ok = {**JSON, "X-Venue-Token": "t0ken"}
        assert await post(f"{venue.url}/admin/balances", body, ok) == (200, {"USDT": "1"})


def signed(body: bytes, secret: str = DEFAULT_SECRET) -> dict[str, str]:
    stamp = str(int(time.time() * 1000))
    origin = (stamp + DEFAULT_API_KEY + "5000").encode() + body
    return {
        **JSON,
        "X-BAPI-API-KEY": DEFAULT_API_KEY,
        "X-BAPI-TIMESTAMP": stamp,
        "X-BAPI-RECV-WINDOW": "5000",
        "X-BAPI-SIGN": hmac.new(secret.encode(), origin, hashlib.sha256).hexdigest(),
    }


BODIES: list[tuple[str, bytes]] = [
    ("nested 100,000 deep", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ("arrays 100,000 deep", b"[" * 100_000 + b"]" * 100_000),
    ("nested 17 deep", b'{"category":"spot","x":' + b"[" * 16 + b"]" * 16 + b"}"),
    ("not UTF-8", b'{"category":"spot","symbol":"BTC\xffUSDT"}'),
    ("latin-1", '{"category":"spot","symbol":"BTCÜSDT"}'.encode("latin-1")),
    ("truncated", b'{"category":"spot"'),
    ("a number", b"5"),
]


@pytest.mark.parametrize("endpoint", ["order/create", "order/cancel", "position/set-leverage"])
@pytest.mark.parametrize("body", [b[1] for b in BODIES], ids=[b[0] for b in BODIES])
async def test_a_bad_signed_body_is_answered_as_bybit_answers_a_bad_request(
    venue: Venue, endpoint: str, body: bytes
) -> None:
    """21 cases: HTTP 200, retCode 10001 'params error', never HTTP 500; the venue
    keeps serving."""
    status, answer = await post(f"{venue.url}/v5/{endpoint}", body, signed(body))
    assert status == 200
    assert answer["retCode"] == 10001 and answer["retMsg"].startswith("params error"), answer
    async with aiohttp.ClientSession() as http, http.get(f"{venue.url}/v5/market/time") as got:
        assert (await got.json())["retCode"] == 0


async def test_refused_creates_are_kept_up_to_a_cap_and_counted_beyond(venue: Venue) -> None:
    """MAX_REFUSED + 25 unsigned creates: the record keeps MAX_REFUSED, counts 25,
    and a signed order placed after them is still recorded."""
    body = b'{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"1"}'
    async with aiohttp.ClientSession() as http:
        for _ in range(MAX_REFUSED + 25):
            async with http.post(f"{venue.url}/v5/order/create", data=body) as answer:
                assert (await answer.json())["retCode"] == 10003
        async with http.get(f"{venue.url}/admin/requests") as answer:
            seen = await answer.json()
    assert len(seen["creates"]) == MAX_REFUSED and seen["refused_dropped"] == 25
    assert all(c["outcome"] == "auth" and c["body"] == {} for c in seen["creates"])
    client = make_client(venue.url)
    try:
        await client.create_order("BTC/USDT:USDT", "market", "sell", 0.01)
    finally:
        await client.close()
    assert venue.audit.creates[-1].outcome == "placed"


# -- its command line ---------------------------------------------------------------

# (id, flags, the flag the error names)
BAD_FLAGS: list[tuple[str, list[str], str]] = [
    ("port too high", ["--port", "70000"], "--port"),
    ("port negative", ["--port", "-1"], "--port"),
    ("port text", ["--port", "http"], "--port"),
    ("price negative", ["--price", "BTCUSDT=-5"], "--price"),
    ("price NaN", ["--price", "BTCUSDT=nan"], "--price"),
    ("price unlisted", ["--price", "NOPE=5"], "--price"),
    ("price no equals", ["--price", "BTCUSDT"], "--price"),
    ("balance negative", ["--balance", "USDT=-1"], "--balance"),
    ("balance infinite", ["--balance", "USDT=inf"], "--balance"),
    ("balance coin", ["--balance", "us dt=1"], "--balance"),
    ("start yesterday", ["--recorded", "--start", "yesterday"], "--start"),
    ("start before the data", ["--recorded", "--start", "2019-01-01"], "--start"),
    ("start without recorded", ["--start", "2024-06-01"], "--start"),
    ("speed negative", ["--recorded", "--speed", "-1"], "--speed"),
    ("speed NaN", ["--recorded", "--speed", "nan"], "--speed"),
    ("speed huge", ["--recorded", "--speed", "1e12"], "--speed"),
    ("slippage negative", ["--slippage", "-0.1"], "--slippage"),
    ("slippage whole", ["--slippage", "1"], "--slippage"),
]


@pytest.mark.parametrize(
    ("flags", "flag"), [b[1:] for b in BAD_FLAGS], ids=[b[0] for b in BAD_FLAGS]
)
def test_a_bad_venue_flag_exits_2_naming_it(
    capsys: pytest.CaptureFixture[str], flags: list[str], flag: str
) -> None:
    """18 cases, through the CLI's entry function: exit 2, one error naming the flag,
    no traceback, no venue started."""
    with pytest.raises(SystemExit) as stopped:
        raise SystemExit(main(["venue", "--data-dir", str(DATA), *flags]))
    assert stopped.value.code == 2
    out, err = capsys.readouterr()
    assert out == "", "a venue was started"
    assert "Traceback" not in err
    assert flag in err.strip().splitlines()[-1], err
