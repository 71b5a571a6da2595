"""Serving the dashboard: uvicorn on a socket bound here (so that port 0 gives a free
port whose URL can be printed), until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Iterator

import uvicorn

from orchestrator.dashboard.app import Settings, create_app

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _Server(uvicorn.Server):
    """uvicorn's server with the signals left to ``serve``: it says which one stopped
    it (uvicorn's own handling raises it again once shut down)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(settings: Settings, host: str, port: int, *, token_note: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # Listening before the URL is printed: a browser (or a test) that connects at
        # once waits in the backlog until the server accepts, never refused.
        sock.listen(128)
    except OSError as exc:
        sock.close()
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    names = [f"{shown}:{bound}"] + ([f"localhost:{bound}"] if host in LOOPBACK else [])
    settings.addresses = tuple(names)
    app = create_app(settings)
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", timeout_graceful_shutdown=3, access_log=False
    )
    server = _Server(config)
    stopped_by: list[int] = []

    async def run() -> None:
        loop = asyncio.get_running_loop()

        def stop(sig: int) -> None:
            stopped_by.append(sig)
            settings.stopping.set()
            server.should_exit = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop, sig)
        # Said once Ctrl-C is ours to handle: one pressed as soon as the URL shows
        # stops the server as any other does.
        print(f"dashboard: http://{names[0]}/", flush=True)
        print(
            f"runs from {settings.runs}, sweeps from {settings.sweeps}; {token_note}; "
            "Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        if host not in LOOPBACK:
            print(f"warning: {host} is reachable from other machines", file=sys.stderr)
        await server.serve(sockets=[sock])

    try:
        asyncio.run(run())
    finally:
        sock.close()
    print("dashboard stopped", file=sys.stderr, flush=True)
    # Stopped as asked: 128 + the signal's number, as the other commands report it.
    return 128 + stopped_by[0] if stopped_by else 0
