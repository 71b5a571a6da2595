"""A loopback HTTP receiver for apprise's ``json://`` alerts, on 127.0.0.1, in a thread.

``mode``: ``ok`` answers 200; ``fail`` keeps the alert and answers 500; ``hang`` keeps the
alert and never answers (until the receiver stops). ``url(token)`` is the apprise URL
to put in ``ORCHESTRATOR_ALERT_URLS``: the token is in its path, as a service's is."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Mode = Literal["ok", "fail", "hang"]


class Receiver:
    def __init__(self, mode: Mode = "ok") -> None:
        self.mode = mode
        self.received: list[dict[str, Any]] = []  # each alert's JSON, with "path" added
        self.released = threading.Event()
        lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                body["path"] = self.path
                body["at"] = time.monotonic()
                with lock:
                    owner.received.append(body)
                if owner.mode == "hang":
                    owner.released.wait()
                    return
                self.send_response(200 if owner.mode == "ok" else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, token: str) -> str:
        return f"json://127.0.0.1:{self.port}/hook/{token}"

    def titles(self) -> list[str]:
        return [str(body.get("title", "")) for body in self.received]

    def messages(self, title: str) -> list[str]:
        """The bodies of the alerts whose title starts with ``title``."""
        return [str(b.get("message", "")) for b in self.received if b["title"].startswith(title)]

    def wait_for(self, title: str, seconds: float, count: int = 1) -> list[str]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = self.messages(title)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no {count} alert(s) {title!r}; received: {self.titles()}")

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
