"""The logistics webhook, signed, through the API down to the shipment, the
order's status and timeline, and cash on delivery (inline pipeline, real simulator)."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory, api_key_for
from core.webhooks import SIGNATURE_HEADER, webhook_signature
from inventory.models import StockBatch, StockReturn
from inventory.selectors import shelf_life_floor
from inventory.tests.factories import CenterFactory, ProductFactory, StockBatchFactory
from logistics.models import Shipment
from orders.enums import OrderStatus
from orders.models import Order
from orders.tests.factories import place_order
from orders.tests.test_admin import login
from payments.models import Payment

pytestmark = pytest.mark.django_db
URL = "/api/v1/webhooks/logistics/"
SECRET = "logistics-test-secret"
AT = "2026-01-05T10:00:00Z"


@pytest.fixture(autouse=True)
def secret(settings):
    settings.LOGISTICS_WEBHOOK_SECRET = SECRET


def post(body, *, signature=None):
    raw = json.dumps(body).encode()
    headers = {SIGNATURE_HEADER: signature or webhook_signature(SECRET, raw)}
    return APIClient().post(URL, raw, content_type="application/json", headers=headers)


def track(awb, status, at="2026-01-05T10:00:00Z"):
    response = post({"awb": awb, "status": status, "at": at})
    assert response.status_code == 200, response.content
    return response.json()["result"]


@pytest.fixture
def confirmed(demo_catalog, simulator, settings, django_capture_on_commit_callbacks):
    settings.COT_PIPELINE_MODE = "inline"
    client = ApiClientFactory()

    def place(items=(("PARA-500", 2),), **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            order = place_order(client, items=list(items), **kwargs)
        order.refresh_from_db()
        assert order.status == OrderStatus.CONFIRMED
        return order

    return place


def state(order):
    order.refresh_from_db()
    return order.status


def events(order):
    return list(Order.objects.get(pk=order.pk).events.values_list("type", flat=True))


@pytest.mark.parametrize("signature", ["sha256=00", "md5=x", webhook_signature("other", b"{}")])
def test_a_bad_signature_is_401_and_changes_nothing(confirmed, signature):
    order = confirmed()
    awb = Shipment.objects.get(order_id=order.pk).awb
    response = post(
        {"awb": awb, "status": "delivered", "at": "2026-01-05T10:00:00Z"}, signature=signature
    )
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "bad_signature"
    unsigned = APIClient().post(URL, {"awb": awb, "status": "delivered"}, format="json")
    assert unsigned.status_code == 401
    assert state(order) == OrderStatus.CONFIRMED
    assert Shipment.objects.get(order_id=order.pk).status == "booked"


def test_pickup_ships_delivery_delivers_and_replays_change_nothing(confirmed):
    order = confirmed()
    awb = Shipment.objects.get(order_id=order.pk).awb
    assert track(awb, "picked_up") == "applied"
    assert state(order) == OrderStatus.SHIPPED
    assert track(awb, "picked_up") == "already_applied"
    assert track(awb, "in_transit") == "applied"
    assert state(order) == OrderStatus.SHIPPED
    assert track(awb, "delivered", at="2026-01-06T09:30:00Z") == "applied"
    assert state(order) == OrderStatus.DELIVERED
    before = events(order)
    # Replayed and out-of-order news after delivery: nothing moves backwards.
    assert track(awb, "delivered") == "already_applied"
    assert track(awb, "in_transit") == "stale"
    assert track(awb, "failed") == "stale"
    assert state(order) == OrderStatus.DELIVERED
    assert events(order) == before
    assert before.count("order.shipped") == before.count("order.delivered") == 1
    shipment = Shipment.objects.get(order_id=order.pk)
    assert (shipment.status, shipment.status_at.isoformat()) == (
        "delivered",
        "2026-01-06T09:30:00+00:00",
    )


def test_delivery_reported_before_pickup_delivers_and_the_late_pickup_is_stale(confirmed):
    order = confirmed()
    awb = Shipment.objects.get(order_id=order.pk).awb
    assert track(awb, "delivered") == "applied"
    assert state(order) == OrderStatus.DELIVERED
    assert track(awb, "picked_up") == "stale"
    assert state(order) == OrderStatus.DELIVERED
    assert "order.shipped" not in events(order)


def test_a_split_order_ships_with_its_first_parcel_and_is_delivered_with_its_last(confirmed):
    # A second Bengaluru centre holds the only stock of one product: two shipments.
    center = CenterFactory(code="BLR-2", priority=9, pincode_prefixes=["560"])
    StockBatchFactory(product=ProductFactory(sku="ONLY-BLR2"), center=center)
    order = confirmed(items=[("PARA-500", 1), ("ONLY-BLR2", 1)])
    first, second = Shipment.objects.filter(order_id=order.pk).order_by("center")
    assert track(first.awb, "delivered") == "applied"
    assert state(order) == OrderStatus.SHIPPED
    assert track(second.awb, "in_transit") == "applied"
    assert state(order) == OrderStatus.SHIPPED
    assert track(second.awb, "delivered") == "applied"
    assert state(order) == OrderStatus.DELIVERED


def test_cash_on_delivery_is_collected_once_on_delivery(confirmed):
    order = confirmed(payment_method="cod", payment_token="")
    awb = Shipment.objects.get(order_id=order.pk).awb
    assert Payment.objects.get(order_id=order.pk).status == "pending_collection"
    track(awb, "in_transit")
    assert Payment.objects.get(order_id=order.pk).status == "pending_collection"
    track(awb, "delivered")
    track(awb, "delivered")
    payment = Payment.objects.get(order_id=order.pk)
    assert (payment.status, payment.reference) == ("captured", f"cod:{order.pk}")
    captured = Order.objects.get(pk=order.pk).events.filter(type="payment.captured")
    assert [e.data for e in captured] == [{"amount": str(order.total_amount), "method": "cod"}]


def test_a_failed_delivery_flags_the_shipment_and_the_timeline(confirmed):
    order = confirmed()
    awb = Shipment.objects.get(order_id=order.pk).awb
    track(awb, "picked_up")
    # `failed`, the older wire name, is `delivery_failed`; the replay changes nothing.
    assert track(awb, "failed") == "applied"
    assert track(awb, "failed") == "already_applied"
    assert track(awb, "delivery_failed") == "already_applied"
    shipment = Shipment.objects.get(order_id=order.pk)
    assert (shipment.status, shipment.delivery_attempts) == ("delivery_failed", 1)
    assert state(order) == OrderStatus.SHIPPED
    failed = Order.objects.get(pk=order.pk).events.filter(type="shipment.delivery_failed")
    assert [e.data for e in failed] == [{"awb": awb, "attempt": 1, "reason": None}]
    assert not Order.objects.get(pk=order.pk).events.filter(type="shipment.failed").exists()
    # The courier tries again and delivers.
    assert track(awb, "delivered") == "applied"
    assert state(order) == OrderStatus.DELIVERED


def update(awb, status, at, **extra):
    response = post({"awb": awb, "status": status, "at": at, **extra})
    assert response.status_code == 200, response.content
    return response.json()["result"]


def shown(order):
    """The order as its client reads it through the API."""
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(order.client)}")
    response = api.get(f"/api/v1/orders/{order.pk}/")
    assert response.status_code == 200, response.content
    return response.json()


def shipment_events(order):
    return [e for e in events(order) if e.startswith("shipment.") and e != "shipment.booked"]


def test_the_happy_path_shows_every_update_in_the_order(confirmed, settings):
    settings.SIMULATOR_URL = "http://sim.test"
    order = confirmed()
    awb = Shipment.objects.get(order_id=order.pk).awb
    assert update(awb, "picked_up", "2026-01-05T08:00:00Z") == "applied"
    assert update(awb, "in_transit", "2026-01-05T12:00:00Z") == "applied"
    assert update(awb, "out_for_delivery", "2026-01-06T07:00:00Z") == "applied"
    assert state(order) == OrderStatus.SHIPPED
    assert update(awb, "delivered", "2026-01-06T09:30:00Z", attempt=1) == "applied"
    assert state(order) == OrderStatus.DELIVERED
    assert shipment_events(order) == [
        "shipment.picked_up",
        "shipment.in_transit",
        "shipment.out_for_delivery",
        "shipment.delivered",
    ]
    timeline = Order.objects.get(pk=order.pk).events
    partner = Shipment.objects.get(order_id=order.pk).partner
    url = f"http://sim.test/logistics/{partner}/track/{awb}"
    assert timeline.get(type="shipment.picked_up").data == {"awb": awb, "tracking_url": url}
    assert timeline.get(type="shipment.delivered").data == {"awb": awb, "attempt": 1}
    [shipment] = shown(order)["shipments"]
    assert shipment["status"] == "delivered"
    assert shipment["tracking_url"] == url
    assert shipment["delivery_attempts"] == 0
    assert shipment["events"] == [
        {"status": "picked_up", "at": "2026-01-05T08:00:00Z", "attempt": None, "reason": None},
        {"status": "in_transit", "at": "2026-01-05T12:00:00Z", "attempt": None, "reason": None},
        {"status": "out_for_delivery", "at": "2026-01-06T07:00:00Z", "attempt": 1, "reason": None},
        {"status": "delivered", "at": "2026-01-06T09:30:00Z", "attempt": 1, "reason": None},
    ]


def test_two_failed_attempts_then_delivered(confirmed):
    order = confirmed(payment_method="cod", payment_token="")
    awb = Shipment.objects.get(order_id=order.pk).awb
    assert update(awb, "picked_up", "2026-01-05T08:00:00Z") == "applied"
    assert update(awb, "out_for_delivery", "2026-01-06T08:00:00Z") == "applied"
    assert (
        update(awb, "delivery_failed", "2026-01-06T11:00:00Z", reason="customer_unavailable")
        == "applied"
    )
    # Without an attempt number: the next attempt.
    assert update(awb, "out_for_delivery", "2026-01-07T08:00:00Z") == "applied"
    assert (
        update(
            awb, "delivery_failed", "2026-01-07T11:00:00Z", attempt=2, reason="address_not_found"
        )
        == "applied"
    )
    shipment = Shipment.objects.get(order_id=order.pk)
    assert (shipment.delivery_attempts, shipment.last_failure_reason) == (2, "address_not_found")
    assert state(order) == OrderStatus.SHIPPED
    assert Payment.objects.get(order_id=order.pk).status == "pending_collection"
    assert update(awb, "out_for_delivery", "2026-01-08T08:00:00Z", attempt=3) == "applied"
    assert update(awb, "delivered", "2026-01-08T10:00:00Z") == "applied"
    assert state(order) == OrderStatus.DELIVERED
    assert Payment.objects.get(order_id=order.pk).status == "captured"
    failures = Order.objects.get(pk=order.pk).events.filter(type="shipment.delivery_failed")
    assert [e.data for e in failures.order_by("pk")] == [
        {"awb": awb, "attempt": 1, "reason": "customer_unavailable"},
        {"awb": awb, "attempt": 2, "reason": "address_not_found"},
    ]
    body = shown(order)["shipments"][0]
    assert body["delivery_attempts"] == 2
    assert [(e["status"], e["attempt"], e["reason"]) for e in body["events"]] == [
        ("picked_up", None, None),
        ("out_for_delivery", 1, None),
        ("delivery_failed", 1, "customer_unavailable"),
        ("out_for_delivery", 2, None),
        ("delivery_failed", 2, "address_not_found"),
        ("out_for_delivery", 3, None),
        ("delivered", 3, None),
    ]


def test_out_of_order_and_replayed_attempts_never_move_backwards(confirmed):
    order = confirmed()
    awb = Shipment.objects.get(order_id=order.pk).awb
    at = "2026-01-06T08:00:00Z"
    assert update(awb, "delivery_failed", at, attempt=2, reason="refused") == "applied"
    # News of the first attempt, late: older than what we know.
    assert update(awb, "out_for_delivery", at, attempt=1) == "stale"
    assert update(awb, "delivery_failed", at, attempt=1, reason="other") == "stale"
    assert update(awb, "out_for_delivery", at, attempt=2) == "stale"
    assert update(awb, "in_transit", at) == "stale"
    assert update(awb, "delivery_failed", at, attempt=2, reason="refused") == "already_applied"
    assert update(awb, "out_for_delivery", at, attempt=3) == "applied"
    assert update(awb, "out_for_delivery", at) == "already_applied"
    shipment = Shipment.objects.get(order_id=order.pk)
    assert (shipment.status, shipment.delivery_attempts) == ("out_for_delivery", 2)
    assert shipment.last_failure_reason == "refused"
    assert shipment.updates.count() == 2
    assert shipment_events(order) == ["shipment.delivery_failed", "shipment.out_for_delivery"]
    assert state(order) == OrderStatus.SHIPPED


def return_to_origin(awb, attempts):
    assert update(awb, "picked_up", "2026-01-05T08:00:00Z") == "applied"
    for n in range(1, attempts + 1):
        assert update(awb, "out_for_delivery", f"2026-01-0{5 + n}T08:00:00Z") == "applied"
        assert update(awb, "failed", f"2026-01-0{5 + n}T11:00:00Z", reason="refused") == "applied"
    assert update(awb, "returning", "2026-01-09T08:00:00Z") == "applied"
    assert update(awb, "returned", "2026-01-10T08:00:00Z") == "applied"


def test_failed_to_the_end_then_returned_to_origin_restocked_and_refunded_once(
    confirmed, settings, simulator, django_capture_on_commit_callbacks
):
    attempts = getattr(settings, "COT_DELIVERY_ATTEMPTS", 3)
    order = confirmed()
    shipment = Shipment.objects.get(order_id=order.pk)
    [item] = shipment.items.all()
    batch = StockBatch.objects.get(product__sku=item.sku, batch=item.batch)
    on_hand = batch.on_hand
    with django_capture_on_commit_callbacks(execute=True):
        return_to_origin(shipment.awb, attempts)
    # Returned is final: late or replayed news changes nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert update(shipment.awb, "returning", "2026-01-09T08:00:00Z") == "stale"
        assert update(shipment.awb, "returned", "2026-01-10T08:00:00Z") == "already_applied"
        assert update(shipment.awb, "delivered", "2026-01-10T09:00:00Z") == "stale"
    shipment.refresh_from_db()
    assert (shipment.status, shipment.delivery_attempts) == ("returned", attempts)
    assert state(order) == OrderStatus.RETURNED
    assert shipment_events(order)[-2:] == ["shipment.returning", "shipment.returned"]
    assert shipment_events(order).count("shipment.delivery_failed") == attempts
    business = [e for e in events(order) if not e.startswith("notification.")]
    assert business[-3:] == ["inventory.restocked", "order.returned", "payment.refunded"]
    # Back on the shelf, in the batch it left.
    batch.refresh_from_db()
    assert batch.on_hand == on_hand + item.quantity
    # Refunded exactly once, all of it.
    refunds = [r for r in simulator.ledger()["refunds"] if str(order.pk) in r["idempotency_key"]]
    assert [r["amount"] for r in refunds] == [f"{order.total_amount:.2f}"]
    shown_order = shown(order)
    assert shown_order["status"] == "returned"
    assert shown_order["shipments"][0]["status"] == "returned"
    assert shown_order["payment"]["status"] == "refunded"
    assert shown_order["payment"]["refunded_amount"] == f"{order.total_amount:.2f}"
    # The customer is told of the refund, with its amount.
    texts = [m["text"] for m in simulator.ledger()["messages"] if m["channel"] == "sms"]
    assert f"We have refunded INR {order.total_amount:.2f} for your order {order.number}" in (
        " ".join(texts)
    )


def test_a_returned_unit_whose_batch_is_now_too_close_to_expiry_is_written_off(
    confirmed, settings, simulator, django_capture_on_commit_callbacks
):
    order = confirmed()
    shipment = Shipment.objects.get(order_id=order.pk)
    [item] = shipment.items.all()
    batch = StockBatch.objects.get(product__sku=item.sku, batch=item.batch)
    # Time passed while the parcel travelled: the batch is inside the shelf-life floor now.
    StockBatch.objects.filter(pk=batch.pk).update(expires_on=shelf_life_floor() - timedelta(days=1))
    on_hand = StockBatch.objects.get(pk=batch.pk).on_hand
    with django_capture_on_commit_callbacks(execute=True):
        return_to_origin(shipment.awb, 1)
    assert StockBatch.objects.get(pk=batch.pk).on_hand == on_hand
    [written_off] = StockReturn.objects.filter(order_id=order.pk)
    assert (written_off.outcome, written_off.reason, written_off.quantity) == (
        "written_off",
        "short_expiry",
        item.quantity,
    )
    event = Order.objects.get(pk=order.pk).events.get(type="inventory.written_off")
    assert event.data["reason"] == "short_expiry" and event.data["batch"] == item.batch
    assert state(order) == OrderStatus.RETURNED
    assert (
        len([r for r in simulator.ledger()["refunds"] if str(order.pk) in r["idempotency_key"]])
        == 1
    )


def test_a_cash_on_delivery_parcel_that_comes_back_owes_and_refunds_nothing(
    confirmed, simulator, django_capture_on_commit_callbacks
):
    order = confirmed(payment_method="cod")
    shipment = Shipment.objects.get(order_id=order.pk)
    with django_capture_on_commit_callbacks(execute=True):
        return_to_origin(shipment.awb, 1)
    assert state(order) == OrderStatus.RETURNED
    assert Payment.objects.get(order_id=order.pk).status == "voided"
    assert simulator.ledger()["refunds"] == [] and simulator.ledger()["payouts"] == []


def test_updates_are_counted_by_partner_and_status_once_committed(
    confirmed, django_capture_on_commit_callbacks
):
    order = confirmed()
    shipment = Shipment.objects.get(order_id=order.pk)

    def counted():
        partner = shipment.partner
        return (
            REGISTRY.get_sample_value(
                "cot_shipments_total", {"partner": partner, "status": "delivery_failed"}
            )
            or 0,
            REGISTRY.get_sample_value(
                "cot_delivery_failures_total", {"partner": partner, "reason": "refused"}
            )
            or 0,
        )

    before = counted()
    with django_capture_on_commit_callbacks(execute=True):
        track(shipment.awb, "delivery_failed")
        for _ in range(2):  # the replay is not counted
            update(shipment.awb, "delivery_failed", AT, attempt=2, reason="refused")
    assert counted() == (before[0] + 2, before[1] + 1)


def test_the_shipments_updates_load_in_one_query_whatever_their_number(confirmed):
    first = confirmed()
    track(Shipment.objects.get(order_id=first.pk).awb, "picked_up")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(first.client)}")
    with CaptureQueriesContext(connection) as one:
        assert api.get("/api/v1/orders/").status_code == 200
    second = confirmed()
    awb = Shipment.objects.get(order_id=second.pk).awb
    track(awb, "picked_up")
    track(awb, "in_transit")
    with CaptureQueriesContext(connection) as two:
        results = api.get("/api/v1/orders/").json()["results"]
    assert [len(o["shipments"][0]["events"]) for o in results] == [2, 1]
    assert len(two) == len(one), "\n".join(q["sql"][:80] for q in two)


def test_ops_move_a_shipment_by_hand_with_a_reason_and_the_timeline_names_them(confirmed):
    order = confirmed()
    shipment = Shipment.objects.get(order_id=order.pk)
    changelist = "/admin/logistics/shipment/"
    selected = {"action": "move_by_hand", "_selected_action": [shipment.pk]}

    # Only a role that may move shipments sees the action work.
    pharmacist = login("pharmacist")
    assert pharmacist.post(changelist, selected).status_code == 403
    ops = login("ops")
    form = ops.post(changelist, selected)
    assert form.status_code == 200 and b"Move shipments by hand" in form.content
    # A failed delivery without its reason is sent back, with nothing moved.
    bad = {**selected, "confirm": "yes", "status": "delivery_failed", "note": "called"}
    assert b"Say why the delivery failed." in ops.post(changelist, bad).content
    assert Shipment.objects.get(pk=shipment.pk).status == "booked"

    moved = ops.post(
        changelist,
        {**selected, "confirm": "yes", "status": "picked_up", "note": "courier app was down"},
    )
    assert moved.status_code == 302
    shipment.refresh_from_db()
    assert shipment.status == "picked_up"
    assert state(order) == OrderStatus.SHIPPED
    [event] = Order.objects.get(pk=order.pk).events.filter(type="shipment.picked_up")
    assert event.data["by"] == "ops:u-ops" and event.data["note"] == "courier app was down"
    # Never backwards, by hand either.
    again = {**selected, "confirm": "yes", "status": "picked_up", "note": "again"}
    ops.post(changelist, again)
    assert Order.objects.get(pk=order.pk).events.filter(type="shipment.picked_up").count() == 1
