"""The shared HTTP client's error vocabulary, against the real simulator."""

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
