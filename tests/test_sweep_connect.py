"""`orchestrator sweep --scheduler ADDRESS` where ADDRESS is not a Dask scheduler: every
way of not being one (loopback listeners that stay silent, close, answer HTTP, send
garbage or a huge length prefix; a refused port) ends in exit 2 with nothing started,
and Ctrl-C while connecting or waiting for workers stops at once (130)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.sweep_support import SMALL, orchestrator, write_sweep

HANG_GUARD = 120  # seconds: a hang fails the test instead of stalling the suite


class Listener:
    """A loopback TCP server that treats every connection with ``behave``."""

    def __init__(self, behave: Callable[[socket.socket], None]) -> None:
        self.behave = behave
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted = threading.Event()
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed
            self.held.append(conn)
            self.accepted.set()
            with contextlib.suppress(OSError):  # the sweep hung up first
                self.behave(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting in the thread
        self.server.close()
        for conn in self.held:
            conn.close()
        self.thread.join(timeout=10)


def silent(conn: socket.socket) -> None:
    """Accepts and never answers."""


def closes(conn: socket.socket) -> None:
    conn.close()


def http_answer(conn: socket.socket) -> None:
    """What a web server answers to a stranger's bytes."""
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def garbage(conn: socket.socket) -> None:
    conn.sendall(random.Random(7).randbytes(4096))


def framed_garbage(conn: socket.socket) -> None:
    """A small, plausible length prefix, then bytes that are no Dask message."""
    conn.sendall(struct.pack("<Q", 48) + random.Random(8).randbytes(48))


def huge_prefix(conn: socket.socket) -> None:
    conn.sendall(struct.pack("<Q", 2**62))


BEHAVIOURS: dict[str, Callable[[socket.socket], None]] = {
    "silent accept": silent,
    "accept and close": closes,
    "HTTP answer": http_answer,
    "random bytes": garbage,
    "framed garbage": framed_garbage,
    "huge length prefix": huge_prefix,
}


@pytest.fixture
def http_server() -> Iterator[int]:
    """A real HTTP server on a loopback port (it waits for a request, as servers do)."""

    class Quiet(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_way_of_not_being_a_dask_scheduler_is_refused_with_nothing_started(
    tmp_path: Path, http_server: int
) -> None:
    """Eight addresses, each tried by its own `orchestrator sweep` process (all at once:
    the cases are independent, so the test takes one timeout, not eight)."""
    listeners = {name: Listener(behave) for name, behave in BEHAVIOURS.items()}
    ports = {name: listener.port for name, listener in listeners.items()}
    ports |= {"a real HTTP server": http_server, "a refused port": free_port()}
    procs = {}
    try:
        for name, port in ports.items():
            folder = tmp_path / name.replace(" ", "-")
            folder.mkdir()
            write_sweep(folder, SMALL + "connect_timeout_seconds: 1\n")
            address = f"tcp://127.0.0.1:{port}"
            procs[name] = (
                folder,
                address,
                orchestrator("sweep", "sweep.yaml", "--scheduler", address, cwd=folder),
            )
        errs = {}
        for name, (folder, address, proc) in procs.items():
            _, err = proc.communicate(timeout=HANG_GUARD)
            errs[name] = err
            assert proc.returncode == 2, (name, err)
            assert f"scheduler: no Dask scheduler at {address} within 1 s" in err, (name, err)
            assert "nothing was started" in err, (name, err)
            assert "Traceback" not in err and "MemoryError" not in err, (name, err)
            assert not (folder / "sweeps").exists(), name  # no folder, no trial
    finally:
        for _, _, proc in procs.values():
            proc.kill()
            proc.wait()
        for listener in listeners.values():
            listener.close()
    assert all(listener.accepted.is_set() for listener in listeners.values())
    # Each message says what the address did instead of greeting.
    assert "sent no greeting" in errs["silent accept"]
    assert "sent no greeting" in errs["a real HTTP server"]  # it waits for a request
    assert "closed the connection" in errs["accept and close"]
    assert "HTTP/1.1 400" in errs["HTTP answer"]
    for name in ("HTTP answer", "random bytes", "framed garbage", "huge length prefix"):
        assert "not a Dask scheduler's greeting" in errs[name], name
    assert "ConnectionRefusedError" in errs["a refused port"]


def test_ctrl_c_while_connecting_stops_at_once_with_nothing_started(tmp_path: Path) -> None:
    listener = Listener(silent)
    try:
        write_sweep(tmp_path, SMALL + "connect_timeout_seconds: 300\n")
        address = f"tcp://127.0.0.1:{listener.port}"
        proc = orchestrator("sweep", "sweep.yaml", "--scheduler", address, cwd=tmp_path)
        try:
            assert listener.accepted.wait(HANG_GUARD), proc.communicate(timeout=10)
            os.kill(proc.pid, signal.SIGINT)  # the first Ctrl-C, mid-connect
            _, err = proc.communicate(timeout=HANG_GUARD)  # far below the 300 s timeout
        finally:
            proc.kill()
            proc.wait()
    finally:
        listener.close()
    assert proc.returncode == 130, err
    assert "nothing was written" in err
    assert "Traceback" not in err
    assert not (tmp_path / "sweeps").exists()


def test_ctrl_c_while_waiting_for_workers_stops_at_once_with_nothing_started(
    tmp_path: Path,
) -> None:
    """A real scheduler with no worker: the sweep waits for one (up to the timeout) and a
    Ctrl-C meanwhile stops it at once."""
    from distributed import LocalCluster

    from orchestrator.sweep.engine import LOCAL_CLUSTER

    with LocalCluster(n_workers=0, **LOCAL_CLUSTER) as cluster:
        clients = len(cluster.scheduler.clients)
        write_sweep(tmp_path, SMALL + "connect_timeout_seconds: 300\n")
        proc = orchestrator(
            "sweep", "sweep.yaml", "--scheduler", cluster.scheduler_address, cwd=tmp_path
        )
        try:
            for _ in range(HANG_GUARD * 20):  # until the sweep's client has registered
                if len(cluster.scheduler.clients) > clients or proc.poll() is not None:
                    break
                threading.Event().wait(0.05)
            assert len(cluster.scheduler.clients) > clients, proc.communicate(timeout=10)
            os.kill(proc.pid, signal.SIGINT)
            _, err = proc.communicate(timeout=HANG_GUARD)  # far below the 300 s timeout
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "nothing was written" in err
    assert "Traceback" not in err
    assert not (tmp_path / "sweeps").exists()
