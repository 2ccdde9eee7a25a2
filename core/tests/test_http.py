"""The shared HTTP client's error vocabulary, against the real simulator."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import free_port
from core.http import (
    ExternalRejected,
    ExternalServerError,
    ExternalTimeout,
    ExternalUnavailable,
    post_json,
)

INTENT = {"amount": "10.00", "currency": "INR", "idempotency_key": "k"}


def url(simulator, path="gateways/alpha/intents"):
    return f"{simulator.url}/{path}"


def test_a_2xx_gives_the_json_body(simulator):
    assert post_json("gateways/alpha", url(simulator), INTENT)["id"].startswith("pi_")


def test_down_is_unavailable(simulator):
    simulator.control("gateways/alpha", down=True)
    with pytest.raises(ExternalUnavailable):
        post_json("gateways/alpha", url(simulator), INTENT)


def test_connection_refused_is_unavailable():
    with pytest.raises(ExternalUnavailable):
        post_json("nowhere", f"http://127.0.0.1:{free_port()}/x", {})


def test_a_500_is_a_server_error(simulator):
    simulator.control("gateways/alpha", error_rate=1.0)
    with pytest.raises(ExternalServerError):
        post_json("gateways/alpha", url(simulator), INTENT)


def test_a_4xx_is_rejected_with_its_body(simulator):
    with pytest.raises(ExternalRejected) as error:
        post_json("gateways/alpha", url(simulator), {"amount": "x"})
    assert error.value.status_code == 400


def test_slow_answer_is_a_timeout(simulator, settings):
    settings.COT_HTTP_READ_TIMEOUT = 0.2
    simulator.control("gateways/alpha", latency_ms=1000)
    with pytest.raises(ExternalTimeout):
        post_json("gateways/alpha", url(simulator), INTENT)


def _pooled() -> bool:
    from django.conf import settings

    return bool(settings.DATABASES["default"].get("OPTIONS", {}).get("pool"))


needs_pool = pytest.mark.skipif(
    not _pooled(), reason="only a pooled connection (PostgreSQL) is given back during a call"
)


@needs_pool
@pytest.mark.django_db(transaction=True)
def test_the_pooled_database_connection_is_given_back_during_an_outside_call(simulator):
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert connection.connection is not None
    post_json("gateways/alpha", url(simulator), INTENT)
    assert connection.connection is None  # back in the pool: not held while waiting
    with connection.cursor() as cursor:  # and the next query takes one again
        cursor.execute("SELECT 1")
    # Inside a transaction the connection is the transaction: it stays.
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        post_json("gateways/alpha", url(simulator), {**INTENT, "idempotency_key": "k2"})
        assert connection.connection is not None


def test_a_cookie_one_target_sets_is_never_sent_on_later_calls():
    # The client is shared by every order's calls in a process: nothing may carry over.
    cookies_received = []

    class SetsCookies(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            cookies_received.append(self.headers.get("Cookie"))
            body = json.dumps({"ok": True}).encode()
            self.send_response(200)
            self.send_header("Set-Cookie", "session=order-1; Path=/")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), SetsCookies)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/charges"
        assert post_json("cookie-setter", url, {"n": 1}) == {"ok": True}
        assert post_json("cookie-setter", url, {"n": 2}) == {"ok": True}
    finally:
        server.shutdown()
        server.server_close()
    assert cookies_received == [None, None]
