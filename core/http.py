"""The one HTTP client for every outside call (gateways, couriers, SMS/e-mail).

Connection pooling, connect/read timeouts, a circuit breaker per target shared through
Redis (core.breaker), and one error vocabulary, so that the domain apps decide on meaning
(retry, fail over, give up) and not on httpx details. Each process (and each forked
worker child) gets its own pooled client.
"""

from __future__ import annotations

import os
import threading
import time
from http.cookiejar import CookieJar
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


class NoCookies(CookieJar):
    """A jar that keeps nothing. The client is shared by every order's calls in a process,
    so a cookie one gateway set would ride along on other orders' calls, and only in the
    process that got it; no target of ours is a browser session. httpx has no switch for
    it; its maintainers suggest this jar (encode/httpx#1359, #2992)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: Any) -> None:
        return None


_client_lock = threading.Lock()
_shared: tuple[int, httpx.Client] | None = None


def _client() -> httpx.Client:
    """One client per process, shared by its threads (httpx's Client is thread-safe): one
    connection pool kept alive across tasks, and one TLS context instead of one per thread
    (building one loads the CA bundle, milliseconds of CPU each). Made again after a fork,
    because a child must not reuse its parent's sockets. It keeps no cookies."""
    global _shared
    pid = os.getpid()
    shared = _shared
    if shared is None or shared[0] != pid:
        with _client_lock:
            if _shared is None or _shared[0] != pid:
                limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
                _shared = (pid, httpx.Client(limits=limits, cookies=NoCookies()))
            shared = _shared
    return shared[1]


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


_timers: dict[tuple[str, str], Any] = {}


def _timer(target: str, outcome: str) -> Any:
    """The histogram child for (target, outcome), looked up once per process: `labels()`
    costs more than the observation, and it ran for every outside call."""
    child = _timers.get((target, outcome))
    if child is None:
        child = _timers[(target, outcome)] = metrics.EXTERNAL_CALL_SECONDS.labels(
            target=target, outcome=outcome
        )
    return child


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
    try:
        response = _client().post(
            url,
            json=payload,
            timeout=httpx.Timeout(
                settings.COT_HTTP_READ_TIMEOUT, connect=settings.COT_HTTP_CONNECT_TIMEOUT
            ),
        )
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
