"""Delivery end to end: the simulator's couriers drive the shipments of real orders by
posting signed tracking webhooks to the live API, as partners do."""

from __future__ import annotations

import copy
import time
import uuid
from typing import Any

import pytest

from orders.tests.factories import ORDER_BODY

pytestmark = pytest.mark.e2e
FAST = {"pickup_ms": 100, "transit_ms": 100, "delivery_ms": 100}


def body() -> dict[str, Any]:
    data = copy.deepcopy(ORDER_BODY)
    data["customer_id"] = f"C-{uuid.uuid4().hex[:8]}"
    return data


def couriers(stack, **settings: Any) -> None:
    for partner in ("swift", "roadie"):
        stack.simulator.control(
            f"logistics/{partner}", courier={**FAST, "webhook_url": stack.api_url, **settings}
        )


def test_an_order_reaches_delivered_by_the_couriers_alone(stack):
    couriers(stack)
    with stack.client() as client:
        order_id = client.post("/api/v1/orders/", json=body()).json()["id"]
        order = stack.wait_for(client, order_id, until=lambda o: o["status"] == "delivered")
    [shipment] = order["shipments"]
    assert shipment["status"] == "delivered"
    assert shipment["tracking_url"].endswith(shipment["awb"])
    assert [e["status"] for e in shipment["events"]] == [
        "picked_up",
        "in_transit",
        "out_for_delivery",
        "delivered",
    ]
    types = [e["type"] for e in order["events"]]
    for earlier, later in [
        ("order.confirmed", "shipment.picked_up"),
        ("shipment.picked_up", "order.shipped"),
        ("shipment.out_for_delivery", "shipment.delivered"),
        ("shipment.delivered", "order.delivered"),
    ]:
        assert types.index(earlier) < types.index(later), types
    ledger = stack.simulator.ledger()
    posted = [t for t in ledger["tracking"] if t["awb"] == shipment["awb"]]
    assert {t["answer"] for t in posted} == {200}
    # The customer hears of the pickup, with the tracking link (the message is sent by a
    # task of its own: give it a moment).
    phone = ORDER_BODY["delivery_address"]["phone"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        texts = [m["text"] for m in stack.simulator.ledger()["messages"] if m.get("to") == phone]
        if any(shipment["tracking_url"] in text for text in texts):
            break
        time.sleep(0.2)
    assert any(shipment["tracking_url"] in text for text in texts), texts


def test_a_parcel_nobody_receives_comes_back_and_the_timeline_says_so(stack):
    couriers(stack, fail_rate=1.0, fail_reason="address_not_found", rto_after_failures=True)
    with stack.client() as client:
        order_id = client.post("/api/v1/orders/", json=body()).json()["id"]
        order = stack.wait_for(
            client,
            order_id,
            until=lambda o: o["status"] == "returned" and o["payment"]["status"] == "refunded",
        )
    [shipment] = order["shipments"]
    statuses = [e["status"] for e in shipment["events"]]
    assert statuses == [
        "picked_up",
        "in_transit",
        *["out_for_delivery", "delivery_failed"] * 3,
        "returning",
        "returned",
    ]
    failed = [e for e in order["events"] if e["type"] == "shipment.delivery_failed"]
    assert [e["data"]["attempt"] for e in failed] == [1, 2, 3]
    assert {e["data"]["reason"] for e in failed} == {"address_not_found"}
    # Back at the centre: the units on the shelf again, the money back, exactly once.
    assert order["payment"]["refunded_amount"] == order["total_amount"]
    types = [e["type"] for e in order["events"]]
    assert types.count("inventory.restocked") == 1 and types.count("order.returned") == 1
    refunds = [r for r in stack.simulator.ledger()["refunds"] if order_id in r["idempotency_key"]]
    assert [r["amount"] for r in refunds] == [order["total_amount"]]
