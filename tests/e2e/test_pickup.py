"""In-store pickup end to end on the live stack: an order placed over HTTP for pickup at a
centre runs the Celery pipeline to `ready_for_pickup` (stock from that centre, no courier),
and is collected with its code (a wrong code first: 409). Another is not collected: its
ready time is moved back in the database, beat's sweep is handed to the live worker, and
the order ends cancelled/`pickup_not_collected`, refunded once (the simulator's ledger) and
its stock back in its batch."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from celery.result import allow_join_result
from django.utils import timezone

from tests.e2e.test_hold_timeout import sms_about, wait_until
from tests.e2e.test_stock_flow import product, stock

pytestmark = pytest.mark.e2e
READY = "ready_for_pickup"


@pytest.fixture
def own_sku(stack, django_db_blocker):
    """A product of this test's own: 20 units at DEL-1, 20 at BLR-1 (which a delivery to a
    Bengaluru pincode would use first)."""
    from inventory.services import catalog_load

    sku = f"PCK-{uuid.uuid4().hex[:6].upper()}"
    with django_db_blocker.unblock():
        catalog_load(
            {
                "products": [product(sku)],
                "stock": [
                    stock("DEL-1", sku, f"{sku}-D", 20),
                    stock("BLR-1", sku, f"{sku}-B", 20),
                ],
            }
        )

    def on_hand() -> dict[str, int]:
        from inventory.models import StockBatch

        with django_db_blocker.unblock():
            return dict(StockBatch.objects.filter(product__sku=sku).values_list("batch", "on_hand"))

    return sku, on_hand


def place_pickup(client, sku: str, quantity: int) -> str:
    response = client.post(
        "/api/v1/orders/",
        json={
            "customer_id": f"C-{uuid.uuid4().hex[:8]}",
            "items": [{"sku": sku, "quantity": quantity}],
            "fulfilment": {"type": "pickup", "center": "DEL-1"},
            "contact": {"name": "A. Rao", "phone": "+919800000003"},
            "payment_method": "upi",
            "payment_token": "tok_ok",
        },
    )
    assert response.status_code == 202, response.text
    assert response.json()["fulfilment"] == {"type": "pickup", "center": "DEL-1"}
    return response.json()["id"]


def test_a_pickup_order_is_ready_at_its_centre_and_collected_with_its_code(stack, own_sku):
    sku, on_hand = own_sku
    with stack.client() as client:
        order_id = place_pickup(client, sku, 3)
        order = stack.wait_for(client, order_id, until=lambda o: o["status"] in (READY, "rejected"))
        assert order["status"] == READY, order
        code = order["pickup_code"]
        assert len(code) == 6 and code.isdigit()
        assert order["shipments"] == [] and order["payment"]["status"] == "captured"
        assert on_hand() == {f"{sku}-D": 17, f"{sku}-B": 20}
        wrong = f"{(int(code) + 1) % 10**6:06d}"

        refused = client.post(f"/api/v1/orders/{order_id}/collect/", json={"pickup_code": wrong})
        assert refused.status_code == 409, refused.text
        assert refused.json()["errors"][0]["code"] == "pickup_code_invalid"

        collected = client.post(f"/api/v1/orders/{order_id}/collect/", json={"pickup_code": code})
        assert collected.status_code == 200, collected.text
        assert collected.json()["status"] == "collected"

    types = [e["type"] for e in collected.json()["events"]]
    assert types.index("order.ready_for_pickup") < types.index("order.collected")
    ledger = stack.simulator.ledger()
    assert not [s for s in ledger["shipments"] if order_id in s["idempotency_key"]]
    [told] = wait_until(lambda: sms_about(stack, order_id, "order.ready_for_pickup"))
    assert code in told


def test_an_order_not_collected_in_time_is_cancelled_refunded_and_restocked(
    stack, own_sku, broker, django_db_blocker
):
    from django.conf import settings

    from orders.models import Pickup

    sku, on_hand = own_sku
    with stack.client() as client:
        order_id = place_pickup(client, sku, 4)
        order = stack.wait_for(client, order_id, until=lambda o: o["status"] in (READY, "rejected"))
        assert order["status"] == READY, order
        assert on_hand()[f"{sku}-D"] == 16

        # As if it had waited at the centre longer than COT_PICKUP_HOLD_DAYS.
        with django_db_blocker.unblock():
            Pickup.objects.filter(order_id=order_id).update(
                ready_at=timezone.now() - timedelta(days=settings.COT_PICKUP_HOLD_DAYS, hours=1)
            )
        swept = broker.send_task("orders.expire_pickups", queue="maintenance", ignore_result=False)
        with allow_join_result():  # this process is no worker: waiting cannot deadlock one
            assert swept.get(timeout=30) >= 1

        done = stack.wait_for(
            client, order_id, until=lambda o: o["payment"]["status"] == "refunded", timeout=30
        )
        assert (done["status"], done["failure_reason"]) == ("cancelled", "pickup_not_collected")
        assert done["payment"]["refunded_amount"] == done["total_amount"]
        late = client.post(
            f"/api/v1/orders/{order_id}/collect/", json={"pickup_code": order["pickup_code"]}
        )
        assert late.status_code == 409 and late.json()["errors"][0]["code"] == "invalid_transition"

    refunds = [r for r in stack.simulator.ledger()["refunds"] if order_id in r["idempotency_key"]]
    assert [Decimal(str(r["amount"])) for r in refunds] == [Decimal(done["total_amount"])]
    assert on_hand() == {f"{sku}-D": 20, f"{sku}-B": 20}
