"""End to end over HTTP: live API server, real Celery worker on real Redis, simulator."""

from __future__ import annotations

import copy
import threading
import time
import uuid
from typing import Any

import pytest
from django.db import connection, transaction

from core.tests.factories import metrics_auth
from inventory.models import StockBatch
from orders.models import OrderStep
from orders.tests.factories import ORDER_BODY as BODY

pytestmark = pytest.mark.e2e


def body(**changes):
    data = copy.deepcopy(BODY)
    data["customer_id"] = f"C-{uuid.uuid4().hex[:8]}"
    data.update(changes)
    return data


def test_otc_order_is_confirmed_through_the_celery_chord(stack):
    with stack.client() as client:
        response = client.post("/api/v1/orders/", json=body())
        assert response.status_code == 202, response.text
        assert response.headers["Location"] == f"/api/v1/orders/{response.json()['id']}/"
        order = stack.wait_for(client, response.json()["id"])

    assert order["status"] == "confirmed", order
    assert order["payment"]["status"] == "captured" and order["payment"]["gateway"] == "alpha"
    assert order["shipments"][0]["awb"] and order["shipments"][0]["center"] == "BLR-1"
    assert order["shipments"][0]["items"][0]["sku"] == "PARA-500"
    types = [e["type"] for e in order["events"]]
    # The three header steps ran (in any order), each once, before the charge.
    header = {"inventory.reserved", "payment.prepared"}
    assert header <= set(types[2:4] + types[4:5])
    assert types.index("payment.captured") > max(types.index(t) for t in header)
    assert types[-1] in ("order.confirmed", "notification.sent")
    ledger = stack.simulator.ledger()
    charges = [c for c in ledger["charges"] if order["id"] in c["idempotency_key"]]
    assert [c["status"] for c in charges] == ["captured"]
    assert order["payment"]["reference"] == charges[0]["id"]
    assert [s["awb"] for s in ledger["shipments"]] == [order["shipments"][0]["awb"]]


def test_the_three_header_steps_run_in_parallel(stack, django_db_blocker: Any):
    # Two header steps made slow for real: the payment intent by the gateway's latency, the
    # stock reservation by a lock this test holds on the product's batches. Run one after
    # the other, their recorded intervals (counted run -> recorded outcome) could not meet.
    if connection.vendor != "postgresql":
        pytest.skip("row locks (select_for_update) need PostgreSQL")
    slow = 1.5
    stack.simulator.control("gateways/alpha", kind_latency_ms={"intents": int(slow * 1000)})
    locked, release = threading.Event(), threading.Event()

    def hold_the_batches() -> None:
        with django_db_blocker.unblock():
            try:
                with transaction.atomic():
                    list(StockBatch.objects.select_for_update().filter(product__sku="PARA-500"))
                    locked.set()
                    release.wait(timeout=10)
                    time.sleep(slow)
            finally:
                connection.close()

    holder = threading.Thread(target=hold_the_batches)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        with stack.client() as client:
            order_id = client.post("/api/v1/orders/", json=body()).json()["id"]
            release.set()
            order = stack.wait_for(client, order_id)
    finally:
        release.set()
        holder.join()
    assert order["status"] == "confirmed", order
    with django_db_blocker.unblock():
        ran = {
            row.step: (row.created_at, row.updated_at)
            for row in OrderStep.objects.filter(order_id=order_id)
        }
    (stock_from, stock_to), (intent_from, intent_to) = ran["stock"], ran["payment_prepare"]
    assert (intent_to - intent_from).total_seconds() >= slow * 0.9
    assert (stock_to - stock_from).total_seconds() >= slow * 0.5
    assert stock_from < intent_to and intent_from < stock_to, ran
    # The prescription check did not wait for either of them.
    assert ran["prescription"][0] < min(stock_to, intent_to), ran


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ([{"sku": "AMOX-500", "quantity": 1}], "prescription_required"),
        (
            [{"sku": "PARA-500", "quantity": 1}, {"sku": "MPHD-10", "quantity": 1}],
            "not_sellable_online",
        ),
    ],
)
def test_business_rejections_end_the_order_and_charge_nothing(stack, items, reason):
    with stack.client() as client:
        order_id = client.post("/api/v1/orders/", json=body(items=items)).json()["id"]
        # The void is compensation's, right after the order ends: wait for it too.
        order = stack.wait_for(client, order_id, until=lambda o: o["payment"]["status"] == "voided")
    assert (order["status"], order["failure_reason"]) == ("rejected", reason)
    assert order["payment"]["status"] == "voided"
    ledger = stack.simulator.ledger()
    assert not [c for c in ledger["charges"] if order_id in c["idempotency_key"]]


def test_decline_ends_payment_failed(stack):
    with stack.client() as client:
        order_id = client.post("/api/v1/orders/", json=body(payment_token="tok_decline")).json()[
            "id"
        ]
        order = stack.wait_for(client, order_id)
    assert (order["status"], order["failure_reason"]) == ("payment_failed", "payment_declined")
    assert "inventory.released" in [e["type"] for e in order["events"]]


def test_idempotent_replay_and_conflicting_reuse(stack):
    data = body()
    key = f"idem-{uuid.uuid4()}"
    with stack.client() as client:
        first = client.post("/api/v1/orders/", json=data, headers={"Idempotency-Key": key})
        second = client.post("/api/v1/orders/", json=data, headers={"Idempotency-Key": key})
        conflict = client.post("/api/v1/orders/", json=body(), headers={"Idempotency-Key": key})
        listed = client.get("/api/v1/orders/", params={"customer_id": data["customer_id"]})
    assert first.status_code == second.status_code == 202
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.json()["id"] == second.json()["id"]
    assert conflict.status_code == 409
    assert conflict.json()["errors"][0]["code"] == "idempotency_key_reused"
    assert [o["id"] for o in listed.json()["results"]] == [first.json()["id"]]


def test_another_clients_order_is_404(stack):
    with stack.client("web") as web, stack.client("mobile") as mobile:
        order_id = web.post("/api/v1/orders/", json=body()).json()["id"]
        response = mobile.get(f"/api/v1/orders/{order_id}/")
    assert response.status_code == 404
    assert response.json() == {
        "type": "client_error",
        "errors": [{"code": "not_found", "detail": "No such order.", "attr": None}],
    }


@pytest.mark.parametrize(
    ("data", "attr"),
    [
        (body(items=[{"sku": "PARA-500", "quantity": 0}]), "items.0.quantity"),
        (body(items=[{"sku": "NOPE", "quantity": 1}]), "items.0.sku"),
        (body(payment_method="upi", payment_token=""), "payment_token"),
        ({**body(), "extra": 1}, "extra"),
    ],
)
def test_malformed_bodies_are_400_and_write_nothing(stack, data, attr):
    with stack.client() as client:
        response = client.post("/api/v1/orders/", json=data)
        listed = client.get("/api/v1/orders/", params={"customer_id": data["customer_id"]})
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert attr in [e["attr"] for e in response.json()["errors"]]
    assert listed.json()["results"] == []


def test_bad_key_is_401_and_probes_answer(stack):
    import httpx

    with stack.client(None, headers={"Authorization": "Api-Key x.y"}) as client:
        response = client.get("/api/v1/orders/")
    assert response.status_code == 401
    assert httpx.get(f"{stack.api_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{stack.api_url}/readyz")
    assert ready.status_code == 200, ready.text
    assert "cot_orders_total" in httpx.get(f"{stack.api_url}/metrics", auth=metrics_auth()).text
