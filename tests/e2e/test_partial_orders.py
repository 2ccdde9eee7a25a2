"""A `ship_available` order end to end: the API, the live worker, a pharmacist striking
one line out over HTTP; the order ships the rest and is charged for it."""

from __future__ import annotations

import copy

import pytest

from orders.tests.factories import ORDER_BODY
from tests.e2e.test_prescription_flow import (
    charges_of,
    new_customer,
    pharmacist,  # noqa: F401 (a fixture)
    upload,
)

pytestmark = pytest.mark.e2e


def test_a_struck_out_line_is_dropped_and_the_rest_confirmed_and_charged(
    stack,
    pharmacist,  # noqa: F811 (the fixture)
):
    customer = new_customer()
    with stack.client() as client:
        rx = upload(client, customer, items=[("AMOX-500", 10), ("CEFI-200", 4)])
        body = copy.deepcopy(ORDER_BODY)
        body.update(
            customer_id=customer,
            prescription_id=rx,
            on_partial="ship_available",
            items=[
                {"sku": "PARA-500", "quantity": 2},
                {"sku": "AMOX-500", "quantity": 2},
                {"sku": "CEFI-200", "quantity": 2},
            ],
        )
        placed = client.post("/api/v1/orders/", json=body)
        assert placed.status_code == 202, placed.text
        order_id = placed.json()["id"]
        assert stack.wait_for(client, order_id)["status"] == "on_hold"

        review = pharmacist.post(
            f"/api/v1/prescriptions/{rx}/review/",
            json={
                "decision": "partial",
                "lines": [{"sku": "CEFI-200", "decision": "rejected", "reason": "interaction"}],
            },
        )
        assert review.status_code == 200, review.text
        done = stack.wait_for(
            client, order_id, until=lambda o: o["status"] not in ("on_hold", "processing")
        )
    assert done["status"] == "confirmed", done
    assert done["on_partial"] == "ship_available"
    lines = {i["sku"]: (i["status"], i["reason"]) for i in done["items"]}
    assert lines == {
        "PARA-500": ("active", None),
        "AMOX-500": ("active", None),
        "CEFI-200": ("dropped", "prescription_rejected"),
    }
    # 2 x 30.00 + 2 x 95.00: the two active lines.
    assert done["total_amount"] == "250.00"
    captures = [c for c in charges_of(stack, order_id) if c["status"] == "captured"]
    assert [c["amount"] for c in captures] == ["250.00"]
    assert {"sku": "CEFI-200", "reason": "prescription_rejected"} in [
        e["data"] for e in done["events"] if e["type"] == "prescription.line_rejected"
    ]
