"""Payments end to end: failover behind shared breakers, the bounded wait, refunds,
timeouts after capture. Live API server, real Celery worker, simulator controls."""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest

from core.breaker import BreakerState, breaker_status
from tests.e2e.test_order_flow import body

pytestmark = pytest.mark.e2e
ALPHA = "gateways/alpha"


def place(stack, client, **changes) -> str:
    response = client.post("/api/v1/orders/", json=body(**changes))
    assert response.status_code == 202, response.text
    return response.json()["id"]


def entries(stack, section, order_id):
    return [e for e in stack.simulator.ledger()[section] if order_id in e["idempotency_key"]]


def wait_until(condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.fixture
def admin(stack, django_db_blocker):
    from django.contrib.auth.models import User

    name, password = f"admin-{uuid.uuid4().hex[:6]}", "pw-e2e-123456"
    with django_db_blocker.unblock():
        User.objects.create_superuser(name, password=password)
    client = httpx.Client(base_url=stack.api_url, timeout=10.0)
    client.get("/admin/login/")
    client.post(
        "/admin/login/",
        data={
            "username": name,
            "password": password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
            "next": "/admin/",
        },
    )
    yield client
    client.close()


def breaker_row(admin, target) -> str:
    """The state of `target`'s breaker as the API server's process reads it."""
    html = admin.get("/admin/payments/payment/breakers/").text
    match = re.search(rf'<tr class="breaker-(\w+)">\s*<td>{re.escape(target)}</td>', html)
    assert match, html
    return match.group(1)


def test_alpha_down_fails_over_to_beta_and_every_process_sees_its_breaker(stack, admin):
    stack.simulator.control(ALPHA, down=True)
    with stack.client() as client:
        ids = [place(stack, client) for _ in range(5)]
        orders = [stack.wait_for(client, order_id) for order_id in ids]
        assert {(o["status"], o["payment"]["gateway"]) for o in orders} == {("confirmed", "beta")}

        # Five failed calls from the worker opened alpha's breaker for everyone: this
        # process and the API server read the same state.
        assert breaker_status(ALPHA).state == BreakerState.OPEN
        assert breaker_row(admin, ALPHA) == "open"

        # Alpha is back, but the breaker is open: the worker does not even try it.
        stack.simulator.control(ALPHA, down=False)
        order_id = place(stack, client)
        order = stack.wait_for(client, order_id)
        assert (order["status"], order["payment"]["gateway"]) == ("confirmed", "beta")
        assert [i["target"] for i in entries(stack, "intents", order_id)] == ["gateways/beta"]

        # After the reset time the next call is the one probe; its success closes it. (Wait
        # for the open period to end; another process may already be probing by then.)
        wait_until(
            lambda: (
                (status := breaker_status(ALPHA)).state != BreakerState.OPEN
                or status.retry_in_ms == 0
            )
        )
        order_id = place(stack, client)
        order = stack.wait_for(client, order_id)
    assert (order["status"], order["payment"]["gateway"]) == ("confirmed", "alpha")
    assert breaker_status(ALPHA).state == BreakerState.CLOSED
    assert breaker_row(admin, ALPHA) == "closed"
    for confirmed in [*orders, order]:
        assert len(entries(stack, "charges", confirmed["id"])) == 1


def test_every_gateway_down_ends_payment_unavailable_after_the_bounded_wait(stack):
    for gateway in ("alpha", "beta"):
        stack.simulator.control(f"gateways/{gateway}", down=True)
    with stack.client() as client:
        order_id = place(stack, client)
        # The void is compensation's, right after the order ends: wait for it too.
        order = stack.wait_for(
            client, order_id, until=lambda o: o["payment"]["status"] == "voided", timeout=40
        )
    assert (order["status"], order["failure_reason"]) == ("payment_failed", "payment_unavailable")
    assert order["payment"]["status"] == "voided"
    assert "inventory.released" in [e["type"] for e in order["events"]]
    assert entries(stack, "charges", order_id) == []


def test_fulfilment_impossible_after_capture_refunds_through_the_capturing_gateway(stack):
    stack.simulator.control(ALPHA, down=True)  # so beta captures
    for partner in ("swift", "roadie"):
        stack.simulator.control(f"logistics/{partner}", unserviceable_prefixes=["5"])
    with stack.client() as client:
        order_id = place(stack, client)
        order = stack.wait_for(
            client, order_id, until=lambda o: o["payment"]["status"] == "refunded"
        )
    assert (order["status"], order["failure_reason"]) == ("cancelled", "fulfilment_unavailable")
    assert {"payment.captured", "payment.refunded", "inventory.released"} <= {
        e["type"] for e in order["events"]
    }
    [charge] = entries(stack, "charges", order_id)
    [refund] = entries(stack, "refunds", order_id)
    assert charge["target"] == refund["target"] == "gateways/beta"
    assert refund["charge_id"] == charge["id"] == order["payment"]["reference"]
    assert refund["idempotency_key"] == f"order:{order_id}:refund:1"


def test_a_charge_slower_than_the_timeout_is_captured_exactly_once(stack):
    # The gateway captures on arrival and answers after 4 s; the client gives up at 3 s.
    stack.simulator.control(ALPHA, kind_latency_ms={"charges": 4000})
    with stack.client() as client:
        order_id = place(stack, client)
        wait_until(lambda: entries(stack, "charges", order_id))
        stack.simulator.control(ALPHA, kind_latency_ms={})  # answers the retry at once
        order = stack.wait_for(client, order_id, timeout=30)
    assert (order["status"], order["payment"]["gateway"]) == ("confirmed", "alpha")
    [charge] = entries(stack, "charges", order_id)
    assert charge["idempotency_key"] == f"order:{order_id}:charge:1"
    assert order["payment"]["reference"] == charge["id"]
    assert not entries(stack, "charges", order_id)[1:]


def test_cash_on_delivery_skips_the_gateway(stack):
    with stack.client() as client:
        order_id = place(stack, client, payment_method="cod", payment_token="")
        order = stack.wait_for(client, order_id)
    assert order["status"] == "confirmed"
    assert order["payment"]["status"] == "pending_collection"
    assert entries(stack, "intents", order_id) == entries(stack, "charges", order_id) == []
