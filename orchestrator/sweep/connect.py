"""Is there a Dask scheduler at this address? Asked before Dask is, within a deadline.

Dask's own connect waits for the scheduler's greeting without a deadline (an
address that accepts and stays silent hangs it) and allocates whatever length
the first 8 bytes announce (an HTTP server or random bytes give a MemoryError).
So the sweep reads the greeting itself first: a non-blocking socket, every wait
a short slice that looks at the stop flag (Ctrl-C works at any moment) and the
deadline, and a greeting of bounded size that must decode as Dask's handshake.
Only then is Dask's Client made, against a peer that has shown it is a scheduler.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import struct
import time
from typing import Any, Protocol

from orchestrator.sweep.yamlfile import SweepError

SLICE_SECONDS = 0.05  # how often a wait looks at the stop flag
GREETING_MOST = 64 * 1024  # a scheduler's greeting is a few hundred bytes
PREFIX = struct.Struct("<Q")  # Dask's TCP frames: an 8-byte little-endian length first


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


class Stopped(Exception):
    """A signal came while connecting: nothing was started."""


class NotAScheduler(Exception):
    """What the address did instead of greeting like a Dask scheduler."""


def probe(address: str, timeout: float, stop: StopFlag) -> None:
    """Return once a Dask scheduler at a ``tcp://`` address has greeted; SweepError
    (saying what happened instead) or Stopped otherwise. Other schemes are left to Dask."""
    from distributed.comm.addressing import parse_address, parse_host_port

    scheme, location = parse_address(address)
    if scheme != "tcp":
        return
    deadline = time.monotonic() + timeout
    try:
        host, port = parse_host_port(location)
        _greeting(host, port, deadline, stop)
    except Stopped:
        raise
    except (NotAScheduler, OSError, ValueError) as exc:
        what = str(exc) if isinstance(exc, NotAScheduler) else f"{type(exc).__name__}: {exc}"
        raise SweepError(
            f"scheduler: no Dask scheduler at {address} within {timeout:g} s ({what}); "
            "nothing was started"
        ) from None


def _greeting(host: str, port: int, deadline: float, stop: StopFlag) -> None:
    family, kind, proto, _, where = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as sock, selectors.DefaultSelector() as sel:
        sock.setblocking(False)
        code = sock.connect_ex(where)
        if code not in (0, errno.EINPROGRESS):
            raise OSError(code, f"connecting: {errno.errorcode.get(code, code)}")
        sel.register(sock, selectors.EVENT_WRITE)
        _wait(sel, deadline, stop, "the connection was not accepted")
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise ConnectionRefusedError(code, os.strerror(code))
        sel.modify(sock, selectors.EVENT_READ)
        head = _read(sock, sel, PREFIX.size, deadline, stop)
        (length,) = PREFIX.unpack(head)
        if length > GREETING_MOST:
            with contextlib.suppress(OSError):  # what else came, to show the user
                head += sock.recv(32)
            raise NotAScheduler(
                f"it sent {_shown(head)}, whose first 8 bytes, read as a Dask length "
                f"prefix, announce {length:,} bytes: not a Dask scheduler's greeting"
            )
        body = _read(sock, sel, length, deadline, stop)
    _check(head, body)


def _check(head: bytes, body: bytes) -> None:
    from distributed.protocol.core import loads
    from distributed.protocol.utils import unpack_frames

    try:
        message: Any = loads(unpack_frames(body), deserialize=False)
    except Exception:
        message = None
    if not isinstance(message, dict) or "compression" not in message:
        raise NotAScheduler(f"it sent {_shown(head + body)}: not a Dask scheduler's greeting")


def _wait(sel: selectors.BaseSelector, deadline: float, stop: StopFlag, what: str) -> None:
    while True:
        if stop.is_set():
            raise Stopped
        left = deadline - time.monotonic()
        if left <= 0:
            raise NotAScheduler(f"{what} in time")  # e.g. "... sent no greeting (0 bytes) in time"
        if sel.select(min(SLICE_SECONDS, left)):
            return


def _read(
    sock: socket.socket, sel: selectors.BaseSelector, size: int, deadline: float, stop: StopFlag
) -> bytes:
    got = bytearray()
    while len(got) < size:
        _wait(sel, deadline, stop, f"it accepted but sent no greeting ({len(got)} bytes)")
        try:
            chunk = sock.recv(size - len(got))
        except BlockingIOError:
            continue
        if not chunk:
            said = f", after {_shown(bytes(got))}" if got else ""
            raise NotAScheduler(f"it closed the connection without a greeting{said}")
        got += chunk
    return bytes(got)


def _shown(data: bytes) -> str:
    """The first bytes as a user can read them (an HTTP status line shows as text)."""
    cut = data[:40]
    return repr(cut) + (" ..." if len(data) > len(cut) else "")
