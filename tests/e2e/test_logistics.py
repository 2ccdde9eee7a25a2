"""Logistics and cancellation end to end: partner failover, the signed tracking webhook
to delivered (cash collected), replays and stale news, bad signatures, cancellation before
and after shipping, and a cancel that lands while the charge is in flight. Live API
server, real Celery worker, simulator controls; the ledger is the proof."""

from __future__ import annotations

import json
import uuid

import pytest

from core.webhooks import SIGNATURE_HEADER, webhook_signature
from tests.e2e.test_payments import entries, place, wait_until
from tests.e2e.test_stock_flow import product, stock

pytestmark = pytest.mark.e2e


def track(stack, awb, status, *, secret=None):
    from django.conf import settings

    raw = json.dumps({"awb": awb, "status": status, "at": "2026-01-05T10:00:00Z"}).encode()
    signature = webhook_signature(secret or settings.LOGISTICS_WEBHOOK_SECRET, raw)
    with stack.client(None) as partner:
        return partner.post(
            "/api/v1/webhooks/logistics/",
            content=raw,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
        )


def tracked(stack, awb, status):
    response = track(stack, awb, status)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def without_notifications(order):
    events = [e for e in order["events"] if not e["type"].startswith("notification.")]
    return {**order, "events": events}


def cancel(client, order_id, reason="changed my mind"):
    return client.post(f"/api/v1/orders/{order_id}/cancel/", json={"reason": reason})


@pytest.fixture
def own_sku(stack, django_db_blocker):
    """A product of its own in BLR-1 (10 units), so stock counts are this test's alone."""
    from inventory.services import catalog_load

    sku = f"LOG-{uuid.uuid4().hex[:6].upper()}"
    with django_db_blocker.unblock():
        catalog_load({"products": [product(sku)], "stock": [stock("BLR-1", sku, f"{sku}-1", 10)]})

    def units():
        from inventory.models import StockBatch

        with django_db_blocker.unblock():
            batch = StockBatch.objects.get(product__sku=sku)
            return batch.on_hand, batch.reserved

    return sku, units


def test_swift_down_books_with_roadie(stack):
    stack.simulator.control("logistics/swift", down=True)
    with stack.client() as client:
        order_id = place(stack, client)
        order = stack.wait_for(client, order_id)
    assert order["status"] == "confirmed"
    [shipment] = order["shipments"]
    [booking] = entries(stack, "shipments", order_id)
    assert (shipment["partner"], booking["target"]) == ("roadie", "logistics/roadie")
    assert shipment["awb"] == booking["awb"] and shipment["eta"] == booking["eta"]


def test_tracking_to_delivered_collects_cash_and_ignores_replays_and_stale_news(stack):
    with stack.client() as client:
        order_id = place(stack, client, payment_method="cod", payment_token="")
        order = stack.wait_for(client, order_id)
        assert order["status"] == "confirmed"
        awb = order["shipments"][0]["awb"]

        # Bad signatures: 401 and nothing changes.
        assert track(stack, awb, "delivered", secret="not-the-secret").status_code == 401
        with stack.client(None) as partner:
            unsigned = partner.post(
                "/api/v1/webhooks/logistics/",
                json={"awb": awb, "status": "delivered", "at": "2026-01-05T10:00:00Z"},
            )
        assert unsigned.status_code == 401
        assert unsigned.json()["errors"][0]["code"] == "bad_signature"
        assert client.get(f"/api/v1/orders/{order_id}/").json()["status"] == "confirmed"

        assert tracked(stack, awb, "picked_up") == "applied"
        assert client.get(f"/api/v1/orders/{order_id}/").json()["status"] == "shipped"
        assert tracked(stack, awb, "picked_up") == "already_applied"
        assert tracked(stack, awb, "in_transit") == "applied"
        assert tracked(stack, awb, "delivered") == "applied"
        delivered = client.get(f"/api/v1/orders/{order_id}/").json()
        # Replayed and out-of-order updates after delivery change nothing.
        assert tracked(stack, awb, "delivered") == "already_applied"
        assert tracked(stack, awb, "picked_up") == "stale"
        assert tracked(stack, awb, "failed") == "stale"
        after = client.get(f"/api/v1/orders/{order_id}/").json()
        # Delivered orders cannot be cancelled.
        refused = cancel(client, order_id)

    assert delivered["status"] == "delivered"
    assert delivered["shipments"][0]["status"] == "delivered"
    assert delivered["payment"]["status"] == "captured"
    # (Notifications of the delivery may be recorded meanwhile; nothing else.)
    assert without_notifications(after) == without_notifications(delivered)
    types = [e["type"] for e in delivered["events"]]
    assert types.count("order.shipped") == types.count("order.delivered") == 1
    assert types.count("payment.captured") == 1
    assert types.index("order.shipped") < types.index("order.delivered")
    assert refused.status_code == 409
    assert refused.json()["errors"][0]["code"] == "invalid_transition"


