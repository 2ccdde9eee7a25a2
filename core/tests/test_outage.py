"""A database that cannot be reached answers 503 in the error shape, never a 500. The
connection really goes to a closed port, as a client meets PostgreSQL restarting."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from conftest import free_port
from core.tests.factories import ApiClientFactory, api_key_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def database_down() -> Callable[[], AbstractContextManager[None]]:
    if connection.vendor != "postgresql":
        pytest.skip("needs a database reached over the network")

    def reconnect() -> None:
        # With a connection pool, a new pool is made from the settings on the next use.
        connection.close()
        if connection.settings_dict["OPTIONS"].get("pool"):
            connection.close_pool()

    @contextmanager
    def outage() -> Iterator[None]:
        settings_dict = connection.settings_dict
        real_port, real_options = settings_dict["PORT"], settings_dict["OPTIONS"]
        pool = real_options.get("pool")
        reconnect()
        settings_dict["PORT"] = str(free_port())  # nothing listens there
        if pool:
            # A request waits this long for a connection before it gives up (10 s in
            # production); shorter here only to keep the test quick.
            settings_dict["OPTIONS"] = {**real_options, "pool": {**pool, "timeout": 1}}
        try:
            yield
        finally:
            reconnect()
            settings_dict["PORT"], settings_dict["OPTIONS"] = real_port, real_options

    return outage


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.content[:300]
    assert response["Retry-After"] == "5"
    assert response.json() == {
        "type": "server_error",
        "errors": [
            {
                "code": "service_unavailable",
                "detail": "The service is briefly unavailable; retry later.",
                "attr": None,
            }
        ],
    }


def test_api_requests_answer_503_while_the_database_is_down_and_200_after(database_down):
    key = api_key_for(ApiClientFactory(name="outage"))
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Api-Key {key}")
    with database_down():
        assert_unavailable(client.get("/api/v1/orders/"))
        assert_unavailable(
            client.post(
                "/api/v1/orders/",
                {"customer_id": "C-1", "items": [{"sku": "X", "quantity": 1}]},
                content_type="application/json",
            )
        )
    assert client.get("/api/v1/orders/").status_code == 200


def test_an_admin_page_answers_503_while_the_database_is_down(database_down):
    browser = Client(raise_request_exception=False)
    browser.force_login(User.objects.create_superuser("root", password="pw-123456789"))
    with database_down():
        assert_unavailable(browser.get("/admin/"))
    assert browser.get("/admin/").status_code == 200


def test_the_database_ends_a_transaction_whose_client_went_silent():
    """A worker host lost mid-transaction must not hold its row locks for hours: every
    session asks the server to end a transaction left idle (DB_IDLE_IN_TRANSACTION_TIMEOUT,
    30 s). tests/cluster proves the effect with a host really lost."""
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL session setting")
    with connection.cursor() as cursor:
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        assert cursor.fetchone() == ("30s",)
