"""A real HTTP endpoint for outbound webhook tests: a tiny threaded server on a free port
that records every request and answers with scripted status codes (then 200)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from core.webhooks import SIGNATURE_HEADER, webhook_signature_valid


@dataclass
class Received:
    body: bytes
    signature: str | None
    cookie: str | None = None  # every answer sets one: no later delivery may carry it
    host: str | None = None  # the Host header

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    # Status codes to answer, in order, before answering 200 to everything.
    script: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(
        self,
        body: bytes,
        signature: str | None,
        cookie: str | None = None,
        host: str | None = None,
    ) -> int:
        with self.lock:
            self.received.append(Received(body, signature, cookie, host))
            return self.script.pop(0) if self.script else 200

    def events(self, order_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            documents = [r.json for r in self.received]
        return [d for d in documents if order_id is None or d["order_id"] == order_id]

    def all_signed_by(self, secret: str) -> bool:
        """Every request carries a signature with `secret` (among the comma-separated
        ones of a rotation's grace period)."""
        with self.lock:
            return all(
                any(
                    webhook_signature_valid(secret, r.body, signature)
                    for signature in (r.signature or "").split(",")
                )
                for r in self.received
            )


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = receiver.answer(
                body,
                self.headers.get(SIGNATURE_HEADER),
                self.headers.get("Cookie"),
                self.headers.get("Host"),
            )
            self.send_response(status)
            self.send_header("Set-Cookie", "receiver-session=1; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/cot"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
