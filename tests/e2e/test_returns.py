"""A customer return end to end on the live stack: an order placed over HTTP is delivered
by hand-sent, signed tracking webhooks; part of it is returned through the API; an ops user
approves it (the reverse pickup is booked) and receives it in the admin of the live server;
the Celery worker sends the refund. The ledger and the batches are the proof."""

from __future__ import annotations

import datetime
import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from core.webhooks import SIGNATURE_HEADER, webhook_signature
from tests.e2e.test_payments import place
from tests.e2e.test_stock_flow import product, stock

pytestmark = pytest.mark.e2e


def track(stack, awb: str, status: str) -> None:
    from django.conf import settings

    # Now, not a fixed date: the return window counts from the courier's time of delivery.
    at = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
    raw = json.dumps({"awb": awb, "status": status, "at": at}).encode()
    with stack.client(None) as partner:
        response = partner.post(
            "/api/v1/webhooks/logistics/",
            content=raw,
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: webhook_signature(settings.LOGISTICS_WEBHOOK_SECRET, raw),
            },
        )
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "applied"


@pytest.fixture
def own_sku(stack, django_db_blocker):
    """A product of this test's own in BLR-1, in two batches: 2 units expiring first, then
    10, so a 4-unit order takes both."""
    from inventory.services import catalog_load

    sku = f"RET-{uuid.uuid4().hex[:6].upper()}"
    with django_db_blocker.unblock():
        catalog_load(
            {
                "products": [product(sku)],
                "stock": [
                    stock("BLR-1", sku, f"{sku}-A", 2, expires_on="2029-01-31"),
                    stock("BLR-1", sku, f"{sku}-B", 10, expires_on="2030-01-31"),
                ],
            }
        )

    def on_hand() -> dict[str, int]:
        from inventory.models import StockBatch

        with django_db_blocker.unblock():
            return dict(StockBatch.objects.filter(product__sku=sku).values_list("batch", "on_hand"))

    return sku, on_hand


@pytest.fixture
def ops(stack, django_db_blocker):
    """An ops user (the role, not a superuser) logged in to the live server's admin."""
    from django.contrib.auth.models import Group, User

    from orders.roles import roles_sync

    name, password = f"ops-{uuid.uuid4().hex[:6]}", "pw-e2e-123456"
    with django_db_blocker.unblock():
        roles_sync()
        user = User.objects.create_user(name, password=password, is_staff=True)
        user.groups.add(Group.objects.get(name="ops"))
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


def admin_action(client: httpx.Client, data: dict[str, Any]) -> str:
    response = client.post(
        "/admin/orders/return/",
        data={**data, "csrfmiddlewaretoken": client.cookies["csrftoken"]},
        follow_redirects=True,
    )
    assert response.status_code == 200, response.text
    return response.text


def test_part_of_a_delivered_order_is_returned_restocked_and_refunded_once(
    stack, own_sku, ops, django_db_blocker
):
    sku, on_hand = own_sku
    with stack.client() as client:
        order_id = place(stack, client, items=[{"sku": sku, "quantity": 4}])
        order = stack.wait_for(client, order_id)
        assert order["status"] == "confirmed", order
        [shipment] = order["shipments"]
        assert [(i["batch"], i["quantity"]) for i in shipment["items"]] == [
            (f"{sku}-A", 2),
            (f"{sku}-B", 2),
        ]
        track(stack, shipment["awb"], "picked_up")
        track(stack, shipment["awb"], "delivered")
        assert client.get(f"/api/v1/orders/{order_id}/").json()["status"] == "delivered"
        delivered_stock = on_hand()

        response = client.post(
            f"/api/v1/orders/{order_id}/returns/",
            json={
                "reason": "not_needed",
                "note": "bought too many",
                "lines": [{"sku": sku, "quantity": 3}],
            },
            headers={"Idempotency-Key": f"ret-{order_id}"},
        )
        assert response.status_code == 201, response.text
        ret = response.json()
        assert (ret["status"], ret["refund_amount"]) == ("requested", "30.00")
        # More than is left is refused, and writes nothing.
        more = client.post(
            f"/api/v1/orders/{order_id}/returns/",
            json={"reason": "not_needed", "lines": [{"sku": sku, "quantity": 2}]},
        )
        assert more.status_code == 409
        assert more.json()["errors"][0]["code"] == "quantity_exceeded"

        # Ops approve in the admin: the reverse pickup is booked with the courier.
        selected = {"_selected_action": [ret["id"]]}
        assert "Approved: 1" in admin_action(ops, {**selected, "action": "approve_returns"})
        [pickup] = [
            r
            for r in stack.simulator.ledger()["returns"]
            if r["idempotency_key"] == f"return:{ret['id']}:pickup"
        ]
        assert pickup["items"] == [{"sku": sku, "quantity": 3}]
        [listed] = client.get(f"/api/v1/orders/{order_id}/returns/").json()["results"]
        assert listed["pickup"] == {"partner": shipment["partner"], "awb": pickup["awb"]}

        # The parcel is back; ops inspect it and restock.
        with django_db_blocker.unblock():
            from orders.models import ReturnLine

            line_id = ReturnLine.objects.get(return_request_id=ret["id"]).pk
        page = admin_action(
            ops,
            {
                **selected,
                "action": "receive_returns",
                "confirm": "yes",
                f"line-{line_id}-verdict": "restock",
                "note": "sealed, as sent",
            },
        )
        assert "Received: 1" in page

        order = stack.wait_for(
            client,
            order_id,
            until=lambda o: any(e["type"] == "return.refunded" for e in o["events"]),
        )
        [listed] = client.get(f"/api/v1/orders/{order_id}/returns/").json()["results"]

    assert listed["status"] == "refunded"
    assert listed["lines"][0]["outcome"] == "restocked"
    # Exactly the return's amount, refunded once, through the gateway that captured it.
    refunds = [r for r in stack.simulator.ledger()["refunds"] if order_id in r["idempotency_key"]]
    assert [Decimal(r["amount"]) for r in refunds] == [Decimal("30.00")]
    assert order["payment"]["refunded_amount"] == "30.00"
    # The units went back into the batches they left: 2 of A, then 1 of B.
    assert on_hand() == {
        f"{sku}-A": delivered_stock[f"{sku}-A"] + 2,
        f"{sku}-B": delivered_stock[f"{sku}-B"] + 1,
    }
    types = [e["type"] for e in order["events"] if not e["type"].startswith("notification.")]
    assert types[-7:] == [
        "return.requested",
        "return.approved",
        "inventory.restocked",
        "inventory.restocked",
        "return.received",
        "payment.refunded",
        "return.refunded",
    ]
    assert types.count("return.refunded") == types.count("payment.refunded") == 1
