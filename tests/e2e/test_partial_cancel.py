"""Cancelling one line of a confirmed order end to end, then delivering the rest: live API
server, real Celery worker, the simulator's partner and gateway; the ledger is the proof
that the line was refunded once and the parcel's booking amended."""

from __future__ import annotations

import pytest

from tests.e2e.test_logistics import own_sku, tracked  # noqa: F401 (a fixture)
from tests.e2e.test_payments import entries, place, wait_until

pytestmark = pytest.mark.e2e


def test_a_cancelled_line_is_refunded_once_and_the_rest_is_delivered(stack, own_sku):  # noqa: F811
    sku, units = own_sku
    items = [{"sku": "PARA-500", "quantity": 2}, {"sku": sku, "quantity": 3}]
    with stack.client() as client:
        order_id = place(stack, client, items=items)
        order = stack.wait_for(client, order_id)
        assert order["status"] == "confirmed", order
        assert order["total_amount"] == "90.00"
        assert units() == (7, 0)
        [shipment] = order["shipments"]

        response = client.post(
            f"/api/v1/orders/{order_id}/cancel/",
            json={"reason": "found some at home", "lines": [{"sku": sku, "quantity": 3}]},
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "confirmed"
        # The line's units are back on the shelf at once; the partner hears right after.
        assert units() == (10, 0)
        wait_until(lambda: entries(stack, "amendments", order_id))
        wait_until(
            lambda: (
                client.get(f"/api/v1/orders/{order_id}/").json()["payment"]["refunded_amount"]
                == "30.00"
            )
        )

        awb = shipment["awb"]
        for status in ("picked_up", "in_transit", "out_for_delivery", "delivered"):
            assert tracked(stack, awb, status) == "applied"
        delivered = stack.wait_for(client, order_id, until=lambda o: o["status"] == "delivered")

    assert [(i["sku"], i["quantity"], i["cancelled_quantity"]) for i in delivered["items"]] == [
        ("PARA-500", 2, 0),
        (sku, 0, 3),
    ]
    assert delivered["total_amount"] == "60.00"
    assert delivered["payment"]["amount"] == "90.00"
    assert delivered["payment"]["status"] == "partially_refunded"
    assert [i["sku"] for i in delivered["shipments"][0]["items"]] == ["PARA-500"]
    [amendment] = entries(stack, "amendments", order_id)
    assert amendment["awb"] == awb
    assert amendment["items"] == [{"sku": "PARA-500", "quantity": 2}]
    # The line's money went back exactly once, with its own key and cause.
    [refund] = entries(stack, "refunds", order_id)
    assert (refund["amount"], refund["idempotency_key"]) == ("30.00", f"order:{order_id}:refund:1")
    types = [e["type"] for e in delivered["events"]]
    assert types.count("order.lines_cancelled") == types.count("payment.refunded") == 1
    assert types.index("order.lines_cancelled") < types.index("order.delivered")
    assert [c for c in stack.simulator.ledger()["cancellations"] if c["awb"] == awb] == []
