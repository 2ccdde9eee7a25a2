"""Payment retry end to end (live API server, real Celery worker, simulator): a client
with a window sees a declined order wait `awaiting_payment` with its stock reserved; paid
another way (two retries racing) it is confirmed with exactly one capture in the
simulator's ledger; left unpaid past the window, the sweep ends it `payment_failed` and
its stock is released."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
from celery.result import allow_join_result
from django.utils.dateparse import parse_datetime

from tests.e2e.conftest import Stack
from tests.e2e.test_order_flow import body

pytestmark = pytest.mark.e2e
# An OTC product no other end-to-end test orders, so its reserved count is this test's.
SKU = "ZINC-20"
GOOD = {"payment_method": "card", "payment_token": "tok_ok"}


def client_with_window(stack: Stack, django_db_blocker: Any, seconds: int) -> httpx.Client:
    """An API client of its own with a payment retry window of `seconds`."""
    from core.tests.factories import ApiClientFactory, api_key_for

    with django_db_blocker.unblock():
        key = api_key_for(ApiClientFactory(payment_retry_seconds=seconds))
    return httpx.Client(
        base_url=stack.api_url, headers={"Authorization": f"Api-Key {key}"}, timeout=10.0
    )


def client_with_key(client: httpx.Client) -> httpx.Client:
    """A connection of its own with `client`'s credentials (for a second thread)."""
    return httpx.Client(base_url=client.base_url, headers=client.headers, timeout=10.0)


def reserved(django_db_blocker: Any) -> int:
    from inventory.models import StockBatch

    with django_db_blocker.unblock():
        return sum(StockBatch.objects.filter(product__sku=SKU).values_list("reserved", flat=True))


def place_declined(stack: Stack, client: httpx.Client) -> dict[str, Any]:
    order = {"items": [{"sku": SKU, "quantity": 3}], "payment_token": "tok_decline"}
    response = client.post("/api/v1/orders/", json=body(**order))
    assert response.status_code == 202, response.text
    return stack.wait_for(
        client,
        response.json()["id"],
        until=lambda o: o["status"] not in ("received", "processing"),
    )


def charges(stack: Stack, order_id: str) -> list[dict[str, Any]]:
    return [c for c in stack.simulator.ledger()["charges"] if order_id in c["idempotency_key"]]


def test_a_declined_order_paid_another_way_is_confirmed_with_one_capture(stack, django_db_blocker):
    before = reserved(django_db_blocker)
    with client_with_window(stack, django_db_blocker, 120) as client:
        waiting = place_declined(stack, client)
        order_id = waiting["id"]
        assert waiting["status"] == "awaiting_payment", waiting
        assert waiting["payment"]["status"] == "declined"
        assert waiting["payment_retry_until"] is not None
        [requested] = [e for e in waiting["events"] if e["type"] == "payment.retry_requested"]
        assert requested["data"]["payment_retry_until"] == waiting["payment_retry_until"]
        assert requested["data"]["decline_code"] == "card_declined"
        assert reserved(django_db_blocker) == before + 3  # the reservation is kept

        # Two retries at once (say, a double tap): one goes on, the other is refused.
        answers: list[httpx.Response] = []
        start = threading.Barrier(2)

        def retry() -> None:
            with client_with_key(client) as own:
                start.wait()
                answers.append(own.post(f"/api/v1/orders/{order_id}/payment/", json=GOOD))

        threads = [threading.Thread(target=retry) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(a.status_code for a in answers) == [202, 409], [a.text for a in answers]
        [refused] = [a for a in answers if a.status_code == 409]
        assert refused.json()["errors"][0]["code"] == "invalid_transition"

        done = stack.wait_for(client, order_id, until=lambda o: o["status"] == "confirmed")
        assert done["payment_retry_until"] is None
        assert (done["payment"]["method"], done["payment"]["status"]) == ("card", "captured")
        assert done["shipments"] and done["shipments"][0]["awb"]

    sent = charges(stack, order_id)
    assert [(c["idempotency_key"], c["token"], c["status"]) for c in sent] == [
        (f"order:{order_id}:charge:1", "tok_decline", "declined"),
        (f"order:{order_id}:charge:2", "tok_ok", "captured"),
    ]
    assert done["payment"]["reference"] == sent[1]["id"]
    # Committed at confirmation: nothing of this order is still held.
    assert reserved(django_db_blocker) == before


def test_a_window_passed_unpaid_fails_the_payment_and_releases_the_stock(
    stack, broker, django_db_blocker
):
    before = reserved(django_db_blocker)
    with client_with_window(stack, django_db_blocker, 3) as client:
        waiting = place_declined(stack, client)
        order_id = waiting["id"]
        assert waiting["status"] == "awaiting_payment", waiting
        assert reserved(django_db_blocker) == before + 3

        # Past the window's end, the sweep (beat's task, handed to the live worker) ends it.
        until = parse_datetime(waiting["payment_retry_until"])
        time.sleep(max(0.0, until.timestamp() - time.time()) + 0.2)
        swept = broker.send_task(
            "orders.expire_payment_retries", queue="maintenance", ignore_result=False
        )
        with allow_join_result():  # this process is no worker: waiting cannot deadlock one
            assert swept.get(timeout=30) >= 1

        done = stack.wait_for(client, order_id, until=lambda o: o["status"] != "awaiting_payment")
        assert (done["status"], done["failure_reason"]) == ("payment_failed", "payment_declined")
        assert done["payment_retry_until"] is None
        assert done["payment"]["status"] == "declined"
        [failed] = [e for e in done["events"] if e["type"] == "payment.failed"]
        assert failed["data"] == {"reason": "payment_declined", "cause": "payment_retry_expired"}
        assert "inventory.released" in {e["type"] for e in done["events"]}

        late = client.post(f"/api/v1/orders/{order_id}/payment/", json=GOOD)
        assert late.status_code == 409
        assert late.json()["errors"][0]["code"] == "invalid_transition"

    assert reserved(django_db_blocker) == before
    assert [c["status"] for c in charges(stack, order_id)] == ["declined"]
