"""A substitute end to end: the API, the live worker, a pharmacist offering a generic over
HTTP, the client accepting it over HTTP; the order is confirmed at the generic's price."""

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


def test_an_accepted_substitute_is_confirmed_and_charged_at_its_price(
    stack,
    pharmacist,  # noqa: F811 (the fixture)
):
    customer = new_customer()
    with stack.client() as client:
        rx = upload(client, customer, items=[("AMOX-500", 10)])
        body = copy.deepcopy(ORDER_BODY)
        body.update(
            customer_id=customer,
            prescription_id=rx,
            items=[{"sku": "PARA-500", "quantity": 2}, {"sku": "AMOX-500", "quantity": 10}],
        )
        placed = client.post("/api/v1/orders/", json=body)
        assert placed.status_code == 202, placed.text
        order_id = placed.json()["id"]
        assert stack.wait_for(client, order_id)["status"] == "on_hold"

        review = pharmacist.post(
            f"/api/v1/prescriptions/{rx}/review/",
            json={
                "decision": "approved",
                "lines": [
                    {
                        "sku": "AMOX-500",
                        "decision": "substitute",
                        "substitute_sku": "AMOX-500-G",
                        "order_id": order_id,
                    }
                ],
            },
        )
        assert review.status_code == 200, review.text
        offered = stack.wait_for(client, order_id, until=lambda o: bool(o["substitutions"]))
        assert offered["status"] == "on_hold"
        [substitution] = offered["substitutions"]
        assert (substitution["status"], substitution["price_difference"]) == (
            "proposed",
            "-330.00",
        )
        accepted = client.post(
            f"/api/v1/orders/{order_id}/substitutions/{substitution['id']}/accept/"
        )
        assert accepted.status_code == 200, accepted.text
        done = stack.wait_for(
            client, order_id, until=lambda o: o["status"] not in ("on_hold", "processing")
        )
        again = client.post(
            f"/api/v1/orders/{order_id}/substitutions/{substitution['id']}/decline/"
        )
    assert again.status_code == 409
    assert done["status"] == "confirmed", done
    generic = next(i for i in done["items"] if i["sku"] == "AMOX-500-G")
    assert (generic["substituted_for"], generic["line_total"]) == ("AMOX-500", "620.00")
    # 2 x 30.00 + 10 x 62.00: the generic's price.
    assert done["total_amount"] == "680.00"
    captures = [c for c in charges_of(stack, order_id) if c["status"] == "captured"]
    assert [c["amount"] for c in captures] == ["680.00"]
    assert done["substitutions"][0]["status"] == "accepted"
    types = [e["type"] for e in done["events"]]
    assert "substitution.proposed" in types and "substitution.accepted" in types
