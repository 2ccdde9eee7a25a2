"""The one HTTP client for every outside call (gateways, couriers, SMS/e-mail).

Connection pooling, connect/read timeouts, a circuit breaker per target shared through
Redis (core.breaker), and one error vocabulary, so that the domain apps decide on meaning
(retry, fail over, give up) and not on httpx details. Each process (and each forked
worker child) gets its own pooled client.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from typing import Any

import httpx
from django.conf import settings
from django.db import connection

from core import metrics
from core.breaker import BreakerOpen, breaker_enter, breaker_exit


class ExternalError(Exception):
    """An outside call did not give a usable answer."""

    def __init__(self, target: str, message: str) -> None:
        super().__init__(f"{target}: {message}")
        self.target = target


class ExternalUnavailable(ExternalError):
    """The call surely had no effect (connection refused, 503, breaker open): fail over."""


class CircuitOpen(ExternalUnavailable):
    """The target's breaker is open: the call was not sent."""


class ExternalTimeout(ExternalError):
    """The call may or may not have had an effect: retry the same target with the same key."""


class ExternalServerError(ExternalError):
    """The target answered 5xx (other than 503): retry later with the same key."""


class ExternalRejected(ExternalError):
    """The target refused the request (4xx): retrying the same request will not help."""

    def __init__(self, target: str, status_code: int, body: Any) -> None:
        super().__init__(target, f"rejected with {status_code}: {body!r}")
        self.status_code = status_code
        self.body = body


_transport_lock = threading.Lock()
_shared: tuple[int, httpx.HTTPTransport] | None = None


def _transport() -> httpx.HTTPTransport:
    """One connection pool per process, shared by its threads (httpx's transport is
    thread-safe): connections kept alive across tasks, and one TLS context instead of one
    per thread (building one loads the CA bundle, milliseconds of CPU each). Made again
    after a fork, because a child must not reuse its parent's sockets.

    Requests go to httpx's transport directly, not through an `httpx.Client`: for the
    calls made here (POST of a JSON body, no redirects, auth, cookies or hooks) the
    client's per-request work (merging URLs and headers, a cookie jar parsing every
    answer, auth and redirect generators) cost about as much CPU as the call itself.
    A cookie a target sets is not sent back (a client would have): these APIs are
    stateless, every call carries its idempotency key. Proxy variables in the
    environment are not read (nothing here sets them; a proxy would be mounted here)."""
    global _shared
    pid = os.getpid()
    shared = _shared
    if shared is None or shared[0] != pid:
        with _transport_lock:
            if _shared is None or _shared[0] != pid:
                limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
                _shared = (pid, httpx.HTTPTransport(limits=limits))
            shared = _shared
    return shared[1]


# What httpx.Client sends by default, plus the body's type; Host and Content-Length are
# added per request.
_HEADERS = (
    (b"Accept", b"*/*"),
    (b"Accept-Encoding", b"gzip, deflate"),
    (b"Connection", b"keep-alive"),
    (b"User-Agent", f"python-httpx/{httpx.__version__}".encode()),
    (b"Content-Type", b"application/json"),
)
# httpx's JSON body encoding; one encoder, not one built per call as json.dumps(**options) does.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
# httpx.Client's request line, on its logger (the JSON logs keep one line per outside call).
_request_log = logging.getLogger("httpx")
_timers: dict[tuple[str, str], Any] = {}


@functools.lru_cache(maxsize=1024)
def _parsed(url: str) -> tuple[httpx.URL, tuple[bytes, bytes]]:
    """The URL parsed once (the same few URLs are called for every order) and its Host
    header. httpx.URL is immutable, so requests can share it."""
    parsed = httpx.URL(url)
    return parsed, (b"Host", parsed.netloc)


def _timer(target: str, outcome: str) -> Any:
    """The histogram child for (target, outcome), looked up once per process."""
    child = _timers.get((target, outcome))
    if child is None:
        child = metrics.EXTERNAL_CALL_SECONDS.labels(target=target, outcome=outcome)
        _timers[(target, outcome)] = child
    return child


def post_json(target: str, url: str, payload: dict[str, Any]) -> dict[str, Any]:
    """POST `payload` to `url` on behalf of `target` (e.g. "gateways/alpha").

    Returns the decoded JSON answer of a 2xx; raises an `ExternalError` subclass otherwise
    (`CircuitOpen` without sending anything when the target's breaker is open).
    """
    try:
        ticket = breaker_enter(target)
    except BreakerOpen as exc:
        raise CircuitOpen(target, str(exc)) from exc
    database_connection_release()
    started = time.perf_counter()
    outcome = "error"
    failed: bool | None = None
    try:
        body = _send(target, url, payload)
        failed = False
        outcome = "ok"
        return body
    except ExternalRejected:
        failed = False  # the target answered: a 4xx is the request's fault, not the target's
        raise
    except ExternalError:
        failed = True
        raise
    finally:
        breaker_exit(ticket, failed=failed)
        _timer(target, outcome).observe(time.perf_counter() - started)


def database_connection_release() -> None:
    """Give this thread's pooled database connection back for the length of an outside call.

    Django keeps a connection from the first query until the end of the request or task,
    so a task waiting half a second on a gateway would hold one all that time and the pool,
    not the worker's concurrency, would bound the calls in flight. Outside a transaction
    (no outside call may run inside one) the connection goes back to the pool and the next
    query takes one again. Without a pool (SQLite, CONN_MAX_AGE) closing would mean
    reconnecting, so the connection is kept."""
    if connection.settings_dict.get("OPTIONS", {}).get("pool") and not connection.in_atomic_block:
        connection.close()


def _send(target: str, url: str, payload: dict[str, Any]) -> dict[str, Any]:
    parsed, host = _parsed(url)
    content = _encode(payload).encode()
    read = settings.COT_HTTP_READ_TIMEOUT
    request = httpx.Request(
        "POST",
        parsed,
        headers=[host, *_HEADERS, (b"Content-Length", str(len(content)).encode())],
        stream=httpx.ByteStream(content),
        # httpx.Timeout(read, connect=...): writing and waiting for a pooled connection
        # are bounded by the read timeout.
        extensions={
            "timeout": {
                "connect": settings.COT_HTTP_CONNECT_TIMEOUT,
                "read": read,
                "write": read,
                "pool": read,
            }
        },
    )
    try:
        response = _transport().handle_request(request)
        try:
            _request_log.info(
                'HTTP Request: %s %s "%s %d %s"',
                request.method,
                request.url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
            response.read()
        finally:
            response.close()  # the connection goes back to the pool (or is dropped)
    except httpx.ConnectError as exc:
        raise ExternalUnavailable(target, f"connection failed: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise ExternalTimeout(target, f"timed out: {exc}") from exc
    except httpx.HTTPError as exc:
        raise ExternalTimeout(target, f"transport error: {exc}") from exc
    if response.status_code == 503:
        raise ExternalUnavailable(target, "503 service unavailable")
    if response.status_code >= 500:
        raise ExternalServerError(target, f"{response.status_code} server error")
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.status_code >= 400:
        raise ExternalRejected(target, response.status_code, body)
    if not isinstance(body, dict):
        raise ExternalServerError(target, "answer is not a JSON object")
    return body