def test_a_failed_delivery_is_flagged_for_ops(stack):
    with stack.client() as client:
        order_id = place(stack, client)
        awb = stack.wait_for(client, order_id)["shipments"][0]["awb"]
        assert tracked(stack, awb, "in_transit") == "applied"
        # `failed`, the older name of `delivery_failed`, still works.
        assert tracked(stack, awb, "failed") == "applied"
        order = client.get(f"/api/v1/orders/{order_id}/").json()
    assert order["status"] == "shipped"
    assert order["shipments"][0]["status"] == "delivery_failed"
    assert order["shipments"][0]["delivery_attempts"] == 1
    [failed] = [e for e in order["events"] if e["type"] == "shipment.delivery_failed"]
    assert failed["data"] == {"awb": awb, "attempt": 1, "reason": None}


def test_cancel_before_shipping_refunds_unbooks_and_restocks_then_409(stack, own_sku):
    sku, units = own_sku
    with stack.client() as client:
        order_id = place(stack, client, items=[{"sku": sku, "quantity": 3}])
        assert stack.wait_for(client, order_id)["status"] == "confirmed"
        assert units() == (7, 0)  # committed: the units left the shelf

        response = cancel(client, order_id)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"
        order = stack.wait_for(
            client, order_id, until=lambda o: o["payment"]["status"] == "refunded"
        )
        order = stack.wait_for(
            client, order_id, until=lambda o: o["shipments"][0]["status"] == "cancelled"
        )
        again = cancel(client, order_id)

    assert (order["status"], order["failure_reason"]) == ("cancelled", "cancelled_by_client")
    assert units() == (10, 0)
    [charge] = entries(stack, "charges", order_id)
    [refund] = entries(stack, "refunds", order_id)
    assert refund["charge_id"] == charge["id"]
    awb = order["shipments"][0]["awb"]
    assert [c["awb"] for c in stack.simulator.ledger()["cancellations"]] == [awb]
    assert again.status_code == 409
    assert again.json()["errors"][0]["code"] == "invalid_transition"
    # The courier's late news for a cancelled parcel changes nothing.
    assert tracked(stack, awb, "picked_up") == "ignored"


def test_a_shipped_order_cannot_be_cancelled(stack):
    with stack.client() as client:
        order_id = place(stack, client)
        awb = stack.wait_for(client, order_id)["shipments"][0]["awb"]
        tracked(stack, awb, "picked_up")
        response = cancel(client, order_id)
        order = client.get(f"/api/v1/orders/{order_id}/").json()
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "invalid_transition"
    assert order["status"] == "shipped" and order["payment"]["status"] == "captured"
    assert entries(stack, "refunds", order_id) == []


def test_a_cancel_while_the_charge_is_in_flight_refunds_what_it_took(stack, own_sku):
    sku, units = own_sku
    # The gateway captures on arrival and answers after 1.5 s: the cancel lands between.
    stack.simulator.control("gateways/alpha", kind_latency_ms={"charges": 1500})
    with stack.client() as client:
        order_id = place(stack, client, items=[{"sku": sku, "quantity": 2}])
        wait_until(lambda: entries(stack, "charges", order_id))
        response = cancel(client, order_id)
        assert response.status_code == 200, response.text
        order = stack.wait_for(
            client, order_id, until=lambda o: o["payment"]["status"] == "refunded", timeout=30
        )
    assert (order["status"], order["failure_reason"]) == ("cancelled", "cancelled_by_client")
    [charge] = entries(stack, "charges", order_id)
    [refund] = entries(stack, "refunds", order_id)
    assert refund["charge_id"] == charge["id"]
    assert entries(stack, "shipments", order_id) == []  # never booked
    assert units() == (10, 0)
    assert "order.confirmed" not in [e["type"] for e in order["events"]]
