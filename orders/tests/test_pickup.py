"""In-store pickup in-process: placement (centre checked, exactly one of address and
pickup), stock from that centre only, ready_for_pickup with a code, collection against it
(a wrong code counted, the fifth locking it, ops unlocking it), the admin hand-over, and
the not-collected sweep (restocked, refunded, prescription quantities and the H1 register
given back). Inline pipeline, real simulator and database."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any

import pytest
from celery import current_app as app
from django.contrib.auth.models import User
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from inventory.models import FulfillmentCenter, StockBatch
from inventory.tests.factories import CenterFactory, ProductFactory, StockBatchFactory
from logistics.models import Shipment
from orders.models import Order, OrderNumber, Pickup
from orders.services.pickup import MAX_WRONG_CODES, order_expire_pickups, order_pickup_unlock
from orders.tasks import expire_pickups
from orders.tests.factories import ORDER_BODY
from orders.tests.test_admin import login
from payments.models import Payment
from prescriptions.enums import H1EntryType
from prescriptions.models import H1RegisterEntry, PrescriptionItem
from prescriptions.services import prescription_review
from prescriptions.tests.factories import prescription_with

pytestmark = pytest.mark.django_db
URL = "/api/v1/orders/"
CONTACT = {"name": "A. Rao", "phone": "+919800000002", "email": "a.rao@example.com"}


def pickup_body(center: str = "DEL-1", items=(("PICK-1", 2),), **changes: Any) -> dict:
    body = {
        "customer_id": "C-2001",
        "items": [{"sku": sku, "quantity": quantity} for sku, quantity in items],
        "fulfilment": {"type": "pickup", "center": center},
        "contact": CONTACT,
        "payment_method": "upi",
        "payment_token": "tok_ok",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


@pytest.fixture
def stock(demo_catalog):
    """PICK-1 at BLR-1 (the highest priority) and DEL-1; PICK-BLR at BLR-1 only."""
    blr, dl = CenterFactory(code="BLR-1"), CenterFactory(code="DEL-1")
    pick = ProductFactory(sku="PICK-1", price=Decimal("25.00"))
    StockBatchFactory(product=pick, center=blr, batch="P-BLR", on_hand=50)
    StockBatchFactory(product=pick, center=dl, batch="P-DEL", on_hand=10)
    StockBatchFactory(product=ProductFactory(sku="PICK-BLR"), center=blr, batch="PB", on_hand=50)


def api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.fixture
def post(shop, django_capture_on_commit_callbacks):
    """POST as the shop's client, running what follows the commit (the inline pipeline,
    compensation, messages)."""

    def post(path: str, body: dict) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return api(shop[1]).post(path, json.dumps(body), content_type="application/json")

    post.key = shop[1]
    return post


def read(key: str, order_id: str) -> dict:
    response = api(key).get(f"{URL}{order_id}/")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def ready(post, stock):
    """A paid pickup order at DEL-1, ready for pickup (as the API shows it)."""

    def ready(**changes: Any) -> dict:
        response = post(URL, pickup_body(**changes))
        assert response.status_code == 202, response.content
        order = read(post.key, response.json()["id"])
        assert order["status"] == "ready_for_pickup", order
        return order

    return ready


def on_hand(batch: str) -> int:
    return StockBatch.objects.get(batch=batch).on_hand


def events(order_id: str) -> list[str]:
    return list(Order.objects.get(pk=order_id).events.values_list("type", flat=True))


def error(response: Any) -> tuple[int, str, str | None]:
    [first] = response.json()["errors"]
    return response.status_code, first["code"], first["attr"]


def collect(post, order_id: str, code: str) -> Any:
    return post(f"{URL}{order_id}/collect/", {"pickup_code": code})


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_a_pickup_order_is_served_from_its_centre_only_and_waits_there_with_a_code(
    ready, simulator
):
    order = ready()

    assert order["fulfilment"] == {"type": "pickup", "center": "DEL-1"}
    assert order["delivery_address"] is None and order["contact"] == CONTACT
    assert len(order["pickup_code"]) == 6 and order["pickup_code"].isdigit()
    assert order["pickup"]["locked"] is False and order["pickup"]["collected_at"] is None
    assert order["shipments"] == [] and order["payment"]["status"] == "captured"
    # DEL-1 although BLR-1 comes first for a delivery: the customer picks up there.
    assert on_hand("P-DEL") == 8 and on_hand("P-BLR") == 50
    assert "order.ready_for_pickup" in events(order["id"])
    assert "order.confirmed" not in events(order["id"])
    assert simulator.ledger()["shipments"] == []
    ready_event = Order.objects.get(pk=order["id"]).events.get(type="order.ready_for_pickup")
    # The code is for the client and the customer, never in the timeline or webhooks.
    assert ready_event.data["center"] == "DEL-1" and order["pickup_code"] not in str(
        ready_event.data
    )
    key = f"order:{order['id']}:notify:order.ready_for_pickup:sms"
    [sms] = [m for m in simulator.ledger()["messages"] if m["idempotency_key"] == key]
    assert sms["to"] == CONTACT["phone"] and order["pickup_code"] in sms["text"]
    assert "Delhi 1" in sms["text"]


def test_short_at_the_chosen_centre_is_out_of_stock_whatever_other_centres_hold(post, stock):
    response = post(URL, pickup_body(items=[("PICK-BLR", 1)]))

    assert response.status_code == 202
    order = read(post.key, response.json()["id"])
    assert (order["status"], order["failure_reason"]) == (
        "rejected",
        "out_of_stock",
    )
    assert on_hand("PB") == 50


@pytest.mark.parametrize(
    ("fulfilment", "detail"),
    [({"type": "pickup", "center": "NOPE-9"}, "unknown"), ("inactive", "inactive")],
)
def test_a_centre_that_does_not_exist_or_is_inactive_is_a_400_and_writes_nothing(
    post, stock, fulfilment, detail
):
    if fulfilment == "inactive":
        FulfillmentCenter.objects.filter(code="MUM-1").update(active=False)
        fulfilment = {"type": "pickup", "center": "MUM-1"}
    numbers = OrderNumber.objects.count()

    response = post(URL, pickup_body(fulfilment=fulfilment))

    assert error(response) == (400, "unknown_center", "fulfilment.center")
    assert Order.objects.count() == 0 and OrderNumber.objects.count() == numbers


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # Both an address and a pickup.
        ({"delivery_address": ORDER_BODY["delivery_address"]}, "delivery_address"),
        # Neither: no address and no pickup.
        ({"fulfilment": None, "contact": None}, "delivery_address"),
        ({"fulfilment": {"type": "delivery"}, "contact": None}, "delivery_address"),
        # A pickup without its centre, a delivery with one.
        ({"fulfilment": {"type": "pickup"}}, "fulfilment.center"),
        ({"fulfilment": {"type": "courier", "center": "DEL-1"}}, "fulfilment.type"),
        ({"contact": {"name": "A. Rao", "phone": "98000"}}, "contact.phone"),
        ({"fulfilment": {"type": "pickup", "center": "DEL-1", "x": 1}}, "fulfilment.x"),
    ],
)
def test_exactly_one_of_delivery_address_and_pickup_else_400_writing_nothing(
    post, stock, changes, expected
):
    response = post(URL, pickup_body(**changes))

    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["attr"] == expected
    assert Order.objects.count() == 0


def test_a_delivery_order_takes_no_contact_and_no_centre(post, stock):
    with_contact = {**ORDER_BODY, "contact": CONTACT}
    with_center = {**ORDER_BODY, "fulfilment": {"type": "delivery", "center": "BLR-1"}}

    assert error(post(URL, with_contact))[::2] == (400, "contact")
    assert error(post(URL, with_center))[::2] == (400, "fulfilment.center")
    assert Order.objects.count() == 0
    explicit = post(URL, {**ORDER_BODY, "fulfilment": {"type": "delivery"}})
    assert explicit.status_code == 202, explicit.content
    order = read(post.key, explicit.json()["id"])
    assert order["status"] == "confirmed" and order["fulfilment"] == {"type": "delivery"}
    assert order["pickup_code"] is None and order["pickup"] is None


def test_the_right_code_collects_after_a_wrong_one(ready, post):
    order = ready()
    code = order["pickup_code"]

    refused = collect(post, order["id"], wrong(code))
    assert error(refused) == (409, "pickup_code_invalid", None)
    assert Order.objects.get(pk=order["id"]).status == "ready_for_pickup"
    assert Pickup.objects.get(order_id=order["id"]).failed_attempts == 1

    collected = collect(post, order["id"], code)

    assert collected.status_code == 200, collected.content
    body = collected.json()
    assert body["status"] == "collected" and body["pickup"]["collected_at"] is not None
    assert events(order["id"])[-1] != "order.ready_for_pickup"
    assert "order.collected" in events(order["id"])
    assert Pickup.objects.get(order_id=order["id"]).collected_by == "client:web-shop"
    again = collect(post, order["id"], code)
    assert error(again) == (409, "invalid_transition", None)
    # Handed over at the counter, not delivered: nothing to return through the API.
    returned = post(
        f"{URL}{order['id']}/returns/",
        {"reason": "damaged", "lines": [{"sku": "PICK-1", "quantity": 1}]},
    )
    assert error(returned)[:2] == (409, "not_delivered")


def test_cash_at_the_counter_is_captured_on_collection(ready, post):
    order = ready(payment_method="cod", payment_token=None)
    assert order["payment"]["status"] == "pending_collection"

    collected = collect(post, order["id"], order["pickup_code"]).json()

    assert collected["payment"]["status"] == "captured"
    assert collected["payment"]["reference"] == f"cod:{order['id']}"
    captured = [e for e in collected["events"] if e["type"] == "payment.captured"]
    assert captured[-1]["data"] == {"amount": "50.00", "method": "cod"}


def test_an_order_not_ready_for_pickup_cannot_be_collected(post, stock):
    delivery = read(post.key, post(URL, ORDER_BODY).json()["id"])
    assert delivery["status"] == "confirmed"

    assert error(collect(post, delivery["id"], "123456")) == (409, "invalid_transition", None)
    assert error(collect(post, delivery["id"], "12345"))[::2] == (400, "pickup_code")


def test_five_wrong_codes_lock_collection_until_ops_unlock_it(ready, post):
    order = ready()
    code = order["pickup_code"]
    for _ in range(MAX_WRONG_CODES - 1):
        assert error(collect(post, order["id"], wrong(code)))[1] == "pickup_code_invalid"

    fifth = collect(post, order["id"], wrong(code))

    assert error(fifth) == (409, "pickup_locked", None)
    assert "ops" in fifth.json()["errors"][0]["detail"]
    # Locked: even the right code is refused, and the order waits.
    assert error(collect(post, order["id"], code))[1] == "pickup_locked"
    assert Order.objects.get(pk=order["id"]).status == "ready_for_pickup"
    assert events(order["id"]).count("pickup.locked") == 1
    assert read(post.key, order["id"])["pickup"]["locked"] is True

    assert order_pickup_unlock(order_id=order["id"], by="ops:desk") is True
    assert order_pickup_unlock(order_id=order["id"], by="ops:desk") is False  # not locked

    assert collect(post, order["id"], code).json()["status"] == "collected"
    assert "pickup.unlocked" in events(order["id"])


def admin_action(client: Any, action: str, order_id: str, **data: str) -> str:
    response = client.post(
        "/admin/orders/order/",
        {"action": action, "_selected_action": [order_id], **data},
        follow=True,
    )
    assert response.status_code == 200
    return response.content.decode()


def test_ops_hand_an_order_over_in_admin_against_the_code(ready):
    order = ready()
    ops = login("ops")
    page = ops.get(f"/admin/orders/order/{order['id']}/change/").content.decode()
    assert "ready since" in page and "0 wrong codes of 5" in page
    assert order["pickup_code"] not in page  # staff check the customer's code, never read it

    form = admin_action(ops, "collect_pickup", order["id"])
    assert 'name="pickup_code"' in form and "Hand over" in form
    refused = admin_action(
        ops, "collect_pickup", order["id"], confirm="yes", pickup_code=wrong(order["pickup_code"])
    )
    assert "Wrong code: 4 tries left" in refused
    assert Order.objects.get(pk=order["id"]).status == "ready_for_pickup"

    done = admin_action(
        ops, "collect_pickup", order["id"], confirm="yes", pickup_code=order["pickup_code"]
    )

    assert "collected." in done
    assert Order.objects.get(pk=order["id"]).status == "collected"
    collected = Order.objects.get(pk=order["id"]).events.get(type="order.collected")
    assert collected.data == {"by": "ops:u-ops"}
    again = admin_action(ops, "collect_pickup", order["id"])
    assert "Select exactly one order that is ready for pickup." in again


def test_ops_unlock_a_locked_pickup_in_admin(ready, post):
    order = ready()
    for _ in range(MAX_WRONG_CODES):
        collect(post, order["id"], wrong(order["pickup_code"]))
    ops = login("ops")
    assert (
        "LOCKED after 5 wrong codes"
        in ops.get(f"/admin/orders/order/{order['id']}/change/").content.decode()
    )
    locked = admin_action(
        ops, "collect_pickup", order["id"], confirm="yes", pickup_code=order["pickup_code"]
    )
    assert "collection is locked" in locked

    unlocked = admin_action(ops, "unlock_pickup", order["id"])

    assert "Unlocked: 1" in unlocked
    unlock = Order.objects.get(pk=order["id"]).events.get(type="pickup.unlocked")
    assert unlock.data["by"] == "ops:u-ops"
    assert Pickup.objects.get(order_id=order["id"]).failed_attempts == 0
    assert collect(post, order["id"], order["pickup_code"]).json()["status"] == "collected"


def age(order_id: str, days: float) -> None:
    """As if the order had been ready `days` ago (moved back in the rows, not slept)."""
    Pickup.objects.filter(order_id=order_id).update(
        ready_at=Pickup.objects.get(order_id=order_id).ready_at - datetime.timedelta(days=days)
    )


def mine(entries: list[dict], order_id: str) -> list[dict]:
    return [e for e in entries if order_id in e["idempotency_key"]]


def test_not_collected_in_time_is_cancelled_restocked_and_refunded(
    ready, simulator, settings, django_capture_on_commit_callbacks
):
    settings.COT_PICKUP_HOLD_DAYS = 3
    order = ready()
    assert on_hand("P-DEL") == 8
    age(order["id"], 2.9)
    assert order_expire_pickups() == 0

    age(order["id"], 0.2)
    with django_capture_on_commit_callbacks(execute=True):
        assert expire_pickups() == 1

    ended = Order.objects.get(pk=order["id"])
    assert (ended.status, ended.failure_reason) == ("cancelled", "pickup_not_collected")
    assert on_hand("P-DEL") == 10  # back in its batch, not written off
    payment = Payment.objects.get(order_id=order["id"])
    assert (payment.status, payment.refunded_amount) == ("refunded", Decimal("50.00"))
    [refund] = mine(simulator.ledger()["refunds"], order["id"])
    assert Decimal(str(refund["amount"])) == Decimal("50.00")
    assert {"order.cancelled", "inventory.released", "payment.refunded"} <= set(events(order["id"]))
    assert order_expire_pickups() == 0  # once


def test_cash_at_the_counter_not_collected_charges_nothing(
    ready, simulator, django_capture_on_commit_callbacks
):
    order = ready(payment_method="cod", payment_token=None)
    age(order["id"], 4)

    with django_capture_on_commit_callbacks(execute=True):
        assert order_expire_pickups() == 1

    assert Payment.objects.get(order_id=order["id"]).status == "voided"
    assert mine(simulator.ledger()["refunds"], order["id"]) == []
    assert on_hand("P-DEL") == 10


def test_prescribed_units_are_dispensed_when_ready_and_given_back_when_not_collected(
    post, shop, stock, django_capture_on_commit_callbacks
):
    prescription = prescription_with([("CEFI-200", 5)], client=shop[0], customer_id="C-2001")
    placed = post(
        URL,
        pickup_body(center="BLR-1", items=[("CEFI-200", 2)], prescription_id=str(prescription.pk)),
    )
    order = read(post.key, placed.json()["id"])
    assert order["status"] == "ready_for_pickup", order
    rx = PrescriptionItem.objects.get(prescription=prescription)
    assert rx.dispensed_quantity == 2
    [dispensed] = H1RegisterEntry.objects.filter(order_id=order["id"])
    age(order["id"], 4)

    with django_capture_on_commit_callbacks(execute=True):
        order_expire_pickups()

    rx.refresh_from_db()
    assert rx.dispensed_quantity == 0
    returned = H1RegisterEntry.objects.get(order_id=order["id"], entry_type=H1EntryType.RETURNED)
    assert (returned.batch, returned.quantity) == (dispensed.batch, 2)


def test_a_prescription_waiting_for_review_holds_a_pickup_until_approved(
    post, shop, stock, simulator, django_capture_on_commit_callbacks
):
    prescription = prescription_with(
        [("AMOX-500", 5)], client=shop[0], customer_id="C-2001", status="pending_review"
    )
    placed = post(
        URL,
        pickup_body(center="DEL-1", items=[("AMOX-500", 2)], prescription_id=str(prescription.pk)),
    )
    order_id = placed.json()["id"]
    assert read(post.key, order_id)["status"] == "on_hold"
    assert simulator.ledger()["charges"] == []

    with django_capture_on_commit_callbacks(execute=True):
        prescription_review(
            prescription_id=prescription.pk,
            reviewer=User.objects.create_user("ph", is_staff=True),
            decision="approved",
        )

    order = read(post.key, order_id)
    assert order["status"] == "ready_for_pickup" and order["pickup_code"]
    reserved = Order.objects.get(pk=order_id).events.get(type="inventory.reserved")
    assert {a["center"] for a in reserved.data["allocations"]} == {"DEL-1"}


def test_the_client_may_cancel_a_ready_order_before_collection(ready, post, simulator):
    order = ready()

    response = post(f"{URL}{order['id']}/cancel/", {"reason": "will not come"})

    assert response.status_code == 200, response.content
    assert response.json()["failure_reason"] == "cancelled_by_client"
    assert on_hand("P-DEL") == 10
    assert Payment.objects.get(order_id=order["id"]).status == "refunded"
    assert error(collect(post, order["id"], order["pickup_code"]))[1] == "invalid_transition"
    assert Shipment.objects.filter(order_id=order["id"]).count() == 0


def test_ready_and_collected_are_counted_in_cot_orders_total(ready, post):
    def count(status: str) -> float:
        labels = {"channel": "web", "status": status}
        return REGISTRY.get_sample_value("cot_orders_total", labels) or 0

    before_ready, before_collected = count("ready_for_pickup"), count("collected")
    order = ready()
    collect(post, order["id"], order["pickup_code"])

    assert count("ready_for_pickup") == before_ready + 1
    assert count("collected") == before_collected + 1
    assert Order.objects.get(pk=order["id"]).confirmed_at is not None


def test_the_not_collected_sweep_is_a_maintenance_task_run_by_beat(settings):
    [entry] = [e for e in app.conf.beat_schedule.values() if e["task"] == "orders.expire_pickups"]
    assert entry["schedule"] == float(settings.COT_SWEEP_INTERVAL_SECONDS)
    assert entry["options"]["queue"] == "maintenance"
    assert app.conf.task_routes["orders.expire_pickups"] == {"queue": "maintenance"}
