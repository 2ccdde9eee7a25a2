"""The logistics webhook, signed, through the API down to the shipment, the
order's status and timeline, and cash on delivery (inline pipeline, real simulator)."""

import json

import pytest
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory
from core.webhooks import SIGNATURE_HEADER, webhook_signature
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
    assert track(awb, "failed") == "applied"
    assert track(awb, "failed") == "already_applied"
    assert Shipment.objects.get(order_id=order.pk).status == "failed"
    assert state(order) == OrderStatus.SHIPPED
    failed = Order.objects.get(pk=order.pk).events.filter(type="shipment.failed")
    assert [e.data for e in failed] == [{"awb": awb, "reason": "delivery_failed"}]
    # The courier tries again and delivers.
    assert track(awb, "delivered") == "applied"
    assert state(order) == OrderStatus.DELIVERED


def test_unknown_awbs_and_cancelled_shipments_change_nothing(confirmed):
    assert track("NOPE-1", "delivered") == "unknown_reference"
    order = confirmed()
    shipment = Shipment.objects.get(order_id=order.pk)
    Shipment.objects.filter(pk=shipment.pk).update(status="cancelled")
    assert track(shipment.awb, "picked_up") == "ignored"
    assert state(order) == OrderStatus.CONFIRMED


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        ({"awb": "X", "status": "lost", "at": "2026-01-05T10:00:00Z"}, "status"),
        ({"awb": "X", "status": "delivered"}, "at"),
        ({"awb": "X", "status": "delivered", "at": "2026-01-05T10:00:00Z", "x": 1}, "x"),
    ],
)
def test_a_malformed_update_is_400_in_the_contract_shape(db, body, attr):
    response = post(body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == attr


def test_ops_find_failed_deliveries_in_admin_with_the_booking_attempts(confirmed, simulator):

    simulator.control("logistics/swift", unserviceable_prefixes=["560"])
    failed, fine = confirmed(), confirmed()
    failed_awb = Shipment.objects.get(order_id=failed.pk).awb
    fine_awb = Shipment.objects.get(order_id=fine.pk).awb
    track(failed_awb, "failed")
    ops = login("ops")
    listed = ops.get("/admin/logistics/shipment/", {"attention": "failed_deliveries"})
    assert listed.status_code == 200
    assert failed_awb.encode() in listed.content and fine_awb.encode() not in listed.content
    shipment = Shipment.objects.get(order_id=failed.pk)
    page = ops.get(f"/admin/logistics/shipment/{shipment.pk}/change/")
    assert page.status_code == 200
    # Swift refused (not serviceable), roadie booked: both attempts with their keys.
    assert f"{shipment.idempotency_key}:1".encode() in page.content
    assert f"{shipment.idempotency_key}:2".encode() in page.content
    assert b"refused" in page.content.lower()
